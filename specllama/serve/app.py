"""The Starlette application: OpenAI-compatible routes over one :class:`Worker`.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models`` (API key
checked when one is set) and ``GET /health`` (never); llama-server's own (``/completion``,
``/tokenize``, ``/detokenize``, ``/props``, ``/metrics``) come from :mod:`.llama_api`, and :mod:`.asgi` joins them. Every request
is counted for ``/metrics`` (:class:`.metrics.CountRequests`).

Local mode runs the pipeline in the worker. Upstream mode (``cfg.upstream``) runs only the prompt
compression in the worker and forwards the shorter request, streaming passed through; its
non-streaming answers gain a ``specllama`` object. ``X-Specllama-Prompt-Tokens`` /
``X-Specllama-Kept-Tokens`` headers come with every upstream answer and with local non-streaming ones
(a local stream carries the counts in its last chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from functools import partial
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import SpecllamaError
from ..methods.base import GenConfig, Method
from ..pipeline import Result, generate
from ..prompt import build_prompt
from ..runtime import Runtime
from .config import ServeConfig
from .errors import ApiError, PromptTooLong, from_specllama
from .metrics import Metrics
from .responses import DONE, Answer, sse
from .schema import ApiRequest, parse_chat, parse_completion, parse_json, resolve_request
from .upstream import AsyncUpstream, check_prompt_only, compress_prompt, rewrite_body
from .worker import Event, QueueFull, ShuttingDown, Ticket, Worker

log = logging.getLogger("specllama.serve")


class ClosingStream(StreamingResponse):
    """A streaming response that always runs ``on_close`` when it ends, however it ends (the
    client went away, the server stopped): the stream's generator may never see its ``finally``."""

    def __init__(self, content, on_close: Callable[[], Awaitable[None]], **kw):
        super().__init__(content, media_type="text/event-stream", **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.on_close()


def api_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def count_headers(n_prompt: int, n_kept: int) -> dict[str, str]:
    return {"X-Specllama-Prompt-Tokens": str(n_prompt), "X-Specllama-Kept-Tokens": str(n_kept)}


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def _disconnected(receive) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


async def until_disconnect(request: Request, aw: Awaitable):
    """``await aw``, unless the client disconnects first: then ``aw`` is cancelled and
    :class:`ClientGone` raised."""
    task = asyncio.ensure_future(aw)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task not in done:
        raise ClientGone()
    return task.result()


async def wait_event(request: Request, ticket: Ticket) -> Event:
    """The ticket's next event; the ticket is cancelled if the client goes first."""
    try:
        ev = await until_disconnect(request, ticket.next())
    except ClientGone:
        ticket.cancel()
        raise
    if ev.kind == "error":
        raise event_error(ev)
    if ev.kind == "cancelled":
        raise ApiError(503, "the request was cancelled: the server is shutting down", code="shutting_down")
    return ev


async def relay_events(ticket: Ticket, ev: Event, on_text: Callable[[str], str | None],
                       on_done: Callable[[Result], list[str]]):
    """The SSE lines of one streamed job from its first event ``ev`` on: ``on_text(piece)`` per text
    event (None: nothing), the lines of ``on_done(result)`` at the end, an error object on failure,
    and nothing more once the server stops (a cancelled job)."""
    while True:
        if ev.kind == "text":
            line = on_text(ev.value)
            if line is not None:
                yield line
        elif ev.kind == "done":
            for line in on_done(ev.value):
                yield line
            return
        elif ev.kind == "error":
            yield sse(event_error(ev).body())
            return
        else:  # cancelled: the server is stopping
            return
        ev = await ticket.next()


def event_error(ev: Event) -> ApiError:
    """The HTTP error for a failed job's event."""
    exc = ev.value
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SpecllamaError):
        return from_specllama(exc)
    return ApiError(500, f"internal error: {type(exc).__name__}")


