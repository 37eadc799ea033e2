"""Prototype: SpecPC's window scores from captured Q and K, with flash attention ON.

``methods.draft.score_with_attention`` reads llama.cpp's attention probabilities
(``kq_soft_max-<il>``), which only exist with flash attention off, so the draft's whole prefill
runs without flash attention. On CPUs where flash attention is faster (see the probe's
``plain_fa_on``), that costs more than the capture itself. This computes the same probabilities
for the last ``window`` queries in numpy instead, from tensors that exist with flash attention on:

* ``Kcur-<il>`` (after RoPE, ``[n_tokens, n_head_kv, head_dim]``) of every prefill chunk, kept for
  the layers read (``n x n_head_kv x head_dim`` floats per layer);
* ``Qcur-<il>`` (after RoPE, ``[window, n_head, head_dim]``) of the window chunk only.

``softmax(q k^T / sqrt(head_dim))`` with the causal mask then gives ``[n_head, window, n]`` blocks
folded into the same :class:`~specllama.select.scores.ScoreAccumulator`. Valid for architectures
whose attention is plain scaled dot-product over RoPE'd Q/K (llama, qwen2): no soft-capping, no
ALiBi, no sliding window. It is measured by the bench probe (variant ``qk_fa_on``) and checked
against the ``kq_soft_max`` path in the tests; it is not wired into SpecPC.
"""

from __future__ import annotations

import time

import numpy as np

from ..engine.capture import TensorTap
from ..engine.context import Context
from ..methods.draft import AttentionConfig
from ..select.scores import ScoreAccumulator, attention_probs, linear_query_weights

Q_NAME, K_NAME = "Qcur", "Kcur"
SUPPORTED_ARCHS = ("llama", "qwen2")


def window_probs(q: np.ndarray, k: np.ndarray, q_pos0: int, group: int) -> np.ndarray:
    """Causal attention probabilities of ``q [w, n_head, d]`` over ``k [n, n_head_kv, d]``.

    Query ``i`` sits at position ``q_pos0 + i`` and sees keys ``0..q_pos0 + i``; query head ``h``
    reads KV head ``h // group``. Returns ``[n_head, w, n]`` float32 (see
    :func:`~specllama.select.scores.attention_probs`, which this calls).
    """
    if q.shape[1] != group * k.shape[1]:
        raise ValueError(f"{q.shape[1]} query heads do not form groups of {group} over {k.shape[1]} KV heads")
    return attention_probs(q, k, q_pos0 + np.arange(q.shape[0]), np.arange(k.shape[0]))


class QKScorer:
    """A flash-attention context on ``model`` whose prefill also yields SpecPC window scores.

    Args:
        model: the draft (``llama``/``qwen2`` architecture).
        cfg: context sizes, with ``n_ubatch == n_batch`` (one graph per decode call, so each
            captured block's rows start at the call's first token); ``flash_attn`` should be True.
        attention: window, reduction, query weighting and layers, as for the ``kq_soft_max`` path.
    """

    def __init__(self, model, cfg, attention: AttentionConfig):
        if model.info.arch not in SUPPORTED_ARCHS:
            raise ValueError(f"Q/K scoring supports {', '.join(SUPPORTED_ARCHS)}, not {model.info.arch}")
        if cfg.n_ubatch != cfg.n_batch:
            raise ValueError("Q/K scoring places blocks by decode call: it needs n_ubatch == n_batch")
        self.model = model
        self.attention = attention
        self.layers = attention.layers(model.info.n_layer)
        self.tap = TensorTap({K_NAME}, self.layers, self._sink)
        self.ctx = Context(model, cfg, cb_eval=self.tap.callback)
        self._k: dict[int, np.ndarray] = {}
        self._q: dict[int, np.ndarray] = {}
        self._i0 = 0
        self._n = 0

    def _sink(self, base: str, layer: int, block: np.ndarray) -> None:
        # Qcur/Kcur are named several times (2-D before the head reshape, then before and after
        # RoPE): only head-shaped blocks are kept, and the later (post-RoPE) one overwrites
        info = self.model.info
        hd = info.n_embd // info.n_head
        if base == K_NAME and block.shape[1:] == (info.n_head_kv, hd):
            k = self._k.get(layer)
            if k is None or k.shape[0] != self._n:
                k = self._k[layer] = np.empty((self._n, info.n_head_kv, hd), dtype=np.float32)
            k[self._i0:self._i0 + block.shape[0]] = block
        elif base == Q_NAME and block.shape[1:] == (info.n_head, hd):
            self._q[layer] = block.copy()

    def score(self, tokens: np.ndarray) -> tuple[np.ndarray, float]:
        """Prefill ``tokens [n]`` from position 0 (the context is cleared) and return
        ``(scores [n], numpy_ms)``: per-key scores and the time spent computing them."""
        tokens = np.asarray(tokens, dtype=np.int32)
        n = self._n = len(tokens)
        window = min(self.attention.window, n)
        w0 = n - window
        info = self.model.info
        self._q.clear()

        def before_chunk(i0: int, i1: int) -> None:
            self._i0 = i0
            self.tap.names = {K_NAME.encode(), Q_NAME.encode()} if i1 > w0 else {K_NAME.encode()}
            self.tap.arm()

        self.ctx.clear()
        try:
            self.ctx.decode(tokens, start_pos=0, split_at=[w0], before_chunk=before_chunk)
            self.tap.check()
        finally:
            self.tap.disarm()
        t0 = time.perf_counter()
        acc = ScoreAccumulator(n, info.n_head, info.n_head_kv, self.attention.reduction)
        wq = linear_query_weights(window) if self.attention.weighted_query else None
        for layer in sorted(self.layers):
            q, k = self._q[layer], self._k[layer]
            acc.add(window_probs(q, k, w0, info.group), wq)
        return acc.scores(), 1000.0 * (time.perf_counter() - t0)

    def close(self) -> None:
        self.ctx.close()
        self._k.clear()
        self._q.clear()
