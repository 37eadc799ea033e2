"""Checks that must pass before any model loads: a context length read from the GGUF header.

Reading a header with ``gguf.GGUFReader`` parses every tensor and token (seconds for a 150K-token
vocabulary); this reader walks the key-value section only until it finds what it needs.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from ..engine.model import check_gguf_path
from ..errors import ModelError

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(fh: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    return fh.read(n).decode("utf-8", "replace")


def _value(fh: BinaryIO, kind: int, keep: bool):
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        if keep:
            return _string(fh)
        fh.seek(_read(fh, "<Q"), 1)
        return None
    if kind == _ARRAY:
        sub, n = _read(fh, "<I"), _read(fh, "<Q")
        if sub in _SCALARS:
            fh.seek(n * struct.calcsize(_SCALARS[sub]), 1)
        else:
            for _ in range(n):
                _value(fh, sub, False)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def context_length(path: str, role: str = "model") -> int | None:
    """``{arch}.context_length`` from the GGUF header at ``path`` (None when absent)."""
    check_gguf_path(path, role)
    try:
        with open(path, "rb") as fh:
            fh.read(4)
            version = _read(fh, "<I")
            if version < 2:
                return None
            _read(fh, "<Q")  # tensors
            n_kv = _read(fh, "<Q")
            arch, found = None, {}
            for _ in range(n_kv):
                key = _string(fh)
                kind = _read(fh, "<I")
                wanted = key == "general.architecture" or key.endswith(".context_length")
                val = _value(fh, kind, wanted)
                if key == "general.architecture":
                    arch = val
                elif wanted:
                    found[key] = val
                if arch is not None and f"{arch}.context_length" in found:
                    return int(found[f"{arch}.context_length"])
    except (OSError, EOFError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the GGUF header of {role} {path}: {exc}") from None
    return None
