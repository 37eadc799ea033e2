"""The shared selection of scored stages, as kvpress's ``ScorerPress``: the base selects, a method
only scores.

A scored stage gives one score per prompt token (or KV cell); :meth:`ScoredStage.keep` pools them
over ``kernel`` neighbours, always keeps the last ``window`` tokens and the protected ones, expands
the best to ``neighbours``-wide spans and cuts to the budget (``select.topk.select_tokens``).
SpecPC scores with the draft's attention, SpecKV and SnapKV with the target's, StreamingLLM by
recency, the random baseline at random and truncation by distance to either end.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import ConfigError
from ..select.scores import pool1d
from ..select.topk import select_tokens
from .base import DraftScoring, Job


class ScoredStage:
    """Selection settings shared by every scored stage (class defaults: no pooling, no spans).

    Attributes:
        name: the method, for messages.
        window: the last ``window`` tokens are always kept.
        kernel, pool: pooling of the scores (``max`` or ``avg``; kernel 1: none).
        neighbours: span kept around each chosen token (1: the token alone).
    """

    name = "scored"
    needs_draft = False
    window = 0
    kernel = 1
    pool = "max"
    neighbours = 1

    def keep(self, scores: np.ndarray, budget: int, protected: np.ndarray) -> np.ndarray:
        """Sorted indices ``[<=budget]`` of the tokens to keep given ``scores[n]`` and
        ``protected[n]`` (kept whatever their score)."""
        pooled = pool1d(scores, self.kernel, self.pool)
        return select_tokens(pooled, budget, window=self.window, neighbours=self.neighbours,
                             protected=protected)


class ScoredPromptStage(ScoredStage):
    """A prompt stage (``base.PromptStage``) that only has to implement :meth:`score`."""

    positions = "renumber"
    draft_scoring: DraftScoring | None = None

    def score(self, job: Job) -> np.ndarray:
        """``[n]`` importance of each of ``job.prompt.tokens`` (higher is kept first)."""
        raise NotImplementedError

    def select(self, job: Job, budget: int) -> np.ndarray:
        scores = self.score(job)
        t0 = time.perf_counter()
        kept = self.keep(scores, budget, job.prompt.protected)
        job.timings.select_ms += 1000.0 * (time.perf_counter() - t0)
        return kept


def refuse_non_attention(job: Job, method: str) -> None:
    """KV selection needs a plain attention KV cache: refuse recurrent and hybrid targets by name."""
    info = job.rt.target.info
    if info.recurrent or info.hybrid:
        kind = "recurrent" if info.recurrent else "hybrid (attention + recurrent)"
        raise ConfigError(f"{method} prunes the target's attention KV cache, but {job.rt.target.name} "
                          f"is a {kind} model (architecture {info.arch}); use specpc, truncate or dense")


class ScoredKVStage(ScoredStage):
    """A KV stage (``base.KVStage``) that only has to implement :meth:`score`; by default it reads no
    attention and has no lookahead."""

    needs_attention = False
    attention = None

    def lookahead(self, job: Job) -> np.ndarray:
        refuse_non_attention(job, self.name)
        return np.zeros(0, dtype=np.int32)

    def score(self, job: Job, attention: np.ndarray | None, protected: np.ndarray) -> np.ndarray:
        """``[n]`` importance of each prefilled prompt cell; ``attention[n]`` when
        :attr:`needs_attention`."""
        raise NotImplementedError

    def select(self, job: Job, budget: int, attention: np.ndarray | None, protected: np.ndarray) -> np.ndarray:
        return self.keep(self.score(job, attention, protected), budget, protected)
