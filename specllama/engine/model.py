"""A loaded GGUF model: weights, vocabulary, metadata and chat template.

Lifetime is explicit: ``Model`` frees the llama.cpp model in :meth:`close` (also used by ``with``),
never in a garbage-collector finaliser that might run on another thread.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import ModelError, PromptError
from . import lib
from .lib import C

GGUF_MAGIC = b"GGUF"


def check_gguf_path(path: str | os.PathLike, role: str = "model") -> str:
    """Return ``path`` as a string if it names a readable GGUF file, else raise ``ModelError``."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ModelError(f"{role} file not found: {p}")
    if os.path.isdir(p):
        raise ModelError(f"{role} path is a directory, not a GGUF file: {p}")
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {role} file {p}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{role} file is not a GGUF model (bad magic {magic!r}): {p}")
    return p


@dataclass(frozen=True)
class ModelInfo:
    """Shape facts the methods need, read once from llama.cpp."""

    arch: str
    n_layer: int
    n_head: int
    n_head_kv: int
    n_embd: int
    n_ctx_train: int
    n_swa: int
    n_vocab: int
    recurrent: bool
    hybrid: bool

    @property
    def group(self) -> int:
        """Query heads per KV head (GQA group size); query head h reads KV head h // group."""
        return max(1, self.n_head // max(1, self.n_head_kv))


class Model:
    """One GGUF model loaded through llama.cpp.

    Args:
        path: GGUF file.
        n_gpu_layers: layers to offload (``-ngl``); 0 keeps everything on the CPU.
        role: "target" or "draft", used in error messages only.
        vocab_only: load only the vocabulary and metadata (tokenize, detokenize, chat template;
            no context can be made from it).
        name: the name shown in messages and reports (default: the file's name), e.g. the
            user's draft for its derived copy in the cache.
    """

    def __init__(self, path: str | os.PathLike, n_gpu_layers: int = 0, role: str = "model",
                 vocab_only: bool = False, name: str | None = None):
        lib.init()
        self.path = check_gguf_path(path, role)
        self.role = role
        lib.warn_gpu_offload(int(n_gpu_layers))
        params = C.llama_model_default_params()
        params.n_gpu_layers = int(n_gpu_layers)
        params.vocab_only = bool(vocab_only)
        ptr = C.llama_model_load_from_file(self.path.encode(), params)
        if not ptr:
            raise ModelError(f"llama.cpp could not load {role} model {self.path} "
                             "(corrupt file or unsupported architecture; rerun with -v for details)")
        self._ptr = ptr
        self._vocab = C.llama_model_get_vocab(ptr)
        self.name = name or os.path.basename(self.path)

    # -- lifetime -----------------------------------------------------------------------------
    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("model is closed")
        return self._ptr

    @property
    def vocab(self):
        self.ptr  # noqa: B018 - raises when closed
        return self._vocab

    def close(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            C.llama_model_free(self._ptr)
            self._ptr = None
            self._vocab = None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata -----------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """GGUF metadata value as a string, or None when the key is absent."""
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = C.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    @cached_property
    def info(self) -> ModelInfo:
        p = self.ptr
        return ModelInfo(
            arch=self.meta("general.architecture") or "unknown",
            n_layer=C.llama_model_n_layer(p),
            n_head=C.llama_model_n_head(p),
            n_head_kv=C.llama_model_n_head_kv(p),
            n_embd=C.llama_model_n_embd(p),
            n_ctx_train=C.llama_model_n_ctx_train(p),
            n_swa=C.llama_model_n_swa(p),
            n_vocab=C.llama_vocab_n_tokens(self.vocab),
            recurrent=bool(C.llama_model_is_recurrent(p)),
            hybrid=bool(C.llama_model_is_hybrid(p)),
        )

    @property
    def size_bytes(self) -> int:
        return int(C.llama_model_size(self.ptr))

    def chat_template(self) -> str | None:
        """The chat template stored in the GGUF (``tokenizer.chat_template``), or None."""
        raw = C.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", "replace") if raw else None

    @cached_property
    def vocab_fingerprint(self) -> str:
        """sha256 over every token's text: equal fingerprints mean identical tokenizers."""
        h = hashlib.sha256()
        v = self.vocab
        n = C.llama_vocab_n_tokens(v)
        h.update(n.to_bytes(8, "little"))
        for t in range(n):
            h.update(C.llama_vocab_get_text(v, t) or b"")
            h.update(b"\0")
        return h.hexdigest()

    # -- tokens -------------------------------------------------------------------------------
    def tokenize(self, text: str | bytes, add_special: bool = False, parse_special: bool = True) -> np.ndarray:
        """Text to token ids, shape ``[n]`` int32.

        ``add_special`` adds BOS/EOS as the model is configured to; ``parse_special`` turns
        control-token text such as ``<|im_start|>`` into its single token.
        """
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if not data:
            return np.zeros(0, dtype=np.int32)
        cap = len(data) + 8
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (C.llama_token * cap)()
            n = C.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:  # pragma: no cover
            raise PromptError("tokenization failed")
        return np.ctypeslib.as_array(buf)[:n].astype(np.int32, copy=True)

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The raw bytes of one token's piece (may be a partial UTF-8 sequence)."""
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self.vocab, int(token), buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self.vocab, int(token), buf, -n, 0, special)
        return buf.raw[:n]

    def detokenize(self, tokens, special: bool = False) -> str:
        """Token ids to text; invalid UTF-8 (split multi-byte pieces) is replaced."""
        return b"".join(self.token_bytes(t, special) for t in tokens).decode("utf-8", "replace")

    def token_pieces(self, tokens) -> tuple[list[bytes], np.ndarray]:
        """Each token's piece as bytes (control tokens spelled out) and its kind ``[n]`` int8:
        0 normal, 1 control, 2 unknown (``<unk>``), as ``select.align.token_spans`` reads them."""
        attr = C.llama_vocab_get_attr
        v = self.vocab
        kinds = np.zeros(len(tokens), dtype=np.int8)
        pieces = []
        for i, t in enumerate(tokens):
            a = attr(v, int(t))
            kinds[i] = 2 if a & C.LLAMA_TOKEN_ATTR_UNKNOWN else 1 if a & C.LLAMA_TOKEN_ATTR_CONTROL else 0
            pieces.append(self.token_bytes(t, special=True))
        return pieces, kinds

    @cached_property
    def tokenizer_name(self) -> str:
        """``gpt2/qwen2, 151936 tokens``: the tokenizer's model and pre-tokenizer, for messages."""
        kind = "/".join(x for x in (self.meta("tokenizer.ggml.model"), self.meta("tokenizer.ggml.pre")) if x)
        return f"{kind or 'unknown'}, {self.info.n_vocab} tokens"

    def is_eog(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self.vocab, int(token)))

    @property
    def bos(self) -> int:
        return int(C.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(C.llama_vocab_eos(self.vocab))

    def special_text(self, token: int) -> str:
        """A special token's text (``<|im_end|>``), "" for none (-1); for chat templates."""
        return "" if token < 0 else self.token_bytes(token, special=True).decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"Model({self.name!r}, role={self.role!r})"
