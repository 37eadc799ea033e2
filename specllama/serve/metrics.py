"""Counters for ``GET /metrics`` (Prometheus text format) and the ASGI middleware that counts requests.

llama-server's metric names are used where they mean the same thing (``llamacpp:prompt_tokens_total``
counts the prompt tokens the target processed, i.e. the kept ones); specllama's own are prefixed
``specllama:`` (whole prompts, kept tokens, draft time, requests by endpoint and status class).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping

from ..pipeline import Result

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"  # the endpoint label of paths that are no route (404s): keeps the label set small


@dataclass
class Totals:
    """Running sums over the requests the server has answered."""

    prompt_tokens: int = 0  # tokens the target prefilled (kept)
    prompt_seconds: float = 0.0
    predicted_tokens: int = 0
    predicted_seconds: float = 0.0
    draft_seconds: float = 0.0
    prompt_total: int = 0  # whole prompts, as sent
    prompt_kept: int = 0
    last_kept_ratio: float = math.nan


class Metrics:
    """Thread-safe counters: the worker thread observes results, the event loop renders them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals = Totals()
        self.requests: dict[tuple[str, str], int] = {}

    # -- recording ------------------------------------------------------------------------------
    def observe_prompt(self, n_prompt: int, n_kept: int) -> None:
        """A prompt of ``n_prompt`` tokens of which ``n_kept`` went on (local or upstream)."""
        with self._lock:
            self._prompt(n_prompt, n_kept)

    def _prompt(self, n_prompt: int, n_kept: int) -> None:
        t = self.totals
        t.prompt_total += int(n_prompt)
        t.prompt_kept += int(n_kept)
        t.last_kept_ratio = n_kept / n_prompt if n_prompt else math.nan

    def observe(self, result: Result) -> None:
        """A finished local generation: its prompt counts, prefill and decode work."""
        tm = result.timings
        with self._lock:
            self._prompt(tm.n_prompt, tm.n_kept)
            t = self.totals
            t.prompt_tokens += tm.prefill_tokens
            t.prompt_seconds += tm.prefill_ms / 1000.0
            t.predicted_tokens += result.n_generated
            t.predicted_seconds += tm.decode_ms / 1000.0
            t.draft_seconds += tm.draft_ms / 1000.0

    def count_request(self, endpoint: str, status: int) -> None:
        key = (endpoint, f"{status // 100}xx")
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    # -- rendering ------------------------------------------------------------------------------
    def render(self, worker: Mapping[str, Any]) -> str:
        """The exposition text; ``worker`` is :meth:`Worker.health` (busy, queued, job outcomes)."""
        with self._lock:
            t = Totals(**vars(self.totals))
            requests = dict(self.requests)
        out: list[str] = []
        add = family_writer(out)
        add("llamacpp:prompt_tokens_total", "counter", "Prompt tokens the target processed (kept tokens).",
            t.prompt_tokens)
        add("llamacpp:prompt_seconds_total", "counter", "Target prompt processing time in seconds.",
            t.prompt_seconds)
        add("llamacpp:prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
            _rate(t.prompt_tokens, t.prompt_seconds))
        add("llamacpp:tokens_predicted_total", "counter", "Generated tokens.", t.predicted_tokens)
        add("llamacpp:tokens_predicted_seconds_total", "counter", "Decode time in seconds.",
            t.predicted_seconds)
        add("llamacpp:predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
            _rate(t.predicted_tokens, t.predicted_seconds))
        add("llamacpp:requests_processing", "gauge", "Requests running on the model context (0 or 1).",
            int(bool(worker.get("busy"))))
        add("llamacpp:requests_deferred", "gauge", "Requests waiting for the model context.",
            int(worker.get("queued", 0)))
        add("specllama:prompt_tokens_total", "counter", "Prompt tokens as sent, before compression.",
            t.prompt_total)
        add("specllama:prompt_tokens_kept_total", "counter", "Prompt tokens kept by the method.", t.prompt_kept)
        add("specllama:kept_tokens_ratio", "gauge", "Kept/prompt tokens of the last request (NaN before one).",
            t.last_kept_ratio)
        add("specllama:draft_seconds_total", "counter", "Draft model time in seconds.", t.draft_seconds)
        add("specllama:jobs_total", "counter", "Jobs by outcome (served, cancelled, invalid, failed, rejected).",
            None, [({"outcome": k}, worker[k]) for k in ("served", "cancelled", "invalid", "failed", "rejected")
                   if k in worker])
        add("specllama:requests_total", "counter", "HTTP requests by endpoint and status class.", None,
            [({"endpoint": e, "status": s}, n) for (e, s), n in sorted(requests.items())])
        return "\n".join(out) + "\n"


def family_writer(out: list[str]) -> Callable[..., None]:
    """A function appending one metric family (HELP, TYPE, samples) to ``out``."""
    def add(name: str, kind: str, help_: str, value: float | None,
            labelled: Iterable[tuple[dict[str, str], float]] = ()) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        if value is not None:
            out.append(f"{name} {_number(value)}")
        for labels, v in labelled:
            text = ",".join(f'{k}="{_escape(str(lv))}"' for k, lv in labels.items())
            out.append(f"{name}{{{text}}} {_number(v)}")
    return add


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


def _number(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(round(float(v), 6))


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class CountRequests:
    """ASGI middleware: counts every HTTP request by endpoint (a route path, else ``other``) and
    status class when its response starts (so a client sees the count once it has the answer's
    head), and those that end in an exception before any response as 5xx."""

    def __init__(self, app, metrics: Metrics, paths: Iterable[str]):
        self.app = app
        self.metrics = metrics
        self.paths = frozenset(paths)

    async def __call__(self, scope, receive, send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in self.paths else OTHER
        counted = False

        async def watch(message: dict) -> None:
            nonlocal counted
            if message["type"] == "http.response.start" and not counted:
                counted = True
                self.metrics.count_request(endpoint, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not counted:
                self.metrics.count_request(endpoint, 500)
