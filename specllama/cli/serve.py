"""``specllama serve``: an OpenAI-compatible server, and the ``--upstream`` options ``run``/``chat`` share.

Only light imports at module level: the CLI must keep working when the server's dependencies
(Starlette, uvicorn, httpx) are missing; ``serve`` then says what to install.
"""

from __future__ import annotations

import ipaddress
import signal
import threading

import click

from .. import registry
from ..engine import lib
from ..errors import ConfigError, ModelError, SpecllamaError
from ..preflight import prepare_runtime
from ..methods import GenConfig, Method
from ..runtime import Runtime, RuntimeConfig
from ..serve.config import LOOPBACK, MiB, ServeConfig, UpstreamConfig
from ..inputs import check_text_options
from ..prompt import build_prompt, document_request
from ..settings import resolve, runtime_config
from ..options import _stack, gen_options, method_options, model_options
from .output import note


upstream_options = _stack(
    click.option("--upstream", metavar="URL", default=None,
                 help="Generate on this OpenAI-compatible server (e.g. http://127.0.0.1:8081/v1) after "
                      "compressing the prompt with the local draft; no local target is loaded."),
    click.option("--upstream-model", metavar="NAME", default=None,
                 help="Model name sent upstream [default: serve keeps the client's; run asks the "
                      "upstream's /models for its first model]."),
    click.option("--upstream-api-key", metavar="KEY", default=None, envvar="SPECLLAMA_UPSTREAM_API_KEY",
                 help="Bearer key for the upstream [env: SPECLLAMA_UPSTREAM_API_KEY]."),
    click.option("--upstream-timeout", type=float, default=600.0, show_default=True,
                 help="Seconds to wait for the upstream."),
)


def upstream_from(o: dict) -> UpstreamConfig | None:
    """Take the ``upstream_options`` out of ``o``; the upstream's config, or None without ``--upstream``."""
    url = o.pop("upstream", None)
    model, key = o.pop("upstream_model", None), o.pop("upstream_api_key", None)
    timeout = o.pop("upstream_timeout", 600.0)
    if url is None:
        return None
    return UpstreamConfig(url=url, api_key=key, model=model, timeout=timeout)


def upstream_config(o: dict) -> RuntimeConfig:
    """The draft-only runtime config of ``--upstream`` (``-md``, or the default pair's draft)."""
    if o.get("target"):
        raise ConfigError("-m is not used with --upstream (the upstream runs the target); pass only -md")
    draft = registry.resolve(o.get("draft"), "draft")
    if draft is None:
        raise ModelError("--upstream needs a draft model: pass -md FILE.gguf")
    return runtime_config({**o, "target": draft, "draft": draft}, need_draft=True)


def configs(o: dict, upstream: bool = False) -> tuple[RuntimeConfig, Method, GenConfig]:
    """The runtime config (only the draft with ``--upstream``), method and generation settings the
    options describe; nothing is loaded yet."""
    return resolve(o, upstream_config(o) if upstream else None)


def open_runtime(cfg: RuntimeConfig, upstream: bool = False) -> Runtime:
    """The runtime of ``cfg``, both model files checked first (a draft-only one for ``--upstream``)."""
    cfg = prepare_runtime(cfg, note)
    if upstream:
        from ..serve.upstream import DraftRuntime

        return DraftRuntime(cfg)
    return Runtime(cfg)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _interrupt(*_):
    raise KeyboardInterrupt


@click.command()
@model_options
@method_options
@gen_options
@upstream_options
@click.option("--host", default=LOOPBACK, show_default=True,
              help="Address to listen on (loopback by default; anything else is reachable by others).")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--api-key", metavar="KEY", default=None, envvar="SPECLLAMA_API_KEY",
              help="Require 'Authorization: Bearer KEY' on /v1 [env: SPECLLAMA_API_KEY].")
@click.option("-a", "--alias", metavar="NAME", default=None, help="Model id in /v1/models [default: target file name].")
@click.option("--chat-template", "chat_template", metavar="NAME",
              help="Chat template name or Jinja text [default: the GGUF's].")
@click.option("--queue-size", type=int, default=32, show_default=True,
              help="Requests that may wait while one runs; more get 503.")
@click.option("--max-body", "max_body", type=int, default=8 * MiB, show_default=True,
              help="Largest request body in bytes (413 above).")
@click.option("--max-prompt-tokens", type=int, default=32768, show_default=True,
              help="Largest prompt in tokens (400 above).")
@click.option("--gap", default="", metavar="TEXT", help="Text put where dropped tokens were (upstream mode).")
@click.option("--quiet", is_flag=True, help="No per-request log lines on stderr.")
def serve(host: str, port: int, api_key: str | None, alias: str | None, chat_template: str | None,
          queue_size: int, max_body: int, max_prompt_tokens: int, gap: str, quiet: bool, **o) -> None:
    """Serve an OpenAI-compatible API: /v1/chat/completions, /v1/completions, /v1/models.

    Requests choose the method in an extension object, e.g. {"specllama": {"method": "specpc",
    "keep": 0.25}}; the flags here are the defaults. With --upstream only the draft runs here:
    requests are compressed, then forwarded to the upstream server.
    """
    try:
        from ..serve.asgi import build_app
        from ..serve.schema import method_fields
        from ..serve.server import Server, listen, log_config
        from ..serve.upstream import check_prompt_only
    except ModuleNotFoundError as exc:
        raise SpecllamaError(f"specllama serve needs {exc.name}: pip install starlette uvicorn httpx") from None

    lib.init(o.get("verbose"))
    check_text_options(dict(o, host=host, api_key=api_key, alias=alias, chat_template=chat_template, gap=gap))
    up = upstream_from(o)
    rt_cfg, method, gen = configs(o, up is not None)
    cfg = ServeConfig(host=host, port=port, api_key=api_key, alias=alias, queue_size=queue_size,
                      max_body_bytes=max_body, max_prompt_tokens=max_prompt_tokens, chat_template=chat_template,
                      gap=gap, gen=gen, method_opts={k: o.get(k) for k in method_fields()},
                      upstream=up, access_log=not quiet)
    if method.needs_draft and not rt_cfg.draft:
        raise ModelError(f"method {method.name} needs a draft model: pass -md FILE.gguf")
    if up:
        check_prompt_only(method)
    rt = open_runtime(rt_cfg, up is not None)
    try:
        name = rt.target.name  # load now: a bad file fails before the port is taken
        if chat_template and not up:  # and a bad template before the first request
            build_prompt(rt.target, document_request("hi"), chat_template)
        if rt.has_draft:
            rt.note_tokenizers()  # loads the draft now; a draft with another tokenizer is aligned
        sock = listen(host, port)
    except BaseException:
        rt.close()
        raise
    server = Server(build_app(cfg, rt), sock, access_log=not quiet, log_config=log_config(quiet))
    if up:
        where = f"upstream {up.url}, draft {name}"
    else:
        where = name + (f" + draft {rt.draft.name}" if rt.has_draft else "")
    note(f"serving {where} on {server.url} | default method {method.describe()} | queue {queue_size}"
         + (" | API key required" if api_key else ""))
    if not _is_loopback(host) and not api_key:
        note(f"warning: listening on {host} without --api-key: anyone who can reach it can use it")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    note("stopped")
