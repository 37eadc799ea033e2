"""A bounded load test of a running ``specllama serve`` (loopback only).

``python -m specllama.serve.loadtest --url http://127.0.0.1:8080/v1`` sends ``--requests`` chat
completions (50) from ``--clients`` concurrent clients (8), each a synthetic document of ``--words``
words and a question, then checks ``/health``. It stops by itself: after the last request, or at
``--deadline`` seconds. It prints one summary (``--json`` for JSON) with latency and TTFT
percentiles and exits 1 if any request got a 5xx, failed to connect, or the server died.

Refuses any host that is not a loopback address.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

WORDS = ("the river city house forest night garden harbor island marble orange lemon year world school "
         "number key value answer document word green blue red sky grass sun").split()


@dataclass
class Outcome:
    status: int  # HTTP status; 0 when the request failed before one came
    latency_s: float
    ttft_s: float | None = None
    error: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    health_ok: bool = False
    stopped_early: bool = False

    def summary(self) -> dict:
        st = [o.status for o in self.outcomes]
        ok = [o for o in self.outcomes if o.status == 200]
        lat = [o.latency_s for o in ok]
        ttft = [o.ttft_s for o in ok if o.ttft_s is not None]

        def pct(xs):
            if not xs:
                return None
            p = np.percentile(np.asarray(xs), [50, 90, 99])
            return {"p50": round(float(p[0]), 4), "p90": round(float(p[1]), 4), "p99": round(float(p[2]), 4),
                    "max": round(float(max(xs)), 4)}

        return {
            "requests": len(st), "ok": len(ok),
            "4xx": sum(400 <= s < 500 for s in st), "5xx": sum(s >= 500 for s in st),
            "failed": sum(s == 0 for s in st), "wall_s": round(self.wall_s, 3),
            "req_per_s": round(len(st) / self.wall_s, 3) if self.wall_s else 0.0,
            "latency_s": pct(lat), "ttft_s": pct(ttft), "server_alive": self.health_ok,
            "stopped_early": self.stopped_early,
            "errors": sorted({o.error for o in self.outcomes if o.error})[:5],
        }

    @property
    def passed(self) -> bool:
        s = self.summary()
        return s["5xx"] == 0 and s["failed"] == 0 and self.health_ok and not self.stopped_early


def check_loopback(url: str) -> None:
    """Raise ``SystemExit`` unless every address ``url``'s host resolves to is a loopback one."""
    host = urlsplit(url).hostname
    if not host:
        raise SystemExit(f"loadtest: not a URL: {url}")
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"loadtest: cannot resolve {host}: {exc.strerror}") from None
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise SystemExit(f"loadtest: {host} is not a loopback address; this tool only targets this machine")


def document(words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), words)) + ". The key is 7312."


async def one(client, url: str, body: dict, stream: bool) -> Outcome:
    import httpx

    t0 = time.perf_counter()
    try:
        if not stream:
            r = await client.post(url, json=body)
            err = "" if r.status_code == 200 else r.text[:200]
            return Outcome(r.status_code, time.perf_counter() - t0, error=err)
        ttft = None
        async with client.stream("POST", url, json=body) as r:
            if r.status_code != 200:
                return Outcome(r.status_code, time.perf_counter() - t0, error=(await r.aread())[:200].decode())
            async for line in r.aiter_lines():
                data = line[5:].strip() if line.startswith("data:") else ""
                if not data or data == "[DONE]":
                    continue
                obj = json.loads(data)
                if obj.get("error"):
                    return Outcome(500, time.perf_counter() - t0, error=data[:200])
                if ttft is None and any((c.get("delta") or {}).get("content") for c in obj.get("choices") or []):
                    ttft = time.perf_counter() - t0
        return Outcome(200, time.perf_counter() - t0, ttft)
    except httpx.HTTPError as exc:
        return Outcome(0, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")


async def run(url: str, clients: int, requests: int, words: int, max_tokens: int, stream: bool,
              deadline_s: float, api_key: str | None, extra: dict) -> Report:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    rep = Report()
    todo = iter(range(requests))
    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=httpx.Timeout(deadline_s)) as client:

        async def client_loop() -> None:
            for i in todo:
                body = {"model": "default", "max_tokens": max_tokens, "temperature": 0.0, "stream": stream,
                        "messages": [{"role": "user", "content": [
                            {"type": "text", "text": document(words, i)},
                            {"type": "text", "text": "\n\nWhat is the key?", "protected": True}]}]}
                if extra:
                    body["specllama"] = extra
                rep.outcomes.append(await one(client, url + "/chat/completions", body, stream))

        tasks = [asyncio.create_task(client_loop()) for _ in range(clients)]
        done, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for t in pending:
            t.cancel()
        rep.stopped_early = bool(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        rep.wall_s = time.perf_counter() - t0
        root = url[: -len("/v1")] if url.endswith("/v1") else url
        try:
            rep.health_ok = (await client.get(root + "/health", timeout=10)).status_code == 200
        except httpx.HTTPError:
            rep.health_ok = False
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m specllama.serve.loadtest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080/v1", help="server base URL (loopback only)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--words", type=int, default=400, help="words in each synthetic document")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stream", action="store_true", help="stream the answers (measures TTFT)")
    ap.add_argument("--deadline", type=float, default=600.0, help="stop after this many seconds")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--method", default=None, help="specllama.method for every request")
    ap.add_argument("--budget", type=int, default=None, help="specllama.budget for every request")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = ap.parse_args(argv)
    for name in ("clients", "requests", "words", "max_tokens"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < a.deadline <= 3600:
        ap.error("--deadline must be in (0, 3600]")
    url = a.url.rstrip("/")
    check_loopback(url)
    extra = {k: v for k, v in (("method", a.method), ("budget", a.budget)) if v is not None}
    rep = asyncio.run(run(url, a.clients, a.requests, a.words, a.max_tokens, a.stream, a.deadline,
                          a.api_key, extra))
    s = rep.summary()
    if a.json:
        print(json.dumps(s))
    else:
        def fmt(p):
            return "-" if p is None else f"p50 {p['p50']:.3f} s, p90 {p['p90']:.3f} s, p99 {p['p99']:.3f} s"

        print(f"requests {s['requests']} | ok {s['ok']} | 4xx {s['4xx']} | 5xx {s['5xx']} | failed {s['failed']} "
              f"| wall {s['wall_s']:.1f} s | {s['req_per_s']:.2f} req/s | server alive {s['server_alive']}")
        print(f"latency {fmt(s['latency_s'])}")
        if a.stream:
            print(f"ttft    {fmt(s['ttft_s'])}")
        for e in s["errors"]:
            print(f"error: {e}", file=sys.stderr)
    return 0 if rep.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
