"""Listening and running: a socket bound up front (a clear error when the port is taken), uvicorn
serving the app on it, logs on stderr only (stdout is for model text)."""

from __future__ import annotations

import socket
import threading

from ..errors import ConfigError

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "specllama: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                            "formatter": "plain"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "specllama.serve": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def log_config(quiet: bool) -> dict:
    """:data:`LOG_CONFIG`, with uvicorn's own start/stop lines hidden when ``quiet``."""
    if not quiet:
        return LOG_CONFIG
    cfg = {**LOG_CONFIG, "loggers": {**LOG_CONFIG["loggers"]}}
    cfg["loggers"]["uvicorn"] = {**cfg["loggers"]["uvicorn"], "level": "WARNING"}
    cfg["loggers"]["uvicorn.error"] = {"level": "WARNING"}
    return cfg


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, type_, proto, _, addr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return host, port


def base_url(sock: socket.socket) -> str:
    """``http://host:port/v1`` for a listening socket."""
    host, port = address(sock)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1"


class Server:
    """uvicorn serving ``app`` on ``sock``: :meth:`run` in the foreground (the CLI), or
    :meth:`start`/:meth:`stop` on a thread (tests, embedding)."""

    def __init__(self, app, sock: socket.socket, access_log: bool = True, graceful_s: float = 5.0,
                 log_config: dict | None = LOG_CONFIG):
        import uvicorn

        self.sock = sock
        self.url = base_url(sock)
        config = uvicorn.Config(app, log_config=log_config, access_log=access_log, lifespan="on",
                                timeout_graceful_shutdown=graceful_s, server_header=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's graceful shutdown, then the worker stops)."""
        self._server.run(sockets=[self.sock])

    def start(self, timeout: float = 30.0) -> "Server":
        self._thread = threading.Thread(target=self.run, name="specllama-serve", daemon=True)
        self._thread.start()
        for _ in range(int(timeout / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            self._thread.join(0.01)
        if not self._server.started:
            raise RuntimeError("the server did not start")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
