"""Reading intermediate tensors during ``llama_decode`` through llama.cpp's ``cb_eval`` hook.

With flash attention off, llama.cpp names each layer's attention probabilities
``kq_soft_max-<il>``: f32, ``ne = [n_kv, n_tokens, n_head, 1]``, contiguous, i.e. a numpy array of
shape ``[n_head, n_tokens, n_kv]`` where query head ``h`` reads KV head ``h // group`` and column
``j`` is KV cell ``j`` (cells beyond the used ones are masked to probability 0).

The scheduler calls ``cb_eval(t, ask=True, ud)`` for every node to ask whether we want to see it,
and then ``cb_eval(t, ask=False, ud)`` once it is computed. We answer True only for wanted names and
only while *armed*, so the rest of the prompt runs at full speed; the second call must return True
(False aborts the graph), and no exception may cross into C, so errors are stored and re-raised by
:meth:`TensorTap.check` after the decode.

Nothing is kept here: each selected block is handed to ``sink`` while the callback runs and the
buffer is reused, so memory never grows with the prompt.
"""

from __future__ import annotations

import ctypes
import re
from typing import Callable

import numpy as np

from .lib import C, GGML_TYPE_F32, GGMLTensor, ggml_backend_tensor_get

ATTN_PROBS = "kq_soft_max"
QK_ARCHS = ("llama", "qwen2")  # plain scaled dot-product attention over RoPE'd Q and K


def qk_route(model) -> bool:
    """True when attention can be recomputed from captured queries and cached keys, so the
    model's context may keep flash attention on (no sliding window, no soft-capping)."""
    return model.info.arch in QK_ARCHS and model.info.n_swa == 0
_LAYER_RE = re.compile(rb"^(.*)-(\d+)$")

Sink = Callable[[str, int, np.ndarray], None]
"""sink(base_name, layer, block): ``block`` is a float32 view, valid only during the call."""


def split_name(name: bytes) -> tuple[str, int]:
    """``b"kq_soft_max-12"`` -> ``("kq_soft_max", 12)``; names without a layer give -1."""
    m = _LAYER_RE.match(name)
    if not m:
        return name.decode("ascii", "replace"), -1
    return m.group(1).decode("ascii", "replace"), int(m.group(2))


class TensorTap:
    """Copies chosen rows of chosen named tensors out of a running llama.cpp graph.

    Args:
        names: base names to read, e.g. ``{"kq_soft_max"}`` (tests also read ``Qcur``/``Kcur``).
        layers: layer indices to read; None means every layer.
        sink: receives ``(base_name, layer, block)`` for each tensor, where ``block`` has shape
            ``[ne2, rows, ne0]`` (for attention: ``[n_head, rows, n_kv]``).

    Use :attr:`callback` as the context's ``cb_eval``; :meth:`arm` before the decode chunk whose
    rows you want, :meth:`disarm` after, :meth:`check` to re-raise errors from inside the callback.
    """

    def __init__(self, names: set[str], layers: set[int] | None, sink: Sink):
        self.names = {n.encode() for n in names}
        self.layers = None if layers is None else set(layers)
        self.sink = sink
        self._armed = False
        self._rows: tuple[int, int] | None = None
        self._buf = np.zeros(0, dtype=np.float32)
        self.error: BaseException | None = None
        self.calls = 0
        self.callback = C.ggml_backend_sched_eval_callback(self._cb)

    # -- control ------------------------------------------------------------------------------
    def arm(self, rows: tuple[int, int] | None = None) -> None:
        """Read the wanted tensors of the following decode calls.

        ``rows = (r0, r1)`` keeps only ubatch rows ``r0:r1`` along ``ne[1]`` (the query tokens of
        attention probabilities); None keeps every row.
        """
        self._armed = True
        self._rows = rows

    def disarm(self) -> None:
        self._armed = False

    def check(self) -> None:
        """Re-raise the first exception raised inside the callback, if any."""
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    # -- the callback -------------------------------------------------------------------------
    def _wanted(self, t: GGMLTensor) -> tuple[str, int] | None:
        m = _LAYER_RE.match(t.name)
        if m is None or m.group(1) not in self.names:
            return None
        base, layer = m.group(1).decode("ascii"), int(m.group(2))
        if self.layers is not None and layer not in self.layers:
            return None
        return base, layer

    def _cb(self, tensor_ptr, ask, _user_data) -> bool:
        if not self._armed:
            return False if ask else True
        try:
            t = ctypes.cast(tensor_ptr, ctypes.POINTER(GGMLTensor)).contents
            hit = self._wanted(t)
            if ask:
                return hit is not None
            if hit is not None:
                self._read(t, *hit)
        except BaseException as exc:  # noqa: BLE001 - nothing may cross into C
            if self.error is None:
                self.error = exc
            return False if ask else True
        return True

    def _read(self, t: GGMLTensor, base: str, layer: int) -> None:
        if t.type != GGML_TYPE_F32:
            raise TypeError(f"{base}-{layer}: expected f32, got ggml type {t.type}")
        ne0, ne1, ne2, ne3 = (int(x) for x in t.ne)
        nb0, nb1, nb2 = int(t.nb[0]), int(t.nb[1]), int(t.nb[2])
        if ne3 != 1 or nb0 != 4 or nb1 != 4 * ne0 or nb2 != nb1 * ne1:
            raise ValueError(f"{base}-{layer}: non-contiguous tensor ne={t.ne[:]} nb={t.nb[:]}")
        r0, r1 = self._rows if self._rows is not None else (0, ne1)
        r0, r1 = max(0, r0), min(ne1, r1)
        rows = r1 - r0
        if rows <= 0:
            return
        need = ne2 * rows * ne0
        if self._buf.size < need:
            self._buf = np.empty(need, dtype=np.float32)
        block = self._buf[:need].reshape(ne2, rows, ne0)
        dst = block.ctypes.data
        self.calls += 1
        if rows == ne1:  # the whole tensor is one contiguous copy
            ggml_backend_tensor_get(tensor_ptr_of(t), dst, 0, need * 4)
        else:
            step = rows * nb1
            for h in range(ne2):
                ggml_backend_tensor_get(tensor_ptr_of(t), dst + h * step, h * nb2 + r0 * nb1, step)
        self.sink(base, layer, block)


def tensor_ptr_of(t: GGMLTensor) -> int:
    return ctypes.addressof(t)
