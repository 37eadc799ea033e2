"""An optional memo of draft attention scores per prompt and scoring setup.

``eval`` scores one prompt at several budgets: with a cache on the runtime the draft runs once
per prompt and the other budgets reuse its scores. Timing runs leave it off. A hit is counted as
if the draft had run again (``Timings.reused_ms``), and the wall time stays apart from it
(``Timings.ttft_wall_ms``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .attention import AttentionScores


class ScoreCache:
    """``{key: (scores, draft_ms)}`` where the key names the prompt and everything that decides
    its scores (attention settings, lookahead, draft pass, attention route)."""

    def __init__(self):
        self._hits: dict[tuple, tuple[AttentionScores, float]] = {}

    @staticmethod
    def key(tokens: np.ndarray, *setup) -> tuple:
        """The key of ``tokens[n]`` scored under ``setup`` (hashable settings)."""
        return (hashlib.sha1(np.asarray(tokens, dtype=np.int32).tobytes()).hexdigest(), *setup)

    def get(self, key: tuple) -> tuple[AttentionScores, float] | None:
        return self._hits.get(key)

    def put(self, key: tuple, scores: AttentionScores, draft_ms: float) -> None:
        self._hits[key] = (scores, float(draft_ms))

    def __len__(self) -> int:
        return len(self._hits)
