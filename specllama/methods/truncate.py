"""Truncation baseline: the target reads only the head and the tail of the prompt (equal halves of
the budget, protected tokens always included), as long-context benchmarks truncate in the middle."""

from __future__ import annotations

import numpy as np

from ..select.topk import select_tokens
from .base import Budget, Job, Method


class HeadTailStage:
    needs_draft = False
    window = 0
    positions = "renumber"

    def select(self, job: Job, budget: int) -> np.ndarray:
        n = job.prompt.n
        i = np.arange(n)
        edge = -np.minimum(i, n - 1 - i).astype(np.float32)  # higher near either end
        return select_tokens(edge, budget, protected=job.prompt.protected)


class Truncate(Method):
    name = "truncate"
    help = "baseline: the target reads the head and tail of the prompt"

    def __init__(self, budget: Budget = Budget(), **_):
        super().__init__(prompt_stage=HeadTailStage(), budget=budget)
