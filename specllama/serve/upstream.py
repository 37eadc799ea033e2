"""Compress locally with the draft, generate on any OpenAI-compatible server (``--upstream``).

The local draft tokenizes the request with its own chat template, runs a prompt-compression method
(SpecPC by default) and rebuilds each message with its compressible parts cut to the kept tokens;
the upstream (llama-server, vLLM, another ``specllama serve``) then answers the shorter request.
Token counts here are the draft's: they match the target's when both share a tokenizer family.

* :class:`DraftRuntime`: a runtime with only a draft (no local target).
* :func:`compress_prompt`: the compression step, shared by ``serve`` and ``run``/``chat``.
* :func:`generate_upstream`: compress, forward with streaming, return a pipeline
  :class:`~specllama.pipeline.Result` (the ``run --upstream`` path).
* :class:`AsyncUpstream`: the server's HTTP client to the upstream.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any, Iterable, Iterator

import numpy as np

from ..api import Compressed
from ..engine.sampling import DEFAULT_SEED
from ..errors import ConfigError, SpecllamaError
from ..methods.base import GenConfig, Method
from ..pipeline import Result, TextFn, select_prompt
from ..prompt import Prompt, compressed_messages
from ..engine.model import check_gguf_path
from ..runtime import Runtime, RuntimeConfig
from .config import UpstreamConfig
from .errors import ApiError


class UpstreamError(SpecllamaError):
    """The upstream could not be reached or refused the request."""


class DraftRuntime(Runtime):
    """A runtime holding only the draft, which also plays the target's tokenizer and template."""

    def __init__(self, cfg: RuntimeConfig):
        if not cfg.draft:
            raise ConfigError("--upstream needs a draft model: pass -md FILE.gguf")
        check_gguf_path(cfg.draft, "draft")
        super().__init__(replace(cfg, target=cfg.draft, n_gpu_layers=cfg.n_gpu_layers_draft))

    @property
    def target(self):
        return self.draft


def check_prompt_only(method: Method) -> None:
    """Refuse methods that need the target's KV cache: an upstream only receives text."""
    if method.kv_stage is not None:
        raise ConfigError(f"method {method.name} works on the target's KV cache and cannot run against "
                          "an upstream; use a prompt-compression method such as specpc")


def compress_prompt(rt: Runtime, prompt: Prompt, method: Method, gap: str = "") -> tuple[Compressed, str]:
    """Run ``method``'s prompt stage; the messages with compressible parts cut to the kept tokens.

    Returns the compressed request and the name of the method that ran (``dense`` when nothing was
    dropped, in which case the messages are the original texts).
    """
    check_prompt_only(method)
    kept, job = select_prompt(rt, prompt, method)
    if len(kept) < prompt.n:
        msgs, name = compressed_messages(rt.target, prompt, kept, gap), method.name
    else:
        msgs, name = [(m.role, "".join(p.text for p in m.parts)) for m in prompt.messages], "dense"
    user = next((c for r, c in reversed(msgs) if r == "user"), msgs[-1][1] if msgs else "")
    return Compressed(user, msgs, kept, prompt.n, job.timings, job.notes), name


def sampling_fields(gen: GenConfig) -> dict[str, Any]:
    """OpenAI body fields for ``gen`` (``top_k``, an extension of llama-server and vLLM, only when
    sampling)."""
    s = gen.sampling
    out: dict[str, Any] = {"temperature": s.temp}
    if gen.n_predict > 0:
        out["max_tokens"] = gen.n_predict
    if not s.greedy:
        out["top_p"] = s.top_p
        if s.top_k > 0:
            out["top_k"] = s.top_k
    if s.seed != DEFAULT_SEED:
        out["seed"] = s.seed
    return out


def describe_failure(status: int, data: bytes) -> str:
    """A one-line description of an upstream error response."""
    msg = ""
    try:
        obj = json.loads(data)
        err = obj.get("error") if isinstance(obj, dict) else None
        msg = err.get("message", "") if isinstance(err, dict) else (err if isinstance(err, str) else "")
    except (ValueError, UnicodeDecodeError):
        msg = data[:200].decode("utf-8", "replace")
    msg = " ".join(str(msg).split())
    return f"HTTP {status}" + (f": {msg}" if msg else "")


