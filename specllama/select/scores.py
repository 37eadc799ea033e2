"""Reducing attention probabilities to one importance score per key.

An attention block has shape ``[n_head, n_rows, n_kv]``: query head, query row, key cell. The
paper's reduction (and its reference code) takes ``max`` (or ``mean``) over query heads and query
rows, then over layers, then over lookahead steps. Because every level uses the same reduction, the
whole thing is one running reduction, which :class:`ScoreAccumulator` applies block by block as the
capture hands blocks over, so memory stays ``O(n_head_kv x n_keys)``.

``mean`` is accumulated as a sum: every key receives the same number of terms, so the ranking
(which is all selection uses) is identical, and partial blocks need no bookkeeping.

Scores are kept per KV head (``[n_head_kv, n_keys]``, the GQA group of query head ``h`` being
``h // group``) so a per-head keep set stays possible; :meth:`ScoreAccumulator.scores` reduces over
KV heads for llama.cpp, whose KV cells are shared by every head and layer.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class Reduction(str, Enum):
    MAX = "max"
    MEAN = "mean"


def linear_query_weights(n_rows: int) -> np.ndarray:
    """``linspace(0, 1, n_rows)``: later window queries count more (the paper's weighted query)."""
    if n_rows <= 1:
        return np.ones(max(n_rows, 0), dtype=np.float32)
    return np.linspace(0.0, 1.0, n_rows, dtype=np.float32)


class ScoreAccumulator:
    """Running reduction of attention blocks into per-(KV head, key) scores.

    Args:
        n_keys: keys to score (prompt cells ``0..n_keys-1``); columns beyond are ignored.
        n_head: query heads per block.
        n_head_kv: KV heads; query head ``h`` belongs to KV head ``h // (n_head // n_head_kv)``.
        reduction: ``max`` or ``mean``.
    """

    def __init__(self, n_keys: int, n_head: int, n_head_kv: int, reduction: Reduction | str = Reduction.MAX):
        if n_head % n_head_kv:
            raise ValueError(f"n_head {n_head} is not a multiple of n_head_kv {n_head_kv}")
        self.n_keys = int(n_keys)
        self.n_head = int(n_head)
        self.n_head_kv = int(n_head_kv)
        self.group = n_head // n_head_kv
        self.reduction = Reduction(reduction)
        self._acc = np.zeros((self.n_head_kv, self.n_keys), dtype=np.float32)
        self.blocks = 0
        self.skipped = 0

    def add(self, block: np.ndarray, weights: np.ndarray | None = None) -> bool:
        """Fold one block ``[n_head, n_rows, n_kv]`` in; ``weights[n_rows]`` scale the rows.

        Returns False (and ignores the block) when it covers fewer than ``n_keys`` keys, which is
        how a sliding-window layer whose cache no longer maps cells to positions shows up.
        """
        n_head, n_rows, n_kv = block.shape
        if n_head != self.n_head:
            raise ValueError(f"block has {n_head} heads, expected {self.n_head}")
        if n_kv < self.n_keys:
            self.skipped += 1
            return False
        x = block[:, :, : self.n_keys]
        if weights is not None:
            x = x * np.asarray(weights, dtype=np.float32)[None, :, None]
        x = x.reshape(self.n_head_kv, self.group * n_rows, self.n_keys)
        if self.reduction is Reduction.MAX:
            np.maximum(self._acc, x.max(axis=1), out=self._acc)
        else:
            self._acc += x.sum(axis=1)
        self.blocks += 1
        return True

    def per_head(self) -> np.ndarray:
        """Scores per KV head, shape ``[n_head_kv, n_keys]``."""
        return self._acc

    def scores(self) -> np.ndarray:
        """Scores per key, shape ``[n_keys]``, reduced over KV heads."""
        if self.reduction is Reduction.MAX:
            return self._acc.max(axis=0)
        return self._acc.sum(axis=0)


def pool1d(x: np.ndarray, kernel: int, kind: str = "max") -> np.ndarray:
    """Centred 1-D pooling with zero padding, stride 1, over the last axis.

    For kernel ``k`` the output at ``i`` covers ``x[i - (k-1)//2 : i + k - (k-1)//2]``
    (the reference code's padding). ``kind`` is ``max`` or ``avg``. Shape is preserved.
    """
    x = np.asarray(x, dtype=np.float32)
    if kernel <= 1:
        return x.copy()
    left = (kernel - 1) // 2
    right = kernel - 1 - left
    pad = [(0, 0)] * (x.ndim - 1) + [(left, right)]
    xp = np.pad(x, pad, mode="constant")
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=-1)
    if kind == "max":
        return win.max(axis=-1)
    if kind in ("avg", "mean"):
        return win.mean(axis=-1)
    raise ValueError(f"unknown pool kind {kind!r}")


def attention_probs(q: np.ndarray, k: np.ndarray, q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
    """Causal attention probabilities ``softmax(q k^T / sqrt(d))`` recomputed in numpy.

    Args:
        q: ``[r, n_head, d]`` queries (after RoPE).
        k: ``[m, n_head_kv, d]`` keys (after RoPE); query head ``h`` reads KV head ``h // group``.
        q_pos: ``[r]`` query positions; k_pos: ``[m]`` key positions. Query ``i`` sees the keys at
            positions ``<= q_pos[i]``.

    Returns:
        ``[n_head, r, m]`` float32, the layout of llama.cpp's ``kq_soft_max``.
    """
    r, n_head, d = q.shape
    m, n_kv, _ = k.shape
    group = n_head // n_kv
    out = np.empty((n_head, r, m), dtype=np.float32)
    masked = np.asarray(k_pos)[None, :] > np.asarray(q_pos)[:, None]  # [r, m]
    scale = np.float32(1.0 / np.sqrt(d))
    q = np.asarray(q, dtype=np.float32)
    for g in range(n_kv):
        kg = np.asarray(k[:, g, :], dtype=np.float32)
        qg = np.ascontiguousarray(q[:, g * group:(g + 1) * group, :].transpose(1, 0, 2)).reshape(group * r, d)
        s = (qg @ kg.T).reshape(group, r, m)
        s *= scale
        s[:, masked] = -np.inf
        s -= s.max(axis=-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        out[g * group:(g + 1) * group] = s
    return out
