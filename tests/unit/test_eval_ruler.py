"""RULER generators: determinism under a seed, answers at their stated depth, length within 2%."""

from __future__ import annotations

import re
from collections import Counter

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("wonderwords")
pytest.importorskip("punkt")

from specllama.eval.data import DataError
from specllama.eval.ruler import TASKS, generate_sample, task_names
from specllama.eval.ruler.fit import fit_size
from specllama.eval.sample import Sample, to_prompt

LENGTH = 8192  # the tiny tokenizer spells most words letter by letter: 8K holds every task
ALL = task_names()


@pytest.fixture(scope="module")
def model(tiny_path):
    from specllama.engine.model import Model

    m = Model(tiny_path, role="target")
    yield m
    m.close()


@pytest.fixture(scope="module")
def samples(model):
    return {t: generate_sample(t, model, LENGTH, 42, 0) for t in ALL}


def test_thirteen_tasks():
    assert len(ALL) == 13
    assert set(ALL) == {"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1",
                        "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery",
                        "vt", "cwe", "fwe", "qa_1", "qa_2"}
    assert {TASKS[t].metric for t in ALL} == {"string_match_all", "string_match_part"}
    assert TASKS["qa_1"].metric == TASKS["qa_2"].metric == "string_match_part"


@pytest.mark.parametrize("task", ALL)
def test_deterministic_under_seed(model, samples, task):
    again = generate_sample(task, model, LENGTH, 42, 0)
    assert again == samples[task]
    assert again.to_dict() == samples[task].to_dict()
    other = generate_sample(task, model, LENGTH, 43, 0)
    assert other.context != samples[task].context or other.outputs != samples[task].outputs
    nxt = generate_sample(task, model, LENGTH, 42, 1)
    assert nxt.context != samples[task].context


@pytest.mark.parametrize("task", ALL)
def test_length_within_two_percent(model, samples, task):
    s = samples[task]
    measured = to_prompt(model, s).n + s.max_new_tokens
    assert measured == s.length
    assert 0.98 * LENGTH <= s.length <= LENGTH


@pytest.mark.parametrize("task", [t for t in ALL if t.startswith("niah") or t == "vt"])
def test_evidence_at_stated_depth(samples, task):
    s = samples[task]
    assert s.evidence and len(s.evidence) == len(s.depths)
    ctx = s.context
    for ev, depth in zip(s.evidence, s.depths):
        assert ev in ctx
        assert abs(ctx.index(ev) / len(ctx) - depth) < 0.05, (ev, depth)
    for ans in s.outputs:
        assert ans in ctx
        # every expected answer sits inside an evidence text
        assert any(ans in ev for ev in s.evidence)


@pytest.mark.parametrize("task", ["qa_1", "qa_2"])
def test_gold_documents_at_stated_depth(samples, task):
    s = samples[task]
    n_docs = len(re.findall(r"(?:^|\n\n)Document \d+:\n", s.context))
    assert n_docs > len(s.evidence) >= 1
    for ev, depth in zip(s.evidence, s.depths):
        assert ev in s.context
        k = int(re.match(r"Document (\d+):", ev).group(1))
        assert k - 1 == round(depth * n_docs)
    # the reference answer is in a gold document
    assert any(any(a in ev for a in s.outputs) for ev in s.evidence)


def test_niah_needle_counts_and_question(samples):
    assert len(samples["niah_multikey_1"].evidence) == 4 and len(samples["niah_multikey_1"].outputs) == 1
    assert len(samples["niah_multivalue"].outputs) == 4
    mq = samples["niah_multiquery"]
    assert len(mq.outputs) == 4 and ", and " in mq.parts[2][0]
    single = samples["niah_single_2"]
    assert single.parts[0][0].startswith("A special magic number is hidden")
    assert single.answer_prefix.endswith("mentioned in the provided text is")
    assert re.fullmatch(r"\d{7}", single.outputs[0])
    assert re.fullmatch(r"[0-9a-f-]{36}", samples["niah_single_3"].outputs[0])
    assert samples["niah_multikey_3"].context.count("One of the special magic uuids for") > 10


def test_protected_and_compressible_parts(model, samples):
    s = samples["niah_single_2"]
    p = to_prompt(model, s)
    assert [c for _, c in s.parts] == [False, True, False]
    # the question and answer prefix are protected; most tokens are compressible
    assert p.protected[-5:].all()
    assert p.n_protected < 0.1 * p.n
    vt = samples["vt"]
    assert [c for _, c in vt.parts] == [True, False, True, False]  # one-shot example is context
    assert len(vt.outputs) == 5 and all(len(o) == 5 for o in vt.outputs)
    assert re.search(r"they are: (?: [A-Z]{3}){5}\n\n$", vt.parts[0][0])  # solved example, 3-letter names
    assert not any(o in vt.parts[0][0] for o in vt.outputs)


def test_cwe_answer_is_the_common_words(samples):
    s = samples["cwe"]
    words = re.findall(r"\d+\. (\S+)", s.context)
    counts = Counter(words)
    assert len(s.outputs) == 10
    top = {w for w, _ in counts.most_common(10)}
    assert top == set(s.outputs)
    assert min(counts[w] for w in s.outputs) > max(c for w, c in counts.items() if w not in s.outputs)


def test_fwe_answer_is_ranks_two_to_four(samples):
    s = samples["fwe"]
    counts = Counter(s.context.split())
    ranked = [w for w, _ in counts.most_common()]
    assert ranked[0] == "..."
    assert ranked[1:4] == list(s.outputs)


def test_sample_round_trips_through_json(samples):
    for s in samples.values():
        assert Sample.from_dict(s.to_dict()) == s


def test_fit_size_finds_largest_fitting():
    assert fit_size(lambda n: 10 + 3 * n, 1000, 1, 10**6, "x") == (330, 1000)
    assert fit_size(lambda n: 10 + 7 * n, 1000, 1, 10**6, "x") == (141, 997)
    assert fit_size(lambda n: 10 + 3 * n, 1000, 1, 50, "x") == (50, 160)
    with pytest.raises(DataError, match="too short"):
        fit_size(lambda n: 2000 + n, 1000, 1, 10, "x")


def test_too_short_length_is_a_clear_error(model):
    with pytest.raises(DataError, match="--length 300 is too short for qa_2"):
        generate_sample("qa_2", model, 300, 42, 0)
