"""Derived drafts: a GGUF holding only the first layers of a model, the draft that SpecPC needs
when only the attention of its lower layers is read (``--draft-layers N``), and/or the model with
its Q5_0 tensors rewritten as Q8_0 (``requant.py``: the same values, faster on x86 CPUs).

llama.cpp has no switch to stop a forward pass early, and its loader refuses a file whose tensor
count does not match ``block_count``, so the prefix is written as a model of its own: the same
metadata with ``<arch>.block_count = N``, the token embedding, blocks ``0..N-1``, the output norm
and head (never read: only the first ``N`` layers' attention is). It is written once, next to a
JSON stamp naming its source (path, size, modification time) and the format, into a cache
directory the caller picks, and rebuilt when the source changes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelError
from .requant import Q5_0_BYTES, Q8_0_BYTES, q5_0_to_q8_0

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")
STAMP_SUFFIX = ".prefix.json"
FORMAT = 2  # 1: layers cut only; 2: and Q5_0 rewritten as Q8_0 when asked (``requant`` in the stamp)


def _source_id(src: Path, requant: bool) -> dict:
    st = src.stat()
    return {"source": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "format": FORMAT, "requant": "q5_0->q8_0" if requant else None}


def _reader(src: Path):
    import gguf

    try:
        return gguf.GGUFReader(str(src))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {src} to derive a draft from it: {exc}") from None


def has_q5_0(src: str | os.PathLike) -> bool:
    """True if GGUF ``src`` holds a Q5_0 tensor (that :func:`write_prefix` can rewrite as Q8_0)."""
    import gguf

    return any(t.tensor_type == gguf.GGMLQuantizationType.Q5_0 for t in _reader(Path(src)).tensors)


def prefix_path(src: str | os.PathLike, n_layers: int | None, out_dir: str | os.PathLike,
                requant: bool = False) -> Path:
    """Where the ``n_layers``-layer prefix of ``src`` (None: every layer) lives in ``out_dir``;
    ``.q8`` in the name when its Q5_0 tensors are rewritten as Q8_0."""
    cut = "" if n_layers is None else f".first{n_layers}"
    return Path(out_dir) / f"{Path(src).stem}{cut}{'.q8' if requant else ''}.gguf"


def is_current(src: str | os.PathLike, dst: Path, requant: bool = False) -> bool:
    """True if ``dst`` exists and was written from ``src`` as it is now, in this format."""
    stamp = dst.with_name(dst.name + STAMP_SUFFIX)
    try:
        return dst.exists() and json.loads(stamp.read_text()) == _source_id(Path(src), requant)
    except (OSError, ValueError):
        return False


def write_prefix(src: str | os.PathLike, n_layers: int | None, dst: str | os.PathLike,
                 requant: bool = False) -> Path:
    """Write the first ``n_layers`` blocks (None: all) of GGUF ``src`` as a complete model at
    ``dst``; with ``requant`` its Q5_0 tensors are written as Q8_0 (identical values).

    Raises ``ConfigError`` if ``n_layers`` is outside ``1..block_count``.
    """
    import gguf

    src, dst = Path(src), Path(dst)
    reader = _reader(src)
    arch = str(reader.fields["general.architecture"].contents())
    key = f"{arch}.block_count"
    if key not in reader.fields:
        raise ModelError(f"{src.name}: no {key} in its metadata")
    n_total = int(reader.fields[key].contents())
    n_layers = n_total if n_layers is None else n_layers
    if not 1 <= n_layers <= n_total:
        raise ConfigError(f"--draft-layers must be in 1..{n_total} for {src.name}, got {n_layers}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        for field in reader.fields.values():
            if field.name == "general.architecture" or field.name.startswith("GGUF."):
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            value = n_layers if field.name == key else field.contents()
            writer.add_key_value(field.name, value, vtype, sub_type=sub)
        writer.add_key_value("specllama.prefix_of", src.name, gguf.GGUFValueType.STRING)
        kept = [t for t in reader.tensors
                if (m := _BLOCK_RE.match(t.name)) is None or int(m.group(1)) < n_layers]
        q5, q8 = gguf.GGMLQuantizationType.Q5_0, gguf.GGMLQuantizationType.Q8_0
        redo = {t.name for t in kept if requant and t.tensor_type == q5}
        for t in kept:
            if t.name in redo:  # bytes per row: 22 per Q5_0 block, 34 per Q8_0 block
                shape = (*t.data.shape[:-1], t.data.shape[-1] // Q5_0_BYTES * Q8_0_BYTES)
                writer.add_tensor_info(t.name, shape, t.data.dtype, int(np.prod(shape)), q8)
            else:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in kept:  # one tensor converted at a time: memory stays at one tensor's size
            data = q5_0_to_q8_0(t.data) if t.name in redo else t.data
            writer.write_tensor_data(data, tensor_endianess=reader.endianess)
        writer.close()
        os.replace(tmp, dst)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    dst.with_name(dst.name + STAMP_SUFFIX).write_text(json.dumps(_source_id(src, requant)))
    return dst


def layer_prefix(src: str | os.PathLike, n_layers: int | None, out_dir: str | os.PathLike,
                 requant: bool = False) -> Path:
    """The cached ``n_layers``-layer prefix of ``src`` (None: every layer) in ``out_dir``, with
    its Q5_0 tensors as Q8_0 if ``requant`` and it has any, written if missing or stale. ``src``
    itself when there is nothing to derive (every layer, nothing to rewrite)."""
    requant = requant and has_q5_0(src)
    if n_layers is None and not requant:
        return Path(src)
    dst = prefix_path(src, n_layers, out_dir, requant)
    if is_current(src, dst, requant):
        return dst
    try:
        out = write_prefix(src, n_layers, dst, requant)
    except OSError as exc:
        what = "draft" if n_layers is None else f"{n_layers}-layer draft"
        raise ModelError(f"cannot write the {what} to {dst.parent}: {exc}") from None
    _drop_old_format(src, n_layers, out_dir, dst)
    return out


def _drop_old_format(src: str | os.PathLike, n_layers: int | None, out_dir: str | os.PathLike,
                     dst: Path) -> None:
    """Remove a copy of this prefix of ``src`` written by an older specllama (a stamp with no
    ``format``): it is only a cache, and the new one replaces it."""
    for other in (prefix_path(src, n_layers, out_dir, r) for r in (False, True)):
        stamp = other.with_name(other.name + STAMP_SUFFIX)
        try:
            old = "format" not in json.loads(stamp.read_text())
        except (OSError, ValueError):
            continue
        if other != dst and old:
            other.unlink(missing_ok=True)
            stamp.unlink(missing_ok=True)
