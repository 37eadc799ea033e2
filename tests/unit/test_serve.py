"""``specllama serve`` on the tiny models, driven by the official ``openai`` client over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import httpx
import pytest

openai = pytest.importorskip("openai")

from models.synth import WORDS  # noqa: E402
from specllama.methods import method_names  # noqa: E402
from specllama.runtime import Runtime, RuntimeConfig  # noqa: E402
from specllama.serve.asgi import build_app  # noqa: E402
from specllama.serve.config import ServeConfig  # noqa: E402
from specllama.serve.server import Server, listen  # noqa: E402

DOC = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(150))  # about 580 tokens
QUESTION = "\n\nWhat is the secret code?"


def messages(doc: str = DOC) -> list[dict]:
    return [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": doc},
                                         {"type": "text", "text": QUESTION, "protected": True}]}]


@contextlib.contextmanager
def serving(tiny_path, tiny_draft_path, threads, **cfg):
    rt = Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=threads, n_batch=64,
                               n_ubatch=64))
    app = build_app(ServeConfig(port=0, **cfg), rt)
    with Server(app, listen("127.0.0.1", 0), access_log=False, log_config=None) as srv:
        srv.api = app.state.api
        yield srv


@pytest.fixture(scope="module")
def server(tiny_path, tiny_draft_path, threads):
    with serving(tiny_path, tiny_draft_path, threads, queue_size=1, max_body_bytes=64 * 1024,
                 max_prompt_tokens=3000, alias="tiny", method_opts={"budget": 192}) as srv:
        yield srv


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


def health(server) -> dict:
    return httpx.get(server.url[:-3] + "/health").json()


from helpers import wait_for  # noqa: E402


@contextlib.contextmanager
def blocked_worker(server, n_jobs: int = 1):
    """Occupy the worker (and ``n_jobs - 1`` queue slots) with jobs that wait for a gate."""
    gate = threading.Event()

    async def submit():
        server.api.worker.submit(lambda rt, emit: gate.wait(30))

    for i in range(n_jobs):
        asyncio.run(submit())
        assert wait_for(lambda i=i: server.api.worker.busy and server.api.worker.queued == i)
    try:
        yield
    finally:
        gate.set()
        assert wait_for(lambda: not server.api.worker.busy and server.api.worker.queued == 0)


def test_chat_non_streaming(client):
    r = client.chat.completions.create(model="tiny", messages=messages(), max_tokens=6, temperature=0,
                                       extra_body={"specllama": {"method": "specpc", "budget": 128}})
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    extra = r.model_extra
    info, t = extra["specllama"], extra["timings"]
    assert info["method"] == "specpc" and info["n_prompt"] > 400
    assert 64 < info["n_kept"] <= 128
    assert t["prompt_total_n"] == info["n_prompt"] and t["prompt_kept_n"] == info["n_kept"]
    assert t["prompt_n"] == info["n_kept"]  # the target prefilled only the kept tokens
    assert t["draft_ms"] > 0 and t["ttft_ms"] > 0
    assert r.usage.prompt_tokens == info["n_prompt"]
    assert 1 <= r.usage.completion_tokens <= 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_server_defaults_and_overrides(client):
    r = client.chat.completions.create(model="tiny", messages=messages(), max_tokens=2)
    info = r.model_extra["specllama"]
    assert info["method"] == "specpc" and 128 < info["n_kept"] <= 192  # the server's default budget
    r = client.chat.completions.create(model="tiny", messages=messages(), max_tokens=2,
                                       extra_body={"specllama": {"keep": 0.5}})
    info = r.model_extra["specllama"]
    assert 192 < info["n_kept"] <= -(-info["n_prompt"] // 2)
    r = client.chat.completions.create(model="tiny", messages=messages(), max_tokens=2,
                                       extra_body={"specllama": {"method": "dense"}})
    info = r.model_extra["specllama"]
    assert info["method"] == "dense" and info["n_kept"] == info["n_prompt"]
    r = client.chat.completions.create(model="tiny", messages=messages("short doc"), max_tokens=2)
    info = r.model_extra["specllama"]
    assert info["method"] == "dense" and any("running dense" in n for n in info["notes"])


@pytest.mark.parametrize("name", method_names())
def test_every_method_serves(client, name):
    r = client.chat.completions.create(model="tiny", messages=messages(), max_tokens=4, temperature=0,
                                       extra_body={"specllama": {"method": name, "budget": 200}})
    info, t = r.model_extra["specllama"], r.model_extra["timings"]
    assert info["method"] == name and t["prompt_kept_n"] == info["n_kept"]
    assert info["n_kept"] == info["n_prompt"] if name == "dense" else info["n_kept"] <= 200
    assert 1 <= r.usage.completion_tokens <= 4


def test_streaming_matches_non_streaming(client):
    kw = dict(model="tiny", messages=messages(), max_tokens=12, temperature=0,
              extra_body={"specllama": {"budget": 128}})
    full = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == full.choices[0].finish_reason
    assert finals[0].model_extra["specllama"]["n_kept"] == full.model_extra["specllama"]["n_kept"]
    assert finals[0].model_extra["timings"]["predicted_n"] == full.model_extra["timings"]["predicted_n"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_completions(client):
    full = client.completions.create(model="tiny", prompt=DOC, max_tokens=5, temperature=0,
                                     extra_body={"specllama": {"budget": 100}})
    assert full.object == "text_completion" and full.model_extra["specllama"]["n_kept"] <= 100
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt=DOC, max_tokens=5, temperature=0, stream=True,
        extra_body={"specllama": {"budget": 100}}))
    assert streamed == full.choices[0].text


def test_models(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert models[0].model_extra["meta"]["draft"] == "tiny-draft.gguf"


def test_unknown_fields_ignored(client):
    r = client.chat.completions.create(model="whatever", messages=messages("short doc"), max_tokens=2, n=1,
                                       stop=[], user="u", extra_body={"no_such_field": {"x": 1},
                                                                      "another": 3})
    assert r.choices[0].message.content is not None


@pytest.mark.parametrize("kw,param,match", [
    ({"n": 2}, "n", "n > 1"),
    ({"stop": ["\n"]}, "stop", "stop"),
    ({"temperature": 5}, "temperature", "temperature"),
    ({"presence_penalty": 0.5}, "presence_penalty", "presence_penalty"),
    ({"logprobs": True}, "logprobs", "logprobs"),
    ({"extra_body": {"specllama": {"method": "nope"}}}, "specllama.method", "one of"),
    ({"extra_body": {"specllama": {"budgte": 5}}}, "specllama.budgte", "unknown"),
    ({"extra_body": {"specllama": {"budget": 8}}}, None, "smaller than"),  # found by the pipeline
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]", "text"),
])
def test_refusals(client, kw, param, match):
    kw = {"model": "tiny", "messages": messages(), "max_tokens": 2, **kw}
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(**kw)
    err = ei.value.body
    assert ei.value.status_code == 400 and err["type"] == "invalid_request_error"
    assert err["param"] == param and match in err["message"]


def test_malformed_and_oversized_bodies(server):
    url = server.url + "/chat/completions"
    r = httpx.post(url, content=b'{"messages": [')
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(url, content=b"x" * (64 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(url, json={"messages": [{"role": "user", "content": "the " * 3500}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    r = httpx.get(server.url + "/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(url)
    assert r.status_code == 405 and "error" in r.json()


def test_queue_full_gets_503(server, client):
    before = health(server)["rejected"]
    with blocked_worker(server, n_jobs=2):  # one running, one waiting: the queue (size 1) is full
        with pytest.raises(openai.InternalServerError) as ei:
            client.chat.completions.create(model="tiny", messages=messages("short"), max_tokens=2)
        assert ei.value.status_code == 503 and ei.value.body["code"] == "queue_full"
        assert ei.value.response.headers["retry-after"] == "1"
    assert health(server)["rejected"] == before + 1
    client.chat.completions.create(model="tiny", messages=messages("short"), max_tokens=2)  # serves again


def test_disconnect_while_queued_skips_the_request(server):
    h0 = health(server)
    with blocked_worker(server):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/chat/completions", timeout=httpx.Timeout(30, read=0.5),
                       json={"messages": messages(), "max_tokens": 4})
        assert wait_for(lambda: server.api.worker.queued == 1)
    h1 = health(server)
    assert h1["cancelled"] == h0["cancelled"] + 1 and h1["served"] == h0["served"] + 1  # +1: the blocker


@pytest.fixture()
def endless(server, monkeypatch):
    """The target never ends a generation by itself: only -n or a cancellation stops it."""
    monkeypatch.setattr(server.api.rt.target, "is_eog", lambda tok: False)


@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_cancels_generation(server, endless, stream):
    h0 = health(server)
    body = {"messages": messages("short doc"), "max_tokens": 3500, "temperature": 0, "stream": stream}
    if stream:
        with httpx.stream("POST", server.url + "/chat/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            got = [next(lines) for _ in range(6)]  # a few tokens arrived, then the client hangs up
        assert any('"content"' in g for g in got)
    else:
        assert wait_for(lambda: not server.api.worker.busy)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/chat/completions", json=body, timeout=httpx.Timeout(30, read=0.3))
    assert wait_for(lambda: health(server)["cancelled"] == h0["cancelled"] + 1)
    h1 = health(server)
    assert h1["served"] == h0["served"] and not h1["busy"]  # it never ran to its 3500 tokens


def test_health_counts(server):
    h = health(server)
    assert h["status"] == "ok" and h["model"] == "tiny" and h["upstream"] is None
    assert {"busy", "queued", "served", "cancelled", "invalid", "failed", "rejected"} <= set(h)


def test_api_key(tiny_path, tiny_draft_path, threads):
    with serving(tiny_path, tiny_draft_path, threads, api_key="s3cret") as srv:
        for key in ("wrong", "s3cre", "s3cret "[:-1] + "x"):
            bad = openai.OpenAI(base_url=srv.url, api_key=key, max_retries=0)
            with pytest.raises(openai.AuthenticationError) as ei:
                bad.models.list()
            assert ei.value.body["code"] == "invalid_api_key"
        r = httpx.post(srv.url + "/chat/completions", json={"messages": messages("x")})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(srv.url + "/chat/completions", content=b"{bad", headers={"Authorization": "Basic s3cret"})
        assert r.status_code == 401  # the key is checked before the body is read
        assert httpx.get(srv.url[:-3] + "/health").status_code == 200  # health needs no key
        good = openai.OpenAI(base_url=srv.url, api_key="s3cret", max_retries=0)
        r = good.chat.completions.create(model="m", messages=messages("short"), max_tokens=2)
        assert r.choices[0].message.content is not None


def test_dense_only_server_refuses_draft_methods(tiny_path, threads):
    rt = Runtime(RuntimeConfig(target=tiny_path, n_threads=threads))
    app = build_app(ServeConfig(port=0), rt)
    with Server(app, listen("127.0.0.1", 0), access_log=False, log_config=None) as srv:
        c = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0)
        r = c.chat.completions.create(model="m", messages=messages(), max_tokens=2)
        assert r.model_extra["specllama"]["method"] == "dense"
        with pytest.raises(openai.BadRequestError, match="needs a draft"):
            c.chat.completions.create(model="m", messages=messages(), max_tokens=2,
                                      extra_body={"specllama": {"method": "specpc"}})


def test_openai_client_streams_and_gets_400_and_401(tiny_path, tiny_draft_path, threads):
    """The ``openai`` package as users drive it, against one keyed server: a streamed answer, a
    400 raised before any chunk arrives (also for ``stream=True``), and a 401 for a wrong key."""
    with serving(tiny_path, tiny_draft_path, threads, api_key="k3y", alias="tiny") as srv:
        good = openai.OpenAI(base_url=srv.url, api_key="k3y", max_retries=0, timeout=60)
        stream = good.chat.completions.create(model="tiny", messages=messages(), max_tokens=6, temperature=0,
                                              stream=True, extra_body={"specllama": {"budget": 128}})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason
        full = good.chat.completions.create(model="tiny", messages=messages(), max_tokens=6, temperature=0,
                                            extra_body={"specllama": {"budget": 128}})
        assert text == full.choices[0].message.content
        for stream_flag in (False, True):
            with pytest.raises(openai.BadRequestError) as ei:
                good.chat.completions.create(model="tiny", messages=messages(), max_tokens=2, temperature=5,
                                             stream=stream_flag)
            assert ei.value.status_code == 400 and ei.value.body["param"] == "temperature"
        bad = openai.OpenAI(base_url=srv.url, api_key="wrong", max_retries=0, timeout=60)
        for stream_flag in (False, True):
            with pytest.raises(openai.AuthenticationError) as ei:
                bad.chat.completions.create(model="tiny", messages=messages("x"), max_tokens=2, stream=stream_flag)
            assert ei.value.status_code == 401 and ei.value.body["code"] == "invalid_api_key"
