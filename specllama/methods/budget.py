"""What a request asks of a method: how many prompt tokens to keep (:class:`Budget`) and how to
generate (:class:`GenConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..engine.sampling import SamplingConfig
from ..errors import ConfigError, require_int, require_number


@dataclass(frozen=True)
class Budget:
    """How many prompt tokens the target keeps: ``tokens`` (``--budget N``) or a fraction ``keep``.

    The budget counts every prompt token the target attends to when decoding, protected tokens
    and the window included; it means the same for every method.
    """

    tokens: int | None = None
    keep: float | None = None

    def __post_init__(self):
        if self.tokens is not None and self.keep is not None:
            raise ConfigError("give either --budget or --keep, not both")
        if self.tokens is not None:
            require_int(self.tokens, "--budget", 2**63 - 1)
        if self.keep is not None:
            require_number(self.keep, "--keep")
        if self.tokens is not None and self.tokens < 1:
            raise ConfigError(f"--budget must be >= 1, got {self.tokens}")
        if self.keep is not None and not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"--keep must be in (0, 1], got {self.keep}")

    @property
    def given(self) -> bool:
        return self.tokens is not None or self.keep is not None

    def resolve(self, n_prompt: int, default: int | None = None) -> int:
        """The budget in tokens for an ``n_prompt``-token prompt."""
        if self.tokens is not None:
            return self.tokens
        if self.keep is not None:
            return max(1, math.ceil(self.keep * n_prompt))
        if default is None:
            raise ConfigError("this method needs --budget N or --keep FRACTION")
        return default

    def describe(self) -> str:
        if self.tokens is not None:
            return f"budget {self.tokens}"
        if self.keep is not None:
            return f"keep {self.keep:g}"
        return "no budget"


@dataclass(frozen=True)
class GenConfig:
    """Generation settings: ``n_predict`` (``-n``; -1 until end of generation) and sampling."""

    n_predict: int = 256
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self):
        require_int(self.n_predict, "-n", 2**63 - 1)
        if self.n_predict == 0 or self.n_predict < -1:
            raise ConfigError(f"-n must be >= 1 or -1, got {self.n_predict}")
