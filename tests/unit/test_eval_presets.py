"""The cpu presets, the context budget scope, the --dry-run plan, draft passes shared across budgets,
and one clear line for every bad value."""

from __future__ import annotations

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("wonderwords")
pytest.importorskip("punkt")

from specllama.errors import ConfigError
from specllama.eval import plan, presets, runner
from specllama.eval.runner import Column, EvalConfig

TASK, LENGTH = "niah_single_2", 1024


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))


from helpers import invoke_eval, no_model_load  # noqa: E402,F401  (a fixture)


invoke = invoke_eval


def one_error_line(res, msg: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specllama: error: ") and msg in lines[0], lines
    assert res.stdout == ""


# -- presets ----------------------------------------------------------------------------------------

def test_sample_count_puts_ten_points_outside_the_interval():
    assert presets.paired_samples_needed(0.10) == 35
    assert presets.paired_samples_needed(0.20) == 73
    assert presets.paired_samples_needed(0.25) == 93
    with pytest.raises(ValueError):
        presets.paired_samples_needed(0.01)  # fewer discordant samples than the difference itself
    for name in ("cpu", "cpu-long"):
        p = presets.get(name)
        n = p.limit * len(p.tasks)
        assert n >= presets.paired_samples_needed(0.20)
        # the half-width at q = 0.2 is below 10 points
        assert 1.96 * (100 ** 2 * 0.2 - 10 ** 2) ** 0.5 / n ** 0.5 < 10


def test_cpu_presets_are_valid_configs_with_the_hard_tasks():
    from specllama.cli.eval import build_config

    cpu = build_config({"preset": "cpu"})
    assert cpu.length == 4096 and cpu.budget_scope == "context" and cpu.limit == 19
    assert set(cpu.tasks) == {"niah_multikey_2", "niah_multiquery", "vt", "qa_2"}
    assert {"dense", "specpc", "truncate", "snapkv", "speckv", "streaming"} == set(cpu.methods)
    assert [c.label for c in cpu.columns][:3] == ["dense", "specpc@ctx128", "truncate@ctx128"]
    long = build_config({"preset": "cpu-long"})
    assert long.length == 16384 and long.budgets == (128, 512)
    # flags win over the preset
    assert build_config({"preset": "cpu", "budget_scope": "prompt", "budgets": "64,128"}).columns[1].label \
        == "specpc@64"


def test_cli_offers_every_preset():
    from specllama.cli.eval import eval_cmd

    opt = next(p for p in eval_cmd.params if p.name == "preset")
    assert list(opt.type.choices) == ["quick", "cpu", "cpu-long", "full"]
    assert set(opt.type.choices) == set(presets.PRESETS)


# -- the context budget scope -----------------------------------------------------------------------

def test_context_scope_adds_the_protected_tokens_and_keys_apart():
    c, p = Column("specpc", 64, context=True), Column("specpc", 64)
    assert c.label == "specpc@ctx64" and p.label == "specpc@64"
    assert c.tokens(protected=70) == 134 and p.tokens(protected=70) == 64
    assert c.build(protected=70).budget.tokens == 134
    assert runner.record_key("s", c, "t", "d") != runner.record_key("s", p, "t", "d")
    with pytest.raises(ConfigError, match="--budget-scope must be one of prompt, context, got 'tokens'"):
        EvalConfig(tasks=(TASK,), length=LENGTH, methods=("specpc",), budgets=(64,), limit=1, budget_scope="tokens")


@pytest.fixture()
def tiny_runtime(tiny_path, tiny_draft_path):
    from specllama.runtime import Runtime, RuntimeConfig

    with Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=1, n_batch=256,
                               n_ubatch=256)) as rt:
        yield rt


def test_budget_64_runs_in_the_context_scope_and_is_one_line_in_the_prompt_scope(tmp_path, tiny_runtime,
                                                                                  monkeypatch):
    from specllama.methods import speckv

    drafts = []
    real = speckv.greedy_continuation
    monkeypatch.setattr(speckv, "greedy_continuation", lambda *a: drafts.append(1) or real(*a))
    kw = dict(tasks=(TASK,), length=LENGTH, methods=("specpc", "speckv"), budgets=(64, 128), limit=2)
    with pytest.raises(ConfigError, match=r"specpc@64: --budget 64 is smaller than the \d+ tokens that are "
                                          r"never dropped.*--budget-scope context"):
        runner.run(EvalConfig(out=str(tmp_path / "p"), **kw), tiny_runtime, log=lambda s: None)
    res = runner.run(EvalConfig(out=str(tmp_path / "c"), budget_scope="context", **kw), tiny_runtime,
                     log=lambda s: None)
    assert res.ran == 2 * 5
    recs = {(r["index"], r["label"]): r for r in res.records}
    assert set(lb for _, lb in recs) == {"dense", "specpc@ctx64", "specpc@ctx128", "speckv@ctx64", "speckv@ctx128"}
    r64, r128 = recs[(0, "specpc@ctx64")], recs[(0, "specpc@ctx128")]
    assert r128["budget_tokens"] - r64["budget_tokens"] == 64 and r64["budget_tokens"] > 64
    assert r64["ran"] == "specpc" and r64["timings"]["n_kept"] <= r64["budget_tokens"]
    # one SpecKV lookahead answer per sample, shared by both budgets (the second counts it as reused)
    assert len(drafts) == 2
    assert recs[(0, "speckv@ctx64")]["timings"]["reused_ms"] == 0
    assert recs[(0, "speckv@ctx128")]["timings"]["reused_ms"] > 0
    # the runner keeps one sample's draft passes only
    assert 0 < len(tiny_runtime.score_cache) <= 2
    # and a rerun resumes: every context-scope job is found again
    again = runner.run(EvalConfig(out=str(tmp_path / "c"), budget_scope="context", **kw), tiny_runtime,
                       log=lambda s: None)
    assert again.ran == 0 and again.reused == 10


