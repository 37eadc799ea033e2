"""RULER on the real default pair: lengths in the real target tokenizer, and one short eval."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("wonderwords")
pytest.importorskip("punkt")

from specllama.eval.ruler import generate_sample, task_names
from specllama.eval.sample import to_prompt

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def target(real_pair):
    from specllama.engine.model import Model

    m = Model(real_pair[0], role="target")
    yield m
    m.close()


@pytest.mark.parametrize("length", [4096, 16384])
def test_every_task_within_two_percent_in_target_tokens(target, length):
    for task in task_names():
        s = generate_sample(task, target, length, 42, 0)
        n = to_prompt(target, s).n + s.max_new_tokens
        assert n == s.length and 0.98 * length <= n <= length, (task, n)


def test_short_real_eval_finds_the_needle(tmp_path, real_pair, threads, monkeypatch):
    """Dense at 1K tokens on one NIAH sample through the runner: the chat-templated prompt with
    RULER's answer prefix gets the needle from the 1.5B target (about 15 s on 2 cores)."""
    from specllama.eval import runner
    from specllama.runtime import Runtime, RuntimeConfig

    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))
    cfg = runner.EvalConfig(tasks=("niah_single_2",), length=1024, methods=("dense",), budgets=(),
                            limit=1, out=str(tmp_path / "out"), plot=False)
    with Runtime(RuntimeConfig(target=real_pair[0], n_threads=threads)) as rt:
        res = runner.run(cfg, rt, log=lambda s: None)
    recs = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and recs[0]["score"] == 100.0, recs[0]["pred"]
    assert res.summary["average"]["dense"] == 100.0
