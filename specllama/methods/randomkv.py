"""Random baseline, a sanity floor: the target prefills everything and keeps random KV cells (plus
the protected tokens and the last ``window``), seeded for reproducibility."""

from __future__ import annotations

import numpy as np

from ..select.topk import select_tokens
from .base import Budget, Job, Method
from .speckv import refuse_non_attention


class RandomStage:
    needs_draft = False
    needs_attention = False

    def __init__(self, window: int = 32, seed: int = 0):
        self.window = window
        self.seed = seed

    def lookahead(self, job: Job) -> np.ndarray:
        refuse_non_attention(job, "random")
        return np.zeros(0, dtype=np.int32)

    def select(self, job: Job, budget: int, attention, protected: np.ndarray) -> np.ndarray:
        scores = np.random.default_rng(self.seed).random(len(protected)).astype(np.float32)
        return select_tokens(scores, budget, window=self.window, protected=protected)


class Random(Method):
    name = "random"
    help = "baseline: keep random KV cells (a floor for the others)"

    def __init__(self, budget: Budget = Budget(), seed: int = 0, **_):
        super().__init__(kv_stage=RandomStage(seed=seed), budget=budget)