# -- the plan -------------------------------------------------------------------------------------

def test_plan_counts_passes_and_estimates_the_quick_preset_near_its_measured_time():
    from specllama.cli.eval import build_config

    p = plan.estimate(build_config({"preset": "quick"}))
    assert p.samples == 9 and p.jobs == 27
    assert p.full_target_passes == 9 and p.short_target_passes == 18
    assert list(p.draft_passes.values()) == [9]  # one draft pass per sample serves both budgets
    assert 10 * 60 < p.seconds < 20 * 60  # measured: 13.5 min

    cpu = plan.estimate(build_config({"preset": "cpu"}))
    assert cpu.samples == 76
    assert cpu.full_target_passes == 76 * 4  # dense, snapkv, speckv, streaming
    assert cpu.short_target_passes == 76 * 2  # specpc, truncate
    assert sorted(cpu.draft_passes.values()) == [76, 76]  # specpc's pass, speckv's lookahead
    assert cpu.seconds > 3600  # the hour cannot hold 76 dense 4K prefills (module docstring)


def test_plan_counts_one_kv_prefill_per_sample_and_kv_setting_for_every_budget():
    from specllama.cli.eval import build_config

    one = plan.estimate(build_config({"preset": "cpu"}))
    cfg = build_config({"preset": "cpu", "budgets": "64,128,256",
                        "methods": "specpc,snapkv,speckv,streaming,random"})
    three = plan.estimate(cfg)
    assert three.jobs == 76 * (1 + 3 * 5)
    # dense, snapkv, speckv, and one plain prefill for streaming and random: not one per budget
    assert three.full_target_passes == 76 * 4 == one.full_target_passes
    assert three.short_target_passes == 76 * 3  # specpc reads its kept tokens at every budget
    cols = {c.label: c for c in three.columns}
    assert cols["snapkv@ctx128"].shared_with == "snapkv@ctx64" and cols["snapkv@ctx64"].shared_with is None
    assert cols["random@ctx64"].shared_with == "streaming@ctx64"
    assert cols["speckv@ctx64"].shared_with is None  # SpecKV reads the draft's answer: its own prefill
    assert cols["snapkv@ctx128"].seconds == pytest.approx(cols["snapkv@ctx128"].decode_s)
    text = plan.describe(cfg, three)
    assert "prefills once per sample and KV setting" in text and "(prefill of snapkv@ctx64)" in text


def test_interpolation_goes_through_the_measured_points():
    assert plan.interpolate(plan.TARGET_PREFILL, 4096) == pytest.approx(56.6)
    assert 56.6 < plan.interpolate(plan.TARGET_PREFILL, 6000) < 151.8
    assert plan.interpolate(plan.TARGET_PREFILL, 1024) == pytest.approx(25.3 / 2)


def test_dry_run_prints_the_plan_and_loads_nothing(tmp_path, no_model_load):
    out = tmp_path / "o"
    res = invoke(["--preset", "cpu", "--dry-run", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert text.startswith("preset cpu: 4 task(s) x 19 sample(s) = 76 samples at 4096 tokens")
    assert "target passes: 304 over the whole prompt" in text and "152 over the kept tokens only" in text
    assert "76 x SpecPC draft pass" in text and "76 x SpecKV lookahead answer" in text
    assert "estimated time: " in text and "| specpc@ctx128 |" in text
    assert not out.exists()


@pytest.mark.parametrize("args,msg", [
    (["--preset", "cpu", "--tasks", "niah_multikey_9"], "unknown task 'niah_multikey_9'"),
    (["--preset", "cpu", "--budgets", "0"], "--budgets must be >= 1, got 0"),
    (["--preset", "cpu", "--budgets", "-64"], "--budgets must be >= 1, got -64"),
    (["--preset", "cpu", "--budgets", "64,64"], "lists a budget twice"),
    (["--preset", "cpu", "--budgets", "4096"], "--budgets 4096 is not below --length 4096"),
    (["--preset", "cpu-long", "--limit", "0"], "--limit must be >= 1, got 0"),
    (["--preset", "cpu", "--methods", "specpc,nope"], "unknown method 'nope'"),
    (["--preset", "cpu", "--tasks", "vt,vt"], "--tasks lists a task twice"),
    (["--preset", "cpu", "--length", "0"], "--length must be >= 1, got 0"),
    (["--preset", "cpu", "--budget-scope", "tokens"], "Invalid value for '--budget-scope'"),
    (["--preset", "fast"], "Invalid value for '--preset'"),
])
def test_bad_values_are_one_line(tmp_path, no_model_load, args, msg):
    res = invoke(args + ["--dry-run", "--out", str(tmp_path / "o")])
    one_error_line(res, msg)
    res = invoke(args + ["--out", str(tmp_path / "o")])  # the same without --dry-run
    one_error_line(res, msg)
