"""Checks that must pass before any model loads: a context length read from the GGUF header
(``engine.ggufmeta``, which walks the key-value section without loading the model)."""

from __future__ import annotations

import struct

from ..engine.ggufmeta import context_length as _header_context_length
from ..engine.model import check_gguf_path
from ..errors import ModelError


def context_length(path: str, role: str = "model") -> int | None:
    """``{arch}.context_length`` from the GGUF header at ``path`` (None when absent)."""
    check_gguf_path(path, role)
    try:
        return _header_context_length(path)
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the GGUF header of {role} {path}: {exc}") from None
