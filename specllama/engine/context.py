"""A llama.cpp context: KV cache, batched decode with explicit positions, logits and KV state."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, Interrupted, PromptError, SpecllamaError, require_int
from .batch import Batch
from .lib import C, llama_set_local_attn, take_swallowed_interrupt
from .model import Model

FLASH_AUTO, FLASH_OFF, FLASH_ON = -1, 0, 1

ProgressFn = Callable[[int, int], None]


def default_threads() -> int:
    """llama.cpp's default: the number of cores (at least 1)."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ContextConfig:
    """How to build a context.

    Attributes:
        n_ctx: KV cells (tokens) the context can hold.
        n_batch: tokens per ``llama_decode`` call (the logical batch).
        n_ubatch: tokens per compute graph (the physical batch); <= n_batch.
        n_threads: CPU threads for decode and prefill (``-t``).
        flash_attn: None lets llama.cpp decide; False is required for attention capture.
        n_seq_max: sequences the context can hold.
        swa_full: give sliding-window layers a full-size cache (llama.cpp's default), so their
            cells keep mapping to positions; False saves memory on models with local attention.
    """

    n_ctx: int
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int | None = None
    flash_attn: bool | None = None
    n_seq_max: int = 1
    swa_full: bool = True

    def __post_init__(self):
        if self.n_ctx < 1:
            raise ConfigError(f"context size must be >= 1, got {self.n_ctx}")
        if self.n_batch < 1 or self.n_ubatch < 1:
            raise ConfigError("batch sizes must be >= 1")
        for value, what in ((self.n_ctx, "context size"), (self.n_batch, "batch size"),
                            (self.n_ubatch, "ubatch size")):
            require_int(value, what)
        if self.n_ubatch > self.n_batch:
            raise ConfigError(f"ubatch ({self.n_ubatch}) must not exceed batch ({self.n_batch})")
        if self.n_threads is not None and self.n_threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.n_threads}")

    @property
    def threads(self) -> int:
        return self.n_threads or default_threads()