class Api:
    """The routes and their state; :func:`.asgi.build_app` wraps it in a Starlette app."""

    def __init__(self, cfg: ServeConfig, rt: Runtime):
        self.cfg = cfg
        self.rt = rt
        self.worker = Worker(rt, cfg.queue_size)
        self.metrics = Metrics()
        self.upstream: AsyncUpstream | None = None
        self.has_draft = rt.has_draft
        self.model_id = cfg.alias or rt.target.name
        info = rt.target.info
        self.model_meta = {"arch": info.arch, "n_ctx_train": info.n_ctx_train, "n_vocab": info.n_vocab,
                           "draft": rt.draft.name if rt.has_draft else None}

    # -- lifetime -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.worker.start()
        if self.cfg.upstream is not None:
            self.upstream = AsyncUpstream(self.cfg.upstream)
        try:
            yield
        finally:
            if self.upstream is not None:
                await self.upstream.aclose()
            await asyncio.get_running_loop().run_in_executor(None, self.worker.stop)

    # -- plumbing -------------------------------------------------------------------------------
    def check_key(self, request: Request) -> None:
        key = self.cfg.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        ok = hmac.compare_digest(token.strip().encode("utf-8"), key.encode("utf-8"))
        if scheme.lower() != "bearer" or not ok:
            raise ApiError(401, "invalid or missing API key (send Authorization: Bearer <key>)",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def read_body(self, request: Request) -> dict:
        limit = self.cfg.max_body_bytes
        too_big = ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limit:
            raise too_big
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > limit:
                raise too_big
            chunks.append(chunk)
        return parse_json(b"".join(chunks))

    def submit(self, fn, stream: bool) -> Ticket:
        try:
            return self.worker.submit(fn, stream)
        except QueueFull:
            raise ApiError(503, f"the server is busy ({self.cfg.queue_size} requests waiting); retry later",
                           code="queue_full", headers={"Retry-After": "1"}) from None
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down", code="shutting_down") from None

    def configs(self, req: ApiRequest) -> tuple[Method, GenConfig]:
        """The request's method and generation settings, over the server's defaults."""
        _, method, gen = resolve_request(req, self.cfg.method_opts, self.cfg.gen, self.rt.cfg)
        if self.cfg.upstream is not None:
            try:
                check_prompt_only(method)
            except SpecllamaError as exc:
                raise ApiError(400, str(exc), "specllama.method") from None
        return method, gen

    def tokenize(self, rt: Runtime, req: ApiRequest):
        prompt = build_prompt(rt.target, list(req.messages), self.cfg.chat_template, req.raw)
        if prompt.n > self.cfg.max_prompt_tokens:
            raise PromptTooLong(f"the prompt has {prompt.n} tokens; this server accepts at most "
                                f"{self.cfg.max_prompt_tokens}")
        return prompt

    # -- routes ---------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model_id,
                             "upstream": self.cfg.upstream.url if self.cfg.upstream else None,
                             **self.worker.health()})

    async def models(self, request: Request) -> Response:
        self.check_key(request)
        if self.upstream is not None:
            resp = await self.upstream.send("GET", "/models")
            return Response(resp.content, resp.status_code, media_type="application/json")
        return JSONResponse({"object": "list", "data": [{
            "id": self.model_id, "object": "model", "created": int(time.time()), "owned_by": "specllama",
            "meta": self.model_meta}]})

    async def chat(self, request: Request) -> Response:
        return await self.complete(request, partial(parse_chat, strict=self.cfg.upstream is None))

    async def completions(self, request: Request) -> Response:
        return await self.complete(request, partial(parse_completion, strict=self.cfg.upstream is None))

    async def complete(self, request: Request, parse: Callable[[dict], ApiRequest]) -> Response:
        self.check_key(request)
        req = parse(await self.read_body(request))
        method, gen = self.configs(req)
        if self.upstream is not None:
            return await self.forward(request, req, method)
        ticket = self.submit(partial(self.run_local, req, method, gen), req.stream)
        ev = await wait_event(request, ticket)
        answer = Answer(req.kind, req.model or self.model_id)
        if not req.stream:
            result: Result = ev.value
            return JSONResponse(answer.full(result), headers=count_headers(result.timings.n_prompt,
                                                                           result.timings.n_kept))
        return ClosingStream(self.stream_local(answer, req, ticket, ev), on_close=_async(ticket.cancel))

    def run_local(self, req: ApiRequest, method: Method, gen: GenConfig, rt: Runtime, emit) -> Result:
        """The job: tokenize, run the pipeline, log one summary line (worker thread)."""
        prompt = self.tokenize(rt, req)
        result = generate(rt, prompt, method, gen, on_text=emit)
        self.metrics.observe(result)
        for n in result.notes:
            log.info("%s", n)
        log.info("%s: %s", result.method, result.timings.summary())
        return result

    async def stream_local(self, answer: Answer, req: ApiRequest, ticket: Ticket, ev: Event):
        head = answer.first()
        if head is not None:
            yield sse(head)

        def done(result: Result) -> list[str]:
            usage = [sse(answer.usage_chunk(result))] if req.include_usage else []
            return [sse(answer.last(result)), *usage, DONE]

        async for line in relay_events(ticket, ev, lambda text: sse(answer.piece(text)), done):
            yield line

    # -- upstream mode --------------------------------------------------------------------------
    def run_compress(self, req: ApiRequest, method: Method, rt: Runtime, emit) -> tuple[dict, dict]:
        """The job: tokenize, compress; the body for the upstream and the ``specllama`` object."""
        prompt = self.tokenize(rt, req)
        body = {k: v for k, v in req.body.items() if k != "specllama"}
        if self.cfg.upstream.model is not None:
            body["model"] = self.cfg.upstream.model
        info: dict[str, Any] = {"method": "dense", "n_prompt": prompt.n, "n_kept": prompt.n, "notes": []}
        if method.compresses:
            comp, name = compress_prompt(rt, prompt, method, self.cfg.gap)
            body = rewrite_body(body, comp, req.kind)
            info.update(method=name, n_kept=comp.n_kept, notes=comp.notes,
                        draft_ms=round(comp.timings.draft_ms, 3), select_ms=round(comp.timings.select_ms, 3))
        self.metrics.observe_prompt(info["n_prompt"], info["n_kept"])
        log.info("%s: kept %d/%d tokens | draft %.2f s", info["method"], info["n_kept"], info["n_prompt"],
                 info.get("draft_ms", 0.0) / 1000)
        emit("")  # a cancellation point before forwarding
        return body, info

    async def forward(self, request: Request, req: ApiRequest, method: Method) -> Response:
        assert self.upstream is not None
        ticket = self.submit(partial(self.run_compress, req, method), False)
        body, info = (await wait_event(request, ticket)).value
        path = "/chat/completions" if req.kind == "chat" else "/completions"
        headers = count_headers(info["n_prompt"], info["n_kept"])
        resp = await until_disconnect(request, self.upstream.send("POST", path, body, stream=req.stream))
        ctype = resp.headers.get("content-type", "application/json")
        if not req.stream or resp.status_code != 200:
            try:
                data = await until_disconnect(request, resp.aread())
            finally:
                await resp.aclose()
            if resp.status_code == 200 and not req.stream:
                try:
                    obj = json.loads(data)
                except ValueError:
                    obj = None
                if isinstance(obj, dict):
                    if "specllama" in obj:  # the upstream is a specllama server too
                        info["upstream"] = obj["specllama"]
                    obj["specllama"] = info
                    return JSONResponse(obj, headers=headers)
            return Response(data, resp.status_code, headers=headers, media_type=ctype)

        async def relay():
            async for chunk in resp.aiter_bytes():  # decoded: the upstream may gzip
                yield chunk

        return ClosingStream(relay(), on_close=resp.aclose, headers=headers)


def _async(fn: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        fn()
    return call
