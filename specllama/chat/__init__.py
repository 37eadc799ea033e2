"""``specllama chat``: a long-context chat that keeps earlier turns in the models' KV caches.

``history`` renders the conversation, ``reuse`` keeps contexts in step with it, ``compress``
decides what to cut when the budget or the context asks, ``session`` runs a turn, ``commands`` and
``repl`` are the interactive front, ``progress`` draws prefill progress on stderr.
"""

from .session import ChatSession, TurnStats

__all__ = ["ChatSession", "TurnStats"]
