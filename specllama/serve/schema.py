"""OpenAI request bodies -> specllama's prompt, generation and method settings, with 400s.

Policy (what OpenAI clients expect):

* unknown fields are ignored;
* fields specllama could appear to honour but cannot (``n`` > 1, ``stop``, penalties, tools,
  ``logprobs``, JSON modes, ...) are refused with a 400 naming the field, unless they hold their
  neutral value (``n: 1``, ``stop: []``, ``tools: []``, ...);
* specllama's own settings travel in one extension object, ``"specllama": {...}``, whose keys are
  the method flags of ``specllama run`` with underscores (``method``, ``budget``, ``keep``,
  ``window``, ``kernel``, ...); a typo there is a 400, since the namespace is ours.

Which text may be compressed: ``user`` and ``assistant`` message contents are compressible,
``system``/``developer`` ones are protected; a text content part may say ``"protected": true``
(never dropped, e.g. the question) or ``"protected": false`` (compressible, e.g. documents in a system
message). Whatever a method protects on its own (the chat template, the last ``window`` tokens)
stays protected. A ``/v1/completions`` prompt is one compressible raw text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..engine.sampling import DEFAULT_SEED
from ..errors import ConfigError
from ..methods import Setting, method_flags
from ..methods.base import GenConfig, Method
from ..prompt import Message, Part
from ..runtime import RuntimeConfig
from ..settings import gen_config as settings_gen_config, resolve
from .errors import ApiError, bad_request

EXT = "specllama"
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
COMPRESSIBLE_ROLES = {"user", "assistant"}
MAX_SEED = 0xFFFFFFFF


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _neutral(*values):
    def ok(v):
        return any(v is None if x is None else (type(v) is type(x) and v == x) for x in values)
    return ok


# field -> (is its value neutral?, why specllama refuses anything else)
REFUSED: dict[str, tuple] = {
    "n": (_neutral(None, 1), "n > 1 is not supported: specllama returns one choice per request"),
    "best_of": (_neutral(None, 1), "best_of > 1 is not supported"),
    "stop": (_neutral(None, "", []), "stop sequences are not supported by specllama serve"),
    "presence_penalty": (_neutral(None, 0, 0.0), "presence_penalty is not supported"),
    "frequency_penalty": (_neutral(None, 0, 0.0), "frequency_penalty is not supported"),
    "repetition_penalty": (_neutral(None, 1, 1.0), "repetition_penalty is not supported"),
    "min_p": (_neutral(None, 0, 0.0), "min_p is not supported"),
    "logit_bias": (_neutral(None, {}), "logit_bias is not supported"),
    "logprobs": (_neutral(None, False, 0), "logprobs are not supported"),
    "top_logprobs": (_neutral(None, 0), "top_logprobs are not supported"),
    "echo": (_neutral(None, False), "echo is not supported"),
    "suffix": (_neutral(None, ""), "suffix is not supported"),
    "tools": (_neutral(None, []), "tools are not supported"),
    "functions": (_neutral(None, []), "functions are not supported"),
    "tool_choice": (_neutral(None, "none", "auto"), "tool_choice is not supported"),
    "function_call": (_neutral(None, "none", "auto"), "function_call is not supported"),
    "response_format": (_neutral(None, {"type": "text"}), "response_format other than text is not supported"),
    "audio": (_neutral(None), "audio output is not supported"),
    "modalities": (_neutral(None, ["text"]), "only the text modality is supported"),
}


@dataclass(frozen=True)
class ApiRequest:
    """One parsed ``/v1/chat/completions`` or ``/v1/completions`` body.

    Attributes:
        kind: ``chat`` or ``completion``.
        messages: the request as specllama messages (one user message for a completion).
        raw: the prompt is raw text, no chat template (completions).
        stream: answer as server-sent events.
        include_usage: send a last chunk carrying ``usage`` (``stream_options.include_usage``).
        model: the client's ``model`` field, if any.
        max_tokens, temperature, top_p, top_k, seed: the client's values; None means the
            server's default.
        method_opts: the ``specllama`` extension object, validated.
        body: the body as received (forwarded upstream, less ``specllama``).
    """

    kind: str
    messages: tuple[Message, ...]
    raw: bool
    stream: bool = False
    include_usage: bool = False
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    method_opts: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict, compare=False)


def parse_json(data: bytes) -> dict:
    """The body as a JSON object; 400 for anything else (invalid UTF-8, NaN, arrays, ...)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not valid UTF-8") from None
    if not text.strip():
        raise bad_request("the request body is empty; send a JSON object")

    def no_constant(name: str):
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(text, parse_constant=no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _text(s: str, where: str) -> str:
    """``s`` unless it cannot be encoded as UTF-8 (a lone surrogate such as ``"\\ud800"``, which
    JSON allows): a 400 naming the field, never a 500 from the tokenizer."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{where} is not valid Unicode text (a lone surrogate escape?)", where) from None
    return s


def parse_chat(body: Mapping[str, Any], strict: bool = True) -> ApiRequest:
    """Validate a chat completion body; ``strict`` also checks sampling and refused fields (local
    mode; an upstream checks its own)."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise bad_request("'messages' must be a non-empty array", "messages")
    messages = tuple(_message(m, i) for i, m in enumerate(msgs))
    return _common(body, "chat", messages, False, strict)


def parse_completion(body: Mapping[str, Any], strict: bool = True) -> ApiRequest:
    """Validate a text completion body (``prompt``: a string, or an array of one string)."""
    p = body.get("prompt")
    if isinstance(p, list):
        if p and all(_is_int(x) for x in p):
            raise bad_request("token-id prompts are not supported: send text", "prompt")
        if len(p) != 1:
            raise bad_request("batched prompts are not supported: send one prompt per request", "prompt")
        p = p[0]
    if not isinstance(p, str):
        raise bad_request("'prompt' must be a string (token-id prompts are not supported)", "prompt")
    return _common(body, "completion", (Message("user", (Part(_text(p, "prompt"), compressible=True),)),), True,
                   strict)


def _message(m: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad_request(f"{where} must be an object", where)
    role = m.get("role")
    if role in ("tool", "function"):
        raise bad_request(f"{where}: tool messages are not supported", f"{where}.role")
    if role not in ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(ROLES)}", f"{where}.role")
    if m.get("tool_calls") or m.get("function_call"):
        raise bad_request(f"{where}: tool calls are not supported", f"{where}.tool_calls")
    compressible = role in COMPRESSIBLE_ROLES
    content = m.get("content")
    if isinstance(content, str):
        return Message(ROLES[role], (Part(_text(content, f"{where}.content"), compressible),))
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or an array of text parts", f"{where}.content")
    parts = []
    for j, p in enumerate(content):
        pw = f"{where}.content[{j}]"
        if not isinstance(p, dict) or p.get("type") != "text":
            raise bad_request(f"{pw}: only text content parts are supported", pw)
        text = p.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{pw}.text must be a string", f"{pw}.text")
        prot = p.get("protected")
        if prot is not None and not isinstance(prot, bool):
            raise bad_request(f"{pw}.protected must be true or false", f"{pw}.protected")
        parts.append(Part(_text(text, f"{pw}.text"), compressible if prot is None else not prot))
    return Message(ROLES[role], tuple(parts))


def _common(body: Mapping[str, Any], kind: str, messages: tuple[Message, ...], raw: bool,
            strict: bool) -> ApiRequest:
    stream = _opt(body, "stream", bool) or False
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise bad_request("'stream_options' must be an object", "stream_options")
    include_usage = bool(so and _opt(so, "include_usage", bool, "stream_options.include_usage"))
    model = _opt(body, "model", str)
    if model is not None:
        _text(model, "model")  # it is quoted back in the answer
    opts = parse_method_opts(body.get(EXT))
    if not strict:
        return ApiRequest(kind, messages, raw, stream, include_usage, model, method_opts=opts, body=body)
    for name, (neutral, why) in REFUSED.items():
        if name in body and not neutral(body[name]):
            raise bad_request(why, name, "unsupported_parameter")
    max_tokens = _max_tokens(body)
    temperature = _opt_num(body, "temperature", 0.0, 2.0)
    top_p = _opt_num(body, "top_p", 0.0, 1.0)
    if top_p is not None and top_p <= 0:
        raise bad_request("'top_p' must be in (0, 1]", "top_p")
    top_k = _opt(body, "top_k", int)
    if top_k is not None and top_k < -1:
        raise bad_request("'top_k' must be >= 0 (or -1 for no limit)", "top_k")
    seed = _opt(body, "seed", int)
    if seed is not None and not -1 <= seed <= MAX_SEED:
        raise bad_request(f"'seed' must be in [0, {MAX_SEED}] (or -1 for a random seed)", "seed")
    return ApiRequest(kind, messages, raw, stream, include_usage, model, max_tokens, temperature,
                      top_p, None if top_k is None else max(top_k, 0),
                      None if seed is None else (DEFAULT_SEED if seed == -1 else seed), opts, body)


def _opt(body: Mapping[str, Any], key: str, typ: type, param: str | None = None):
    v = body.get(key)
    if v is None:
        return None
    ok = _is_int(v) if typ is int else isinstance(v, typ)
    if not ok:
        names = {bool: "true or false", int: "an integer", str: "a string"}
        raise bad_request(f"'{param or key}' must be {names[typ]}", param or key)
    return v


def _opt_num(body: Mapping[str, Any], key: str, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if not _is_num(v) or not lo <= v <= hi:
        raise bad_request(f"'{key}' must be a number in [{lo:g}, {hi:g}]", key)
    return float(v)


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    vals = {}
    for key in ("max_completion_tokens", "max_tokens"):
        v = _opt(body, key, int)
        if v is not None:
            if v == 0 or v < -1:
                raise bad_request(f"'{key}' must be >= 1 (or -1: until end of generation)", key)
            vals[key] = v
    if len(set(vals.values())) > 1:
        raise bad_request("'max_tokens' and 'max_completion_tokens' differ; send one", "max_tokens")
    return next(iter(vals.values()), None)


# -- the specllama extension -------------------------------------------------------------------
def method_fields() -> dict[str, Setting]:
    """The ``specllama`` object's fields: the method settings by key (``method``, ``budget``,
    ``keep``, ...), as the methods declare them (the flags of ``specllama run``)."""
    return {s.key: s for s in method_flags()}


def _json_type(s: Setting, v: Any) -> tuple[bool, str]:
    """Whether ``v`` has the JSON type of ``s``, and how an error names that type."""
    if s.type is bool:
        return isinstance(v, bool), "true or false"
    if s.choices:
        return isinstance(v, str) and v in s.choices, "one of " + ", ".join(map(str, s.choices))
    if s.type is int:
        return _is_int(v), "an integer"
    if s.type is float:
        return _is_num(v), "a number"
    return isinstance(v, str), "a string"


def parse_method_opts(ext: Any) -> dict[str, Any]:
    """Validate ``"specllama": {...}``: known keys, JSON types matching the flags' types."""
    if ext is None:
        return {}
    if not isinstance(ext, dict):
        raise bad_request(f"'{EXT}' must be an object", EXT)
    fields = method_fields()
    out: dict[str, Any] = {}
    for key, v in ext.items():
        param = f"{EXT}.{key}"
        s = fields.get(key)
        if s is None:
            raise bad_request(f"unknown field {param}; known: {', '.join(sorted(fields))}", param)
        if v is not None:
            ok, want = _json_type(s, v)
            if not ok:
                raise bad_request(f"{param} must be {want}", param)
        out[key] = v
    return out


def request_options(req: ApiRequest, defaults: Mapping[str, Any], gen: GenConfig) -> dict[str, Any]:
    """The request as ``specllama run``'s options: the server's method defaults with the
    ``specllama`` object over them (a ``budget`` or ``keep`` there replaces both defaults), and the
    request's sampling fields over the server's ``gen`` (``max_tokens`` is ``n_predict``, which
    SpecKV's draft lookahead follows)."""
    o = dict(defaults)
    over = dict(req.method_opts)
    if "budget" in over or "keep" in over:
        o["budget"] = o["keep"] = None
    o.update(over)
    s = gen.sampling

    def pick(v, d):
        return d if v is None else v

    o.update(n_predict=pick(req.max_tokens, gen.n_predict), temp=pick(req.temperature, s.temp),
             top_k=pick(req.top_k, s.top_k), top_p=pick(req.top_p, s.top_p), seed=pick(req.seed, s.seed))
    return o


def resolve_request(req: ApiRequest, defaults: Mapping[str, Any], gen: GenConfig,
                    runtime: RuntimeConfig) -> tuple[RuntimeConfig, Method, GenConfig]:
    """The request's configs on the server's ``runtime`` (:func:`specllama.settings.resolve` over
    :func:`request_options`); a bad setting is a 400 naming the ``specllama`` object."""
    try:
        cfg, method, g = resolve(request_options(req, defaults, gen), runtime)
    except ConfigError as exc:
        raise ApiError(400, str(exc), EXT) from None
    if method.needs_draft and not cfg.draft:
        raise ApiError(400, f"method {method.name} needs a draft model, and this server has none "
                            "(start it with -md)", f"{EXT}.method")
    return cfg, method, g


def build_method(req: ApiRequest, defaults: Mapping[str, Any], has_draft: bool, n_predict: int = 256) -> Method:
    """The request's method alone, on a server with or without a draft (see :func:`resolve_request`)."""
    runtime = RuntimeConfig(target="", draft="draft" if has_draft else None)
    return resolve_request(req, defaults, GenConfig(n_predict=n_predict), runtime)[1]


def gen_config(req: ApiRequest, default: GenConfig) -> GenConfig:
    """The request's generation settings over the server's defaults (as :func:`resolve_request`)."""
    return settings_gen_config(request_options(req, {}, default))
