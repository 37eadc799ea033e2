"""The eval grid on tiny models: outputs, dense once per sample, resume, and bad input refused
before any model loads."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("wonderwords")
pytest.importorskip("punkt")

from specllama import pipeline
from specllama.errors import ConfigError
from specllama.eval import runner
from specllama.eval.runner import EvalConfig

TASK, LENGTH = "niah_single_2", 1024
# the tiny tokenizer spells words out: the question and template take ~240 tokens, plus the window
BUDGETS = (384, 512)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def tiny_runtime(tiny_path, tiny_draft_path):
    """One thread: tiny models gain nothing from two, and lose a lot on a busy machine."""
    from specllama.runtime import Runtime, RuntimeConfig

    with Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=1, n_batch=256,
                               n_ubatch=256)) as rt:
        yield rt


@pytest.fixture()
def calls(monkeypatch):
    seen = []
    real = pipeline.generate

    def counting(rt, prompt, method, gen=pipeline.GenConfig(), on_text=None):
        seen.append((method.name, method.budget.tokens if method.compresses else None, gen.n_predict,
                     gen.sampling.greedy))
        return real(rt, prompt, method, gen, on_text)

    monkeypatch.setattr(pipeline, "generate", counting)
    return seen


def config(out, **kw) -> EvalConfig:
    base = dict(tasks=(TASK,), length=LENGTH, methods=("specpc",), budgets=BUDGETS, limit=2, out=str(out))
    base.update(kw)
    return EvalConfig(**base)


def test_grid_outputs_and_resume(tmp_path, tiny_runtime, calls):
    out = tmp_path / "run"
    cfg = config(out)
    assert [c.label for c in cfg.columns] == ["dense", "specpc@384", "specpc@512"]
    res = runner.run(cfg, tiny_runtime, log=lambda s: None)
    # dense once per sample, specpc once per budget; greedy with RULER's NIAH answer length
    assert sorted(calls) == sorted([("dense", None, 128, True)] * 2 + [("specpc", 384, 128, True)] * 2
                                   + [("specpc", 512, 128, True)] * 2)
    assert res.ran == 6 and res.reused == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 6
    rec = json.loads(lines[1])
    assert {"pred", "outputs", "score", "task", "index", "method", "budget", "timings"} <= set(rec)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == [TASK]
    assert summary["n"][TASK] == {"dense": 2, "specpc@384": 2, "specpc@512": 2}
    assert set(summary["average"]) == {"dense", "specpc@384", "specpc@512"}
    table = (out / "table.md").read_text()
    assert f"| {TASK} (n=2) |" in table and "| **average** |" in table and "% of dense" in table
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second run scores nothing again
    calls.clear()
    res2 = runner.run(cfg, tiny_runtime, log=lambda s: None)
    assert calls == [] and res2.ran == 0 and res2.reused == 6
    assert res2.summary["scores"] == res.summary["scores"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 6

    # a new budget runs only its own jobs; a job cut by a crash runs again
    text = (out / "predictions.jsonl").read_text()
    (out / "predictions.jsonl").write_text(text[:-40])
    res3 = runner.run(config(out, budgets=BUDGETS + (448,)), tiny_runtime, log=lambda s: None)
    assert sorted(calls) == sorted([("specpc", 448, 128, True)] * 2 + [("specpc", 512, 128, True)])
    assert res3.ran == 3 and res3.reused == 5
    # the line cut by the crash does not swallow the next record
    calls.clear()
    res4 = runner.run(config(out, budgets=BUDGETS + (448,)), tiny_runtime, log=lambda s: None)
    assert calls == [] and res4.reused == 8


def test_kv_methods_prefill_the_target_once_per_sample_for_every_budget(tmp_path, tiny_runtime, monkeypatch):
    """SnapKV and SpecKV read attention in one target prefill per sample each, shared by both
    budgets; StreamingLLM and the random baseline share one plain prefill; dense has its own."""
    from specllama.engine.context import Context

    seen = {"target": 0, "attention": 0}
    real_decode, real_score = Context.decode, pipeline.score_with_attention

    def decode(self, tokens, *a, **kw):
        seen["target"] += self.model.role == "target" and len(tokens) > 1  # a prefill, not a step
        return real_decode(self, tokens, *a, **kw)

    def score(*a, **kw):
        seen["attention"] += 1
        return real_score(*a, **kw)

    monkeypatch.setattr(Context, "decode", decode)
    monkeypatch.setattr(pipeline, "score_with_attention", score)
    cfg = config(tmp_path / "kv", methods=("snapkv", "speckv", "streaming", "random"))
    res = runner.run(cfg, tiny_runtime, log=lambda s: None)
    assert res.ran == 2 * 9
    assert seen == {"attention": 2 * 2, "target": 2 * 4}  # without the memo: 2 x 4 and 2 x 9
    recs = {(r["index"], r["label"]): r["timings"] for r in res.records}
    for i in (0, 1):
        assert recs[(i, "snapkv@384")]["reused_ms"] == 0 and recs[(i, "streaming@384")]["reused_ms"] == 0
        for label in ("snapkv@512", "streaming@512", "random@384", "random@512"):
            t = recs[(i, label)]
            assert t["reused_ms"] >= t["prefill_ms"] > 0, label  # counted as if it ran
    assert len(tiny_runtime.prefill_cache) == 3  # one sample's prefills only


def test_interrupted_run_keeps_scored_jobs(tmp_path, tiny_runtime, monkeypatch):
    real = pipeline.generate
    n = []

    def flaky(rt, prompt, method, gen=pipeline.GenConfig(), on_text=None):
        n.append(1)
        if len(n) == 3:
            raise KeyboardInterrupt
        return real(rt, prompt, method, gen, on_text)

    monkeypatch.setattr(pipeline, "generate", flaky)
    out = tmp_path / "i"
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(out), tiny_runtime, log=lambda s: None)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2
    partial = json.loads((out / "summary.json").read_text())
    assert partial["n"][TASK] == {"dense": 1, "specpc@384": 1, "specpc@512": 0}
    res = runner.run(config(out), tiny_runtime, log=lambda s: None)
    assert res.ran == 4 and res.reused == 2


def test_progress_and_eta_on_stderr(tmp_path, tiny_runtime, calls):
    import io

    err = io.StringIO()
    runner.run(config(tmp_path / "p", methods=("dense",), limit=2), tiny_runtime, log=lambda s: None,
               stream=err)
    lines = err.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[") and "1/2" in lines[0] and "ETA" in lines[0]
    assert "2/2" in lines[1] and "ETA 0s" in lines[1]


@pytest.mark.parametrize("kw,msg", [
    (dict(tasks=("niah_single_9",)), "unknown task 'niah_single_9'"),
    (dict(methods=("nope",)), "unknown method 'nope'"),
    (dict(budgets=(0,)), "--budgets must be >= 1, got 0"),
    (dict(budgets=(512, 512)), "lists a budget twice"),
    (dict(budgets=(1024,)), "not below --length"),
    (dict(budgets=(32,)), "smaller than the protected window of 64"),
    (dict(budgets=()), "--budgets is empty"),
    (dict(limit=0), "--limit must be >= 1"),
    (dict(methods=("speckvpc",), length=8192, budgets=(3000,)), "--budget-pc 2048 must be >= --budget 3000"),
    (dict(tasks=("longbench/qasper",)), "need --longbench PATH"),
])
def test_bad_config_is_refused(tmp_path, kw, msg):
    with pytest.raises(ConfigError if "longbench" not in msg else Exception, match=msg):
        config(tmp_path, **kw)


def test_dense_is_always_the_reference(tmp_path):
    assert config(tmp_path, methods=("specpc",)).methods == ("dense", "specpc")
    assert [c.label for c in config(tmp_path, methods=("dense",)).columns] == ["dense"]


def test_no_dense_skips_the_reference_and_leaves_percent_blank(tmp_path, tiny_runtime, calls):
    cfg = config(tmp_path / "nd", dense=False, budgets=(384,))
    assert [c.label for c in cfg.columns] == ["specpc@384"]
    res = runner.run(cfg, tiny_runtime, log=lambda s: None)
    assert sorted(calls) == [("specpc", 384, 128, True)] * 2 and res.ran == 2
    assert res.summary["percent_of_dense"] == {"specpc@384": None}


# -- the CLI: clear one-line errors, exit 2, before any model loads --------------------------------

from helpers import invoke_eval, no_model_load  # noqa: E402,F401  (a fixture)


invoke = invoke_eval


@pytest.mark.parametrize("args,msg", [
    (["--tasks", "niah_single_9"], "unknown task 'niah_single_9'"),
    (["--methods", "dense,nope"], "unknown method 'nope'"),
    (["--budgets", "256,abc"], "--budgets: 'abc' is not an integer"),
    (["--budgets", "-5"], "--budgets must be >= 1, got -5"),
    (["--budgets", "0,-5"], "--budgets must be >= 1, got 0"),
    (["--longbench", "/nonexistent"], "--longbench /nonexistent is read only by LongBench tasks"),
    (["--out", "/proc/specllama-x"], "cannot create --out /proc/specllama-x in /proc"),
    (["--length", "8192"], "--length 8192 is over the target's limit"),
    (["--length", "2048", "-c", "1024"], "--length 2048 is over the target's limit"),
    (["--tasks", "longbench/qasper"], "LongBench tasks need --longbench PATH"),
    (["--preset", "huge"], "Invalid value for '--preset'"),
])
def test_cli_bad_input_before_models_load(tmp_path, tiny_path, tiny_draft_path, no_model_load, args, msg):
    base = ["-m", tiny_path, "-md", tiny_draft_path, "--tasks", TASK, "--length", "1024", "--budgets",
            "384", "--limit", "1", "--out", str(tmp_path / "o")]
    res = invoke(base + args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specllama: error: ") and msg in lines[0], lines
    assert res.stdout == ""
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where, msg", [
    ("file", "is a file, not a directory"),
    ("file/sub", "file is a file, not a directory"),
])
def test_cli_out_that_is_a_file_is_one_line_before_any_work(tmp_path, tiny_path, no_model_load, where, msg):
    (tmp_path / "file").write_text("keep me")
    out = tmp_path / where
    res = invoke(["-m", tiny_path, "--tasks", TASK, "--length", "1024", "--methods", "dense", "--budgets",
                  "384", "--limit", "1", "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specllama: error: --out ") and msg in lines[0], lines
    assert (tmp_path / "file").read_text() == "keep me"
    assert set(os.listdir(tmp_path)) <= {"cache", "file"}  # no probe left behind


def test_cli_length_over_draft_context(tmp_path, tiny_dir, no_model_load):
    from models.synth import TinySpec, write_tiny

    big = write_tiny(tiny_dir / "tiny-32k.gguf", TinySpec(n_ctx_train=32768))
    small_draft = write_tiny(tiny_dir / "tiny-draft-4k.gguf", TinySpec(seed=1, n_layer=3))
    res = invoke(["-m", big, "-md", small_draft, "--tasks", TASK, "--length", "8192", "--methods", "specpc",
                  "--budgets", "512", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--length 8192 is over the draft's limit" in res.stderr
    # dense alone never reads with the draft
    res = invoke(["-m", big, "--tasks", "nope", "--methods", "dense"])
    assert res.exit_code == 2 and "unknown task 'nope'" in res.stderr


def test_cli_end_to_end(tmp_path, tiny_path, tiny_draft_path):
    out = tmp_path / "o"
    args = ["-m", tiny_path, "-md", tiny_draft_path, "-t", "1", "--tasks", TASK, "--length", "1024",
            "--methods", "specpc", "--budgets", "384", "--limit", "1", "--out", str(out), "--no-plot"]
    res = invoke(args)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("| task | dense | specpc@384 |")
    assert "2 job(s) run, 0 reused" in res.stderr
    assert not (out / "plot.png").exists()
    res = invoke(args)
    assert res.exit_code == 0 and "0 job(s) run, 2 reused" in res.stderr
