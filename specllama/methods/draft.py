"""Running a model over a prompt and scoring every prompt token from its attention.

The model (the draft for SpecPC, the target for SpecKV) prefills the prompt with its last
``window`` tokens as a separate graph, so only that graph's attention is read; then it reads the
queries of lookahead tokens (generated greedily, or given). Blocks are reduced into
``select.ScoreAccumulator`` as they arrive, so memory stays O(layers x keys).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engine.capture import ATTN_PROBS, qk_route
from ..engine.kvstate import read_keys
from ..errors import ConfigError
from ..select.scores import Reduction, ScoreAccumulator, attention_probs, linear_query_weights
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


class _ProbsReader:
    """Flash attention off: fold llama.cpp's own ``kq_soft_max`` blocks in as they are computed."""

    names = {ATTN_PROBS}

    def __init__(self, acc: ScoreAccumulator):
        self.acc = acc
        self.w: np.ndarray | None = None

    def begin(self, q_pos: np.ndarray, w: np.ndarray | None) -> None:
        self.w = w

    def sink(self, _base: str, _layer: int, block: np.ndarray) -> None:
        self.acc.add(block, self.w)

    def end(self) -> None:
        pass

    def finish(self, ctx) -> bytes | None:
        return None


class _QKReader:
    """Flash attention on: keep each read call's post-RoPE queries (``Qcur``, the last one named
    per layer), then recompute their attention in numpy against the keys in the KV cache."""

    names = {"Qcur"}

    def __init__(self, acc: ScoreAccumulator, n_head: int, n_head_kv: int, layers: set[int]):
        self.acc = acc
        self.n_head, self.n_head_kv, self.layers = n_head, n_head_kv, layers
        self.records: list[tuple[np.ndarray, np.ndarray | None, dict[int, np.ndarray]]] = []
        self.cur: dict[int, np.ndarray] = {}

    def begin(self, q_pos: np.ndarray, w: np.ndarray | None) -> None:
        self.cur = {}
        self.q_pos, self.w = q_pos, w

    def sink(self, _base: str, layer: int, block: np.ndarray) -> None:
        if block.ndim == 3 and block.shape[:2] == (len(self.q_pos), self.n_head):  # [rows, n_head, d]
            self.cur[layer] = block.copy()

    def end(self) -> None:
        self.records.append((self.q_pos, self.w, self.cur))

    def finish(self, ctx) -> bytes:
        blob = ctx.state_get()
        k_pos, keys = read_keys(blob, self.n_head_kv)
        for q_pos, w, qs in self.records:
            for layer in sorted(self.layers):
                if layer not in qs:
                    raise ConfigError(f"layer {layer}: no query was captured (unsupported graph)")
                probs = attention_probs(qs[layer], keys[layer], q_pos, k_pos)
                self.acc.add(probs, w)
        return blob


def score_with_attention(ctx, tap, model, tokens: np.ndarray, cfg: AttentionConfig, n_keys: int,
                         lookahead: int, job: Job, positions: np.ndarray | None = None,
                         extra: np.ndarray | None = None,
                         on_prompt_logits: Callable[[int], None] | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         local: tuple[int, int] | None = None) -> AttentionScores:
    """Prefill ``tokens`` into ``ctx`` reading the window's attention, plus lookahead queries.

    Two routes give the same probabilities: with flash attention off, llama.cpp's
    ``kq_soft_max-<il>`` is read directly; with it on (faster on CPU, see the README), the window's
    post-RoPE queries are captured and ``softmax(q k^T / sqrt(d))`` is recomputed in numpy
    against the keys read back from the KV cache (:func:`qk_route` models only).

    Args:
        ctx, tap: a context created with ``tap.callback`` as ``cb_eval``.
        model: the context's model (for shapes and end-of-generation tokens).
        tokens: ``[n]`` prompt tokens; the last ``cfg.window`` are the scoring window.
        n_keys: cells to score (the first ``n_keys`` cells; ``n`` for a fresh context).
        lookahead: tokens to generate greedily after the prompt; each one fed back is read as a
            query too (the last one is generated but never fed). Ignored when ``extra`` is given.
        positions: ``[n]`` positions of ``tokens`` (default ``0..n-1``).
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
    if ctx.cfg.flash_attn:
        if not qk_route(model):
            raise ConfigError(f"{model.name}: attention can only be read with flash attention off")
        reader = _QKReader(acc, info.n_head, info.n_head_kv, layers)
    else:
        reader = _ProbsReader(acc)
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
    job.timings.capture_ms += 1000.0 * spent[0]
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
