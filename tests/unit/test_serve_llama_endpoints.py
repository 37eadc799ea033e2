"""llama-server's own endpoints on ``specllama serve`` (``/completion``, ``/tokenize``, ``/detokenize``,
``/props``, ``/metrics``), on the tiny models over loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading

import httpx
import pytest

from models.synth import WORDS
from specllama.runtime import Runtime, RuntimeConfig
from specllama.serve.asgi import build_app
from specllama.serve.config import ServeConfig, UpstreamConfig
from specllama.serve.server import Server, listen
from specllama.serve.upstream import DraftRuntime

DOC = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(150))  # about 580 tokens
KEY = "s3cret"


@contextlib.contextmanager
def serving(rt: Runtime, **cfg):
    """``rt`` served on a free loopback port; yields ``(root URL, Api)``."""
    app = build_app(ServeConfig(port=0, **cfg), rt)
    with Server(app, listen("127.0.0.1", 0), access_log=False, log_config=None) as srv:
        yield srv.url[:-3], app.state.api


def local_runtime(tiny_path, tiny_draft_path, threads) -> Runtime:
    return Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=threads, n_batch=64,
                                 n_ubatch=64))


@pytest.fixture(scope="module")
def server(tiny_path, tiny_draft_path, threads):
    with serving(local_runtime(tiny_path, tiny_draft_path, threads), queue_size=1, alias="tiny",
                 max_prompt_tokens=3000, method_opts={"budget": 192}) as (url, api):
        yield url, api


@pytest.fixture()
def url(server) -> str:
    return server[0]


@pytest.fixture()
def api(server):
    return server[1]


def post(url: str, path: str, body=None, content: bytes | None = None, **kw) -> httpx.Response:
    return httpx.post(url + path, json=body, content=content, timeout=60, **kw)


def sse_events(lines) -> list[dict]:
    """The JSON objects of ``data: ...`` lines; anything else but blank lines fails the test."""
    out = []
    for line in lines:
        if not line:
            continue
        assert line.startswith("data: "), line
        out.append(json.loads(line[len("data: "):]))
    return out


def metrics(url: str, **kw) -> dict[str, float]:
    """``/metrics`` parsed: ``{"name{labels}": value}``."""
    r = httpx.get(url + "/metrics", **kw)
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


from helpers import wait_for  # noqa: E402


@contextlib.contextmanager
def blocked_worker(api, n_jobs: int):
    """Occupy the worker and ``n_jobs - 1`` queue slots with jobs that wait for a gate."""
    gate = threading.Event()

    async def submit():
        api.worker.submit(lambda rt, emit: gate.wait(30))

    for i in range(n_jobs):
        asyncio.run(submit())
        assert wait_for(lambda i=i: api.worker.busy and api.worker.queued == i)
    try:
        yield
    finally:
        gate.set()
        assert wait_for(lambda: not api.worker.busy and api.worker.queued == 0)


@pytest.fixture()
def server_log(caplog):
    """The server's log records (its loggers may not propagate to the root logger)."""
    caplog.set_level(logging.INFO)
    loggers = [logging.getLogger(n) for n in ("specllama.serve", "uvicorn", "uvicorn.error")]
    for lg in loggers:
        lg.addHandler(caplog.handler)
    yield caplog
    for lg in loggers:
        lg.removeHandler(caplog.handler)


# -- /completion ------------------------------------------------------------------------------------
COMPLETION = {"prompt": DOC, "n_predict": 6, "temperature": 0, "specllama": {"budget": 100}}


