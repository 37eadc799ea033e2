"""StreamingLLM baseline: the target prefills everything, then keeps the first ``sink`` cells and
the most recent ones (plus the protected template, system prompt and question) within the budget."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..select.topk import select_tokens
from .base import Budget, Job, Method
from .speckv import refuse_non_attention


class SinkRecentStage:
    needs_draft = False
    needs_attention = False
    window = 0

    def __init__(self, sink: int = 4):
        if sink < 0:
            raise ConfigError(f"--sink must be >= 0, got {sink}")
        self.sink = sink

    def lookahead(self, job: Job) -> np.ndarray:
        refuse_non_attention(job, "streaming")
        return np.zeros(0, dtype=np.int32)

    def select(self, job: Job, budget: int, attention, protected: np.ndarray) -> np.ndarray:
        n = len(protected)
        recency = np.arange(n, dtype=np.float32)
        recency[: self.sink] = n  # sinks outrank every recent token
        return select_tokens(recency, budget, protected=protected)


class Streaming(Method):
    name = "streaming"
    help = "baseline: keep the first 4 (sink) and the most recent KV cells"

    def __init__(self, budget: Budget = Budget(), sink: int = 4, **_):
        super().__init__(kv_stage=SinkRecentStage(sink), budget=budget)
