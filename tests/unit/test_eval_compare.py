"""``specllama eval --compare``: the paired report on saved predictions with known differences, and
the refusal of anything that would pair different samples (seeds, limits, tasks, labels)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specllama.errors import ConfigError
from specllama.eval.compare import ColumnRef, compare, parse_ref
from specllama.eval.paired_report import markdown

# dense against specpc@512 on two tasks of 5 samples each
DENSE = {"niah_multikey_1": [100, 100, 100, 0, 100], "qa_1": [100, 0, 100, 100, 0]}
SPECPC = {"niah_multikey_1": [100, 0, 0, 0, 100], "qa_1": [0, 0, 100, 100, 0]}


def sid(task: str, index: int, seed: int, length: int = 4096) -> str:
    return hashlib.sha256(f"{task}/{index}/{seed}/{length}".encode()).hexdigest()[:20]


def record(task, index, method, budget, score, seed=42, length=4096, target="t.gguf", with_seed=True):
    draft = None if method == "dense" else "d.gguf"
    r = {"key": [sid(task, index, seed, length), method, budget, target, draft], "task": task,
         "index": index, "method": method, "budget": budget, "ran": method, "pred": "x", "outputs": ["x"],
         "score": float(score), "stop": "eos", "seconds": 1.0, "length": length, "timings": {}, "notes": []}
    if with_seed:
        r["seed"] = seed
    return r


def column(method, budget, scores, **kw) -> list[dict]:
    return [record(t, i, method, budget, s, **kw) for t, ss in scores.items() for i, s in enumerate(ss)]


def save(directory: Path, records: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return directory


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    return save(tmp_path / "run", column("dense", None, DENSE) + column("specpc", 512, SPECPC))


def sl(*args: str):
    env = dict(os.environ, SPECLLAMA_CACHE="/tmp/specllama-test-no-models")
    env.pop("SPECLLAMA_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "specllama", "eval", *args], capture_output=True, env=env,
                          timeout=120)


def test_paired_numbers_on_known_differences(run_dir):
    c = compare(ColumnRef(run_dir, "specpc@512"), ColumnRef(run_dir, "dense"), n_resamples=2000)
    nk, qa = c.table.rows["niah_multikey_1"], c.table.rows["qa_1"]
    assert (nk.n, nk.mean_a, nk.mean_b, nk.diff, nk.only_a, nk.only_b) == (5, 40.0, 80.0, -40.0, 0, 2)
    assert nk.p_value == pytest.approx(0.5)          # 2 * 1/4
    assert (qa.diff, qa.only_a, qa.only_b, qa.p_value) == (-20.0, 0, 1, 1.0)
    assert c.table.overall.diff == pytest.approx(-30.0) and c.table.overall.n == 10
    assert c.table.overall.p_value == pytest.approx(0.25)   # 0 against 3: 2 * 1/8
    ci = c.table.overall.interval
    assert ci.low <= -30.0 <= ci.high and ci.high <= 0.0
    assert c.samples["niah_multikey_1"][1] == (1, 0.0, 100.0) and c.seed == 42


def test_compare_cli_table_on_stdout_notes_on_stderr(run_dir):
    p = sl("--out", str(run_dir), "--compare", "specpc@512", "dense", "--per-sample")
    assert p.returncode == 0, p.stderr
    out, err = p.stdout.decode(), p.stderr.decode()
    assert out.startswith("A = specpc@512, B = dense: 10 paired sample(s) in 2 task(s), data seed 42.")
    lines = out.splitlines()
    assert "| task | n | A | B | A - B [95% CI] | only A right | only B right | McNemar p |" in lines
    row = next(ln for ln in lines if ln.startswith("| niah_multikey_1 | 5 |"))
    assert row.startswith("| niah_multikey_1 | 5 | 40.0 | 80.0 | -40.0 [") and row.endswith("| 0 | 2 | 0.500 |")
    assert any(ln.startswith("| **all** | 10 | 40.0 | 70.0 | **-30.0 [") and ln.endswith("| 0 | 3 | 0.250 |")
               for ln in lines)
    assert "| niah_multikey_1 | 1 | 0.0 | 100.0 | -100.0 |" in lines   # --per-sample
    assert "| qa_1 | 4 | 0.0 | 0.0 | +0.0 |" in lines
    assert err.startswith("specllama: comparing specpc@512 with dense on 10 paired sample(s)")
    assert "note: 5 sample(s) in the smallest task; below 30 a task the bootstrap interval is too narrow" in err
    assert "Traceback" not in err


def test_compare_across_directories_and_non_binary_scores(tmp_path, run_dir):
    partial = {"niah_multikey_1": [100, 50, 100, 0, 100], "qa_1": [100, 0, 100, 100, 0]}
    other = save(tmp_path / "other", column("dense", None, partial, target="big.gguf"))
    c = compare(parse_ref(f"{other}:dense", str(run_dir)), parse_ref("dense", str(run_dir)), n_resamples=500)
    assert c.a.name == f"{other}:dense" and c.b.name == "dense"
    assert c.table.rows["niah_multikey_1"].diff == -10.0
    assert c.table.rows["niah_multikey_1"].p_value is None and c.table.overall.p_value is None
    assert c.table.rows["qa_1"].p_value == 1.0
    text = markdown(c)
    assert "| niah_multikey_1 | 5 | 70.0 | 80.0 | -10.0 [" in text and "| 0 | 1 | - |" in text


def test_tasks_filter(run_dir):
    c = compare(ColumnRef(run_dir, "specpc@512"), ColumnRef(run_dir, "dense"), tasks=["qa_1"], n_resamples=200)
    assert list(c.table.rows) == ["qa_1"] and c.table.overall.n == 5
    assert "**all**" not in markdown(c)   # one task: no separate average row
    with pytest.raises(ConfigError, match="no task vt"):
        compare(ColumnRef(run_dir, "specpc@512"), ColumnRef(run_dir, "dense"), tasks=["vt"])


def refused(a: ColumnRef, b: ColumnRef, needle: str, **kw) -> None:
    with pytest.raises(ConfigError) as exc:
        compare(a, b, n_resamples=100, **kw)
    msg = str(exc.value)
    assert msg.startswith("--compare: ") and "\n" not in msg and needle in msg, msg


def test_refuses_different_seeds_across_runs(tmp_path, run_dir):
    seven = save(tmp_path / "seed7", column("dense", None, DENSE, seed=7))
    refused(ColumnRef(seven, "dense", True), ColumnRef(run_dir, "specpc@512"),
            "on samples of seed 7 and specpc@512 on seed 42: different samples")


def test_refuses_different_samples_without_recorded_seeds(tmp_path):
    # old prediction files carry no seed: the sample ids alone must catch the mismatch
    a = save(tmp_path / "a", column("dense", None, DENSE, seed=1, with_seed=False))
    b = save(tmp_path / "b", column("dense", None, DENSE, seed=2, with_seed=False))
    refused(ColumnRef(a, "dense", True), ColumnRef(b, "dense", True),
            "were not scored on the same samples: 10 only in")


def test_refuses_a_run_with_fewer_samples(tmp_path):
    short = {t: ss[:3] for t, ss in SPECPC.items()}
    d = save(tmp_path / "r", column("dense", None, DENSE) + column("specpc", 512, short))
    refused(ColumnRef(d, "specpc@512"), ColumnRef(d, "dense"),
            "4 only in dense (niah_multikey_1#3, niah_multikey_1#4, qa_1#3, ...)")


def test_refuses_different_tasks(tmp_path, run_dir):
    other = save(tmp_path / "o", column("dense", None, {"qa_1": DENSE["qa_1"]}))
    refused(ColumnRef(other, "dense", True), ColumnRef(run_dir, "dense"), "pass --tasks")


def test_refuses_mixed_seeds_and_models_in_one_directory(tmp_path):
    mixed = save(tmp_path / "mixed", column("dense", None, DENSE) + column("dense", None, DENSE, seed=7)
                 + column("specpc", 512, SPECPC))
    refused(ColumnRef(mixed, "dense"), ColumnRef(mixed, "specpc@512"), "mixes samples generated with seeds 7, 42")
    unseeded = save(tmp_path / "unseeded", column("dense", None, DENSE, with_seed=False)
                    + column("dense", None, DENSE, seed=7, with_seed=False) + column("specpc", 512, SPECPC))
    refused(ColumnRef(unseeded, "dense"), ColumnRef(unseeded, "specpc@512"), "holds two different samples")
    models = save(tmp_path / "models", column("dense", None, DENSE) + column("dense", None, DENSE, target="b.gguf")
                  + column("specpc", 512, SPECPC))
    refused(ColumnRef(models, "dense"), ColumnRef(models, "specpc@512"), "with 2 model pairs (b.gguf; t.gguf)")


def test_refuses_unknown_labels_and_missing_runs(tmp_path, run_dir):
    refused(ColumnRef(run_dir, "specpc@256"), ColumnRef(run_dir, "dense"),
            "no column 'specpc@256' in ")
    refused(ColumnRef(run_dir, "dense"), ColumnRef(run_dir, "dense"), "both sides are dense")
    refused(ColumnRef(tmp_path / "nowhere", "dense"), ColumnRef(run_dir, "dense"), "does not exist")
    with pytest.raises(ConfigError, match="names no column"):
        parse_ref(f"{run_dir}:", "x")


@pytest.mark.parametrize("args,needle", [
    (("--compare", "specpc@256", "dense"), "no column 'specpc@256'"),
    (("--compare", "SEVEN:dense", "dense"), "on samples of seed 7 and dense on seed 42"),
    (("--per-sample",), "--per-sample needs --compare"),
])
def test_cli_refusals_are_one_line_with_exit_code_2(tmp_path, run_dir, args, needle):
    seven = save(tmp_path / "seed7", column("dense", None, DENSE, seed=7))
    args = tuple(a.replace("SEVEN", str(seven)) for a in args)
    p = sl("--out", str(run_dir), *args)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: ") and needle in err, err
    assert p.stdout == b""
