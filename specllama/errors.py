"""User-facing errors, and the type checks that configs raise them with.

Every problem a user can cause (a missing file, a bad flag, a prompt that does not fit) is raised as
a :class:`SpecllamaError`. The CLI prints its message as one line on stderr and exits non-zero; the
Python API lets it propagate. Anything else escaping is a bug.
"""

import math
import numbers


class SpecllamaError(Exception):
    """A problem with the user's input or environment, described in one line."""

    exit_code = 2


class ModelError(SpecllamaError):
    """A model file is missing, unreadable, not a GGUF, or unsuitable for the requested method."""


class PromptError(SpecllamaError):
    """A prompt is empty, not valid UTF-8, or does not fit the context."""


class ConfigError(SpecllamaError):
    """A configuration value is out of range or inconsistent with another."""


class Interrupted(SpecllamaError):
    """Generation or prefill was interrupted by the user (Ctrl-C)."""

    exit_code = 130


INT32_MAX = 2**31 - 1  # llama.cpp's int32/uint32 parameters; ctypes would wrap larger values silently


def require_int(value, name: str, hi: int = INT32_MAX) -> None:
    """``ConfigError`` unless ``value`` is an integer (not a bool) no larger than ``hi``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value > hi:
        raise ConfigError(f"{name} must be <= {hi}, got {value}")


def require_number(value, name: str) -> None:
    """``ConfigError`` unless ``value`` is a finite int or float (not a bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
