"""Running the draft over a prompt and scoring every prompt token from its attention.

The draft prefills the prompt with its last ``window`` tokens as a separate graph, so only that
graph's attention is read; then it generates ``lookahead`` tokens greedily, reading the attention of
each one it feeds back. Blocks are reduced as they arrive (``select.ScoreAccumulator``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..select.scores import Reduction, ScoreAccumulator, linear_query_weights
from .base import Job


@dataclass(frozen=True)
class AttentionConfig:
    """Which attention counts and how it is reduced.

    Attributes:
        window: last prompt tokens whose queries score the prompt (always kept).
        reduction: ``max`` or ``mean`` over heads, queries, layers and steps.
        weighted_query: weight window queries by ``linspace(0, 1, window)``.
        start_layer: first layer read; None means ``n_layer // 3`` (8 of the 0.5B draft's 24
            layers, as in the paper's configurations).
    """

    window: int = 64
    reduction: str = "max"
    weighted_query: bool = True
    start_layer: int | None = None

    def __post_init__(self):
        if self.window < 1:
            raise ConfigError(f"--window must be >= 1, got {self.window}")
        try:
            Reduction(self.reduction)
        except ValueError:
            raise ConfigError(f"--reduction must be max or mean, got {self.reduction!r}") from None
        if self.start_layer is not None and self.start_layer < 0:
            raise ConfigError(f"--start-layer must be >= 0, got {self.start_layer}")

    def layers(self, n_layer: int) -> set[int]:
        start = n_layer // 3 if self.start_layer is None else self.start_layer
        if start >= n_layer:
            raise ConfigError(f"--start-layer {start} leaves no layer of a {n_layer}-layer model")
        return set(range(start, n_layer))


def score_with_attention(ctx, tap, model, tokens: np.ndarray, cfg: AttentionConfig, n_keys: int,
                         lookahead: int, job: Job, positions: np.ndarray | None = None,
                         extra: np.ndarray | None = None,
                         after_prefill: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Prefill ``tokens`` into ``ctx`` reading the window's attention, then read ``lookahead`` steps.

    Args:
        ctx, tap: a context created with ``tap.callback`` as ``cb_eval`` and flash attention off.
        model: the context's model (for shapes and end-of-generation tokens).
        tokens: ``[n]`` prompt tokens; the last ``cfg.window`` are the scoring window.
        n_keys: cells to score (the first ``n_keys`` cells; ``n`` for a fresh context).
        lookahead: tokens to generate greedily; each one fed back is read as a query too. When
            ``extra`` is given those tokens are fed instead (teacher forcing, e.g. the target
            reading the draft's answer) and ``lookahead`` is ignored.
        positions: ``[n]`` positions of ``tokens`` (default ``0..n-1``).
        after_prefill: called once the prompt is in, while its last logits are current.

    Returns:
        ``(scores[n_keys], generated[L])``: per-key scores reduced over heads, queries, layers and
        steps, and the generated (or fed) lookahead tokens.
    """
    info = model.info
    n = len(tokens)
    window = min(cfg.window, n)
    acc = ScoreAccumulator(n_keys, info.n_head, info.n_head_kv, cfg.reduction)
    weights = {"w": None}
    spent = [0.0]

    def sink(_base: str, _layer: int, block: np.ndarray) -> None:
        t0 = time.perf_counter()
        acc.add(block, weights["w"])
        spent[0] += time.perf_counter() - t0

    tap.sink = sink
    tap.layers = cfg.layers(info.n_layer)
    wq = linear_query_weights(window) if cfg.weighted_query else None

    def before_chunk(i0: int, i1: int) -> None:
        w0 = n - window
        if i1 <= w0:
            tap.disarm()
            return
        tap.arm()
        weights["w"] = None if wq is None else wq[i0 - w0:i1 - w0]

    try:
        ctx.decode(tokens, positions, split_at=[n - window], before_chunk=before_chunk)
        tap.check()
        tap.disarm()
        if after_prefill is not None:
            after_prefill()
        weights["w"] = None
        out: list[int] = []
        next_pos = (int(positions[-1]) + 1) if positions is not None else n
        feed = list(extra) if extra is not None else None
        steps = len(feed) if feed is not None else lookahead
        for step in range(steps):
            tok = feed[step] if feed is not None else int(np.argmax(ctx.logits()))
            out.append(tok)
            last = step == steps - 1
            if feed is None and (last or model.is_eog(tok)):
                break  # a generated token's own query is only read once it is fed back
            tap.arm()
            ctx.decode(np.array([tok], dtype=np.int32), np.array([next_pos], dtype=np.int32),
                       logits_last=not last)
            tap.check()
            next_pos += 1
    finally:
        tap.disarm()
    job.timings.capture_ms += 1000.0 * spent[0]
    if acc.blocks == 0:
        raise ConfigError(f"{model.name}: no attention layer could score the prompt "
                          "(every layer read was a sliding-window layer)")
    return acc.scores(), np.asarray(out, dtype=np.int32)
