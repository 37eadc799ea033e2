"""``specllama eval --drafts``: several drafts on the same samples in one run (columns, labels,
the runtime each job runs with, dense once, resume) and its bad input."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("wonderwords")
pytest.importorskip("punkt")

from helpers import invoke_eval, no_model_load  # noqa: E402,F401 (a fixture)

from specllama import pipeline  # noqa: E402
from specllama.drafts import NamedDraft  # noqa: E402
from specllama.errors import ConfigError  # noqa: E402
from specllama.eval import runner  # noqa: E402
from specllama.eval.runner import EvalConfig  # noqa: E402

TASK, LENGTH, BUDGETS = "niah_single_2", 1024, (384, 512)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def drafts(tiny_draft_path, tiny_other_vocab_path):
    return (NamedDraft(tiny_draft_path, "same"), NamedDraft(tiny_other_vocab_path, "other"))


def config(out, **kw) -> EvalConfig:
    base = dict(tasks=(TASK,), length=LENGTH, methods=("specpc",), budgets=BUDGETS, limit=2, out=str(out))
    base.update(kw)
    return EvalConfig(**base)


def test_columns_come_once_per_draft_and_dense_once(tmp_path, drafts):
    cfg = config(tmp_path, methods=("specpc", "snapkv"), budgets=(384,), exact_draft=True, drafts=drafts)
    assert [c.label for c in cfg.columns] == [
        "dense", "specpc~same@384", "specpc~exact~same@384", "specpc~other@384", "specpc~exact~other@384",
        "snapkv@384"]
    assert cfg.draft_path(cfg.columns[3]) == drafts[1].path and cfg.draft_path(cfg.columns[0]) is None
    # one draft: the labels of a run without --drafts
    one = config(tmp_path, drafts=drafts[:1])
    assert [c.label for c in one.columns] == [c.label for c in config(tmp_path).columns]


@pytest.mark.parametrize("kw, why", [
    (dict(methods=("dense", "snapkv")), "none of the methods evaluated reads a draft"),
    (dict(twice=True), "is listed twice"),
])
def test_bad_draft_lists_are_refused(tmp_path, drafts, kw, why):
    listed = (drafts[0], NamedDraft(drafts[0].path, "again")) if kw.pop("twice", False) else drafts
    with pytest.raises(ConfigError, match=why):
        config(tmp_path, drafts=listed, **kw)


def test_each_column_runs_with_its_draft_and_one_target(tmp_path, tiny_path, drafts, monkeypatch):
    from specllama.runtime import Runtime, RuntimeConfig

    seen = []
    real = pipeline.generate

    def spy(rt, prompt, method, gen=pipeline.GenConfig(), on_text=None):
        seen.append((method.name, method.budget.tokens if method.compresses else None,
                     os.path.basename(rt.cfg.draft), id(rt.target)))
        return real(rt, prompt, method, gen, on_text)

    monkeypatch.setattr(pipeline, "generate", spy)
    cfg = config(tmp_path / "out", drafts=drafts)
    rc = RuntimeConfig(target=tiny_path, draft=drafts[0].path, n_threads=1, n_batch=256, n_ubatch=256)
    with Runtime(rc) as rt:
        res = runner.run(cfg, rt, log=lambda m: None)
        target_id = id(rt.target)
        assert rt.target.info.n_layer > 0  # the borrowed target outlives the other draft's runtime
    names = {os.path.basename(d.path) for d in drafts}
    assert len(seen) == 2 * (1 + 2 * len(BUDGETS)) and res.ran == len(seen)
    assert {s[3] for s in seen} == {target_id}  # the target is loaded once
    assert sum(s[0] == "dense" for s in seen) == 2  # dense once per sample, not once per draft
    for d in drafts:  # every budget with every draft, on both samples
        assert sorted(s[1] for s in seen if s[0] == "specpc" and s[2] == os.path.basename(d.path)) == [384, 384, 512, 512]
    assert {s[2] for s in seen if s[0] == "specpc"} == names
    recs = [json.loads(line) for line in open(tmp_path / "out" / runner.PREDICTIONS, encoding="utf-8")]
    assert {r["label"] for r in recs} == {c.label for c in cfg.columns}
    assert len({tuple(r["key"]) for r in recs}) == len(recs)  # the draft is in every record's key
    summary = json.loads((tmp_path / "out" / runner.SUMMARY).read_text())
    assert summary["config"]["drafts"] == ["same", "other"]
    assert sorted(summary["models"]["draft"]) == sorted(names)
    assert "specpc~other@512" in (tmp_path / "out" / "table.md").read_text()
    # a rerun resumes: nothing runs again
    seen.clear()
    with Runtime(rc) as rt:
        again = runner.run(cfg, rt, log=lambda m: None)
    assert seen == [] and again.reused == res.ran


def test_cli_drafts_bad_input(tmp_path, tiny_path, tiny_draft_path, no_model_load):
    out = str(tmp_path / "o")
    base = ["-m", tiny_path, "--tasks", TASK, "--length", str(LENGTH), "--budgets", "384", "--limit", "1",
            "--out", out, "--no-plot"]
    for extra, why in [
        (["-md", tiny_draft_path, "--drafts", tiny_draft_path], "give either -md or --drafts"),
        (["--drafts", f"{tiny_draft_path},{tiny_draft_path}"], "is listed twice"),
        (["--drafts", f"{tiny_draft_path},"], "has an empty entry"),
        (["--drafts", "/nonexistent/x.gguf"], "neither a file nor a known model"),
        (["--methods", "snapkv", "--drafts", tiny_draft_path], "none of the methods evaluated reads a draft"),
    ]:
        r = invoke_eval(base + extra)
        assert r.exit_code == 2, (extra, r.output)
        assert why in r.output and "Traceback" not in r.output, (extra, r.output)
    assert not os.path.exists(out)


def test_dry_run_prices_one_draft_pass_per_draft(tmp_path, tiny_path, tiny_draft_path, tiny_other_vocab_path):
    r = invoke_eval(["--preset", "quick", "--drafts", f"{tiny_draft_path},{tiny_other_vocab_path}",
                     "--out", str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "draft tiny-draft" in r.output and "draft tiny-other-vocab" in r.output
    assert "specpc~tiny-other-vocab@1024" in r.output


def test_dry_run_never_shares_a_draft_reading_kv_prefill_across_drafts(tmp_path, drafts):
    from specllama.eval.plan import estimate

    cfg = config(tmp_path, methods=("speckv", "snapkv"), budgets=(384, 512), drafts=drafts)
    shared = {c.label: c.shared_with for c in estimate(cfg).columns}
    assert shared["speckv~same@512"] == "speckv~same@384"  # one prefill per draft, for both budgets
    assert shared["speckv~other@384"] is None  # the other draft's lookahead answer differs
    assert shared["snapkv@512"] == "snapkv@384"
