"""Fuzzing the Python API and the server (issue 15) on the tiny models.

The API gets wrong types and out-of-range values for every argument, text that is not valid
Unicode and malformed GGUF files: each must raise a ``SpecllamaError`` with a one-line message.
The server (loopback, as ``specllama serve`` runs it) gets every field of every endpoint's body
replaced by wrong JSON types and values, bodies that are not JSON or not UTF-8, oversized and
deeply nested bodies, bad API keys, unknown routes and methods: each must be answered with a 4xx
whose JSON error has a one-line message, with nothing logged as an error and the server healthy
after. Cases come from a seeded generator (``fuzz_inputs.SEED``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging

import httpx
import pytest

from fuzz_inputs import Failures, bad_utf8, junk_text, rng, write_bad_ggufs
from specllama.errors import SpecllamaError

pytest.importorskip("starlette")

WORDS = "the green sky and the blue grass by the river near the house".split()
DOC = " ".join(WORDS[i % len(WORDS)] for i in range(300))
KEY = "fuzz-key"


# -- the Python API -------------------------------------------------------------------------------
API_BAD = {
    "budget": [0, -5, "x", 2.5, True, [], float("nan")],
    "keep": [0, -0.1, 1.5, float("nan"), float("inf"), "half", True, []],
    "n_predict": [0, -2, "3", 1.5, None, True],
    "temp": [-1, float("nan"), float("inf"), "hot", None, True],
    "top_k": [-1, 2**40, 2.5, "5", None],
    "top_p": [0, 1.5, float("nan"), "x", None],
    "seed": [-5, 2**32, 1.5, "1", None],
    "method": ["nope", "", 3, None],
    "document": [5, 1.5, ["a"], {"a": 1}, b"bytes", "a\ud800b", "\udcff" * 3, ""],
    "question": ["q\udcff", 5, ["q"]],
    "system": ["\ud800", 3, ["s"]],
}


def api_cases():
    r = rng("api")
    cases = []
    for arg, values in API_BAD.items():
        for v in values:
            fn = r.choice(["generate", "compress"]) if arg not in ("n_predict", "temp", "top_k", "top_p", "seed",
                                                                    "method") else "generate"
            kw = {"n_predict": 2} if fn == "generate" else {}
            if arg != "document":
                kw["document"] = DOC if r.random() < 0.5 else junk_text(r, 30)
            kw[arg] = v
            cases.append((f"{fn}({arg}={v!r})", fn, kw))
    for i in range(12):
        kw = {"document": DOC, "gap": r.choice(["\udcff", 5, b"x", ["."]]), "budget": 100}
        cases.append((f"compress(gap) {i}", "compress", kw))
    return cases


def test_python_api_refuses_bad_arguments_with_one_line(tiny_path, tiny_draft_path, tmp_path):
    import specllama

    failures = Failures()
    cases = api_cases()
    with specllama.Session(tiny_path, tiny_draft_path, threads=2) as s:
        for label, fn, kw in cases:
            failures.check(expect_error, label, lambda: getattr(s, fn)(**kw))
    ggufs = write_bad_ggufs(tiny_path, tmp_path / "ggufs")
    bad_sessions = [(f"Session({k})", {"target": p}) for k, p in ggufs.items()]
    bad_sessions += [(f"Session(draft={k})", {"target": tiny_path, "draft": p}) for k, p in ggufs.items()]
    bad_sessions += [(f"Session({k}={v!r})", {"target": tiny_path, k: v})
                     for k, v in (("threads", 0), ("threads", "2"), ("threads", 2**40), ("n_ctx", -1), ("n_ctx", 2**40),
                                  ("n_ctx", "big"), ("n_gpu_layers", -1), ("n_gpu_layers", 1.5))]
    for label, kw in bad_sessions:
        failures.check(expect_error, label, lambda: specllama.Session(**kw).close())
    failures.assert_none(len(cases) + len(bad_sessions))
    assert len(cases) + len(bad_sessions) >= 90


def expect_error(label: str, fn) -> None:
    try:
        fn()
    except SpecllamaError as exc:
        msg = str(exc)
        assert msg.strip() and "\n" not in msg.strip(), f"{label}: {msg!r}"
        return
    except Exception as exc:  # noqa: BLE001 - that is the failure being looked for
        raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from None
    raise AssertionError(f"{label}: accepted")


# -- the server -----------------------------------------------------------------------------------
class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def server(tiny_path, tiny_draft_path, threads):
    from specllama.runtime import Runtime, RuntimeConfig
    from specllama.serve.asgi import build_app
    from specllama.serve.config import ServeConfig
    from specllama.serve.server import Server, listen

    rt = Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=threads, n_batch=64, n_ubatch=64))
    app = build_app(ServeConfig(port=0, api_key=KEY, max_body_bytes=64 * 1024, max_prompt_tokens=3000, alias="tiny",
                                method_opts={"budget": 192}), rt)
    log = Records()
    logging.getLogger().addHandler(log)
    try:
        with Server(app, listen("127.0.0.1", 0), access_log=False, log_config=None) as srv:
            with httpx.Client(base_url=srv.url[:-3], timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as c:
                yield c, log
    finally:
        logging.getLogger().removeHandler(log)


BASES = {
    "/v1/chat/completions": {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/completions": {"model": "tiny", "prompt": "hi", "max_tokens": 2},
    "/completion": {"prompt": "hi", "n_predict": 2},
    "/tokenize": {"content": "hi"},
    "/detokenize": {"tokens": [1, 2, 3]},
}
# per field, JSON values that field must refuse
FIELD_BAD = {
    "messages": [None, 1, "x", {}, [], [1], [None], [{"role": 5, "content": "x"}], [{"role": "user"}],
                 [{"role": "wizard", "content": "x"}], [{"role": "user", "content": 5}],
                 [{"role": "user", "content": "\ud800"}], [{"role": "user", "content": [{"type": "text"}]}],
                 [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                 [{"role": "user", "content": [{"type": "text", "text": 5}]}],
                 [{"role": "user", "content": [{"type": "text", "text": "x", "protected": "yes"}]}]],
    "max_tokens": [0, -5, "2", 1.5, True, [], 10**30],
    "n_predict": [0, -5, "2", 1.5, True, {}],
    "temperature": [-1, "x", 1e9, True, []],
    "top_p": [0, 1.5, "x", -1, True],
    "top_k": [-5, 1.5, "x", True],
    "seed": [-2, 2**40, 1.5, "x", True],
    "stream": ["yes", 1, [], {}],
    "prompt": [None, 5, [1, 2], ["a", "b"], {}, "\udcff", ""],
    "content": [None, 5, [], {}, "\ud800", True],
    "tokens": [None, "x", [1.5], ["a"], [-1], [10**9], [True], {}, 5],
    "n": [2, 0, "1"],
    "stop": [["\n"], "x"],
    "logprobs": [True],
    "model": [5, [], {}, "\ud800"],
    "specllama": [5, "x", [], {"method": "nope"}, {"budget": 0}, {"budget": "x"}, {"keep": 2}, {"budgte": 1},
                  {"window": -1}, {"method": 3}, {"keep": "half"}, {"budget": 10**30}],
}
LLAMA_VALID = {"temperature": (-1, 1e9), "top_k": (-5,)}
RAW_BODIES = [b"", b"{", b"null", b"[]", b"1", b'"x"', b"{'a': 1}", b'{"messages": [}', b"\xef\xbb\xbf{}",
              '{"messages": []}'.encode("utf-16"), b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 50_000,
              b'{"max_tokens": 1e99999}', b'{"max_tokens": NaN}', b'{"prompt": "hi", "prompt": 5}',
              b"\x00" * 64]


def http_cases():
    r = rng("http")
    cases = []
    for path, base in BASES.items():
        for field, values in FIELD_BAD.items():
            if field in ("messages",) and path != "/v1/chat/completions" or \
               field in ("prompt",) and path not in ("/v1/completions", "/completion") or \
               field == "content" and path != "/tokenize" or field == "tokens" and path != "/detokenize" or \
               field == "n_predict" and path != "/completion" or \
               field not in ("messages", "prompt", "content", "tokens", "n_predict") and \
               path in ("/tokenize", "/detokenize") and field != "model" or \
               field in ("n", "logprobs", "max_tokens") and path == "/completion" or \
               field == "model" and path in ("/tokenize", "/detokenize"):  # n_predict wins; model is ignored
                continue
            if path == "/completion" and field in LLAMA_VALID:  # llama-server: <= 0 means greedy / no limit
                values = [v for v in values if v not in LLAMA_VALID[field]]
            for v in values:
                body = copy.deepcopy(base)
                body[field] = v
                cases.append((f"{path} {field}={json.dumps(v)[:60]}", "POST", path, json.dumps(body).encode(), {}))
        for i, raw in enumerate(RAW_BODIES):
            cases.append((f"{path} raw {i}", "POST", path, raw, {}))
        for i in range(3):
            cases.append((f"{path} bad utf8 {i}", "POST", path, b'{"prompt": "' + bad_utf8(r) + b'"}', {}))
        cases.append((f"{path} oversized", "POST", path, b'{"prompt": "' + b"x" * (64 * 1024) + b'"}', {}))
        cases.append((f"{path} wrong method", "GET", path, b"", {}))
        for auth in (None, "Bearer wrong", f"Basic {KEY}", "Bearer", f"Bearer {KEY}x", "bearer"):
            cases.append((f"{path} auth {auth!r}", "POST", path, json.dumps(base).encode(), {"Authorization": auth}))
    for p in ("/nope", "/v1", "/v1/chat", "/../etc/passwd", "/v1/models/x", "/completion/x", "/%ff"):
        cases.append((f"route {p}", r.choice(["GET", "POST"]), p, b"{}", {}))
    return cases


def test_server_answers_every_bad_request_with_a_4xx(server):
    client, log = server
    cases = http_cases()
    assert len(cases) >= 250
    failures = Failures()
    for label, method, path, body, headers in cases:
        hdrs = dict(headers)
        if "Authorization" in hdrs and hdrs["Authorization"] is None:
            hdrs = {"Authorization": ""}
        resp = client.request(method, path, content=body, headers={"Content-Type": "application/json", **hdrs})
        failures.check(check_http, label, resp)
    failures.check(check_log, log)
    assert client.get("/health").json()["status"] == "ok"
    ok = client.post("/v1/chat/completions", json=BASES["/v1/chat/completions"])
    assert ok.status_code == 200, ok.text  # still serving
    failures.assert_none(len(cases))


def check_http(label: str, resp: httpx.Response) -> None:
    assert 400 <= resp.status_code < 500, f"{label}: HTTP {resp.status_code} {resp.text[:300]}"
    with contextlib.suppress(ValueError):
        err = resp.json()["error"]
        assert err["message"].strip() and "\n" not in err["message"].strip(), f"{label}: {err}"
        assert "Traceback" not in resp.text and "internal error" not in resp.text, f"{label}: {resp.text[:300]}"
        return
    raise AssertionError(f"{label}: HTTP {resp.status_code} without a JSON error: {resp.text[:300]!r}")


def check_log(log: Records) -> None:
    bad = [r for r in log.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, "server log: " + "\n".join(r.getMessage()[:500] for r in bad[:5])
