"""What a ``specllama serve`` process is configured with (built by the CLI, or by tests directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..methods.base import GenConfig

LOOPBACK = "127.0.0.1"
MiB = 1024 * 1024


@dataclass(frozen=True)
class UpstreamConfig:
    """An OpenAI-compatible server that runs the target (``--upstream``).

    Attributes:
        url: base URL, normally ending in ``/v1`` (``http://127.0.0.1:8080/v1``); endpoint paths
            such as ``/chat/completions`` are appended to it.
        api_key: sent as ``Authorization: Bearer`` to the upstream (never the client's key).
        model: model name sent upstream; None keeps the client's (server) or asks the upstream's
            ``/models`` for its first model (``run``).
        timeout: seconds to wait for the upstream to connect, and between two pieces of its answer.
    """

    url: str
    api_key: str | None = None
    model: str | None = None
    timeout: float = 600.0

    def __post_init__(self):
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--upstream must be an http(s) URL such as http://127.0.0.1:8080/v1, "
                              f"got {self.url!r}")
        if parts.query or parts.fragment:
            raise ConfigError(f"--upstream must not carry a query or fragment: {self.url!r}")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if not self.timeout > 0:
            raise ConfigError(f"--upstream-timeout must be > 0, got {self.timeout}")
        if self.model is not None and not self.model.strip():
            raise ConfigError("--upstream-model must not be empty")

    def endpoint(self, path: str) -> str:
        """``url`` + ``path`` (``path`` starts with ``/``)."""
        return self.url + path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass(frozen=True)
class ServeConfig:
    """Server settings; request fields override ``gen`` and ``method_opts`` per request.

    Attributes:
        host, port: where to listen; loopback by default (``--host``, ``--port``; 0 picks a port).
        api_key: if set, every request but ``GET /health`` must send ``Authorization: Bearer <key>``.
        alias: the model id reported by ``/v1/models`` and in responses [default: target file name].
        queue_size: requests that may wait while one runs; more get 503.
        max_body_bytes: largest request body accepted (413 above).
        max_prompt_tokens: largest tokenized prompt accepted (400 above).
        chat_template: template name or Jinja text overriding the GGUF's.
        gap: text put where compressed documents lost tokens (upstream mode; see ``compress --gap``).
        gen: default generation settings (``-n``, ``--temp``, ``--top-k``, ``--top-p``, ``-s``).
        method_opts: default method options, as the CLI's ``method_options`` name them
            (``method``, ``budget``, ``keep``, ``window``, ...).
        upstream: run the target on another server instead of locally.
        access_log: log one line per request on stderr.
    """

    host: str = LOOPBACK
    port: int = 8080
    api_key: str | None = None
    alias: str | None = None
    queue_size: int = 32
    max_body_bytes: int = 8 * MiB
    max_prompt_tokens: int = 32768
    chat_template: str | None = None
    gap: str = ""
    gen: GenConfig = field(default_factory=GenConfig)
    method_opts: Mapping[str, object] = field(default_factory=dict)
    upstream: UpstreamConfig | None = None
    access_log: bool = True

    def __post_init__(self):
        if not self.host:
            raise ConfigError("--host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in [0, 65535], got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key must not be empty")
        if self.queue_size < 1:
            raise ConfigError(f"--queue-size must be >= 1, got {self.queue_size}")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"--max-body must be >= 1024 bytes, got {self.max_body_bytes}")
        if self.max_prompt_tokens < 1:
            raise ConfigError(f"--max-prompt-tokens must be >= 1, got {self.max_prompt_tokens}")
        object.__setattr__(self, "method_opts", MappingProxyType(dict(self.method_opts)))
