"""Truncation baseline: the target reads only the head and the tail of the prompt (equal halves of
the budget, protected tokens always included), as long-context benchmarks truncate in the middle."""

from __future__ import annotations

import numpy as np

from .base import Budget, Job, Method
from .scored import ScoredPromptStage


class HeadTailStage(ScoredPromptStage):
    """Scores tokens by their closeness to either end of the prompt."""

    name = "truncate"

    def score(self, job: Job) -> np.ndarray:
        n = job.prompt.n
        i = np.arange(n)
        return -np.minimum(i, n - 1 - i).astype(np.float32)  # higher near either end


class Truncate(Method):
    name = "truncate"
    help = "baseline: the target reads the head and tail of the prompt"

    def __init__(self, budget: Budget = Budget(), **_):
        super().__init__(prompt_stage=HeadTailStage(), budget=budget)
