"""Fuzzing the command line (issue 15) on the tiny models: bad flag values, bad model files, bad
prompts (invalid UTF-8 in arguments, files and stdin), argument soup and Ctrl-C.

Cases come from a seeded generator (``fuzz_inputs.SEED``). Most run in-process through the real
click entry point (cheap); those that could take the process down (malformed GGUFs, values llama.cpp
receives as C integers), the other commands (eval, bench, serve, models) and the signals run as
subprocesses, two at a time. Every case must end with exit 2 (130 for Ctrl-C), one ``specllama:
error:`` line and no traceback, print nothing on stdout (one JSON error object with ``--json``),
and leave every file where it was.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from specllama.cli.main import json_requested
from fuzz_inputs import (NOT_FLOATS, NOT_INTS, Failures, changed, check_cli, junk_text, rng, snapshot, write_bad_docs,
                         write_bad_ggufs, bad_utf8)

WORDS = "the green sky and the blue grass by the river near the house".split()
DOC = " ".join(WORDS[i % len(WORDS)] for i in range(300))
SURROGATES = ["a\udcffb", "\ud800", "ok \udc80 then", "\udfff" * 3]

INT_FLAGS = ["-t", "-c", "-b", "-ub", "-ngl", "-ngld", "--budget", "--window", "--lookahead", "--kernel",
             "--neighbours", "--start-layer", "--draft-window", "--draft-sinks", "--draft-layers", "-n", "--top-k",
             "-s", "--budget-pc"]
FLOAT_FLAGS = ["--keep", "--temp", "--top-p"]
RANGE_BAD = {
    "-t": ["0", "-3"], "-c": ["-1"], "-b": ["0", "-8"], "-ub": ["0"], "-ngl": ["-1"], "-ngld": ["-2"],
    "--budget": ["0", "-5"], "--keep": ["0", "-0.5", "1.5", "nan", "inf", "-inf"], "-n": ["0", "-2"],
    "--temp": ["-1", "nan", "inf"], "--top-k": ["-1"], "--top-p": ["0", "1.5", "nan", "-0.1"],
    "-s": ["-2", "4294967296"], "--window": ["0", "-1"], "--kernel": ["0", "-3"], "--lookahead": ["0", "-1"],
    "--neighbours": ["-1"], "--start-layer": ["-1"], "--draft-window": ["-1"], "--draft-sinks": ["-1"],
    "--draft-layers": ["-1"], "--method": ["nope", "", "spec pc", "SPECPC"], "--pool": ["median"],
    "--reduction": ["sum"], "--positions": ["shuffled"], "--draft-attn": ["half"],
    "--chat-template": ["{% if %}", "{% for x in %}{{", "{{ messages | no_such_filter }}", "no-such-template"],
    "-p": ["", " \n\t ", *SURROGATES], "--question": SURROGATES, "-sys": SURROGATES,
}
GEN_ONLY = {"-n", "--temp", "--top-k", "--top-p", "-s"}  # compress has no generation flags
NOISE = [("-n", ["1", "2"]), ("--temp", ["0", "0.7"]), ("--top-k", ["0", "5"]), ("-s", ["7"]), ("-t", ["1", "2"]),
         ("--window", ["8", "16"]), ("--kernel", ["3", "8"]), ("--budget", ["120", "300"]),
         ("--method", ["dense", "specpc", "snapkv", "streaming", "truncate"]), ("--pool", ["avg"])]
SOUP = ["--budget", "5", "-p", "x", "--", "-", "-n", "--method", "specpc", "-f", "--keep", "0.5", "--window",
        "=", "--json", "-sys", "\udcff", "--question", "-c", "-t", "2", "--raw", "--temp", "-1e9", "--top-p",
        "''", "--chat-template", "chatml", "-md", "--frobnicate", "-x", "---", "--budget=", "-ngl", "∞"]


# -- in-process runs ------------------------------------------------------------------------------
def run_inprocess(args: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    from specllama.cli.main import cli

    out_b, err_b = io.BytesIO(), io.BytesIO()
    streams = (io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
               io.TextIOWrapper(out_b, encoding="utf-8", write_through=True),
               io.TextIOWrapper(err_b, encoding="utf-8", errors="backslashreplace", write_through=True))
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    rc = None
    try:
        cli.main(list(args))
    except SystemExit as exc:
        rc = exc.code
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return rc, out_b.getvalue(), err_b.getvalue()


def inprocess_cases(models: list[str], docs: dict[str, str]) -> list[tuple[str, list[str], bytes, bool]]:
    """``(label, argv, stdin, as_json)``; each case holds one value that must be refused."""
    r = rng("cli-inprocess")
    bad = []
    for flag in INT_FLAGS:
        bad += [(flag, v) for v in r.sample(NOT_INTS, 6)] + [(flag, v) for v in RANGE_BAD.get(flag, [])]
    for flag in FLOAT_FLAGS:
        bad += [(flag, v) for v in r.sample(NOT_FLOATS, 6)] + [(flag, v) for v in RANGE_BAD[flag]]
    bad += [(f, v) for f, vals in RANGE_BAD.items() if f not in INT_FLAGS + FLOAT_FLAGS for v in vals]
    bad += [("-f", p) for label, p in docs.items()]
    bad += [("--frobnicate", "1"), ("-Z", "x"), ("--budget", None), ("-p", None)]
    cases = []
    for flag, value in bad:
        cmd = r.choice(["run", "compress", "chat"] if flag not in GEN_ONLY else ["run", "chat"])
        if cmd == "compress" and flag in ("--budget-pc", "--lookahead") and value in RANGE_BAD.get(flag, []):
            cmd = "run"  # compress has no --budget-pc; --lookahead ranges are specpc's
        as_json = cmd != "chat" and r.random() < 0.3
        argv = [cmd] + (["--json"] if as_json else []) + list(models)
        for f, vals in r.sample(NOISE, r.randrange(0, 3)):
            if f != flag and not (cmd == "compress" and f in GEN_ONLY | {"--method"}):
                argv += [f, r.choice(vals)]
        if flag == "--budget-pc" and value in RANGE_BAD.get(flag, []):
            argv += ["--method", "speckvpc"]
        if flag not in ("-p", "-f"):
            argv += ["-p", DOC if r.random() < 0.5 else junk_text(r, 40)]
        argv += [flag] + ([] if value is None else [value])
        cases.append((f"{cmd} {flag} {value!r}", argv, b"", as_json))
    for i in range(60):  # argument soup without a model: never runs anything
        cmd = r.choice(["run", "compress", "chat"])
        argv = [cmd] + [r.choice(SOUP) if r.random() < 0.8 else junk_text(r, 5) for _ in range(r.randrange(1, 9))]
        cases.append((f"soup {i}: {argv!r}", argv, bad_utf8(r), json_requested(argv)))
    for i in range(6):  # invalid UTF-8 on stdin
        cmd = r.choice(["run", "chat"])
        cases.append((f"stdin {i}", [cmd, *models, "-n", "1"], bad_utf8(r), False))
    return cases


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory, tiny_path, tiny_draft_path):
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "work").mkdir()
    (root / "cache").mkdir()
    return {"root": root, "ggufs": write_bad_ggufs(tiny_path, root / "ggufs"), "docs": write_bad_docs(root / "docs"),
            "models": ["-m", tiny_path, "-md", tiny_draft_path, "-t", "2"],
            "watch": [root, os.path.dirname(tiny_path)]}


def allowed(path: str) -> bool:
    return f"{os.sep}cache{os.sep}derived" in path  # the draft's layer prefix, a cache the runtime writes


def test_inprocess_cli_cases(fuzz_dir, monkeypatch):
    monkeypatch.chdir(fuzz_dir["root"] / "work")
    monkeypatch.setenv("SPECLLAMA_CACHE", str(fuzz_dir["root"] / "cache"))
    monkeypatch.delenv("SPECLLAMA_DEBUG", raising=False)
    cases = inprocess_cases(fuzz_dir["models"], fuzz_dir["docs"])
    assert len(cases) >= 250
    before = snapshot(*fuzz_dir["watch"])
    failures = Failures()
    for label, argv, stdin, as_json in cases:
        rc, out, err = run_inprocess(argv, stdin)
        failures.check(check_cli, label, rc, out, err, as_json)
        after = snapshot(*fuzz_dir["watch"])
        if changed(before, after, allowed):
            failures.items.append(f"{label}: files changed: {changed(before, after, allowed)}")
            before = after
    failures.assert_none(len(cases))


# -- subprocesses ---------------------------------------------------------------------------------
def env_for(cache: Path) -> dict:
    e = dict(os.environ, SPECLLAMA_CACHE=str(cache))
    e.pop("SPECLLAMA_DEBUG", None)
    return e


def subprocess_cases(fz) -> list[tuple[str, list, bytes, bool]]:
    r = rng("cli-subprocess")
    m, g = fz["models"], fz["ggufs"]
    root = fz["root"]
    (root / "a-file.txt").write_text("x")
    (root / "garbage.json").write_bytes(b"{not json" + bad_utf8(r))
    cases = [(f"run -m {label}", ["run", "-m", p, "-t", "2", "-p", DOC], b"", False) for label, p in g.items()]
    cases += [(f"compress -md {label}", ["compress", "--json", "-m", m[1], "-md", p, "-p", DOC, "--budget", "100"],
               b"", True) for label, p in r.sample(sorted(g.items()), 5)]
    cases += [(f"run {f} 1e20", ["run", *m, "-p", "x", f, "99999999999999999999"], b"", False)
              for f in ("-b", "-ub", "-c", "-t", "-ngl")]
    cases += [("run --lookahead 1e5", ["run", *m, "-p", DOC, "--budget", "100", "--lookahead", "100000"], b"", False),
              ("compress --gap bytes", ["compress", *m, "-p", DOC, "--budget", "100", "--gap", os.fsdecode(b"\xff")],
               b"", False)]
    raw = [os.fsdecode(bad_utf8(r)) for _ in range(4)]  # real invalid bytes in argv
    cases += [(f"argv bytes {f}", ["run", *m, "-n", "1", "-p", DOC, f, v], b"", False)
              for f, v in zip(("-p", "--question", "-sys", "--chat-template"), raw)]
    cases += [("stdin bytes run -f -", ["run", *m, "-f", "-"], bad_utf8(r), False),
              ("stdin bytes chat", ["chat", *m], bad_utf8(r), False)]
    evals = [["--tasks", "nope"], ["--length", "0"], ["--length", "abc"], ["--methods", "nope"],
             ["--budgets", "0,-5"], ["--budgets", "abc"], ["--limit", "0"], ["--out", "/proc/x/y"],
             ["--out", str(root / "a-file.txt")], ["--longbench", "/nonexistent"], ["--compare", "/nonexistent"],
             ["--preset", "huge"], ["--data-seed", "x"]]
    cases += [(f"eval {a}", ["eval", *m, *a], b"", False) for a in evals]
    quick = ["-r", "1", "-n", "1", "--lengths", "300", "--idle-wait", "0", "--no-probe", "--no-warmup"]
    benches = [["--lengths", "abc"], ["--lengths", "0"], ["--lengths", "-1K"], ["-r", "0"], ["--max-busy", "-1"],
               ["--max-busy", "nan"], ["--idle-wait", "-1"], ["--retries", "-1"], ["--idle-sample", "0"],
               ["--save", "/proc/x.json"], ["--save", str(root / "a-file.txt" / "x.json")], ["--plot", "/proc/x.png"],
               ["--from-json", str(root / "missing.json")], ["--from-json", str(root / "garbage.json")],
               ["--corpus", "/nonexistent"], ["--probe-lengths", "abc"], ["--methods", "nope"]]
    cases += [(f"bench {a}", ["bench", *m, *quick, *a], b"", False) for a in benches]
    serves = [["--port", "-1"], ["--port", "70000"], ["--port", "abc"], ["--host", ""], ["--queue-size", "0"],
              ["--max-body", "10"], ["--max-prompt-tokens", "0"], ["--api-key", ""], ["--alias", raw[0]],
              ["--upstream", "ftp://x"], ["--chat-template", "{% if %}"], ["--budget", "0"]]
    cases += [(f"serve {a}", ["serve", *m, "--port", "0", *a], b"", False) for a in serves]
    cases += [(f"serve -m {label}", ["serve", "-m", g[label], "--port", "0"], b"", False)
              for label in ("wrong-magic", "huge-kv-count", "half")]
    cases += [(f"models {a}", ["models", *a], b"", False)
              for a in (["pull", "nope"], ["path", "nope"], ["pull", "--from", "/nonexistent", "nope"],
                        ["--frobnicate"], ["path", ""], ["path"])]
    return cases


def run_subprocess(case, cwd: Path, cache: Path):
    label, argv, stdin, as_json = case
    p = subprocess.run([sys.executable, "-m", "specllama", *argv], input=stdin, capture_output=True, cwd=cwd,
                       env=env_for(cache), timeout=60)
    return label, p.returncode, p.stdout, p.stderr, as_json


def test_subprocess_cli_cases(fuzz_dir):
    root = fuzz_dir["root"]
    cases = subprocess_cases(fuzz_dir)
    assert len(cases) >= 60
    before = snapshot(*fuzz_dir["watch"])
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: run_subprocess(c, root / "work", root / "cache"), cases))
    failures = Failures()
    for label, rc, out, err, as_json in results:
        failures.check(check_cli, label, rc, out, err, as_json)
    failures.assert_none(len(cases))
    after = snapshot(*fuzz_dir["watch"])
    assert not changed(before, after, allowed), changed(before, after, allowed)


# -- Ctrl-C ---------------------------------------------------------------------------------------
def reading_stdin(pid: int) -> bool:
    """True once the process sits in read(0, ...) (``/proc/PID/syscall``: number 0, first argument 0)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 ")
    except OSError:
        return False


