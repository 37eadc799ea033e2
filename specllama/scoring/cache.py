"""An optional memo of draft attention scores per prompt and scoring setup.

``eval`` scores one prompt at several budgets: with a cache on the runtime the draft runs once
per prompt and the other budgets reuse its scores. Timing runs leave it off. A hit is counted as
if the draft had run again (``Timings.reused_ms``), and the wall time stays apart from it
(``Timings.ttft_wall_ms``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .attention import AttentionScores  # noqa: F401  (the value SpecPC stores)


def digest(a: np.ndarray) -> str:
    """A content hash of an int32 token (or position) array ``[n]``."""
    return hashlib.sha1(np.asarray(a, dtype=np.int32).tobytes()).hexdigest()


class ScoreCache:
    """``{key: (value, draft_ms, draft_tokens)}`` where the key names the prompt and everything
    that decides what the draft produced for it (attention settings, lookahead, draft pass,
    attention route), and the value is that product: SpecPC's :class:`AttentionScores` or SpecKV's
    lookahead answer ``[m]``. ``draft_tokens`` is what the draft read for it."""

    def __init__(self):
        self._hits: dict[tuple, tuple[object, float, int]] = {}

    @staticmethod
    def key(tokens: np.ndarray, *setup) -> tuple:
        """The key of ``tokens[n]`` produced under ``setup`` (hashable settings)."""
        return (digest(tokens), *setup)

    def get(self, key: tuple) -> tuple[object, float, int] | None:
        return self._hits.get(key)

    def put(self, key: tuple, value: object, draft_ms: float, draft_tokens: int = 0) -> None:
        self._hits[key] = (value, float(draft_ms), int(draft_tokens))

    def clear(self) -> None:
        """Forget every entry (an entry can hold a draft KV state: eval clears per sample)."""
        self._hits.clear()

    def __len__(self) -> int:
        return len(self._hits)
