"""Upstream mode: a draft-only ``specllama serve`` compresses and forwards to a second one (the
"target server") on loopback; and ``generate_upstream``, the ``run --upstream`` path."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

openai = pytest.importorskip("openai")

from models.synth import WORDS  # noqa: E402
from specllama.engine.sampling import SamplingConfig  # noqa: E402
from specllama.errors import ConfigError  # noqa: E402
from specllama.methods import make_method  # noqa: E402
from specllama.methods.base import Budget, GenConfig  # noqa: E402
from specllama.prompt import build_prompt, document_request  # noqa: E402
from specllama.runtime import Runtime, RuntimeConfig  # noqa: E402
from specllama.serve.asgi import build_app  # noqa: E402
from specllama.serve.config import ServeConfig, UpstreamConfig  # noqa: E402
from specllama.serve.server import Server, listen  # noqa: E402
from specllama.serve.upstream import DraftRuntime, UpstreamError, generate_upstream  # noqa: E402

DOC = " ".join(WORDS[(i * 5) % len(WORDS)] for i in range(150))
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": DOC},
                                         {"type": "text", "text": "\n\nWhat is the code?", "protected": True}]}]


@contextlib.contextmanager
def serving(rt, **cfg):
    app = build_app(ServeConfig(port=0, **cfg), rt)
    with Server(app, listen("127.0.0.1", 0), access_log=False, log_config=None) as srv:
        srv.api = app.state.api
        yield srv


def health(srv) -> dict:
    return httpx.get(srv.url[:-3] + "/health").json()


@pytest.fixture(scope="module")
def target_server(tiny_path, tiny_draft_path, threads):
    """The upstream: a local-mode server that runs the target densely unless asked otherwise."""
    rt = Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=threads, n_batch=64, n_ubatch=64))
    with serving(rt, alias="tiny-target", method_opts={"method": "dense"}, api_key="up-key") as srv:
        yield srv


@pytest.fixture(scope="module")
def front(target_server, tiny_draft_path, threads):
    """The front: draft only, compresses with SpecPC (budget 128), forwards to ``target_server``."""
    rt = DraftRuntime(RuntimeConfig(target="", draft=tiny_draft_path, n_threads=threads, n_batch=64, n_ubatch=64))
    up = UpstreamConfig(url=target_server.url, api_key="up-key")
    with serving(rt, upstream=up, method_opts={"budget": 128}, api_key="front-key") as srv:
        yield srv


@pytest.fixture()
def client(front):
    return openai.OpenAI(base_url=front.url, api_key="front-key", max_retries=0, timeout=60)


def test_chat_is_compressed_then_forwarded(client, target_server):
    r = client.chat.completions.create(model="tiny-target", messages=MESSAGES, max_tokens=5, temperature=0)
    assert r.choices[0].message.content is not None and r.usage.completion_tokens <= 5
    info = r.model_extra["specllama"]
    assert info["method"] == "specpc" and info["draft_ms"] > 0
    assert info["n_prompt"] > 400 and info["n_kept"] <= 128
    # the target server saw the compressed request: about n_kept tokens, retokenized from text
    seen = info["upstream"]
    assert seen["method"] == "dense"
    assert abs(seen["n_prompt"] - info["n_kept"]) <= 0.2 * info["n_kept"]
    assert r.model_extra["timings"]["prompt_total_n"] == seen["n_prompt"]  # the target's own timings


def test_dense_passes_the_request_through(client):
    r = client.chat.completions.create(model="tiny-target", messages=MESSAGES, max_tokens=2,
                                       extra_body={"specllama": {"method": "dense"}})
    info = r.model_extra["specllama"]
    assert info["method"] == "dense" and info["upstream"]["n_prompt"] == info["n_prompt"]


def test_streaming_is_passed_through(client, front):
    kw = dict(model="tiny-target", messages=MESSAGES, max_tokens=8, temperature=0)
    full = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == full.choices[0].message.content
    assert chunks[-1].model_extra["specllama"]["method"] == "dense"  # the target server's own last chunk
    with httpx.stream("POST", front.url + "/chat/completions", headers={"Authorization": "Bearer front-key"},
                      json={**kw, "messages": MESSAGES, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert int(r.headers["x-specllama-kept-tokens"]) <= 128
        assert int(r.headers["x-specllama-prompt-tokens"]) > 400
        assert r.read().decode().rstrip().endswith("data: [DONE]")


def test_completions_and_models(client):
    r = client.completions.create(model="tiny-target", prompt=DOC, max_tokens=3)
    assert r.model_extra["specllama"]["n_kept"] <= 128
    assert [m.id for m in client.models.list().data] == ["tiny-target"]


def test_upstream_errors_are_relayed(client):
    with pytest.raises(openai.BadRequestError, match="n > 1"):
        client.chat.completions.create(model="tiny-target", messages=MESSAGES, max_tokens=2, n=2)
    with pytest.raises(openai.AuthenticationError):  # the front's own key is checked first
        openai.OpenAI(base_url=client.base_url, api_key="up-key", max_retries=0).models.list()


def test_kv_methods_are_refused(client):
    kv = next((n for n in __import__("specllama.methods", fromlist=["METHODS"]).METHODS
               if make_method(n).kv_stage is not None), None)
    if kv is None:
        pytest.skip("no KV-cache method registered")
    with pytest.raises(openai.BadRequestError, match="KV cache"):
        client.chat.completions.create(model="m", messages=MESSAGES, extra_body={"specllama": {"method": kv}})


def test_stream_disconnect_reaches_the_target(front, target_server, monkeypatch):
    monkeypatch.setattr(target_server.api.rt.target, "is_eog", lambda tok: False)
    h0 = health(target_server)
    body = {"messages": MESSAGES, "max_tokens": 3000, "temperature": 0, "stream": True}
    with httpx.stream("POST", front.url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": "Bearer front-key"}) as r:
        lines = r.iter_lines()
        assert any('"content"' in next(lines) for _ in range(6))
    end = time.monotonic() + 10
    while health(target_server)["cancelled"] == h0["cancelled"] and time.monotonic() < end:
        time.sleep(0.02)
    h1 = health(target_server)
    assert h1["cancelled"] == h0["cancelled"] + 1 and h1["served"] == h0["served"]


def test_unreachable_upstream_is_502(tiny_draft_path, threads):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    rt = DraftRuntime(RuntimeConfig(target="", draft=tiny_draft_path, n_threads=threads))
    with serving(rt, upstream=UpstreamConfig(url=f"http://127.0.0.1:{port}/v1")) as srv:
        r = httpx.post(srv.url + "/chat/completions", json={"messages": MESSAGES, "max_tokens": 2})
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"
        assert httpx.get(srv.url + "/models").status_code == 502


def test_generate_upstream(target_server, tiny_draft_path, threads):
    """The ``run --upstream`` path: compress on the draft, stream from the upstream."""
    up = UpstreamConfig(url=target_server.url, api_key="up-key")
    with DraftRuntime(RuntimeConfig(target="", draft=tiny_draft_path, n_threads=threads)) as rt:
        prompt = build_prompt(rt.target, document_request(DOC, "What is the code?"))
        pieces: list[str] = []
        res = generate_upstream(rt, prompt, make_method("specpc", budget=Budget(tokens=128)),
                                GenConfig(n_predict=6, sampling=SamplingConfig(temp=0.0)), up, on_text=pieces.append)
        assert "".join(pieces) == res.text and res.text
        assert res.method == "specpc" and len(res.kept) <= 128 < prompt.n
        t = res.timings
        assert t.n_prompt == prompt.n and t.n_kept == len(res.kept) and t.draft_ms > 0
        assert t.prefill_tokens > 0 and t.ttft_ms >= t.draft_ms and res.stop in ("eog", "length")
        assert any("tiny-target" in n for n in res.notes)  # the model was found through /models
        raw = generate_upstream(rt, build_prompt(rt.target, document_request(DOC), raw=True),
                                make_method("specpc", budget=Budget(tokens=128)), GenConfig(n_predict=3), up,
                                raw=True)
        assert raw.text and raw.timings.n_kept <= 128
        with pytest.raises(UpstreamError, match="HTTP 401"):
            generate_upstream(rt, prompt, make_method("dense"), GenConfig(n_predict=2),
                              UpstreamConfig(url=target_server.url, api_key="wrong", model="m"))
        with pytest.raises(ConfigError, match="KV cache"):
            from specllama.methods.base import Method
            generate_upstream(rt, prompt, Method(kv_stage=object()), GenConfig(n_predict=2), up)
