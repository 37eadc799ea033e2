"""llama-server's own endpoints, with its field names, so its clients and dashboards work unchanged.

* ``POST /completion`` (and ``/completions``): ``prompt`` in, ``content`` out, with ``timings``,
  ``tokens_predicted``, ``tokens_evaluated``, ``stop``; ``stream: true`` sends ``data: {...}``
  chunks with ``content`` and a last one with ``stop: true`` and ``timings`` (no ``[DONE]``, as
  llama-server). The request runs through the same worker and pipeline as ``/v1/completions``.
* ``POST /tokenize`` / ``POST /detokenize``: the target's tokenizer.
* ``GET /props``: llama-server's shape where it applies, plus a ``specllama`` object.
* ``GET /metrics``: Prometheus text (:mod:`.metrics`).

Every route checks the API key when one is set. In upstream mode the target runs elsewhere, so
``/completion``, ``/tokenize`` and ``/detokenize`` answer 501 (use ``/v1/completions``, or the
upstream itself).
"""

from __future__ import annotations

import asyncio
import os
from functools import partial
from importlib import metadata
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..version import __version__
from ..methods.base import GenConfig, Method
from ..pipeline import Result
from .app import Api, ClosingStream, _async, count_headers, relay_events, wait_event
from .errors import ApiError
from .llama_schema import parse_detokenize, parse_llama_completion, parse_tokenize
from .metrics import CONTENT_TYPE
from .responses import extras, sse
from .schema import ApiRequest
from .worker import Event, Ticket

STOP_TYPE = {"eog": "eos", "length": "limit"}


def gen_params(gen: GenConfig, stream: bool = False) -> dict[str, Any]:
    """llama-server's ``params`` object for generation settings specllama applies (the rest at
    their neutral values)."""
    s = gen.sampling
    return {"n_predict": gen.n_predict, "seed": s.seed, "temperature": s.temp, "top_k": s.top_k,
            "top_p": s.top_p, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "presence_penalty": 0.0,
            "frequency_penalty": 0.0, "mirostat": 0, "stop": [], "max_tokens": gen.n_predict, "n_keep": 0,
            "ignore_eos": False, "stream": stream, "n_probs": 0}


def build_info() -> str:
    """``specllama <version> (llama-cpp-python <version>)``: the build that serves."""
    try:
        llama = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:  # pragma: no cover - installed without metadata
        llama = "unknown"
    return f"specllama {__version__} (llama-cpp-python {llama})"


def token_pieces(model, ids: list[int]) -> list[dict[str, Any]]:
    """``[{"id", "piece"}]``: the piece as text, or as a list of bytes when it is not valid UTF-8."""
    out = []
    for t in ids:
        raw = model.token_bytes(t, special=True)
        try:
            piece: Any = raw.decode("utf-8")
        except UnicodeDecodeError:
            piece = list(raw)
        out.append({"id": t, "piece": piece})
    return out


class Reply:
    """The llama-server bodies of one ``/completion`` answer."""

    def __init__(self, model: str, settings: dict[str, Any], prompt: str, return_tokens: bool):
        self.model = model
        self.settings = settings
        self.prompt = prompt
        self.return_tokens = return_tokens

    def full(self, result: Result, streamed: bool = False) -> dict[str, Any]:
        """The whole answer; ``streamed``: the last chunk of a stream (its text already sent)."""
        t = result.timings
        tokens = [int(x) for x in result.tokens] if self.return_tokens and not streamed else []
        body = {"index": 0, "content": "" if streamed else result.text, "tokens": tokens, "id_slot": 0,
                "stop": True, "model": self.model, "tokens_predicted": result.n_generated,
                "tokens_evaluated": t.n_prompt, "tokens_cached": 0, "generation_settings": self.settings,
                "prompt": self.prompt, "has_new_line": "\n" in result.text, "truncated": False,
                "stop_type": STOP_TYPE.get(result.stop, "none"), "stopping_word": ""}
        body.update(extras(result))  # timings (llama-server's, plus specllama's) and the specllama object
        return body

    @staticmethod
    def piece(text: str) -> dict[str, Any]:
        return {"index": 0, "content": text, "tokens": [], "stop": False, "id_slot": 0}


