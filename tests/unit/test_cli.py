"""The command line as a user meets it: stdout holds only text, errors are one line on stderr."""

import json
import os
import subprocess
import sys

import pytest

DOC = "the green sky and the blue grass. " * 60


def sl(*args, stdin=None, env=None, cache=None):
    e = dict(os.environ, SPECLLAMA_CACHE=str(cache or "/tmp/specllama-test-no-models"))
    e.pop("SPECLLAMA_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "specllama", *args], input=stdin, capture_output=True, env=e,
                          timeout=120)


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    p = tmp_path_factory.mktemp("docs") / "doc.txt"
    p.write_text(DOC)
    return str(p)


def one_line_error(proc, needle):
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: "), err
    assert needle in err, err
    assert "Traceback" not in err and proc.stdout == b""


def test_run_streams_text_to_stdout_and_one_summary_line(tiny_path, tiny_draft_path, doc):
    p = sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "--question", "code?", "-n", "5",
           "-t", "2", "--budget", "200")
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("specllama: specpc: kept 200/")
    assert "TTFT" in err[0] and "decode" in err[0]
    assert p.stdout.endswith(b"\n") and b"specllama" not in p.stdout


def test_run_json_and_stdin(tiny_path, doc):
    p = sl("run", "-m", tiny_path, "--json", "-n", "3", "-t", "2", "--question", "q", stdin=DOC.encode())
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["method"] == "dense" and obj["timings"]["predicted_n"] == 3  # tokens, as usage counts them
    assert obj["n_kept"] == obj["n_prompt"] == len(obj["kept"])


def test_compress_prints_kept_text_and_json(tiny_path, tiny_draft_path, doc):
    p = sl("compress", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "--question", "what code?",
           "--budget", "150", "--json")
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["n_kept"] == 150 and obj["text"].endswith("what code?")
    assert len(obj["text"]) < len(DOC)


def test_budget_not_below_prompt_falls_back_to_dense_on_stderr(tiny_path, tiny_draft_path, doc):
    p = sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "-n", "2", "--budget", "100000")
    assert p.returncode == 0
    assert b"running dense" in p.stderr and b"specllama: dense:" in p.stderr


def test_missing_and_non_gguf_model(tmp_path):
    one_line_error(sl("run", "-m", str(tmp_path / "nope.gguf"), "-p", "hi"), "not found")
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    one_line_error(sl("run", "-m", str(bad), "-p", "hi"), "not a GGUF")


def test_draft_with_another_tokenizer_is_aligned_with_one_note_naming_both(tiny_path, tiny_other_vocab_path, doc):
    p = sl("run", "-m", tiny_path, "-md", tiny_other_vocab_path, "-f", doc, "--budget", "200", "-n", "2")
    assert p.returncode == 0, p.stderr
    notes = [ln for ln in p.stderr.decode().splitlines() if "different tokenizers" in ln]
    assert len(notes) == 1 and "tiny-other-vocab.gguf (llama, " in notes[0] and "tiny.gguf (llama, " in notes[0]
    assert b"specllama: specpc:" in p.stderr


def test_prompt_longer_than_context(tiny_path, doc):
    one_line_error(sl("run", "-m", tiny_path, "-f", doc, "-c", "256"), "reads at most 256")


def test_budget_below_window(tiny_path, tiny_draft_path, doc):
    one_line_error(sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "--budget", "10"),
                   "protected window")


def test_empty_prompt_and_invalid_utf8(tiny_path, tmp_path):
    one_line_error(sl("run", "-m", tiny_path, "-p", "   "), "empty")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    one_line_error(sl("run", "-m", tiny_path, "-f", str(bad)), "not valid UTF-8")
    one_line_error(sl("run", "-m", tiny_path, stdin=b"\xff\xfe oops"), "not valid UTF-8")
    one_line_error(sl("run", "-m", tiny_path, "-f", str(tmp_path / "missing.txt")), "cannot read")


def test_bad_flags_are_one_line_too(tiny_path):
    one_line_error(sl("run", "-m", tiny_path, "-p", "x", "--keep", "abc"), "--keep")
    one_line_error(sl("run", "-m", tiny_path, "-p", "x", "--method", "nope"), "--method")
    one_line_error(sl("run", "-m", tiny_path, "-p", "x", "--keep", "2"), "--keep")
    one_line_error(sl("run", "-m", tiny_path, "-p", "x", "-n", "0"), "-n")


def test_no_target_without_models_installed():
    one_line_error(sl("run", "-p", "hi"), "no target model")


def test_models_lists_known_models(tmp_path):
    p = sl("models", cache=tmp_path)
    assert p.returncode == 0
    out = p.stdout.decode()
    assert "qwen2.5-coder-1.5b-instruct-q4_k_m" in out and "not pulled" in out