def test_completion(url, server_log):
    r = post(url, "/completion", COMPLETION)
    assert r.status_code == 200, r.text
    assert any("kept" in rec.getMessage() for rec in server_log.records)  # the log is captured
    b = r.json()
    assert isinstance(b["content"], str) and b["stop"] is True and b["model"] == "tiny"
    assert 1 <= b["tokens_predicted"] <= 6 and b["stop_type"] in ("eos", "limit")
    assert (b["stop_type"] == "limit") == (b["tokens_predicted"] == 6)
    info, t = b["specllama"], b["timings"]
    assert info["method"] == "specpc" and b["tokens_evaluated"] == info["n_prompt"] > 400
    assert info["n_kept"] <= 100 and t["prompt_n"] == info["n_kept"] == t["prompt_kept_n"]
    assert t["predicted_n"] == b["tokens_predicted"] and t["predicted_ms"] >= 0 and t["draft_ms"] > 0
    gs = b["generation_settings"]
    assert gs["n_predict"] == 6 and gs["temperature"] == 0 and gs["n_ctx"] > 0
    assert b["tokens"] == [] and b["prompt"] == DOC
    assert r.headers["x-specllama-kept-tokens"] == str(info["n_kept"])
    # the same pipeline as /v1/completions: the same text for the same settings
    v1 = post(url, "/v1/completions", {"prompt": DOC, "max_tokens": 6, "temperature": 0,
                                       "specllama": {"budget": 100}}).json()
    assert v1["choices"][0]["text"] == b["content"]
    # llama-server's alias, max_tokens for n_predict, and return_tokens
    r = post(url, "/completions", {"prompt": DOC, "max_tokens": 6, "temperature": 0, "return_tokens": True,
                                   "specllama": {"budget": 100}})
    assert r.status_code == 200 and r.json()["content"] == b["content"]
    assert len(r.json()["tokens"]) == b["tokens_predicted"]


def test_completion_sampling_fields(url):
    body = {"prompt": "the secret code is", "n_predict": 4, "temperature": 0.9, "top_k": 5, "top_p": 0.5,
            "seed": 7, "specllama": {"method": "dense"}}
    a, b = post(url, "/completion", body).json(), post(url, "/completion", body).json()
    assert a["content"] == b["content"] and a["specllama"]["method"] == "dense"  # seeded: reproducible
    gs = a["generation_settings"]
    assert (gs["temperature"], gs["top_k"], gs["top_p"], gs["seed"]) == (0.9, 5, 0.5, 7)
    r = post(url, "/completion", {"prompt": "x", "n_predict": 2, "temperature": -1, "top_k": -1, "seed": -1,
                                  "stop": [], "n_probs": 0, "cache_prompt": True, "unknown": {"a": 1}})
    assert r.status_code == 200, r.text  # llama-server's neutral values and unknown fields are accepted
    assert r.json()["generation_settings"]["temperature"] == 0  # <= 0: greedy


def test_completion_stream(url):
    full = post(url, "/completion", COMPLETION).json()
    with httpx.stream("POST", url + "/completion", json={**COMPLETION, "stream": True}, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.iter_lines())
    *pieces, last = events
    assert pieces and all(p["stop"] is False and isinstance(p["content"], str) for p in pieces)
    assert "".join(p["content"] for p in pieces) == full["content"]
    assert last["stop"] is True and last["content"] == ""
    assert last["tokens_predicted"] == full["tokens_predicted"]
    assert last["timings"]["predicted_n"] == full["timings"]["predicted_n"]
    assert last["specllama"]["n_kept"] == full["specllama"]["n_kept"]


def test_completion_stream_disconnect_cancels(url, api, monkeypatch):
    monkeypatch.setattr(api.rt.target, "is_eog", lambda tok: False)  # only -n or a cancel stops it
    h0 = api.worker.health()
    body = {"prompt": "the", "n_predict": 3000, "stream": True, "specllama": {"method": "dense"}}
    with httpx.stream("POST", url + "/completion", json=body, timeout=30) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]  # a few pieces, then the client hangs up
    assert any('"content"' in g for g in got)
    assert wait_for(lambda: api.worker.health()["cancelled"] == h0["cancelled"] + 1)
    assert api.worker.health()["served"] == h0["served"]


