"""Running a model over a prompt and scoring every prompt token from its attention.

The model (the draft for SpecPC, the target for SpecKV) prefills the prompt with its last
``window`` tokens as a separate graph, so only that graph's attention is read; then it reads the
queries of lookahead tokens (generated greedily, or given). Blocks are reduced into
``select.ScoreAccumulator`` as they arrive, so memory stays O(layers x keys).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from ..errors import ConfigError
from ..select.scores import ScoreAccumulator, linear_query_weights
from ..timings import Timings
from .readers import reader_for


class AttentionSpec(Protocol):
    """Which attention counts and how it is reduced (``methods.draft.AttentionConfig`` is one).

    Attributes:
        window: last prompt tokens whose queries score the prompt.
        reduction: ``max`` or ``mean`` over heads, queries, layers and steps.
        weighted_query: weight window queries by ``linspace(0, 1, window)``.
    """

    window: int
    reduction: str
    weighted_query: bool

    def layers(self, n_layer: int) -> set[int]:
        """The layers read, of a model with ``n_layer`` layers."""


@dataclass(frozen=True)
class AttentionScores:
    """What :func:`score_with_attention` produced.

    Attributes:
        scores: ``[n_keys]`` per-key importance.
        lookahead: ``[L]`` generated (or fed) lookahead tokens.
        blocks: attention blocks folded in (layers x steps).
        skipped: blocks ignored because they did not cover every key (wrapped sliding-window layers).
        blob: the context's state blob when the flash-attention route fetched it, else None.
    """

    scores: np.ndarray
    lookahead: np.ndarray
    blocks: int
    skipped: int
    blob: bytes | None = None


def score_with_attention(ctx, tap, model, tokens: np.ndarray, cfg: AttentionSpec, n_keys: int,
                         lookahead: int, timings: Timings, positions: np.ndarray | None = None,
                         extra: np.ndarray | None = None,
                         on_prompt_logits: Callable[[int], None] | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         local: tuple[int, int] | None = None) -> AttentionScores:
    """Prefill ``tokens`` into ``ctx`` reading the window's attention, plus lookahead queries.

    The context's flash-attention setting picks the route (``readers.reader_for``); both give the
    same probabilities.

    Args:
        ctx, tap: a context created with ``tap.callback`` as ``cb_eval``.
        model: the context's model (for shapes and end-of-generation tokens).
        cfg: the scoring window, the reduction, query weighting and the layers read.
        tokens: ``[n]`` prompt tokens; the last ``cfg.window`` are the scoring window.
        n_keys: cells to score (the first ``n_keys`` cells; ``n`` for a fresh context).
        lookahead: tokens to generate greedily after the prompt; each one fed back is read as a
            query too (the last one is generated but never fed). Ignored when ``extra`` is given.
        positions: ``[n]`` positions of ``tokens`` (default ``0..n-1``).
        timings: ``capture_ms`` receives the time spent reading and reducing attention.
        extra: ``[L]`` tokens fed right after the prompt in the same graph as the window (teacher
            forcing, e.g. the target reading the draft's answer); their queries are read too.
        on_prompt_logits: ``f(i)`` is called while the last prompt token's logits are current, as
            ``ctx.logits(i)`` / ``sampler.sample(ctx, i)``.
        progress: ``f(done, total)`` after each prefill chunk (see ``Context.decode``).
        local: ``(n_sink, n_window)``: the queries before the scoring window attend only to the
            first ``n_sink`` keys and the ``n_window`` keys before them (``Context.set_local_attn``);
            the window and lookahead queries still attend to every key. None: full attention.

    Returns:
        per-key scores reduced over heads, queries, layers and steps, the lookahead tokens, and
        (flash-attention route) the context's state blob, reusable by ``kvstate.keep_cells``.
    """
    info = model.info
    n = len(tokens)
    window = min(cfg.window, n)
    n_extra = 0 if extra is None else len(extra)
    rows = min(window + n_extra, ctx.cfg.n_batch)  # scoring rows per decode call
    if rows > ctx.cfg.n_ubatch:
        what = f"--window {window}" + (f" + {n_extra} lookahead tokens" if n_extra else "")
        raise ConfigError(f"-ub {ctx.cfg.n_ubatch} splits the {window + n_extra} scoring rows ({what}) over "
                          f"micro-batches, whose attention cannot be read together; use -ub {rows} or more")
    layers = cfg.layers(info.n_layer)
    acc = ScoreAccumulator(n_keys, info.n_head, info.n_head_kv, cfg.reduction)
    reader = reader_for(ctx, model, acc, layers)
    spent = [0.0]

    def sink(base: str, layer: int, block: np.ndarray) -> None:
        t0 = time.perf_counter()
        reader.sink(base, layer, block)
        spent[0] += time.perf_counter() - t0

    tap.sink = sink
    tap.names = {nm.encode() for nm in reader.names}
    tap.layers = layers
    w0 = n - window
    wq = np.ones(window + n_extra, dtype=np.float32)
    if cfg.weighted_query:
        wq[:window] = linear_query_weights(window)
    pos = np.arange(n, dtype=np.int32) if positions is None else np.asarray(positions, dtype=np.int32)
    feed = tokens
    if n_extra:
        feed = np.concatenate([tokens, np.asarray(extra, dtype=np.int32)])
        pos = np.concatenate([pos, pos[-1] + 1 + np.arange(n_extra, dtype=np.int32)])

    def before_chunk(i0: int, i1: int) -> None:
        if i1 <= w0:
            tap.disarm()
            return
        reader.begin(pos[i0:i1], wq[i0 - w0:i1 - w0])
        tap.arm()

    def after_chunk(i0: int, i1: int) -> None:
        if i1 > w0:
            reader.end()
        if on_prompt_logits is not None and i0 <= n - 1 < i1:
            on_prompt_logits(n - 1 - i0)

    out: list[int] = [int(t) for t in extra] if n_extra else []
    if local is not None:
        ctx.set_local_attn(local[0], local[1], int(pos[w0]))
    try:
        ctx.decode(feed, pos, split_at=[w0], logits_at=n - 1, before_chunk=before_chunk,
                   after_chunk=after_chunk, progress=progress)
        tap.check()
        next_pos = int(pos[-1]) + 1
        for step in range(0 if n_extra else lookahead):
            tok = int(np.argmax(ctx.logits()))
            if model.is_eog(tok):
                break  # like greedy_continuation: the lookahead never holds end of generation
            out.append(tok)
            if step == lookahead - 1:
                break  # a generated token's own query is only read once it is fed back
            reader.begin(np.array([next_pos], dtype=np.int32), None)
            tap.arm()
            ctx.decode(np.array([tok], dtype=np.int32), np.array([next_pos], dtype=np.int32))
            tap.check()
            reader.end()
            next_pos += 1
    finally:
        tap.disarm()
        if local is not None:
            ctx.set_local_attn(0, 0, 0)
    t0 = time.perf_counter()
    blob = reader.finish(ctx)
    spent[0] += time.perf_counter() - t0
    timings.capture_ms += 1000.0 * spent[0]
    if acc.blocks == 0:
        raise ConfigError(f"{model.name}: no attention layer could score the prompt "
                          "(every layer read was a sliding-window layer)")
    return AttentionScores(acc.scores(), np.asarray(out, dtype=np.int32), acc.blocks, acc.skipped, blob)


def greedy_continuation(ctx, model, tokens: np.ndarray, n: int) -> np.ndarray:
    """Prefill ``tokens[m]`` into a fresh ``ctx`` and generate up to ``n`` tokens greedily, ``[<=n]``.

    Stops early at an end-of-generation token (which is not returned).
    """
    ctx.decode(np.asarray(tokens, dtype=np.int32))
    out: list[int] = []
    pos = len(tokens)
    while len(out) < n:
        tok = int(np.argmax(ctx.logits()))
        if model.is_eog(tok):
            break
        out.append(tok)
        if len(out) == n:
            break
        ctx.decode(np.array([tok], dtype=np.int32), np.array([pos], dtype=np.int32))
        pos += 1
    return np.asarray(out, dtype=np.int32)
