"""The attention settings of the methods scored by attention (SpecPC on the draft's, SpecKV and
SnapKV on the target's). The scoring itself lives below the methods, in ``specllama.scoring``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..select.scores import Reduction


@dataclass(frozen=True)
class AttentionConfig:
    """Which attention counts and how it is reduced.

    Attributes:
        window: last prompt tokens whose queries score the prompt (always kept).
        reduction: ``max`` or ``mean`` over heads, queries, layers and steps.
        weighted_query: weight window queries by ``linspace(0, 1, window)``.
        start_layer: first layer read; None means ``n_layer // 3`` (8 of the 0.5B draft's 24
            layers, as in the paper's configurations).
    """

    window: int = 64
    reduction: str = "max"
    weighted_query: bool = True
    start_layer: int | None = None

    def __post_init__(self):
        if self.window < 1:
            raise ConfigError(f"--window must be >= 1, got {self.window}")
        try:
            Reduction(self.reduction)
        except ValueError:
            raise ConfigError(f"--reduction must be max or mean, got {self.reduction!r}") from None
        if self.start_layer is not None and self.start_layer < 0:
            raise ConfigError(f"--start-layer must be >= 0, got {self.start_layer}")

    def layers(self, n_layer: int) -> set[int]:
        start = n_layer // 3 if self.start_layer is None else self.start_layer
        if start >= n_layer:
            raise ConfigError(f"--start-layer {start} leaves no layer of a {n_layer}-layer model")
        return set(range(start, n_layer))
