"""Flag values checked where the flag's name is still known.

The configs below the CLI validate their own fields, but one config type can stand for several
flags (a :class:`~specllama.methods.Budget` is both ``--budget`` and ``--budget-pc``), so the
range checks whose message must name the flag the user gave run here first.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..inputs import check_text

POSITIVE_INT_FLAGS = (("budget", "--budget"), ("budget_pc", "--budget-pc"))
# flags whose text is sent to a model, a template or a client: invalid UTF-8 is refused up front
TEXT_FLAGS = (("prompt", "-p"), ("question", "--question"), ("system", "-sys"), ("chat_template", "--chat-template"),
              ("gap", "--gap"), ("alias", "--alias"), ("api_key", "--api-key"), ("host", "--host"),
              ("upstream", "--upstream"), ("upstream_model", "--upstream-model"),
              ("upstream_api_key", "--upstream-api-key"))


def check_text_flags(o: dict) -> None:
    """Raise ``PromptError`` naming the flag whose text is not valid UTF-8 (lone surrogates)."""
    for key, flag in TEXT_FLAGS:
        if o.get(key) is not None:
            check_text(o[key], flag)


def check_method_flags(o: dict) -> None:
    """Raise ``ConfigError`` naming the flag for a ``--budget`` or ``--budget-pc`` below 1 (and
    ``PromptError`` for a text flag that is not valid UTF-8, see :func:`check_text_flags`)."""
    check_text_flags(o)
    for key, flag in POSITIVE_INT_FLAGS:
        value = o.get(key)
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
