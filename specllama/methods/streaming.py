"""StreamingLLM baseline: the target prefills everything, then keeps the first ``sink`` cells and
the most recent ones (plus the protected template, system prompt and question) within the budget."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import Budget, Job, Method
from .scored import ScoredKVStage


class SinkRecentStage(ScoredKVStage):
    """Scores cells by recency, the first ``sink`` above every other."""

    name = "streaming"

    def __init__(self, sink: int = 4):
        if sink < 0:
            raise ConfigError(f"the attention-sink count must be >= 0, got {sink}")
        self.sink = sink

    def score(self, job: Job, attention, protected: np.ndarray) -> np.ndarray:
        n = len(protected)
        recency = np.arange(n, dtype=np.float32)
        recency[: self.sink] = n  # sinks outrank every recent token
        return recency


class Streaming(Method):
    name = "streaming"
    help = "baseline: keep the first 4 (sink) and the most recent KV cells"

    def __init__(self, budget: Budget = Budget(), sink: int = 4, **_):
        super().__init__(kv_stage=SinkRecentStage(sink), budget=budget)
