"""An optional memo of the target's prefill for KV methods, per prompt and prefill setup.

A KV method (SnapKV, SpecKV, StreamingLLM, random) prefills the whole prompt into the target,
scores its cells, then keeps ``budget`` of them. Everything before the selection (the prefill, the
attention scores, the first sampled token) is independent of the budget, so ``eval``, which runs
one prompt at several budgets, keeps it here and prefills once per sample and KV setting. Timing
runs (``run``, ``chat``, ``serve``, ``bench``) leave it off. As for :class:`.ScoreCache`, a hit is
counted as if the prefill had run again (``Timings.reused_ms``).

An entry holds the target's serialised sequence state (``llama_state_seq_get_data``: K and V of
every prompt cell), what ``engine.kvstate.keep_cells`` filters into the decode context, so a hit
needs no live context: the prefill context may have been cleared or reused since. That is a
full-prompt KV cache in host memory per entry: eval clears the memo per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .cache import digest


@dataclass(frozen=True)
class Prefill:
    """The budget-independent part of a KV method's target run.

    Attributes:
        scores: ``[n]`` the target's attention scores of the ``n`` prompt cells, None for a KV stage
            that reads no attention.
        blob: the target's sequence state after the prefill (``n`` prompt cells, plus the ``L``
            lookahead cells for SpecKV), in the prefill context's V layout.
        first: the first generated token, sampled from the last prompt token's logits.
        prefill_ms: wall time of the prefill, attention reading included.
        capture_ms: the part of ``prefill_ms`` spent reading and reducing attention.
        state_ms: time spent serialising ``blob`` (0 when reading attention produced it).
    """

    scores: np.ndarray | None
    blob: bytes
    first: int
    prefill_ms: float
    capture_ms: float = 0.0
    state_ms: float = 0.0


class PrefillCache:
    """``{key: Prefill}``; the key names the prefilled tokens, their positions, the lookahead
    tokens read after them, and every setting that decides the result (see
    ``pipeline.prefill_key``)."""

    def __init__(self):
        self._hits: dict[tuple, Prefill] = {}

    @staticmethod
    def key(tokens: np.ndarray, positions: np.ndarray, lookahead: np.ndarray, *setup) -> tuple:
        """The key of ``tokens[n]`` at ``positions[n]`` followed by ``lookahead[L]``, prefilled
        under ``setup`` (hashable settings). Each array is hashed on its own, with its length."""
        return tuple((len(a), digest(a)) for a in (tokens, positions, lookahead)) + tuple(setup)

    def get(self, key: tuple) -> Prefill | None:
        return self._hits.get(key)

    def put(self, key: tuple, value: Prefill) -> None:
        """Keep ``value``; its scores are stored as a read-only copy, so that no stage can change
        what a later hit reads."""
        if value.scores is not None:
            scores = np.array(value.scores, dtype=np.float32)
            scores.setflags(write=False)
            value = replace(value, scores=scores)
        self._hits[key] = value

    def clear(self) -> None:
        """Forget every entry (each holds a full-prompt KV state: eval clears per sample)."""
        self._hits.clear()

    def __len__(self) -> int:
        return len(self._hits)
