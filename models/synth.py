"""Random-weight GGUF models written with ``gguf.GGUFWriter``: test fixtures and timing stand-ins.

They load and run in llama.cpp but know nothing: use them for logic tests and speed, never for
accuracy. ``tiny_llama`` builds a 2-layer, 64-wide LLaMA with a small SentencePiece-style vocabulary
and a ChatML template in about 20 ms.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field

import numpy as np

WORDS = (
    "the of and to in is was for on that with as by at from his her it an were are which this be "
    "has had not but one new first also after who they two have their its all been more other when "
    "time there some would into only over such may than most city school year world during made "
    "number secret code magic word key value needle answer question document remember what where "
    "green blue red sky grass sun yellow here we go back again house river mountain forest night day "
    "apple banana cherry dragon eagle falcon garden harbor island jungle kettle lemon marble orange"
).split()

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)

# llama.cpp token types
NORMAL, UNKNOWN, CONTROL, UNUSED, BYTE = 1, 2, 3, 5, 6


@dataclass(frozen=True)
class TinySpec:
    """Shape of a synthetic model. ``vocab_variant`` changes the word list (a different tokenizer)."""

    arch: str = "llama"
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx_train: int = 4096
    vocab_variant: int = 0
    seed: int = 0
    qk_scale: float = 0.6
    chat_template: str | None = CHATML
    extra_words: tuple[str, ...] = field(default_factory=tuple)
    sliding_window: int = 0  # gemma3 only: local layers see this many tokens (5 of every 6 layers)
    quant: str = "F32"  # a gguf quantization type name (e.g. "Q5_0") for the 2-D weights; F32 keeps them
    # tokenizer oddities (for the cross-tokenizer alignment): the "\u2581word" pieces of
    # ``unknown_words`` are typed UNKNOWN (the word becomes an <unk>-like token), those of
    # ``dropped_words`` UNUSED (llama.cpp spells them as nothing: the text does not round-trip)
    unknown_words: tuple[str, ...] = field(default_factory=tuple)
    dropped_words: tuple[str, ...] = field(default_factory=tuple)


def tiny_vocab(variant: int = 0, extra_words: tuple[str, ...] = ()) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece ('llama') vocabulary: specials, 256 byte tokens, characters and words."""
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [UNKNOWN, CONTROL, CONTROL, CONTROL, CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    chars = list(string.ascii_letters + string.digits + string.punctuation)
    pieces = ["\u2581"] + chars + ["\u2581" + c for c in chars]
    words = list(WORDS) + list(extra_words)
    if variant:
        rng = np.random.default_rng(1000 + variant)
        words = [w for w in words if rng.random() < 0.7] + [f"zz{variant}{w}" for w in words[:20]]
    pieces += ["\u2581" + w for w in words] + list(words)
    seen = set(tokens)
    scores = [0.0] * len(tokens)
    for i, p in enumerate(pieces):
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(NORMAL)
        scores.append(float(len(p)) - i * 1e-4)  # longer pieces win, ties by order
    return tokens, scores, types


def write_tiny(path: str | os.PathLike, spec: TinySpec = TinySpec()) -> str:
    """Write a random model (``llama``, ``qwen2`` or ``gemma3`` layout) with :func:`tiny_vocab`:
    f32, or its 2-D weights quantized as ``spec.quant`` (with gguf's numpy quantizer)."""
    import gguf

    path = os.fspath(path)
    qtype = gguf.GGMLQuantizationType[spec.quant]
    rng = np.random.default_rng(spec.seed)
    tokens, scores, types = tiny_vocab(spec.vocab_variant, spec.extra_words)
    for words, kind in ((spec.unknown_words, UNKNOWN), (spec.dropped_words, UNUSED)):
        for word in words:
            types[tokens.index("\u2581" + word)] = kind
    n_vocab = len(tokens)
    hd = spec.n_embd // spec.n_head
    w = gguf.GGUFWriter(path, spec.arch)

    def add(name: str, x: np.ndarray) -> None:
        if x.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, x)
    w.add_name(f"tiny-{spec.arch}-v{spec.vocab_variant}")
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if spec.arch == "gemma3" and spec.sliding_window:
        w.add_sliding_window(spec.sliding_window)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    if spec.chat_template:
        w.add_chat_template(spec.chat_template)

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    add("token_embd.weight", mat(n_vocab, spec.n_embd, np.sqrt(spec.n_embd)))
    add("output_norm.weight", np.ones(spec.n_embd, dtype=np.float32))
    add("output.weight", mat(n_vocab, spec.n_embd, 1.0))
    for i in range(spec.n_layer):
        b = f"blk.{i}"
        add(f"{b}.attn_norm.weight", np.ones(spec.n_embd, dtype=np.float32))
        add(f"{b}.attn_q.weight", mat(spec.n_head * hd, spec.n_embd, spec.qk_scale * np.sqrt(hd)))
        add(f"{b}.attn_k.weight", mat(spec.n_head_kv * hd, spec.n_embd, spec.qk_scale * np.sqrt(hd)))
        add(f"{b}.attn_v.weight", mat(spec.n_head_kv * hd, spec.n_embd, 1.0))
        if spec.arch == "qwen2":
            for nm, rows in (("q", spec.n_head * hd), ("k", spec.n_head_kv * hd), ("v", spec.n_head_kv * hd)):
                add(f"{b}.attn_{nm}.bias", np.zeros(rows, dtype=np.float32))
        add(f"{b}.attn_output.weight", mat(spec.n_embd, spec.n_head * hd, 1.0))
        if spec.arch == "gemma3":
            for nm, size in (("attn_q_norm", hd), ("attn_k_norm", hd), ("post_attention_norm", spec.n_embd),
                             ("post_ffw_norm", spec.n_embd)):
                add(f"{b}.{nm}.weight", np.ones(size, dtype=np.float32))
        add(f"{b}.ffn_norm.weight", np.ones(spec.n_embd, dtype=np.float32))
        add(f"{b}.ffn_gate.weight", mat(spec.n_ff, spec.n_embd, 1.0))
        add(f"{b}.ffn_up.weight", mat(spec.n_ff, spec.n_embd, 1.0))
        add(f"{b}.ffn_down.weight", mat(spec.n_embd, spec.n_ff, 1.0))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