def interrupt(argv: list[str], cwd: Path, cache: Path, feed: bool, delay: float | None):
    """Start ``argv`` reading its document from stdin; SIGINT it while it waits for input or, with
    ``feed``, ``delay`` seconds after the document arrived (while it loads, scores or answers;
    ``delay`` None: no signal). Returns ``(rc, stdout, stderr, finished, seconds)``: ``finished``
    when it had exited before the signal; ``seconds`` from the document's arrival to its exit."""
    p = subprocess.Popen([sys.executable, "-m", "specllama", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd, env=env_for(cache))
    end = time.monotonic() + 60
    while not reading_stdin(p.pid) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.02)
    t0 = time.monotonic()
    if feed:
        p.stdin.write(DOC.encode() * 3)
        p.stdin.close()
        if delay is None:
            p.wait(timeout=60)
        else:
            time.sleep(delay)
    finished = p.poll() is not None
    if not finished:
        p.send_signal(signal.SIGINT)
    if not p.stdin.closed:
        p.stdin.close()
    p.stdin = None
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err, finished, time.monotonic() - t0


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs /proc/PID/syscall to time the signal")
def test_ctrl_c_exits_130_and_loses_nothing(fuzz_dir):
    r = rng("cli-sigint")
    root, m = fuzz_dir["root"], fuzz_dir["models"]
    before = snapshot(*fuzz_dir["watch"])
    runs = 0
    args = [*m, "-f", "-", "--budget", "200", "--window", "16"]
    # how long each command works once its document is in (the shorter of two runs: the first is
    # slower, files not yet cached), so that the signals land inside that time on a fast machine as
    # on a slow one (a fixed delay lets fast runs finish first)
    cmds = {"run": ["run", "-n", "-1"], "compress": ["compress"]}
    work = {c: min(interrupt([*cmd, *args], root / "work", root / "cache", feed=True, delay=None)[4]
                   for _ in range(2)) for c, cmd in cmds.items()}
    for i in range(8):
        cmd = cmds["run" if i % 3 else "compress"]
        as_json = i % 2 == 1
        argv = [*cmd] + (["--json"] if as_json else []) + args
        rc, out, err, finished, _ = interrupt(argv, root / "work", root / "cache", feed=i >= 2,
                                              delay=r.uniform(0.0, 0.5) * work[cmd[0]])
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        ended = rc in (0, -signal.SIGINT) and "error" not in last[0] and b"Traceback" not in err
        if finished or ended:
            # it ended before the signal, or the signal came while it was exiting (its result was out)
            assert rc in (0, -signal.SIGINT), err
            continue
        runs += 1
        check_cli(f"SIGINT {i} {argv}", rc, out if as_json else b"", err, as_json, codes=(130,))
        assert err.decode().splitlines()[-1] == "specllama: error: interrupted"
        if not as_json and cmd[0] == "run":
            assert b"Traceback" not in out  # what was streamed before the signal stays
    assert runs >= 4
    assert not changed(before, snapshot(*fuzz_dir["watch"]), allowed)
