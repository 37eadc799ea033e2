"""The ASGI app of ``specllama serve``: the OpenAI routes of :mod:`.app` and the llama-server
routes of :mod:`.llama_api` (which builds on :class:`.app.Api`), with one error policy."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import SpecllamaError
from ..runtime import Runtime
from .app import Api, ClientGone, api_error, log
from .config import ServeConfig
from .errors import ApiError, error_body, from_specllama
from .llama_api import llama_routes
from .metrics import CountRequests


def build_app(cfg: ServeConfig, rt: Runtime) -> Starlette:
    """The ASGI app; the worker it starts owns ``rt`` and closes it at shutdown."""
    srv = Api(cfg, rt)

    def guard(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return api_error(exc)
            except ClientGone:
                return Response(status_code=499)  # nobody is listening
            except SpecllamaError as exc:
                return api_error(from_specllama(exc))
        return endpoint

    async def http_error(request: Request, exc: HTTPException) -> Response:
        msg = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        body = error_body(msg.get(exc.status_code, str(exc.detail)), "invalid_request_error")
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error")
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error"), status_code=500)

    routes = [
        Route("/health", guard(srv.health), methods=["GET"]),
        Route("/v1/models", guard(srv.models), methods=["GET"]),
        Route("/v1/chat/completions", guard(srv.chat), methods=["POST"]),
        Route("/v1/completions", guard(srv.completions), methods=["POST"]),
        *llama_routes(srv, guard),
    ]
    app = Starlette(routes=routes, lifespan=srv.lifespan,
                    exception_handlers={HTTPException: http_error, Exception: internal_error})
    app.add_middleware(CountRequests, metrics=srv.metrics, paths=[r.path for r in routes])
    app.state.api = srv
    return app

