"""User-facing errors.

Every problem a user can cause (a missing file, a bad flag, a prompt that does not fit) is raised as
a :class:`SpecllamaError`. The CLI prints its message as one line on stderr and exits non-zero; the
Python API lets it propagate. Anything else escaping is a bug.
"""


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
