"""A random-weight GGUF shaped like Qwen2.5-7B: RANDOM WEIGHTS, FOR TIMING ONLY.

It has Qwen2.5-7B's architecture and tensor shapes (qwen2: 28 layers, n_embd 3584, 28 query heads,
4 KV heads, FFN 18944, q/k/v biases, RoPE theta 1e6) and the tokenizer of a source GGUF (the
default pair's target), so it pairs with the default draft and runs at a realistic draft:target
size ratio. Its weights are random quantized blocks: it produces nonsense and is never to be used
for accuracy. Its name, ``general.name`` and ``general.description`` say so.

Writing is streamed (one tensor in memory at a time) and needs no network: quantized blocks are
random bytes whose scale fields are overwritten with a constant calibrated so that dequantized
weights have mean 0 and standard deviation ``1/sqrt(n_in)``, which keeps activations finite.

Two deviations from the real 7B, both immaterial to speed: the vocabulary is the source's
(151,936 tokens; the real 7B pads its embedding to 152,064 rows, which would make its tokenizer
differ from the 0.5B draft's), and the q/k/v biases are zero.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

LABEL = "RANDOM WEIGHTS, timing only"
WRITER_VERSION = 1

QUANTS = ("q4_k_m", "q4_0")

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class ShapedSpec:
    """Shapes and quantization of a shaped model.

    Attributes:
        name: short name used in the file name.
        n_layer, n_embd, n_head, n_head_kv, n_ff: transformer shapes (qwen2 architecture).
        n_ctx_train: context length written to the metadata.
        rope_theta, rms_eps: as in the real model.
        quant: ``q4_k_m`` (K-quants; per-tensor types copied from the source where it has a tensor
            of the same name, else Q4_K, and Q6_K for ``output.weight``) or ``q4_0`` (all
            matrices Q4_0).
        seed: random seed of the weights (the file is deterministic).
    """

    name: str = "qwen2.5-7b-shaped"
    n_layer: int = 28
    n_embd: int = 3584
    n_head: int = 28
    n_head_kv: int = 4
    n_ff: int = 18944
    n_ctx_train: int = 32768
    rope_theta: float = 1_000_000.0
    rms_eps: float = 1e-6
    quant: str = "q4_k_m"
    seed: int = 0

    def __post_init__(self):
        from specllama.errors import ConfigError

        if self.quant not in QUANTS:
            raise ConfigError(f"shaped model quantization must be one of {', '.join(QUANTS)}, got {self.quant!r}")
        if self.n_embd % self.n_head or self.n_head % self.n_head_kv:
            raise ConfigError("n_embd must divide into n_head heads and n_head into n_head_kv groups")
        blk = 256 if self.quant == "q4_k_m" else 32
        for what, v in (("n_embd", self.n_embd), ("n_ff", self.n_ff)):
            if v % blk:
                raise ConfigError(f"{what} {v} is not a multiple of the {blk}-wide quantization block")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.quant}-RANDOM-WEIGHTS-timing-only.gguf"


QWEN25_7B = ShapedSpec()


# -- random quantized blocks -------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    """Where a block type keeps its f16 scale (``d``) and, if any, its min (``m``) field."""

    d: int
    m: int | None = None


_LAYOUTS = {
    "Q4_0": _Layout(0), "Q5_0": _Layout(0), "Q8_0": _Layout(0),
    "Q4_1": _Layout(0, 2), "Q5_1": _Layout(0, 2),
    "Q4_K": _Layout(0, 2), "Q5_K": _Layout(0, 2), "Q6_K": _Layout(208),
}


def _qtype(name: str):
    import gguf

    return gguf.GGMLQuantizationType[name]


def _set_f16(blocks: np.ndarray, offset: int, value: float) -> None:
    """Write ``value`` as little-endian f16 into bytes ``offset:offset+2`` of every block."""
    raw = np.frombuffer(np.float16(value).tobytes(), dtype=np.uint8)
    blocks[:, offset:offset + 2] = raw


def random_blocks(bitgen: np.random.BitGenerator, n_blocks: int, qname: str, d: float, m: float) -> np.ndarray:
    """``[n_blocks, block_bytes]`` uint8 of random quants with scale ``d`` and min ``m``
    (types without a min get ``±d``, the sign drawn per block)."""
    import gguf

    _, bb = gguf.GGML_QUANT_SIZES[_qtype(qname)]
    lay = _LAYOUTS[qname]
    n = n_blocks * bb
    raw = bitgen.random_raw(-(-n // 8)).view(np.uint8)[:n]
    blocks = raw.reshape(n_blocks, bb)
    _set_f16(blocks, lay.d, d)
    if lay.m is not None:
        _set_f16(blocks, lay.m, m)
    else:  # symmetric types: a random sign per block cancels the -0.5 step bias of unsigned quants
        src = (lay.d + 2) % bb
        blocks[:, lay.d + 1] |= blocks[:, src] & 0x80
    return blocks


_CALIB: dict[str, tuple[float, float, float]] = {}


def calibration(qname: str) -> tuple[float, float, float]:
    """``(mean_x, mean_y, std)`` per unit scale: with ``d = 1, m = 0`` weights average
    ``mean_x``; with ``d = 0, m = 1`` they average ``mean_y``; with the zero-mean min
    ``m = -mean_x / mean_y`` and ``d = 1`` they have standard deviation ``std``.

    Measured once per type by dequantizing 4096 random blocks with gguf-py's reference code.
    """
    if qname in _CALIB:
        return _CALIB[qname]
    from gguf import quants

    qt = _qtype(qname)
    lay = _LAYOUTS[qname]

    def deq(d: float, m: float) -> np.ndarray:
        return quants.dequantize(random_blocks(np.random.PCG64(12345), 4096, qname, d, m), qt).ravel()

    mx = float(deq(1.0, 0.0).mean())
    my = float(deq(0.0, 1.0).mean()) if lay.m is not None else 0.0
    m0 = -mx / my if my else 0.0
    std = float(deq(1.0, m0).std())
    _CALIB[qname] = (mx, my, std)
    return _CALIB[qname]


def scales_for(qname: str, n_in: int) -> tuple[float, float]:
    """``(d, m)`` giving zero-mean weights with standard deviation ``1/sqrt(n_in)``."""
    mx, my, std = calibration(qname)
    d = (1.0 / np.sqrt(n_in)) / std
    m = -mx / my * d if my else 0.0
    return float(d), float(m)


# -- tensors ----------------------------------------------------------------------------------
def tensor_plan(spec: ShapedSpec, n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor as ``(name, numpy shape)``; the last axis is the input (quantized) axis."""
    e, hd = spec.n_embd, spec.head_dim
    q, kv = spec.n_head * hd, spec.n_head_kv * hd
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab, e))]
    for i in range(spec.n_layer):
        b = f"blk.{i}"
        out += [
            (f"{b}.attn_norm.weight", (e,)),
            (f"{b}.attn_q.weight", (q, e)), (f"{b}.attn_q.bias", (q,)),
            (f"{b}.attn_k.weight", (kv, e)), (f"{b}.attn_k.bias", (kv,)),
            (f"{b}.attn_v.weight", (kv, e)), (f"{b}.attn_v.bias", (kv,)),
            (f"{b}.attn_output.weight", (e, q)),
            (f"{b}.ffn_norm.weight", (e,)),
            (f"{b}.ffn_gate.weight", (spec.n_ff, e)),
            (f"{b}.ffn_up.weight", (spec.n_ff, e)),
            (f"{b}.ffn_down.weight", (e, spec.n_ff)),
        ]
    out += [("output_norm.weight", (e,)), ("output.weight", (n_vocab, e))]
    return out