def iter_sse(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON objects of a server-sent-event stream, up to ``data: [DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if not data:
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            raise UpstreamError(f"the upstream sent a malformed event: {data[:120]!r}") from None
        if isinstance(obj, dict) and obj.get("error"):
            raise UpstreamError("the upstream failed: " + describe_failure(200, data.encode()))
        if isinstance(obj, dict):
            yield obj


def first_model(client, up: UpstreamConfig) -> str:
    """The upstream's first model id (``GET /models``)."""
    import httpx

    url = up.endpoint("/models")
    try:
        resp = client.get(url, headers=up.headers())
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot reach {up.url}: {exc}") from None
    if resp.status_code != 200:
        raise UpstreamError(f"{url} refused: {describe_failure(resp.status_code, resp.content)}; "
                            "check the URL (it usually ends in /v1) and --upstream-api-key")
    try:
        return str(resp.json()["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise UpstreamError(f"{url} lists no model; pass --upstream-model NAME") from None


def generate_upstream(rt: Runtime, prompt: Prompt, method: Method, gen: GenConfig, up: UpstreamConfig,
                      on_text: TextFn | None = None, raw: bool = False, gap: str = "") -> Result:
    """Compress ``prompt`` on the local draft, stream the answer from ``up``; a pipeline ``Result``.

    ``raw`` sends a ``/completions`` request with the (compressed) text instead of chat messages.
    In the result, ``tokens`` is empty (the upstream sends text), ``timings`` has the local
    compression times, ``ttft_ms`` from the start of the call, and prefill/decode figures from the
    upstream's llama-server ``timings`` when it sends them, else measured here on the wall clock
    (prefill: from sending the request to the first text; decode: from there to the end).
    """
    import httpx

    t0 = time.perf_counter()
    comp, name = compress_prompt(rt, prompt, method, gap)
    timings = comp.timings
    body: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}, **sampling_fields(gen)}
    if raw:
        path, body["prompt"] = "/completions", "".join(c for _, c in comp.messages)
    else:
        path, body["messages"] = "/chat/completions", [{"role": r, "content": c} for r, c in comp.messages]
    text: list[str] = []
    finish, usage, up_t = None, {}, {}
    t_first = None
    try:
        with httpx.Client(timeout=httpx.Timeout(up.timeout, connect=min(up.timeout, 10.0))) as client:
            model = up.model or first_model(client, up)
            body["model"] = model
            t_sent = time.perf_counter()
            with client.stream("POST", up.endpoint(path), json=body, headers=up.headers()) as resp:
                if resp.status_code != 200:
                    raise UpstreamError(f"{up.endpoint(path)} refused the request: "
                                        f"{describe_failure(resp.status_code, resp.read())}")
                for obj in iter_sse(resp.iter_lines()):
                    for c in obj.get("choices") or []:
                        piece = (c.get("delta") or {}).get("content") if not raw else c.get("text")
                        if piece:
                            if t_first is None:
                                t_first = time.perf_counter()
                            text.append(piece)
                            if on_text is not None:
                                on_text(piece)
                        finish = c.get("finish_reason") or finish
                    usage = obj.get("usage") or usage
                    up_t = obj.get("timings") or up_t
    except httpx.TimeoutException:
        raise UpstreamError(f"{up.url} did not answer within {up.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot reach {up.url}: {exc}") from None
    t_end = time.perf_counter()
    t_first = t_first or t_end
    timings.ttft_ms = 1000.0 * (t_first - t0)
    timings.prefill_tokens = int(up_t.get("prompt_n") or usage.get("prompt_tokens") or 0)
    timings.prefill_ms = float(up_t.get("prompt_ms") or 1000.0 * (t_first - t_sent))
    n_out = int(usage.get("completion_tokens") or len(text))
    timings.decode_tokens = int(up_t.get("predicted_n") or max(0, n_out - 1))
    timings.decode_ms = float(up_t.get("predicted_ms") or 1000.0 * (t_end - t_first))
    notes = list(comp.notes) + [f"generated by {model} at {up.url}"]
    return Result(text="".join(text), tokens=np.zeros(0, dtype=np.int32), kept=comp.kept, timings=timings,
                  method=name, notes=notes, stop="length" if finish == "length" else "eog", n_out=n_out)


class AsyncUpstream:
    """The server's client to its upstream; HTTP failures become 502/504 :class:`ApiError`."""

    def __init__(self, cfg: UpstreamConfig):
        import httpx

        self.cfg = cfg
        self._httpx = httpx
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 10.0)))

    async def send(self, method: str, path: str, body: dict | None = None, stream: bool = False):
        """An ``httpx.Response`` (open, for ``stream``: the caller closes it)."""
        httpx = self._httpx
        req = self.client.build_request(method, self.cfg.endpoint(path), json=body, headers=self.cfg.headers())
        try:
            return await self.client.send(req, stream=stream)
        except httpx.TimeoutException:
            raise ApiError(504, f"the upstream did not answer within {self.cfg.timeout:g} s",
                           code="upstream_timeout") from None
        except httpx.HTTPError as exc:
            raise ApiError(502, f"cannot reach the upstream: {type(exc).__name__}",
                           code="upstream_unreachable") from None

    async def aclose(self) -> None:
        await self.client.aclose()


def rewrite_body(body: dict, comp: Compressed, kind: str) -> dict:
    """``body`` with its texts replaced by the compressed ones (unchanged when nothing was dropped)."""
    if comp.n_kept == comp.n_prompt:
        return body
    out = dict(body)
    if kind == "completion":
        out["prompt"] = comp.messages[0][1]
    else:
        out["messages"] = [{**m, "content": c} for m, (_, c) in zip(body["messages"], comp.messages, strict=True)]
    return out
