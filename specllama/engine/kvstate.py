"""Moving chosen KV cells into a smaller context through llama.cpp's sequence-state blob.

``llama_memory_seq_rm`` frees cells but attention still spans up to the highest used cell, so
pruning in place saves neither memory nor time. Instead the sequence state is serialised
(``llama_state_seq_get_data``), filtered down to the kept cells, and loaded into a context sized
for them (``llama_state_seq_set_data``), which packs the cells from cell 0 while keeping their
original positions. Decoding then continues at ``pos_max + 1``.

Blob layout (llama.cpp ``llama_kv_cache::state_write``, one section per KV cache; a sliding-window
model has two)::

    u32 magic, i32 seq_id
    per cache:  u32 n_stream
      per stream: u32 cell_count
        cell_count x (i32 pos, u32 n_seq, n_seq x i32 seq)
        u32 v_trans, u32 n_layer
        n_layer x (i32 type, u64 row_bytes, cell_count x row_bytes)                   K
        not v_trans: n_layer x (i32 type, u64 row_bytes, cell_count x row_bytes)     V
        v_trans:     n_layer x (i32 type, u32 el_bytes, u32 n_embd, n_embd x cell_count x el_bytes)

A llama.cpp KV cell is shared by every layer and head, so the keep set is per token; a per-head
keep set would need a llama.cpp patch (see ``patches/README.md``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import SpecllamaError

STATE_MAGIC = 0xAF143CD8


class BlobError(SpecllamaError):
    """The state blob has a layout this module does not understand."""


@dataclass
class _Section:
    """One stream of one KV cache: cell positions and byte ranges of each layer's K and V."""

    positions: np.ndarray  # [cell_count] int32
    meta: list[bytes]  # per cell, the serialised meta record
    v_trans: int
    k_layers: list[tuple[bytes, int, int]]  # (header bytes, row bytes, data offset)
    v_layers: list[tuple[bytes, int, int, int]]  # (header bytes, el/row bytes, n_embd, data offset)


class _Reader:
    def __init__(self, blob: bytes):
        self.b = blob
        self.off = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.off + size > len(self.b):
            raise BlobError("truncated KV state blob")
        vals = struct.unpack_from(fmt, self.b, self.off)
        self.off += size
        return vals if len(vals) > 1 else vals[0]

    def skip(self, n: int) -> int:
        start = self.off
        if self.off + n > len(self.b):
            raise BlobError("truncated KV state blob")
        self.off += n
        return start


def _parse_stream(r: _Reader) -> _Section | None:
    cell_count = r.take("<I")
    if cell_count == 0:
        return None
    start = r.off
    # fast path: every cell in exactly one sequence -> fixed 12-byte records
    if start + 12 * cell_count <= len(r.b):
        rec = np.frombuffer(r.b, dtype="<i4", count=3 * cell_count, offset=start).reshape(cell_count, 3)
    else:
        rec = None
    if rec is not None and np.all(rec[:, 1] == 1):
        positions = rec[:, 0].astype(np.int32)
        raw = r.b[start:start + 12 * cell_count]
        meta = [raw[i * 12:(i + 1) * 12] for i in range(cell_count)]
        r.skip(12 * cell_count)
    else:
        positions = np.empty(cell_count, dtype=np.int32)
        meta = []
        for i in range(cell_count):
            s = r.off
            pos, n_seq = r.take("<iI")
            if n_seq > 64:
                raise BlobError("unsupported KV state layout (cell extensions?)")
            r.skip(4 * n_seq)
            positions[i] = pos
            meta.append(r.b[s:r.off])
    v_trans, n_layer = r.take("<II")
    if v_trans > 1 or n_layer > 4096:
        raise BlobError("unsupported KV state layout")
    k_layers = []
    for _ in range(n_layer):
        h = r.off
        _typ, row = r.take("<iQ")
        k_layers.append((r.b[h:r.off], row, r.skip(row * cell_count)))
    v_layers = []
    for _ in range(n_layer):
        if r.off >= len(r.b):
            break  # caches without V (MLA) end here
        h = r.off
        if not v_trans:
            _typ, row = r.take("<iQ")
            v_layers.append((r.b[h:r.off], row, 0, r.skip(row * cell_count)))
        else:
            _typ, el, n_embd = r.take("<iII")
            v_layers.append((r.b[h:r.off], el, n_embd, r.skip(el * n_embd * cell_count)))
    return _Section(positions, meta, v_trans, k_layers, v_layers)


_ELEMENT_BYTES = {0: 4, 1: 2, 30: 2}  # ggml F32, F16, BF16: the V types whose layout can change


def _v_layer(header: bytes, data: np.ndarray, src_trans: int, dst_trans: int, n: int) -> list[bytes]:
    """One layer's V in the wanted layout: ``data`` is ``[n, row]`` (plain) or ``[n_embd, n, el]``."""
    typ = struct.unpack_from("<i", header)[0]
    if src_trans == dst_trans:
        return [header, data.tobytes()]
    el = _ELEMENT_BYTES.get(typ)
    if el is None:
        raise BlobError(f"a V cache of ggml type {typ} cannot change layout; use the same flash-attention "
                        "setting for both contexts")
    if not src_trans:  # [n, n_embd * el] -> [n_embd, n, el]
        n_embd = data.shape[1] // el
        out = np.ascontiguousarray(data.reshape(n, n_embd, el).transpose(1, 0, 2))
        return [struct.pack("<iII", typ, el, n_embd), out.tobytes()]
    n_embd = data.shape[0]
    out = np.ascontiguousarray(data.transpose(1, 0, 2)).reshape(n, n_embd * el)
    return [struct.pack("<iQ", typ, n_embd * el), out.tobytes()]