def tensor_types(spec: ShapedSpec, plan, source_types: dict[str, str]) -> dict[str, str]:
    """ggml type name per 2-D tensor: the source's for ``q4_k_m`` where it has a supported
    K-quant of the same name (so the 7B gets the default target's Q4_K/Q6_K layer pattern)."""
    out = {}
    for name, shape in plan:
        if len(shape) != 2:
            continue
        if spec.quant == "q4_0":
            out[name] = "Q4_0"
            continue
        src = source_types.get(name)
        if src in ("Q4_K", "Q5_K", "Q6_K"):
            out[name] = src
        else:
            out[name] = "Q6_K" if name == "output.weight" else "Q4_K"
    return out


def _copy_tokenizer(reader, writer) -> int:
    """Copy every ``tokenizer.*`` key from ``reader`` to ``writer``; returns the vocabulary size."""
    import gguf

    n_vocab = 0
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        if field.name == "tokenizer.ggml.tokens":
            n_vocab = len(field.data)
    if not n_vocab:
        raise ValueError("the source GGUF has no tokenizer.ggml.tokens")
    return n_vocab


def expected_bytes(spec: ShapedSpec, n_vocab: int, source_types: dict[str, str] | None = None) -> int:
    """Tensor data size of the file (metadata excluded)."""
    import gguf

    plan = tensor_plan(spec, n_vocab)
    types = tensor_types(spec, plan, source_types or {})
    total = 0
    for name, shape in plan:
        n = int(np.prod(shape))
        if name in types:
            be, bb = gguf.GGML_QUANT_SIZES[_qtype(types[name])]
            total += n // be * bb
        else:
            total += 4 * n
    return total