# -- /tokenize, /detokenize ---------------------------------------------------------------------------
def test_tokenize_detokenize(url, api):
    text = "the secret code is green"
    toks = post(url, "/tokenize", {"content": text}).json()["tokens"]
    assert toks == api.rt.target.tokenize(text).tolist() and all(isinstance(t, int) for t in toks)
    assert post(url, "/detokenize", {"tokens": toks}).json() == {"content": text}
    with_bos = post(url, "/tokenize", {"content": text, "add_special": True}).json()["tokens"]
    assert with_bos == [api.rt.target.bos] + toks
    pieces = post(url, "/tokenize", {"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == toks and "".join(p["piece"] for p in pieces) == text
    # special tokens: parsed by default, plain text with parse_special false
    special = post(url, "/tokenize", {"content": "<|im_end|>"}).json()["tokens"]
    assert len(special) == 1
    assert len(post(url, "/tokenize", {"content": "<|im_end|>", "parse_special": False}).json()["tokens"]) > 1
    assert post(url, "/detokenize", {"tokens": special}).json()["content"] == "<|im_end|>"
    assert post(url, "/detokenize", {"tokens": []}).json() == {"content": ""}
    assert post(url, "/tokenize", {"content": ""}).json() == {"tokens": []}


def test_tokenize_pieces_as_bytes(url):
    """A character the vocabulary has no piece for becomes byte tokens: pieces are byte lists."""
    pieces = post(url, "/tokenize", {"content": "\u00e1", "with_pieces": True}).json()["tokens"]
    assert [p["piece"] for p in pieces] == [[0xC3], [0xA1]]
    ids = [p["id"] for p in pieces]
    assert post(url, "/detokenize", {"tokens": ids}).json()["content"] == "\u00e1"


# -- /props ---------------------------------------------------------------------------------------
def test_props(url, api, tiny_path):
    p = httpx.get(url + "/props").json()
    gs = p["default_generation_settings"]
    assert gs["n_ctx"] == 4096 and gs["params"]["n_predict"] == api.cfg.gen.n_predict
    assert {"temperature", "top_k", "top_p", "seed"} <= set(gs["params"])
    assert p["total_slots"] == 1 and p["model_path"] == tiny_path
    assert "<|im_start|>" in p["chat_template"] and p["build_info"].startswith("specllama ")
    s = p["specllama"]
    assert s["draft_model"] == "tiny-draft.gguf" and s["method"] == "specpc" and s["budget"] == 192
    assert s["upstream"] is None and s["model"] == "tiny"


# -- /metrics -------------------------------------------------------------------------------------
def test_metrics_move(url):
    r = httpx.get(url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE llamacpp:prompt_tokens_total counter" in r.text
    m0 = metrics(url)
    ok = 'specllama:requests_total{endpoint="/completion",status="2xx"}'
    bad = 'specllama:requests_total{endpoint="/completion",status="4xx"}'
    b = post(url, "/completion", COMPLETION).json()
    assert post(url, "/completion", {"prompt": 1}).status_code == 400
    assert httpx.get(url + "/no/such/route").status_code == 404
    m1 = metrics(url)
    t, info = b["timings"], b["specllama"]
    assert m1[ok] == m0.get(ok, 0) + 1 and m1[bad] == m0.get(bad, 0) + 1
    other = 'specllama:requests_total{endpoint="other",status="4xx"}'
    assert m1[other] == m0.get(other, 0) + 1
    assert m1["llamacpp:tokens_predicted_total"] == m0["llamacpp:tokens_predicted_total"] + b["tokens_predicted"]
    assert m1["llamacpp:prompt_tokens_total"] == m0["llamacpp:prompt_tokens_total"] + t["prompt_n"]
    assert m1["llamacpp:prompt_seconds_total"] > m0["llamacpp:prompt_seconds_total"]
    assert m1["specllama:prompt_tokens_total"] == m0["specllama:prompt_tokens_total"] + info["n_prompt"]
    assert m1["specllama:prompt_tokens_kept_total"] == m0["specllama:prompt_tokens_kept_total"] + info["n_kept"]
    assert m1["specllama:kept_tokens_ratio"] == pytest.approx(info["n_kept"] / info["n_prompt"])
    assert m1['specllama:jobs_total{outcome="served"}'] == m0['specllama:jobs_total{outcome="served"}'] + 1
    assert m1["llamacpp:requests_deferred"] == 0
    assert wait_for(lambda: metrics(url)["llamacpp:requests_processing"] == 0)  # the worker is idle again


def test_metrics_queue_depth(url, api):
    with blocked_worker(api, n_jobs=2):  # one running, one waiting
        m = metrics(url)
        assert m["llamacpp:requests_processing"] == 1 and m["llamacpp:requests_deferred"] == 1
        r = post(url, "/completion", {"prompt": "x", "n_predict": 2})
        assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full"  # the queue holds 1
        m = metrics(url)
        assert m['specllama:requests_total{endpoint="/completion",status="5xx"}'] >= 1
        assert m['specllama:jobs_total{outcome="rejected"}'] >= 1


# -- bad input --------------------------------------------------------------------------------------
BAD = [
    ("/completion", {}, "prompt"),
    ("/completion", {"prompt": 5}, "prompt"),
    ("/completion", {"prompt": ["a", "b"]}, "prompt"),
    ("/completion", {"prompt": [1, 2, 3]}, "prompt"),
    ("/completion", b'{"prompt": "\\ud800"}', "prompt"),
    ("/completion", {"prompt": "x", "n_predict": "5"}, "n_predict"),
    ("/completion", {"prompt": "x", "n_predict": 0}, "n_predict"),
    ("/completion", {"prompt": "x", "max_tokens": -3}, "max_tokens"),
    ("/completion", {"prompt": "x", "temperature": "hot"}, "temperature"),
    ("/completion", {"prompt": "x", "top_k": 1.5}, "top_k"),
    ("/completion", {"prompt": "x", "top_p": 2}, "top_p"),
    ("/completion", {"prompt": "x", "seed": -2}, "seed"),
    ("/completion", {"prompt": "x", "stream": "yes"}, "stream"),
    ("/completion", {"prompt": "x", "return_tokens": 1}, "return_tokens"),
    ("/completion", {"prompt": "x", "stop": ["\n"]}, "stop"),
    ("/completion", {"prompt": "x", "grammar": "root ::= x"}, "grammar"),
    ("/completion", {"prompt": "x", "n_probs": 5}, "n_probs"),
    ("/completion", {"prompt": "x", "specllama": {"method": "nope"}}, "specllama.method"),
    ("/completion", {"prompt": "x", "specllama": []}, "specllama"),
    ("/completion", b'{"prompt": "x", "specllama": {"\\ud800": 1}}', "specllama.\\ud800"),
    ("/completion", b'{"prompt": "x", "model": "\\udfff"}', "model"),
    ("/completion", {"prompt": DOC, "specllama": {"budget": 8}}, None),  # refused by the pipeline
    ("/completion", b"{bad", None),
    ("/completion", b"[1]", None),
    ("/completion", b"\xff\xfe", None),
    ("/tokenize", {}, "content"),
    ("/tokenize", {"content": 3}, "content"),
    ("/tokenize", b'{"content": "a\\udc00"}', "content"),
    ("/tokenize", {"content": "a", "with_pieces": "yes"}, "with_pieces"),
    ("/tokenize", {"content": "a", "add_special": 1}, "add_special"),
    ("/detokenize", {}, "tokens"),
    ("/detokenize", {"tokens": "1 2"}, "tokens"),
    ("/detokenize", {"tokens": [1, "2"]}, "tokens[1]"),
    ("/detokenize", {"tokens": [True]}, "tokens[0]"),
    ("/detokenize", {"tokens": [1.0]}, "tokens[0]"),
    ("/detokenize", {"tokens": [-1]}, "tokens[0]"),
    ("/detokenize", {"tokens": [5, 10 ** 12]}, "tokens[1]"),
]


@pytest.mark.parametrize("path,body,param", BAD)
def test_bad_input_is_400(url, path, body, param, server_log):
    raw = isinstance(body, bytes)
    r = post(url, path, None if raw else body, content=body if raw else None)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]
    assert not [rec for rec in server_log.records if rec.levelno >= logging.ERROR or rec.exc_info]


def test_detokenize_vocab_bound(url, api):
    n = api.rt.target.info.n_vocab
    assert post(url, "/detokenize", {"tokens": [n - 1]}).status_code == 200
    r = post(url, "/detokenize", {"tokens": [n]})
    assert r.status_code == 400 and str(n - 1) in r.json()["error"]["message"]


def test_wrong_methods(url):
    assert httpx.get(url + "/completion").status_code == 405
    assert httpx.post(url + "/props", json={}).status_code == 405
    assert httpx.post(url + "/metrics").status_code == 405


# -- API key and upstream mode ----------------------------------------------------------------------
ROUTES = [("POST", "/completion", {"prompt": "the", "n_predict": 2}), ("POST", "/tokenize", {"content": "a"}),
          ("POST", "/detokenize", {"tokens": [5]}), ("GET", "/props", None), ("GET", "/metrics", None)]


def test_api_key(tiny_path, tiny_draft_path, threads):
    with serving(local_runtime(tiny_path, tiny_draft_path, threads), api_key=KEY) as (url, _):
        for method, path, body in ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
                r = httpx.request(method, url + path, json=body, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.json()["error"]["code"] == "invalid_api_key" and r.headers["www-authenticate"] == "Bearer"
            r = httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
            assert r.status_code == 200, (path, r.text)
        r = httpx.post(url + "/completion", content=b"{bad", headers={"Authorization": "Bearer x"})
        assert r.status_code == 401  # the key is checked before the body is read
        assert httpx.get(url + "/health").status_code == 200  # health needs no key
        m = metrics(url, headers={"Authorization": f"Bearer {KEY}"})
        assert m['specllama:requests_total{endpoint="/props",status="4xx"}'] == 3


def test_upstream_mode(tiny_draft_path, threads):
    rt = DraftRuntime(RuntimeConfig(target=tiny_draft_path, draft=tiny_draft_path, n_threads=threads))
    upstream = UpstreamConfig("http://127.0.0.1:9/v1", timeout=1.0)
    with serving(rt, upstream=upstream) as (url, _):
        for method, path, body in ROUTES[:3]:
            r = httpx.request(method, url + path, json=body)
            assert r.status_code == 501 and r.json()["error"]["code"] == "not_implemented"
            assert "/v1/completions" in r.json()["error"]["message"]
        p = httpx.get(url + "/props").json()
        assert p["specllama"]["upstream"] == "http://127.0.0.1:9/v1" and p["model_path"] == ""
        assert re.match(r"\d+$", str(p["default_generation_settings"]["n_ctx"]))
        assert httpx.get(url + "/metrics").status_code == 200


# -- without models: parsing and the exposition text ------------------------------------------------
def test_parse_llama_completion_fields():
    from specllama.engine.sampling import DEFAULT_SEED
    from specllama.serve.llama_schema import parse_llama_completion

    req = parse_llama_completion({"prompt": "p", "n_predict": 5, "max_tokens": 9, "temperature": -0.5,
                                  "top_k": -1, "top_p": 0.9, "seed": -1, "stream": True})
    assert (req.max_tokens, req.temperature, req.top_k, req.top_p, req.seed) == (5, 0.0, 0, 0.9, DEFAULT_SEED)
    assert req.raw and req.stream and req.messages[0].parts[0].compressible
    assert parse_llama_completion({"prompt": "p", "max_tokens": 9}).max_tokens == 9
    assert parse_llama_completion({"prompt": "p", "n_predict": -1}).max_tokens == -1


def test_metrics_text():
    from specllama.serve.metrics import Metrics

    m = Metrics()
    worker = {"busy": True, "queued": 3, "served": 2, "cancelled": 0, "invalid": 1, "failed": 0, "rejected": 0}
    text = m.render(worker)
    assert "specllama:kept_tokens_ratio NaN" in text and "llamacpp:requests_deferred 3" in text
    assert "llamacpp:requests_processing 1" in text and 'specllama:jobs_total{outcome="invalid"} 1' in text
    m.observe_prompt(400, 100)
    m.count_request("/completion", 200)
    m.count_request("/completion", 499)
    text = m.render(worker)
    assert "specllama:kept_tokens_ratio 0.25" in text and "specllama:prompt_tokens_kept_total 100" in text
    assert 'specllama:requests_total{endpoint="/completion",status="4xx"} 1' in text
    for line in text.splitlines():  # every sample line: a name, optional labels, a number
        assert line.startswith("# ") or re.fullmatch(r'[a-z_:]+(\{[^}]*\})? (NaN|-?[0-9.e+-]+)', line), line
