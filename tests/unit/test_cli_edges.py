"""Edges a user hits (issue 15, "Wrong today"): compress methods, output paths checked before the
work, flags named as given, --json counts, layouts and errors, and inputs checked up front."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specllama.errors import ConfigError, ModelError

ROOT = Path(__file__).resolve().parents[2]
DOC = "the green sky and the blue grass. " * 60
QUICK_BENCH = ("-t", "2", "-r", "1", "-n", "2", "--idle-wait", "0", "--idle-sample", "0.05",
               "--max-busy", "1", "--lengths", "500", "--methods", "specpc", "--keep", "0.4", "--no-probe",
               "--no-warmup")


def sl(*args, stdin=None, env=None, cache=None, timeout=120):
    e = dict(os.environ, SPECLLAMA_CACHE=str(cache or "/tmp/specllama-test-no-models"))
    e.pop("SPECLLAMA_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "specllama", *args], input=stdin, capture_output=True, env=e,
                          timeout=timeout)


def one_line_error(proc, needle, stdout=b""):
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: "), err
    assert needle in err, err
    assert "Traceback" not in err
    if stdout is not None:
        assert proc.stdout == stdout


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    p = tmp_path_factory.mktemp("docs") / "doc.txt"
    p.write_text(DOC)
    return str(p)


@pytest.fixture(scope="module")
def truncated_draft(tiny_draft_path, tmp_path_factory):
    """The tiny draft cut to half its size: the magic is right, the tensors are gone."""
    data = Path(tiny_draft_path).read_bytes()
    p = tmp_path_factory.mktemp("bad") / "half-draft.gguf"
    p.write_bytes(data[:len(data) // 2])
    return str(p)


# -- 1. compress --method ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["speckv", "streaming", "speckvpc"])
def test_compress_refuses_methods_without_a_compressed_prompt(tiny_path, tiny_draft_path, doc, method):
    p = sl("compress", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "--budget", "150",
           "--method", method)
    one_line_error(p, f"{method} chooses the target's KV cells")
    assert "compress supports dense, specpc, truncate" in p.stderr.decode()


def test_compress_truncate_needs_no_draft_and_keeps_head_and_tail(tiny_path, doc):
    p = sl("compress", "-m", tiny_path, "-f", doc, "--question", "what?", "--method", "truncate",
           "--budget", "150", "--json")
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["method"] == "truncate" and obj["n_kept"] == 150 < obj["n_prompt"]
    assert obj["text"].startswith("the green sky") and obj["text"].endswith("what?")
    assert obj["timings"]["draft_ms"] == 0
    assert p.stderr.decode().startswith("specllama: truncate: kept 150/")


def test_compress_dense_prints_the_prompt_unchanged(tiny_path, doc):
    p = sl("compress", "-m", tiny_path, "-f", doc, "--question", "what?", "--method", "dense", "--json")
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["method"] == "dense" and obj["n_kept"] == obj["n_prompt"]
    assert DOC.strip() in obj["text"] and obj["text"].endswith("what?")


def test_compress_methods_are_exactly_those_without_a_kv_stage():
    from specllama.cli.compress import prompt_methods
    from specllama.methods import make_method, method_names

    assert prompt_methods() == [n for n in method_names() if make_method(n, n_predict=1).kv_stage is None]


def test_compress_help_lists_only_the_methods_that_work():
    p = sl("compress", "--help")
    assert p.returncode == 0
    line = next(ln for ln in p.stdout.decode().splitlines() if "--method" in ln)
    assert "[dense|specpc|truncate]" in line, line
    assert "--budget-pc" not in p.stdout.decode()  # only speckvpc reads it


# -- 2, 7. bench --save / --plot ------------------------------------------------------------------
@pytest.mark.parametrize("flag, path, needle", [
    ("--save", "/proc/specllama-x.json", "cannot write --save /proc/specllama-x.json"),
    ("--plot", "/proc/specllama-x.png", "cannot write --plot /proc/specllama-x.png"),
    ("--save", "{tmp}/file.txt/x.json", "file.txt is a file, not a directory"),
    ("--plot", "{tmp}/file.txt/x.png", "file.txt is a file, not a directory"),
    ("--save", "{tmp}/missing/x.json", "does not exist"),
])
def test_bench_output_that_cannot_be_created_is_refused_before_measuring(tiny_path, tiny_draft_path, tmp_path,
                                                                         flag, path, needle):
    (tmp_path / "file.txt").write_text("keep me")
    path = path.format(tmp=tmp_path)
    p = sl("bench", "-m", tiny_path, "-md", tiny_draft_path, *QUICK_BENCH, flag, path, timeout=120)
    one_line_error(p, needle)  # one line: nothing was measured
    assert (tmp_path / "file.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


def test_bench_probe_leaves_an_existing_file_alone(tmp_path):
    from specllama.outpaths import check_writable_file

    f = tmp_path / "old.json"
    f.write_text("old report")
    before = f.stat().st_mtime_ns
    check_writable_file(str(f), "--save")
    check_writable_file(str(tmp_path / "new.json"), "--save")
    assert f.read_text() == "old report" and f.stat().st_mtime_ns == before
    assert sorted(os.listdir(tmp_path)) == ["old.json"]


def _saved_report():
    """The measured default-pair report, with timing fields added since it was saved set to 0."""
    from specllama.bench.report import TIMING_FIELDS, Report

    d = json.loads((ROOT / "docs/results/bench-default.json").read_text())
    for c in d["cells"]:
        for r in c["repeats"]:
            for k in TIMING_FIELDS:
                r["timings"].setdefault(k, 0)
    return Report.from_json(d)


def test_bench_report_is_never_lost_when_saving_fails_after_measuring(capsys, monkeypatch, tmp_path):
    from specllama.cli import bench

    monkeypatch.setattr(bench.tempfile, "tempdir", str(tmp_path))
    rep = _saved_report()
    rc = bench._emit(rep, False, "/proc/specllama-x.json", None)
    out, err = capsys.readouterr()
    assert rc == 2
    assert "| dense |" in out  # the markdown report
    rescued = list(tmp_path.glob("specllama-bench-*.json"))
    assert len(rescued) == 1 and json.loads(rescued[0].read_text()) == rep.to_json()
    assert err.startswith("specllama: error: cannot write --save /proc/specllama-x.json")
    assert f"the report is on stdout and in {rescued[0]}" in err


def test_bench_json_report_is_printed_when_saving_fails(capsys):
    from specllama.cli import bench

    rep = _saved_report()
    assert bench._emit(rep, True, "/proc/specllama-x.json", None) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == rep.to_json()
    assert err.count("\n") == 1 and "the report is on stdout" in err


# -- 5. flags named as given ----------------------------------------------------------------------
def test_budget_pc_below_one_names_budget_pc(tiny_path, tiny_draft_path):
    p = sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-p", DOC, "--method", "speckvpc",
           "--budget", "100", "--budget-pc", "0")
    one_line_error(p, "--budget-pc must be >= 1, got 0")
    one_line_error(sl("run", "-m", tiny_path, "-p", DOC, "--method", "truncate", "--budget", "0"),
                   "--budget must be >= 1, got 0")


# -- 9. --json counts and layouts -----------------------------------------------------------------
def test_run_json_counts_every_generated_token(tiny_path):
    p = sl("run", "-m", tiny_path, "--json", "-n", "4", "-t", "2", "-p", DOC)
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["stop"] == "length"
    assert obj["timings"]["predicted_n"] == 4


def test_server_timings_count_tokens_not_passes():
    from specllama.timings import Timings

    t = Timings(decode_tokens=7, decode_ms=70.0)
    s = t.server_timings(8)
    assert s["predicted_n"] == 8 and s["predicted_per_token_ms"] == 10.0  # rates over the 7 passes


def test_compress_and_run_json_share_one_timings_layout(tiny_path, tiny_draft_path, doc):
    c = sl("compress", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "--budget", "150", "--json")
    r = sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-f", doc, "--budget", "150", "-n", "2", "--json")
    assert c.returncode == 0 and r.returncode == 0, (c.stderr, r.stderr)
    co, ro = json.loads(c.stdout), json.loads(r.stdout)
    assert set(co["timings"]) == set(ro["timings"])
    assert {"method", "n_prompt", "n_kept", "kept", "notes", "timings", "text"} <= set(co) & set(ro)
    assert co["timings"]["prompt_kept_n"] == co["n_kept"] == 150 and co["timings"]["draft_ms"] > 0


# -- 10. --json errors ------------------------------------------------------------------------------
def test_json_errors_are_one_object_on_stdout_and_one_line_on_stderr(tmp_path):
    p = sl("run", "-m", str(tmp_path / "nope.gguf"), "-p", "hi", "--json")
    one_line_error(p, "not found", stdout=None)
    obj = json.loads(p.stdout)
    message = p.stderr.decode()[len("specllama: error: "):-1]
    assert obj == {"error": {"type": "ModelError", "message": message}}
    q = sl("run", "-p", "hi", "--keep", "abc", "--json")
    one_line_error(q, "--keep", stdout=None)
    assert json.loads(q.stdout)["error"]["type"] == "BadParameter"
    r = sl("compress", "-p", "hi", "--method", "speckv", "--json")
    one_line_error(r, "speckv", stdout=None)
    assert json.loads(r.stdout)["error"]["type"] == "BadParameter"
    # without --json stdout stays empty
    one_line_error(sl("run", "-m", str(tmp_path / "nope.gguf"), "-p", "hi"), "not found")


def test_json_request_is_read_as_click_parses_it():
    from specllama.cli.main import json_requested

    assert json_requested(["run", "--json", "-p", "x"])
    assert json_requested(["bench", "--lengths", "x", "--json", "--bogus-flag"])
    assert not json_requested(["run", "-p", "--json"])  # the prompt is "--json"
    assert not json_requested(["run", "-p", "x"])
    assert not json_requested(["models", "--json"]) and not json_requested([])


# -- 11. inputs checked up front -----------------------------------------------------------------
def test_corrupt_draft_is_refused_even_when_the_run_falls_back_to_dense(tiny_path, truncated_draft, doc):
    p = sl("run", "-m", tiny_path, "-md", truncated_draft, "-f", doc, "-n", "2", "--budget", "100000")
    one_line_error(p, "draft file")
    assert "half-draft.gguf is not a usable GGUF" in p.stderr.decode()


def test_gguf_check_accepts_real_files_and_names_what_is_wrong(tiny_path, tiny_draft_path, tmp_path):
    from specllama.ggufcheck import check_model_file

    assert check_model_file(tiny_path, "target") == tiny_path
    data = Path(tiny_draft_path).read_bytes()
    cases = {
        "cut-in-tensors": (data[:len(data) - 100], "lies outside the file"),
        "cut-in-header": (data[:3000], "cut off|more than the file holds"),
        "tiny-header": (data[:200], "more than the file holds"),
        "version": (data[:4] + (99).to_bytes(4, "little") + data[8:], "unsupported GGUF version 99"),
        "huge-counts": (data[:8] + (1 << 60).to_bytes(8, "little") + data[16:], "more than the file holds"),
        "magic-only": (b"GGUF", "cut off"),
    }
    for name, (blob, needle) in cases.items():
        p = tmp_path / f"{name}.gguf"
        p.write_bytes(blob)
        with pytest.raises(ModelError, match=needle):
            check_model_file(p, "draft")


def test_cache_that_is_a_file_is_an_error(tmp_path):
    f = tmp_path / "cache-file"
    f.write_text("x")
    one_line_error(sl("models", cache=f), "is a file, not a directory")
    one_line_error(sl("models", cache=f / "sub"), "is a file, not a directory")
    one_line_error(sl("run", "-p", "hi", cache=f), "SPECLLAMA_CACHE")


def test_threads_above_the_cores_are_capped_with_a_note(tiny_path):
    from specllama.preflight import capped_threads, machine_cores

    assert capped_threads(None) == (None, None) and capped_threads(2, cores=4) == (2, None)
    n, msg = capped_threads(1000, cores=4)
    assert n == 4 and "-t 1000 is more than the 4 core(s)" in msg
    p = sl("run", "-m", tiny_path, "-p", DOC, "-t", "1000", "-n", "1", "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stderr.decode() == (f"specllama: -t 1000 is more than the {machine_cores()} core(s) of this "
                                 f"machine; using -t {machine_cores()}\n")


def test_api_session_checks_the_draft_up_front(tiny_path, truncated_draft):
    import specllama

    with pytest.raises(ModelError, match="not a usable GGUF"):
        specllama.Session(tiny_path, truncated_draft)


def test_out_dir_check_creates_nothing(tmp_path):
    from specllama.outpaths import check_writable_dir

    check_writable_dir(str(tmp_path / "new" / "deeper"), "--out")
    check_writable_dir(str(tmp_path), "--out")
    assert os.listdir(tmp_path) == []
    (tmp_path / "f").write_text("x")
    for bad, needle in (("/proc/specllama-x", "cannot create --out"), (str(tmp_path / "f"), "is a file"),
                        (str(tmp_path / "f" / "o"), "is a file")):
        with pytest.raises(ConfigError, match=needle):
            check_writable_dir(bad, "--out")