class Context:
    """One llama.cpp context over a :class:`Model`, holding one sequence (id 0).

    Args:
        model: the loaded model.
        cfg: sizes, threads and attention kernel.
        cb_eval: an optional ``ggml_backend_sched_eval_callback`` (see ``capture.py``).
        abortable: install an abort callback so :meth:`request_abort` can stop a running decode.
    """

    def __init__(self, model: Model, cfg: ContextConfig, cb_eval=None, abortable: bool = False):
        self.model = model
        self.cfg = cfg
        p = C.llama_context_default_params()
        p.n_ctx = cfg.n_ctx
        p.n_batch = cfg.n_batch
        p.n_ubatch = cfg.n_ubatch
        p.n_seq_max = cfg.n_seq_max
        p.n_threads = cfg.threads
        p.n_threads_batch = cfg.threads
        p.flash_attn_type = {None: FLASH_AUTO, False: FLASH_OFF, True: FLASH_ON}[cfg.flash_attn]
        p.no_perf = True
        p.swa_full = cfg.swa_full
        self._cb_eval = cb_eval  # keep the ctypes callback alive as long as the context
        if cb_eval is not None:
            p.cb_eval = cb_eval
            p.cb_eval_user_data = None
        self._abort_flag = False
        self._abort_cb = None
        if abortable:
            self._abort_cb = C.ggml_abort_callback(lambda _data: self._abort_flag)
            p.abort_callback = self._abort_cb
            p.abort_callback_data = None
        ptr = C.llama_init_from_model(model.ptr, p)
        if not ptr:
            raise SpecllamaError(
                f"llama.cpp could not create a {cfg.n_ctx}-token context for {model.name} "
                "(out of memory?)")
        self._ptr = ptr
        self._mem = C.llama_get_memory(ptr)
        self.n_ctx = int(C.llama_n_ctx(ptr))
        # llama.cpp caps a causal context's batch at n_ctx; a larger batch would only cost memory
        self.n_batch = int(C.llama_n_batch(ptr)) or min(cfg.n_batch, self.n_ctx)
        self._batch = Batch(self.n_batch)

    # -- lifetime -----------------------------------------------------------------------------
    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("context is closed")
        return self._ptr

    def close(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            C.llama_free(self._ptr)
            self._ptr = None
            self._batch.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- decode -------------------------------------------------------------------------------
    def request_abort(self) -> None:
        """Ask a running :meth:`decode` to stop (only when created with ``abortable=True``)."""
        self._abort_flag = True

    def decode(self, tokens: np.ndarray, positions: np.ndarray | None = None, *,
               start_pos: int | None = None, logits_last: bool = True, logits_at: int | None = None,
               split_at: Sequence[int] = (), progress: ProgressFn | None = None,
               before_chunk: Callable[[int, int], None] | None = None,
               after_chunk: Callable[[int, int], None] | None = None) -> None:
        """Feed ``tokens[n]`` at ``positions[n]`` (default: ``start_pos + arange(n)``).

        The tokens are split into calls of at most ``n_batch`` tokens, and also at each index in
        ``split_at`` (so that e.g. a final window runs as its own graph). ``before_chunk(i0, i1)``
        runs before the chunk ``tokens[i0:i1]`` is decoded, ``after_chunk(i0, i1)`` and
        ``progress(done, total)`` after it. The last token produces logits when ``logits_last``;
        ``logits_at = i`` asks for token ``i``'s instead, readable with ``logits(i - i0)`` from
        ``after_chunk`` of its chunk.
        """
        tokens = np.asarray(tokens, dtype=np.int32)
        n = len(tokens)
        if n == 0:
            return
        if positions is None:
            base = self.pos_max() + 1 if start_pos is None else start_pos
            positions = np.arange(base, base + n, dtype=np.int32)
        positions = np.asarray(positions, dtype=np.int32)
        if len(positions) != n:
            raise ValueError("tokens and positions differ in length")
        cuts = sorted({0, n, *[int(s) for s in split_at if 0 < s < n]})
        bounds = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            for i in range(a, b, self.n_batch):
                bounds.append((i, min(b, i + self.n_batch)))
        self._abort_flag = False
        for i0, i1 in bounds:
            if before_chunk is not None:
                before_chunk(i0, i1)
            out = np.zeros(i1 - i0, dtype=np.int8)
            if logits_at is not None:
                if i0 <= logits_at < i1:
                    out[logits_at - i0] = 1
            elif logits_last and i1 == n:
                out[-1] = 1
            self._batch.fill(tokens[i0:i1], positions[i0:i1], out)
            rc = C.llama_decode(self.ptr, self._batch.raw)
            if rc == 2 or take_swallowed_interrupt():
                raise Interrupted("interrupted")
            if rc == 1:
                raise PromptError(
                    f"{self.model.name}: no room in the {self.n_ctx}-token context for "
                    f"{n} more tokens (used up to position {self.pos_max()}); raise -c")
            if rc != 0:
                raise SpecllamaError(f"llama_decode failed with code {rc} on {self.model.name}")
            if after_chunk is not None:
                after_chunk(i0, i1)
            if progress is not None:
                progress(i1, n)

    def logits(self, i: int = -1) -> np.ndarray:
        """Logits of token ``i`` of the last decode call (-1: the last that asked), ``[n_vocab]`` f32."""
        ptr = C.llama_get_logits_ith(self.ptr, i)
        if not ptr:
            raise RuntimeError("no logits available")
        return np.ctypeslib.as_array(ptr, shape=(self.model.info.n_vocab,))

    def set_local_attn(self, n_sink: int, n_window: int, pos_full: int) -> None:
        """Local attention for the queries before ``pos_full`` (``patches/0002``).

        A query at position ``p < pos_full`` then attends only to the cells at positions
        ``< n_sink`` and to those within ``n_window`` positions of it (itself included); queries at
        ``p >= pos_full`` see every cell. ``n_window <= 0`` turns it off. It holds for every
        following decode on this context until changed.
        """
        if llama_set_local_attn is None:
            if n_window <= 0:
                return
            raise ConfigError("the sparse draft (--draft-attn sparse) needs llama.cpp built with "
                              "patches/0002 (run `make install`), or pass --draft-attn full")
        if not llama_set_local_attn(self.ptr, int(n_sink), int(n_window), int(pos_full)) and n_window > 0:
            raise ConfigError(f"{self.model.name}: local attention needs a KV-cache model "
                              "(pass --draft-attn full)")

    # -- KV memory ----------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every cell (positions restart at 0)."""
        C.llama_memory_clear(self._mem, True)

    def pos_max(self, seq: int = 0) -> int:
        """Highest position held for ``seq``, or -1 when empty."""
        return int(C.llama_memory_seq_pos_max(self._mem, seq))

    def pos_min(self, seq: int = 0) -> int:
        return int(C.llama_memory_seq_pos_min(self._mem, seq))

    def seq_rm(self, p0: int, p1: int = -1, seq: int = 0) -> bool:
        """Remove positions ``[p0, p1)`` (``p1 < 0``: to the end). Frees cells, saves no memory."""
        return bool(C.llama_memory_seq_rm(self._mem, seq, p0, p1))

    def state_get(self, seq: int = 0) -> bytes:
        """Serialise ``seq``'s cells (positions, K and V per layer) as llama.cpp's state blob."""
        size = C.llama_state_seq_get_size(self.ptr, seq)
        buf = (ctypes.c_uint8 * size)()
        n = C.llama_state_seq_get_data(self.ptr, buf, size, seq)
        return bytes(memoryview(buf)[:n])

    def state_set(self, blob: bytes, seq: int = 0) -> None:
        """Load a state blob into ``seq`` (cells are packed from cell 0, positions preserved)."""
        buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        n = C.llama_state_seq_set_data(self.ptr, buf, len(blob), seq)
        if n == 0:
            raise SpecllamaError(f"{self.model.name}: llama.cpp rejected the KV state "
                                 f"({len(blob)} bytes) for a {self.n_ctx}-token context")

    @property
    def v_trans(self) -> int | None:
        """1 if V is stored transposed (flash attention off), 0 if not, None if llama.cpp decided."""
        return None if self.cfg.flash_attn is None else int(not self.cfg.flash_attn)

    def kv_bytes(self) -> int:
        """Bytes allocated for this context's K and V cache (f16 cells x layers x KV width)."""
        return kv_bytes_for(self.model, self.n_ctx)


def kv_bytes_for(model: Model, n_cells: int) -> int:
    """K+V cache bytes for ``n_cells`` cells of ``model`` in f16 (llama.cpp's default cache type)."""
    info = model.info
    head_dim_k = int(model.meta(f"{info.arch}.attention.key_length") or info.n_embd // max(1, info.n_head))
    head_dim_v = int(model.meta(f"{info.arch}.attention.value_length") or head_dim_k)
    per_cell = info.n_layer * info.n_head_kv * (head_dim_k + head_dim_v) * 2
    return int(n_cells) * per_cell
