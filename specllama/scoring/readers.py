"""The two routes that read a graph's attention into a :class:`ScoreAccumulator`.

Both give the same probabilities. With flash attention off, llama.cpp's own ``kq_soft_max-<il>``
blocks are folded in as they are computed; with it on (faster on CPU, see the README), each read
call's post-RoPE queries are kept and ``softmax(q k^T / sqrt(d))`` is recomputed in numpy against
the keys read back from the KV cache (:func:`~specllama.engine.capture.qk_route` models only).
"""

from __future__ import annotations

import numpy as np

from ..engine.capture import ATTN_PROBS, qk_route
from ..engine.kvstate import read_keys
from ..errors import ConfigError
from ..select.scores import ScoreAccumulator, attention_probs


class ProbsReader:
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


class QKReader:
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


def reader_for(ctx, model, acc: ScoreAccumulator, layers: set[int]) -> ProbsReader | QKReader:
    """The route ``ctx`` allows: :class:`QKReader` when it runs with flash attention (refused on a
    model the Q·K route cannot recompute), :class:`ProbsReader` otherwise."""
    if ctx.cfg.flash_attn:
        if not qk_route(model):
            raise ConfigError(f"{model.name}: attention can only be read with flash attention off")
        return QKReader(acc, model.info.n_head, model.info.n_head_kv, layers)
    return ProbsReader(acc)
