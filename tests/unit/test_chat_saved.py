"""``/save NAME`` and ``/load NAME``: a chat and its KV cells written to the cache and resumed in a
new session without reading the document again, on the tiny models."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from specllama.chat import saved
from specllama.chat.repl import Repl
from specllama.chat.session import ChatSession
from specllama.errors import ConfigError
from specllama.runtime import Runtime, RuntimeConfig

WORDS = ("the green sky and the blue grass by the river near the house on the mountain "
         "where we go back again at night").split()
DOC = " ".join(WORDS[i % len(WORDS)] for i in range(700)) + " the secret code is magic. "
OPTS = {"budget": 300, "window": 16, "kernel": 8, "n_predict": 6}


from helpers import Script  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def runtime(target, draft=None):
    return Runtime(RuntimeConfig(target=target, draft=draft, n_threads=2, n_batch=64, n_ubatch=64))


def repl(session, *items):
    out, err = io.StringIO(), io.StringIO()
    r = Repl(session, Script(*items), out, err, interruptible=lambda fn, _stop: fn())
    return r.run(), out.getvalue(), err.getvalue()


def errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("specllama: error: ")]


@pytest.mark.parametrize("method", ["specpc", "snapkv", "dense"])
def test_load_in_a_new_session_answers_as_the_first_would_without_reading_the_document(
        tiny_path, tiny_draft_path, tmp_path, cache, method):
    doc = tmp_path / "doc.txt"
    doc.write_text(DOC)
    opts = dict(OPTS, method=method)
    with runtime(tiny_path, tiny_draft_path) as rt:
        a = ChatSession(rt, opts, system="be brief")
        rc, out, err = repl(a, f"/read {doc}", "what is the secret code?", "/set parameter num_predict 9",
                            "/save long-doc", "/bye")
        assert rc == 0 and not errors(err) and "saved chat long-doc (1 turns" in err
        first = a.last.timings
        want = a.ask("and where is it?")  # what the original session answers next
        a.close()
    assert sorted(os.listdir(cache / "chats")) == ["long-doc"]  # no temporary left behind
    assert sorted(os.listdir(cache / "chats" / "long-doc")) == ["cells.npz", "draft.kv", "manifest.json",
                                                                "target.kv"]
    with runtime(tiny_path, tiny_draft_path) as rt:  # a new session: new models, new contexts
        b = ChatSession(rt, {"n_predict": 2})
        rc, out, err = repl(b, "/load long-doc", "/bye")
        assert rc == 0 and not errors(err), err
        assert "loaded chat long-doc: 1 turns" in err
        assert b.gen.n_predict == 9 and b.method.name == method and b.conv.system == "be brief"
        got = b.ask("and where is it?")
        b.close()
    assert got.text == want.text and got.n_generated == want.n_generated
    # nothing of the document was read again: the target prefilled only the new question's tokens
    assert got.reused == want.reused >= first.n_kept
    assert got.timings.prefill_tokens == want.timings.prefill_tokens < 60
    assert got.timings.draft_tokens == 0 and got.compressed is None


def test_save_replaces_an_earlier_save_and_load_replaces_the_conversation(tiny_runtime, cache):
    s = ChatSession(tiny_runtime, OPTS)
    try:
        s.ask("first question")
        saved.save(s, "x")
        s.ask("second question")
        saved.save(s, "x")
        held = s.target.tokens.copy()
        assert sorted(os.listdir(cache / "chats")) == ["x"]
        s.clear()
        s.ask("something else entirely")
        saved.load(s, "x")
        assert [t.question.text for t in s.conv.turns] == ["first question", "second question"]
        assert np.array_equal(s.target.tokens, held) and s.last is None
        nxt = s.ask("third")
        assert nxt.reused > 0.6 * len(held)
    finally:
        s.close()


def test_bad_names_unknown_names_and_other_models_are_one_repl_error_each(tiny_path, tiny_draft_path,
                                                                          tiny_other_vocab_path, cache):
    with runtime(tiny_path, tiny_draft_path) as rt:
        s = ChatSession(rt, OPTS)
        rc, _, err = repl(s, "/save", "/save ../evil", "/save a/b", "/save .hidden", "/load", "/load nothing",
                          "hello", "/save good", "/save other", "/load missing", "/bye")
        s.close()
    e = errors(err)
    assert len(e) == 7, err
    assert e[0] == "specllama: error: usage: /save NAME"
    assert "path separator" in e[1] and "path separator" in e[2] and "'.'" in e[3]
    assert e[4] == "specllama: error: usage: /load NAME"
    assert "no chat is saved yet (/save NAME saves one)" in e[5]
    assert e[6].endswith("no saved chat of that name; saved chats: good, other")
    assert not os.path.exists(cache.parent / "evil") and sorted(os.listdir(cache / "chats")) == ["good", "other"]
    with runtime(tiny_other_vocab_path, tiny_draft_path) as rt:
        s = ChatSession(rt, OPTS)
        rc, _, err = repl(s, "/load good", "/bye")
        s.close()
    e = errors(err)
    assert len(e) == 1 and "/load good: it was saved with target tiny.gguf (" in e[0]
    assert "this chat runs target tiny-other-vocab.gguf" in e[0] and "--" not in e[0]
    with runtime(tiny_path) as rt:  # the same target without the draft is another setup too
        s = ChatSession(rt, {})
        with pytest.raises(ConfigError, match="draft none"):
            saved.load(s, "good")
        s.close()


def test_a_damaged_save_is_refused_and_changes_nothing(tiny_runtime, cache):
    s = ChatSession(tiny_runtime, OPTS)
    try:
        s.ask("hello")
        saved.save(s, "d")
        blob = cache / "chats" / "d" / "target.kv"
        blob.write_bytes(blob.read_bytes()[:-10])
        s.ask("and more")
        held, turns = s.target.tokens.copy(), len(s.conv.turns)
        with pytest.raises(ConfigError, match="damaged .*target.kv does not match its checksum"):
            saved.load(s, "d")
        (cache / "chats" / "d" / "manifest.json").write_text("{not json")
        with pytest.raises(ConfigError, match="damaged"):
            saved.load(s, "d")
        assert np.array_equal(s.target.tokens, held) and len(s.conv.turns) == turns
    finally:
        s.close()


def test_save_to_an_unwritable_cache_is_one_error_and_leaves_nothing(tiny_runtime, cache, monkeypatch, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    monkeypatch.setenv("SPECLLAMA_CACHE", str(f))
    s = ChatSession(tiny_runtime, OPTS)
    try:
        with pytest.raises(ConfigError, match="/save x: cannot write"):
            saved.save(s, "x")
        assert f.read_text() == "x"
    finally:
        s.close()


def test_manifest_names_the_models_and_sizes(tiny_runtime, tiny_path, cache):
    s = ChatSession(tiny_runtime, OPTS)
    try:
        saved.save(s, "m")
    finally:
        s.close()
    m = json.loads((cache / "chats" / "m" / "manifest.json").read_text())
    assert m["models"]["target"] == {"file": "tiny.gguf", "size": os.path.getsize(tiny_path)}
    assert m["models"]["draft"]["file"] == "tiny-draft.gguf" and m["options"]["budget"] == 300