def filter_blob(blob: bytes, keep_positions: np.ndarray, v_trans: int | None = None) -> tuple[bytes, int]:
    """Return ``(blob', n)``: the state blob holding only cells whose position is in the set.

    Every KV cache section in the blob is filtered; ``n`` is the number of cells kept in the first
    (full-attention) cache. ``v_trans`` (0 or 1) rewrites V into the layout of a context with flash
    attention on (0) or off (1); None keeps the source layout.
    """
    r = _Reader(blob)
    magic, seq_id = r.take("<Ii")
    if magic != STATE_MAGIC:
        raise BlobError(f"not a llama.cpp sequence state (magic {magic:#x})")
    out = [struct.pack("<Ii", magic, seq_id)]
    keep_positions = np.asarray(keep_positions, dtype=np.int32)
    first_kept = None
    while r.off < len(r.b):
        n_stream = r.take("<I")
        if n_stream != 1:
            raise BlobError(f"unsupported KV state with {n_stream} streams")
        section = _parse_stream(r)
        if section is None:
            out.append(struct.pack("<II", 1, 0))
            continue
        sel = np.flatnonzero(np.isin(section.positions, keep_positions))
        if first_kept is None:
            first_kept = len(sel)
        out.append(struct.pack("<II", 1, len(sel)))
        if len(sel) == 0:
            continue
        out.extend(section.meta[i] for i in sel)
        dst_trans = section.v_trans if v_trans is None else int(v_trans)
        out.append(struct.pack("<II", dst_trans, len(section.k_layers)))
        n = len(section.positions)
        for header, row, off in section.k_layers:
            rows = np.frombuffer(blob, dtype=np.uint8, count=row * n, offset=off).reshape(n, row)
            out += [header, rows[sel].tobytes()]
        for header, el, n_embd, off in section.v_layers:
            if not section.v_trans:
                data = np.frombuffer(blob, dtype=np.uint8, count=el * n, offset=off).reshape(n, el)[sel]
            else:
                cols = np.frombuffer(blob, dtype=np.uint8, count=el * n * n_embd, offset=off)
                data = cols.reshape(n_embd, n, el)[:, sel, :]
            out += _v_layer(header, data, section.v_trans, dst_trans, len(sel))
    return b"".join(out), int(first_kept or 0)


_KEY_DTYPES = {0: np.float32, 1: np.float16}


def read_keys(blob: bytes, n_head_kv: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Positions ``[m]`` and, per layer, keys ``[m, n_head_kv, head_dim]`` (f16 or f32 views) of the
    first KV cache section of a state blob, in cell order."""
    r = _Reader(blob)
    magic, _ = r.take("<Ii")
    if magic != STATE_MAGIC:
        raise BlobError(f"not a llama.cpp sequence state (magic {magic:#x})")
    if r.take("<I") != 1:
        raise BlobError("unsupported KV state with several streams")
    section = _parse_stream(r)
    if section is None:
        return np.zeros(0, dtype=np.int32), []
    m = len(section.positions)
    keys = []
    for header, row, off in section.k_layers:
        typ = struct.unpack_from("<i", header)[0]
        dt = _KEY_DTYPES.get(typ)
        if dt is None:
            raise BlobError(f"keys of ggml type {typ} cannot be read back (use an f16 or f32 K cache)")
        width = row // np.dtype(dt).itemsize
        keys.append(np.frombuffer(blob, dtype=dt, count=m * width, offset=off).reshape(m, n_head_kv, -1))
    return section.positions, keys


def blob_positions(blob: bytes) -> np.ndarray:
    """Positions of the cells in the first KV cache section of a state blob, in cell order."""
    r = _Reader(blob)
    magic, _ = r.take("<Ii")
    if magic != STATE_MAGIC:
        raise BlobError(f"not a llama.cpp sequence state (magic {magic:#x})")
    r.take("<I")
    section = _parse_stream(r)
    return np.zeros(0, dtype=np.int32) if section is None else section.positions


def keep_cells(src, keep_positions: np.ndarray, dst, blob: bytes | None = None):
    """Copy the cells of ``src`` (an engine ``Context``) at ``keep_positions`` into ``dst``.

    ``dst`` must be a fresh context of the same model with room for the kept cells; it is returned,
    holding them packed from cell 0 at their original positions. V is rewritten into ``dst``'s
    layout when the two contexts differ in flash attention. ``blob`` is ``src``'s state if the
    caller already fetched it (``src`` is then not read, and may be None: a memoised prefill).
    """
    blob, n = filter_blob(src.state_get() if blob is None else blob, keep_positions, dst.v_trans)
    if n != len(np.unique(keep_positions)):
        raise BlobError(f"asked to keep {len(np.unique(keep_positions))} cells, found {n}")
    if n > dst.n_ctx:
        raise BlobError(f"{n} kept cells do not fit a {dst.n_ctx}-cell context")
    dst.clear()
    dst.state_set(blob)
    return dst
