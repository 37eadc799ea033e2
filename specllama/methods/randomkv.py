"""Random baseline, a sanity floor: the target prefills everything and keeps random KV cells (plus
the protected tokens and the last ``window``), seeded for reproducibility."""

from __future__ import annotations

import numpy as np

from .base import Budget, Job, Method
from .scored import ScoredKVStage


class RandomStage(ScoredKVStage):
    """Scores cells at random (seeded), the last ``window`` kept as by every KV method."""

    name = "random"

    def __init__(self, window: int = 32, seed: int = 0):
        self.window = window
        self.seed = seed

    def score(self, job: Job, attention, protected: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(protected)).astype(np.float32)


class Random(Method):
    name = "random"
    help = "baseline: keep random KV cells (a floor for the others)"

    def __init__(self, budget: Budget = Budget(), seed: int = 0, **_):
        super().__init__(kv_stage=RandomStage(seed=seed), budget=budget)
