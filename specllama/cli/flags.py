"""Flag values checked where the flag's name is still known.

The configs below the CLI validate their own fields, but one config type can stand for several
flags (a :class:`~specllama.methods.Budget` is both ``--budget`` and ``--budget-pc``), so the
range checks whose message must name the flag the user gave run here first.
"""

from __future__ import annotations

from ..errors import ConfigError

POSITIVE_INT_FLAGS = (("budget", "--budget"), ("budget_pc", "--budget-pc"))


def check_method_flags(o: dict) -> None:
    """Raise ``ConfigError`` naming the flag for a ``--budget`` or ``--budget-pc`` below 1."""
    for key, flag in POSITIVE_INT_FLAGS:
        value = o.get(key)
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
