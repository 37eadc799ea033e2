"""Metrics against hand-made cases (RULER's string matches, LongBench's English metrics)."""

from __future__ import annotations

import pytest

from specllama.eval.metrics import (
    METRICS,
    code_sim,
    count,
    normalize_answer,
    postprocess,
    qa_f1,
    retrieval,
    rouge_l,
    score,
    string_match_all,
    string_match_part,
)


def test_postprocess_strips_and_maps_control_characters():
    assert postprocess("  7654321.\x00tail\t ") == "7654321.\ntail"
    assert postprocess(None) == ""


@pytest.mark.parametrize("pred,refs,want", [
    ("The numbers are 1234567 and 7654321.", ["1234567", "7654321"], 100.0),
    ("The numbers are 1234567.", ["1234567", "7654321"], 50.0),
    ("nothing here", ["1234567", "7654321", "1111111", "2222222"], 0.0),
    ("VAR ABCDE, VAR fghij", ["ABCDE", "FGHIJ", "KLMNO"], pytest.approx(200 / 3)),  # case-insensitive
    ("", ["x"], 0.0),
])
def test_string_match_all(pred, refs, want):
    assert string_match_all(pred, refs) == want


@pytest.mark.parametrize("pred,refs,want", [
    ("It was Denver Broncos.", ["Denver Broncos", "Broncos", "the Broncos"], 100.0),
    ("It was the broncos", ["Denver Broncos", "Carolina"], 0.0),
    ("CAROLINA panthers", ["Denver Broncos", "Carolina"], 100.0),
])
def test_string_match_part(pred, refs, want):
    assert string_match_part(pred, refs) == want


def test_score_dispatches_and_cleans():
    assert score("string_match_all", " 1234567\n", ["1234567"]) == 100.0
    assert score("string_match_part", "\x01Paris", ["paris", "France"]) == 100.0
    with pytest.raises(KeyError):
        score("bleu", "a", ["a"])
    assert set(METRICS) >= {"string_match_all", "string_match_part", "qa_f1", "rouge"}


def test_qa_f1():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert qa_f1("the Eiffel Tower", "Eiffel Tower") == 1.0
    assert qa_f1("Eiffel", "Eiffel Tower") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert qa_f1("Louvre", "Eiffel Tower") == 0.0
    assert score("qa_f1", "Eiffel", ["Louvre", "Eiffel Tower"]) == pytest.approx(100 * 2 / 3)


def test_rouge_l():
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("a x b y", "a b") == pytest.approx(2 * 0.5 * 1.0 / 1.5)  # LCS 2
    assert rouge_l("", "a") == 0.0


def test_longbench_classification_count_retrieval_code():
    classes = ["Location", "Human being", "Description"]
    assert score("classification", "Type: Location", ["Location"], all_classes=classes) == 100.0
    assert score("classification", "Location or Human being", ["Location"], all_classes=classes) == 50.0
    assert score("classification", "no idea", ["Location"], all_classes=classes) == 0.0
    assert count("There are 12 unique paragraphs, not 13", "12") == 0.5
    assert retrieval("Paragraph 7", "Paragraph 7") == 1.0
    assert retrieval("Paragraph 3", "Paragraph 7") == 0.0
    assert code_sim("```\nreturn x + 1\n", "return x + 1") == 1.0
    assert 0.0 < code_sim("return x", "return x + 1") < 1.0
    # few-shot tasks score the first line only
    assert score("qa_f1", "Paris\nQuestion: what", ["Paris"], first_line=True) == 100.0
    assert score("qa_f1", "Paris\nQuestion: what", ["Paris"]) < 100.0
