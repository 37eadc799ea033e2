"""Reading a few scalar metadata values from a GGUF header without loading the model.

``gguf.GGUFReader`` parses every field (seconds for a 150K-token vocabulary) and loading through
llama.cpp may repack weights; bench and eval only need ``<arch>.context_length`` before they start,
so this walks the key/value section and skips arrays by their element sizes.
"""

from __future__ import annotations

import mmap
import os
import struct

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_scalars(path: str | os.PathLike, keys: set[str] | None = None) -> dict[str, object]:
    """Scalar and string values of the GGUF metadata (only ``keys`` when given); arrays skipped."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[:4] != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version, = struct.unpack_from("<I", mm, 4)
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is too old")
        _, n_kv = struct.unpack_from("<QQ", mm, 8)
        off = 24
        out: dict[str, object] = {}

        def string(o: int) -> tuple[str, int]:
            n, = struct.unpack_from("<Q", mm, o)
            return mm[o + 8:o + 8 + n].decode("utf-8", "replace"), o + 8 + n

        def skip(t: int, o: int) -> int:
            if t in _SCALAR:
                return o + struct.calcsize(_SCALAR[t])
            if t == _STRING:
                n, = struct.unpack_from("<Q", mm, o)
                return o + 8 + n
            if t == _ARRAY:
                et, n = struct.unpack_from("<IQ", mm, o)
                o += 12
                if et in _SCALAR:
                    return o + n * struct.calcsize(_SCALAR[et])
                for _ in range(n):
                    o = skip(et, o)
                return o
            raise ValueError(f"{path}: unknown GGUF value type {t}")

        for _ in range(n_kv):
            key, off = string(off)
            t, = struct.unpack_from("<I", mm, off)
            off += 4
            if (keys is None or key in keys) and t in _SCALAR:
                out[key], = struct.unpack_from(_SCALAR[t], mm, off)
            elif (keys is None or key in keys) and t == _STRING:
                out[key], _ = string(off)
            off = skip(t, off)
        return out


def context_length(path: str | os.PathLike) -> int | None:
    """The model's training context (``<arch>.context_length``), or None when absent."""
    meta = read_scalars(path)
    arch = meta.get("general.architecture")
    v = meta.get(f"{arch}.context_length")
    return int(v) if v is not None else None
