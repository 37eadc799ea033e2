"""A cheap structural check of a GGUF file, run before any model loads.

``engine.model.check_gguf_path`` looks at the magic only, and llama.cpp reads a file only when the
model is first needed, which may be never: a run whose prompt is under the budget falls back to
dense and never touches the draft. :func:`check_model_file` walks the header (metadata and tensor
infos, bounds-checked, without parsing any value) and checks that every tensor's data lies inside
the file, so a truncated, corrupt or partial file is reported up front in one line. It reads the
header through ``mmap``: tens of milliseconds for a 150K-token vocabulary, no tensor data.
"""

from __future__ import annotations

import mmap
import os
import struct

from .engine.model import check_gguf_path
from .errors import ModelError

GGUF_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
_STRING, _ARRAY = 8, 9
_SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

# ggml type id -> (elements per block, bytes per block), as gguf-py's GGML_QUANT_SIZES; a type not
# listed here (a newer one) gets its offset checked but not its size.
GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}


class _Corrupt(Exception):
    """Raised inside the walk; turned into a :class:`ModelError` naming the file and role."""


class _Reader:
    """Bounds-checked little-endian reads from a memory map."""

    def __init__(self, mm: mmap.mmap):
        self.mm = mm
        self.size = len(mm)
        self.off = 0

    def take(self, fmt: str):
        n = struct.calcsize(fmt)
        if self.off + n > self.size:
            raise _Corrupt(f"the header is cut off at byte {self.size}")
        vals = struct.unpack_from(fmt, self.mm, self.off)
        self.off += n
        return vals if len(vals) > 1 else vals[0]

    def skip(self, n: int) -> None:
        if n < 0 or self.off + n > self.size:
            raise _Corrupt(f"the header is cut off at byte {self.size}")
        self.off += n

    def string(self) -> str:
        n = self.take("<Q")
        start = self.off
        self.skip(n)
        return bytes(self.mm[start:self.off]).decode("utf-8", "replace")

    def _skip_strings(self, n: int) -> None:
        """Skip an array of ``n`` strings (a vocabulary: the one hot loop of the walk)."""
        if n * 8 > self.size - self.off:
            raise _Corrupt(f"an array claims {n} strings, more than the file holds")
        mm, off, size, unpack = self.mm, self.off, self.size, struct.unpack_from
        for _ in range(n):
            if off + 8 > size:
                raise _Corrupt(f"the header is cut off at byte {size}")
            off += 8 + unpack("<Q", mm, off)[0]
        if off > size:
            raise _Corrupt(f"the header is cut off at byte {size}")
        self.off = off

    def skip_value(self, t: int) -> None:
        if t in _SCALAR_SIZE:
            self.skip(_SCALAR_SIZE[t])
        elif t == _STRING:
            self.skip(self.take("<Q"))
        elif t == _ARRAY:
            et, n = self.take("<IQ")
            if et in _SCALAR_SIZE:
                self.skip(n * _SCALAR_SIZE[et])
            elif et == _STRING:
                self._skip_strings(n)
            else:
                raise _Corrupt(f"unsupported array element type {et}")
        else:
            raise _Corrupt(f"unknown metadata value type {t}")


def _tensor_bytes(ggml_type: int, dims: tuple[int, ...]) -> int | None:
    block = GGML_BLOCKS.get(ggml_type)
    if block is None:
        return None
    n = 1
    for d in dims:
        n *= d
    per, size = block
    return -(-n // per) * size


def _walk(mm: mmap.mmap) -> None:
    """Raise :class:`_Corrupt` unless the header parses and every tensor fits in the file."""
    r = _Reader(mm)
    r.skip(4)  # magic, checked by check_gguf_path
    version = r.take("<I")
    if version not in GGUF_VERSIONS:
        raise _Corrupt(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.take("<QQ")
    if n_kv * 13 > r.size or n_tensors * 32 > r.size:
        raise _Corrupt(f"the header claims {n_kv} metadata keys and {n_tensors} tensors, more than "
                       "the file holds")
    alignment = DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        key = r.string()
        t = r.take("<I")
        if key == "general.alignment" and t == 4:
            alignment = r.take("<I")
            if alignment == 0 or alignment & (alignment - 1):
                raise _Corrupt(f"general.alignment {alignment} is not a power of two")
        else:
            r.skip_value(t)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("<I")
        if not 1 <= n_dims <= MAX_DIMS:
            raise _Corrupt(f"tensor {name} has {n_dims} dimensions")
        dims = tuple(r.take("<Q") for _ in range(n_dims))
        ggml_type, offset = r.take("<IQ")
        tensors.append((name, dims, ggml_type, offset))
    data = -(-r.off // alignment) * alignment
    for name, dims, ggml_type, offset in tensors:
        nbytes = _tensor_bytes(ggml_type, dims) or 0
        end = data + offset + nbytes
        if offset % alignment or end > r.size:
            raise _Corrupt(f"tensor {name} lies outside the file (ends at byte {end}, the file has "
                           f"{r.size}): the file is truncated or corrupt")


def check_model_file(path: str | os.PathLike, role: str = "model") -> str:
    """Return ``path`` as a string if it is a complete-looking GGUF file, else raise ``ModelError``.

    Checks the magic and version, walks the metadata and tensor infos and checks that every
    tensor's data lies inside the file. Reads the header only.
    """
    p = check_gguf_path(path, role)
    try:
        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            _walk(mm)
    except _Corrupt as exc:
        raise ModelError(f"{role} file {p} is not a usable GGUF: {exc}") from None
    except (OSError, ValueError, OverflowError) as exc:
        raise ModelError(f"cannot read the GGUF header of {role} file {p}: {exc}") from None
    return p
