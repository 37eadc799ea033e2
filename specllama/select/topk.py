"""Choosing which prompt tokens to keep from their scores."""

from __future__ import annotations

import numpy as np


def _unique_in_order(idx: np.ndarray) -> np.ndarray:
    """Drop repeated values, keeping the first occurrence and the original order."""
    _, first = np.unique(idx, return_index=True)
    return idx[np.sort(first)]


def neighbour_offsets(neighbours: int) -> np.ndarray:
    """Offsets of a ``neighbours``-wide span around a token, nearest first (0, -1, 1, -2, ...)."""
    if neighbours <= 1:
        return np.zeros(1, dtype=np.int64)
    lo = -((neighbours - 1) // 2)
    hi = neighbours - 1 - (neighbours - 1) // 2
    off = np.arange(lo, hi + 1, dtype=np.int64)
    return off[np.argsort(np.abs(off), kind="stable")]


def select_tokens(scores: np.ndarray, budget: int, window: int = 0, neighbours: int = 1,
                  protected: np.ndarray | None = None, candidates: np.ndarray | None = None) -> np.ndarray:
    """Indices of the tokens to keep, sorted ascending.

    Follows the paper's SpecPC selection: rank tokens by ``scores[n]`` (descending), expand each
    to its ``neighbours``-wide span (nearest first, preserving rank order), put the last ``window``
    tokens and every ``protected[n]`` token first, de-duplicate, cut to ``budget``, sort.

    Args:
        scores: ``[n]`` importance per token.
        budget: tokens to keep in total (protected and window included).
        window: the last ``window`` tokens are always kept.
        neighbours: span kept around each selected token (1: the token alone).
        protected: ``[n]`` bool, tokens that are always kept.
        candidates: ``[n]`` bool, tokens that may be chosen by score (default: all).

    Raises:
        ValueError: when the always-kept tokens alone exceed ``budget``.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n = scores.shape[0]
    if budget >= n:
        return np.arange(n, dtype=np.int64)
    must = np.zeros(n, dtype=bool)
    if window > 0:
        must[max(0, n - window):] = True
    if protected is not None:
        must |= np.asarray(protected, dtype=bool)
    n_must = int(must.sum())
    if n_must > budget:
        raise ValueError(f"{n_must} tokens must be kept but the budget is {budget}")
    allowed = ~must if candidates is None else (~must & np.asarray(candidates, dtype=bool))
    pool = np.flatnonzero(allowed)
    if len(pool) == 0 or n_must == budget:
        return np.flatnonzero(must)
    # rank the allowed tokens; the top `budget` centres always suffice to fill the budget
    k = min(budget, len(pool))
    part = pool[np.argpartition(-scores[pool], k - 1)[:k]] if k < len(pool) else pool
    order = part[np.lexsort((part, -scores[part]))]  # score desc, index asc on ties
    spans = (order[:, None] + neighbour_offsets(neighbours)[None, :]).reshape(-1)
    spans = spans[(spans >= 0) & (spans < n)]
    spans = spans[allowed[spans]]
    ranked = _unique_in_order(np.concatenate([np.flatnonzero(must), spans]))
    return np.sort(ranked[:budget])
