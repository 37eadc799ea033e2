"""llama-server request bodies (``/completion``, ``/tokenize``, ``/detokenize``) -> specllama's
settings, with 400s naming the field.

The policy is :mod:`.schema`'s: unknown fields are ignored; fields specllama could appear to honour
but cannot (``stop`` words, ``grammar``, ``n_probs``, penalties, mirostat, ...) are refused unless
they hold their neutral value; the ``specllama`` extension object works as on ``/v1``. Sampling
fields keep llama-server's names and meanings: ``n_predict`` (or ``max_tokens``; -1: until end of
generation), ``temperature`` (<= 0: greedy), ``top_k`` (<= 0: no limit), ``top_p``, ``seed`` (-1:
random). A ``/completion`` prompt is raw text (no chat template), compressible as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..engine.sampling import DEFAULT_SEED
from ..prompt import Message, Part
from .errors import bad_request
from .schema import (EXT, MAX_SEED, REFUSED, ApiRequest, _is_int, _is_num, _neutral, _opt, _opt_num, _text,
                     parse_method_opts)

# llama-server's /completion fields that specllama does not implement -> (neutral?, why)
LLAMA_REFUSED: dict[str, tuple] = {
    **{k: REFUSED[k] for k in ("stop", "presence_penalty", "frequency_penalty", "min_p", "suffix")},
    "logit_bias": (_neutral(None, {}, []), "logit_bias is not supported"),
    "n_probs": (_neutral(None, 0), "n_probs (token probabilities) is not supported"),
    "repeat_penalty": (_neutral(None, 1, 1.0), "repeat_penalty is not supported"),
    "typical_p": (_neutral(None, 1, 1.0), "typical_p is not supported"),
    "mirostat": (_neutral(None, 0), "mirostat is not supported"),
    "dynatemp_range": (_neutral(None, 0, 0.0), "dynatemp_range is not supported"),
    "xtc_probability": (_neutral(None, 0, 0.0), "xtc_probability is not supported"),
    "dry_multiplier": (_neutral(None, 0, 0.0), "dry_multiplier is not supported"),
    "grammar": (_neutral(None, ""), "grammar is not supported"),
    "json_schema": (_neutral(None), "json_schema is not supported"),
    "ignore_eos": (_neutral(None, False), "ignore_eos is not supported"),
    "n_cmpl": (_neutral(None, 1), "n_cmpl > 1 is not supported: specllama returns one completion"),
    "lora": (_neutral(None, []), "lora adapters are not supported"),
}


@dataclass(frozen=True)
class TokenizeRequest:
    """A ``/tokenize`` body: ``content`` and llama-server's flags (same defaults)."""

    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False


def parse_llama_completion(body: Mapping[str, Any]) -> ApiRequest:
    """Validate a ``POST /completion`` body (llama-server's field names)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        raise bad_request("token-id, mixed and batched prompts are not supported: send one string", "prompt")
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string", "prompt")
    stream = _opt(body, "stream", bool) or False
    _opt(body, "return_tokens", bool)
    model = _opt(body, "model", str)
    if model is not None:
        _text(model, "model")  # it is quoted back in the answer
    opts = parse_method_opts(body.get(EXT))
    for name, (neutral, why) in LLAMA_REFUSED.items():
        if name in body and not neutral(body[name]):
            raise bad_request(why, name, "unsupported_parameter")
    messages = (Message("user", (Part(_text(prompt, "prompt"), compressible=True),)),)
    return ApiRequest("completion", messages, True, stream, False, model, _n_predict(body),
                      _temperature(body), _top_p(body), _top_k(body), _seed(body), opts, body)


def _n_predict(body: Mapping[str, Any]) -> int | None:
    """``n_predict``, else ``max_tokens`` (as llama-server reads them); -1: until end of generation."""
    key = "n_predict" if body.get("n_predict") is not None else "max_tokens"
    v = _opt(body, key, int)
    if v is not None and (v == 0 or v < -1):
        raise bad_request(f"'{key}' must be >= 1, or -1 to generate until end of generation "
                          "(0, prompt evaluation only, is not supported)", key)
    return v


def _temperature(body: Mapping[str, Any]) -> float | None:
    v = body.get("temperature")
    if v is None:
        return None
    if not _is_num(v):
        raise bad_request("'temperature' must be a number (<= 0: greedy)", "temperature")
    return max(float(v), 0.0)


def _top_p(body: Mapping[str, Any]) -> float | None:
    v = _opt_num(body, "top_p", 0.0, 1.0)
    if v is not None and v <= 0:
        raise bad_request("'top_p' must be in (0, 1]", "top_p")
    return v


def _top_k(body: Mapping[str, Any]) -> int | None:
    v = _opt(body, "top_k", int)
    return None if v is None else max(v, 0)


def _seed(body: Mapping[str, Any]) -> int | None:
    v = _opt(body, "seed", int)
    if v is None:
        return None
    if not -1 <= v <= MAX_SEED:
        raise bad_request(f"'seed' must be in [0, {MAX_SEED}] (or -1 for a random seed)", "seed")
    return DEFAULT_SEED if v == -1 else v


def parse_tokenize(body: Mapping[str, Any]) -> TokenizeRequest:
    """Validate a ``POST /tokenize`` body."""
    content = body.get("content")
    if not isinstance(content, str):
        raise bad_request("'content' must be a string", "content")
    flags = {k: _opt(body, k, bool) for k in ("add_special", "parse_special", "with_pieces")}
    return TokenizeRequest(_text(content, "content"), **{k: v for k, v in flags.items() if v is not None})


def parse_detokenize(body: Mapping[str, Any], n_vocab: int) -> list[int]:
    """Validate a ``POST /detokenize`` body: ``tokens``, an array of ids in ``[0, n_vocab)``."""
    tokens = body.get("tokens")
    if not isinstance(tokens, list):
        raise bad_request("'tokens' must be an array of token ids", "tokens")
    for i, t in enumerate(tokens):
        if not _is_int(t):
            raise bad_request(f"tokens[{i}] must be an integer token id", f"tokens[{i}]")
        if not 0 <= t < n_vocab:
            raise bad_request(f"tokens[{i}] = {t} is not a token id of this model (0 to {n_vocab - 1})",
                              f"tokens[{i}]")
    return tokens