def write_shaped(path: str | os.PathLike, source: str | os.PathLike, spec: ShapedSpec = QWEN25_7B,
                 log: LogFn = lambda s: None) -> str:
    """Write the shaped model to ``path`` (streamed), with ``source``'s tokenizer metadata."""
    import gguf

    path = os.fspath(path)
    reader = gguf.GGUFReader(os.fspath(source))
    source_types = {t.name: t.tensor_type.name for t in reader.tensors}
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_type("model")
    w.add_name(f"{spec.name} ({LABEL})")
    w.add_description(f"{LABEL}: random weights with the shapes of Qwen2.5-7B, written by "
                      "specllama for speed measurements; it produces nonsense. Tokenizer copied "
                      f"from {os.path.basename(os.fspath(source))}.")
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_rope_freq_base(spec.rope_theta)
    w.add_layer_norm_rms_eps(spec.rms_eps)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M if spec.quant == "q4_k_m" else gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    n_vocab = _copy_tokenizer(reader, w)
    del reader

    plan = tensor_plan(spec, n_vocab)
    types = tensor_types(spec, plan, source_types)
    for name, shape in plan:
        if name in types:
            qt = _qtype(types[name])
            be, bb = gguf.GGML_QUANT_SIZES[qt]
            byte_shape = (shape[0], shape[1] // be * bb)
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qt)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    bitgen = np.random.PCG64(spec.seed)
    for i, (name, shape) in enumerate(plan):
        if name in types:
            qname = types[name]
            be, bb = gguf.GGML_QUANT_SIZES[_qtype(qname)]
            d, m = scales_for(qname, shape[1])
            data = random_blocks(bitgen, shape[0] * shape[1] // be, qname, d, m).reshape(shape[0], -1)
        elif name.endswith(".bias"):
            data = np.zeros(shape, dtype=np.float32)
        else:  # norms
            data = np.ones(shape, dtype=np.float32)
        w.write_tensor_data(data)
        if i % 24 == 0:
            log(f"writing {os.path.basename(path)}: tensor {i + 1}/{len(plan)}")
    w.close()
    return path


def _stamp(spec: ShapedSpec, source: Path) -> dict:
    st = source.stat()
    return {"writer": WRITER_VERSION, "spec": asdict(spec), "source": source.name,
            "source_size": st.st_size, "label": LABEL}


def ensure_shaped(dest_dir: str | os.PathLike, source: str | os.PathLike, spec: ShapedSpec = QWEN25_7B,
                  log: LogFn = lambda s: None) -> Path:
    """The shaped model in ``dest_dir``, written once (atomically) and reused while its stamp
    (spec, source, writer version, file size) still matches."""
    from specllama.errors import ModelError

    dest_dir, source = Path(dest_dir), Path(source)
    dest = dest_dir / spec.file_name
    stamp_path = dest.with_name(dest.name + ".stamp.json")
    want = _stamp(spec, source)
    if dest.exists() and stamp_path.exists():
        try:
            have = json.loads(stamp_path.read_text())
            if {k: have.get(k) for k in want} == want and have.get("size") == dest.stat().st_size:
                return dest
        except (OSError, ValueError):
            pass
    dest_dir.mkdir(parents=True, exist_ok=True)
    import gguf

    reader = gguf.GGUFReader(os.fspath(source))
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    size = expected_bytes(spec, n_vocab, {t.name: t.tensor_type.name for t in reader.tensors})
    del reader
    free = shutil.disk_usage(dest_dir).free
    if free < size + (256 << 20):
        raise ModelError(f"not enough disk space in {dest_dir} for the shaped model: needs "
                         f"{size / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")
    log(f"writing {dest.name} ({size / 2**30:.1f} GiB, {LABEL}) once into {dest_dir}")
    tmp = dest.with_name(dest.name + ".partial")
    try:
        write_shaped(tmp, source, spec, log)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    stamp_path.write_text(json.dumps({**want, "size": dest.stat().st_size}))
    return dest