class LlamaApi:
    """The llama-server routes over the :class:`Api` (its key check, body limit, worker, metrics)."""

    def __init__(self, api: Api):
        self.api = api
        rt, cfg = api.rt, api.cfg
        target = rt.target  # loaded already by Api: reading it here needs no worker
        self.n_vocab = target.info.n_vocab
        self.n_ctx = rt.cfg.n_ctx or target.info.n_ctx_train
        self.chat_template = cfg.chat_template or target.chat_template() or ""
        self.model_path = "" if cfg.upstream is not None else rt.cfg.target
        self.build_info = build_info()

    def local_only(self, what: str) -> None:
        """501 in upstream mode: the target, and its tokenizer, are the upstream's."""
        if self.api.cfg.upstream is not None:
            raise ApiError(501, f"{what} needs the target, which runs on the upstream in this mode; "
                                "use /v1/completions or ask the upstream", code="not_implemented")

    # -- /completion ----------------------------------------------------------------------------
    async def completion(self, request: Request) -> Response:
        api = self.api
        api.check_key(request)
        self.local_only("POST /completion")
        req = parse_llama_completion(await api.read_body(request))
        method, gen = api.configs(req)
        ticket = api.submit(partial(api.run_local, req, method, gen), req.stream)
        ev = await wait_event(request, ticket)
        reply = Reply(req.model or api.model_id, {"n_ctx": self.n_ctx, "model": api.model_id,
                                                  **gen_params(gen, req.stream)},
                      req.messages[0].parts[0].text, bool(req.body.get("return_tokens")))
        if not req.stream:
            result: Result = ev.value
            return JSONResponse(reply.full(result), headers=count_headers(result.timings.n_prompt,
                                                                          result.timings.n_kept))
        return ClosingStream(self.stream(reply, ticket, ev), on_close=_async(ticket.cancel))

    async def stream(self, reply: Reply, ticket: Ticket, ev: Event):
        """llama-server's stream: a chunk per piece of text, then the whole answer without its text."""
        async for line in relay_events(ticket, ev, lambda text: sse(reply.piece(text)) if text else None,
                                       lambda result: [sse(reply.full(result, streamed=True))]):
            yield line

    # -- tokens ---------------------------------------------------------------------------------
    async def tokenize(self, request: Request) -> Response:
        api = self.api
        api.check_key(request)
        self.local_only("POST /tokenize")
        req = parse_tokenize(await api.read_body(request))
        model = api.rt.target  # llama.cpp's tokenizer only reads the vocabulary: no worker needed
        ids = (await asyncio.to_thread(model.tokenize, req.content, req.add_special, req.parse_special)).tolist()
        if not req.with_pieces:
            return JSONResponse({"tokens": ids})
        return JSONResponse({"tokens": await asyncio.to_thread(token_pieces, model, ids)})

    async def detokenize(self, request: Request) -> Response:
        api = self.api
        api.check_key(request)
        self.local_only("POST /detokenize")
        tokens = parse_detokenize(await api.read_body(request), self.n_vocab)
        text = await asyncio.to_thread(api.rt.target.detokenize, tokens, True)
        return JSONResponse({"content": text})

    # -- server state ---------------------------------------------------------------------------
    async def props(self, request: Request) -> Response:
        api = self.api
        api.check_key(request)
        gen = api.cfg.gen
        settings = {"id": 0, "id_task": -1, "n_ctx": self.n_ctx, "speculative": False,
                    "is_processing": api.worker.busy, "params": gen_params(gen)}
        return JSONResponse({"default_generation_settings": settings, "total_slots": 1,
                             "model_path": self.model_path, "chat_template": self.chat_template,
                             "modalities": {"vision": False, "audio": False}, "build_info": self.build_info,
                             "specllama": self.specllama_props()})

    def specllama_props(self) -> dict[str, Any]:
        """What a llama-server does not have: the draft, the default method and its budget."""
        api = self.api
        cfg, rt = api.cfg, api.rt
        method = default_method(api)
        return {"version": __version__, "model": api.model_id,
                "draft_model": os.path.basename(rt.cfg.draft) if rt.cfg.draft else None,
                "draft_model_path": rt.cfg.draft,
                "method": method.name, "budget": method.budget.tokens if method.compresses else None,
                "keep": method.budget.keep if method.compresses else None, "describe": method.describe(),
                "upstream": cfg.upstream.url if cfg.upstream else None, "queue_size": cfg.queue_size,
                "max_prompt_tokens": cfg.max_prompt_tokens, "max_body_bytes": cfg.max_body_bytes}

    async def metrics(self, request: Request) -> Response:
        self.api.check_key(request)
        return Response(self.api.metrics.render(self.api.worker.health()), media_type=CONTENT_TYPE)


def default_method(api: Api) -> Method:
    """The method a request without a ``specllama`` object gets."""
    return api.configs(ApiRequest("completion", (), True))[0]


def llama_routes(api: Api, guard: Callable) -> list[Route]:
    """The routes, each handler wrapped by ``guard`` (API errors -> JSON bodies)."""
    la = LlamaApi(api)
    return [
        Route("/completion", guard(la.completion), methods=["POST"]),
        Route("/completions", guard(la.completion), methods=["POST"]),
        Route("/tokenize", guard(la.tokenize), methods=["POST"]),
        Route("/detokenize", guard(la.detokenize), methods=["POST"]),
        Route("/props", guard(la.props), methods=["GET"]),
        Route("/metrics", guard(la.metrics), methods=["GET"]),
    ]
