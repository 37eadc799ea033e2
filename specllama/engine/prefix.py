"""A GGUF holding only the first layers of a model: the draft that SpecPC needs when only the
attention of its lower layers is read (``--draft-layers N``).

llama.cpp has no switch to stop a forward pass early, and its loader refuses a file whose tensor
count does not match ``block_count``, so the prefix is written as a model of its own: the same
metadata with ``<arch>.block_count = N``, the token embedding, blocks ``0..N-1``, the output norm
and head (never read: only the first ``N`` layers' attention is). It is written once, next to a
JSON stamp naming its source (path, size, modification time), into a cache directory the caller
picks, and rebuilt when the source changes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import ConfigError, ModelError

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")
STAMP_SUFFIX = ".prefix.json"


def _source_id(src: Path) -> dict:
    st = src.stat()
    return {"source": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def prefix_path(src: str | os.PathLike, n_layers: int, out_dir: str | os.PathLike) -> Path:
    """Where the ``n_layers``-layer prefix of ``src`` lives in ``out_dir``."""
    return Path(out_dir) / f"{Path(src).stem}.first{n_layers}.gguf"


def is_current(src: str | os.PathLike, dst: Path) -> bool:
    """True if ``dst`` exists and was written from ``src`` as it is now."""
    stamp = dst.with_name(dst.name + STAMP_SUFFIX)
    try:
        return dst.exists() and json.loads(stamp.read_text()) == _source_id(Path(src))
    except (OSError, ValueError):
        return False


def write_prefix(src: str | os.PathLike, n_layers: int, dst: str | os.PathLike) -> Path:
    """Write the first ``n_layers`` blocks of GGUF ``src`` as a complete model at ``dst``.

    Raises ``ConfigError`` if ``n_layers`` is outside ``1..block_count``.
    """
    import gguf

    src, dst = Path(src), Path(dst)
    try:
        reader = gguf.GGUFReader(str(src))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {src} to cut its layers: {exc}") from None
    arch = str(reader.fields["general.architecture"].contents())
    key = f"{arch}.block_count"
    if key not in reader.fields:
        raise ModelError(f"{src.name}: no {key} in its metadata")
    n_total = int(reader.fields[key].contents())
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
        for t in kept:
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in kept:
            writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
        writer.close()
        os.replace(tmp, dst)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    dst.with_name(dst.name + STAMP_SUFFIX).write_text(json.dumps(_source_id(src)))
    return dst


def layer_prefix(src: str | os.PathLike, n_layers: int, out_dir: str | os.PathLike) -> Path:
    """The cached ``n_layers``-layer prefix of ``src`` in ``out_dir``, written if missing or stale."""
    dst = prefix_path(src, n_layers, out_dir)
    if is_current(src, dst):
        return dst
    try:
        return write_prefix(src, n_layers, dst)
    except OSError as exc:
        raise ModelError(f"cannot write the {n_layers}-layer draft to {dst.parent}: {exc}") from None
