"""LongBench from a local JSONL file: loading, prompts, middle cut, and a clear message without a path."""

from __future__ import annotations

import json

import pytest

from specllama.errors import SpecllamaError
from specllama.eval import longbench
from specllama.eval.sample import to_prompt


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def lb_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    long_ctx = " ".join(f"the river number {i} is green." for i in range(400))
    write_rows(d / "qasper.jsonl", [
        {"input": "What is green?", "context": "The grass is green. " * 20, "answers": ["grass"],
         "length": 80, "dataset": "qasper", "language": "en", "all_classes": None, "_id": "a"},
        {"input": "Which river?", "context": "START " + long_ctx + " END", "answers": ["river 7"],
         "length": 2400, "dataset": "qasper", "language": "en", "all_classes": None, "_id": "b"},
    ])
    write_rows(d / "trec.jsonl", [
        {"input": "Who wrote Hamlet?", "context": "Question: Where is Paris?\nType: Location",
         "answers": ["Human being"], "length": 10, "all_classes": ["Location", "Human being"], "_id": "c"},
    ])
    (d / "notes.txt").write_text("ignored")
    return d


def test_needs_a_path_with_a_clear_message():
    with pytest.raises(SpecllamaError, match="LongBench tasks need --longbench PATH"):
        longbench.load("longbench/qasper", None)
    with pytest.raises(SpecllamaError, match="unknown LongBench task 'nope'"):
        longbench.check_task("longbench/nope", "/tmp")
    with pytest.raises(SpecllamaError, match="Chinese"):
        longbench.check_task("longbench/dureader", "/tmp")
    with pytest.raises(SpecllamaError, match="not found"):
        longbench.check_task("longbench/qasper", "/nonexistent/dir")


def test_missing_dataset_file_is_refused_up_front(lb_dir):
    with pytest.raises(SpecllamaError, match="no narrativeqa.jsonl at"):
        longbench.check_task("longbench/narrativeqa", str(lb_dir))
    longbench.check_task("longbench/qasper", str(lb_dir))


def test_loads_official_jsonl(lb_dir):
    samples = longbench.load("longbench/qasper", str(lb_dir))
    assert len(samples) == 2
    s = samples[0]
    assert s.task == "longbench/qasper" and s.metric == "qa_f1" and s.max_new_tokens == 128
    assert s.outputs == ("grass",)
    head, ctx, tail = s.parts
    assert head[0].startswith("You are given a scientific article") and head[0].endswith("Article: ")
    assert ctx == ("The grass is green. " * 20, True)
    assert tail[0].endswith("Question: What is green?\n\nAnswer:") and not tail[1]
    assert longbench.load("longbench/qasper", str(lb_dir), limit=1) == samples[:1]
    # one file works as well as a directory
    assert longbench.load("longbench/qasper", str(lb_dir / "qasper.jsonl")) == samples
    trec = longbench.load("longbench/trec", str(lb_dir))[0]
    assert trec.meta["first_line"] and trec.meta["raw"] and trec.meta["all_classes"] == ["Location", "Human being"]
    assert longbench.expand(["longbench", "vt"], str(lb_dir)) == ["longbench/qasper", "longbench/trec", "vt"]


def test_bad_file_is_a_clear_error(tmp_path):
    (tmp_path / "qasper.jsonl").write_text('{"input": "x"}\nnot json\n')
    with pytest.raises(SpecllamaError, match="expected the fields"):
        longbench.load("longbench/qasper", str(tmp_path))


def test_long_context_cut_in_the_middle(lb_dir, tiny_path):
    from specllama.engine.model import Model

    with Model(tiny_path) as m:
        short, long_ = longbench.load("longbench/qasper", str(lb_dir))
        kept = longbench.fit_length(m, short, 2048)
        assert kept.context == short.context and "truncated" not in kept.meta
        assert kept.length == to_prompt(m, short).n + short.max_new_tokens
        cut = longbench.fit_length(m, long_, 1024)
        assert cut.meta["truncated"] > 1024
        assert 1000 <= cut.length <= 1024
        assert to_prompt(m, cut).n + cut.max_new_tokens == cut.length
        assert cut.context.startswith("START") and cut.context.endswith("END")
        assert len(cut.context) < len(long_.context)
        raw = to_prompt(m, longbench.load("longbench/trec", str(lb_dir))[0])
        assert m.tokenize("<|im_start|>", parse_special=True)[0] not in raw.tokens  # no chat template
