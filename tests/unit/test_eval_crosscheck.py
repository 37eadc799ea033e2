"""The RULER cross-check: RULER's own scorer (read from its files) against specllama's on hand-made
predictions, the GGUF tokenizer wrapper and shims its scripts run with, and bad arguments."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("yaml")
pytest.importorskip("punkt")

from specllama.errors import ConfigError
from specllama.eval import crosscheck, rulerref
from specllama.eval.crosscheck import Generated

# (task, prediction, references, expected 0-100 score)
HAND_MADE = [
    ("niah_single_2", "The special magic number is 1234567.", ["1234567"], 100.0),
    ("niah_single_2", "\x01 1234567\n", ["1234567"], 100.0),
    ("niah_single_2", "123456", ["1234567"], 0.0),
    ("niah_single_2", None, ["1234567"], 0.0),
    ("niah_single_2", "", ["1234567"], 0.0),
    ("niah_multivalue", "1111111, 2222222 and 4444444", ["1111111", "2222222", "3333333", "4444444"], 75.0),
    ("niah_multikey_3", "A0B1-C2", ["a0b1-c2"], 100.0),  # case-insensitive
    ("vt", "ABCDE, FGHIJ", ["ABCDE", "FGHIJ", "KLMNO", "PQRST", "UVWXY"], 40.0),
    ("vt", "  \t abcde fghij klmno pqrst uvwxy \x7f", ["ABCDE", "FGHIJ", "KLMNO", "PQRST", "UVWXY"], 100.0),
    ("cwe", "apple banana", ["apple", "banana", "cherry", "date"], 50.0),
    ("fwe", "qwerty", ["qwerty", "asdfgh", "zxcvbn"], 100 / 3),
    ("qa_1", "Paris, France", ["Paris", "Lyon"], 100.0),  # any reference counts
    ("qa_2", "it was Lyon", ["Paris", "lyon"], 100.0),
    ("qa_2", "Marseille", ["Paris", "Lyon"], 0.0),
]


@pytest.mark.parametrize("task,pred,refs,expected", HAND_MADE)
def test_scorers_agree_on_hand_made_predictions(task, pred, refs, expected):
    ours = crosscheck.specllama_score(task, pred, refs)
    theirs = rulerref.ruler_score(task, pred, refs)
    assert ours == pytest.approx(expected)
    assert theirs == pytest.approx(expected)


def test_ruler_scorer_is_read_from_its_files():
    post, metrics = rulerref.scorer()
    assert post("  a\x02b  ", {}) == "a\nb" and post(None, {}) == ""
    assert set(metrics) == {"niah", "variable_tracking", "common_words_extraction", "freq_words_extraction", "qa"}
    assert rulerref.task_config("vt")["task"] == "variable_tracking"
    assert rulerref.task_config("niah_multikey_3")["args"]["type_needle_k"] == "uuids"


def test_compare_scores_reports_every_disagreement():
    samples = [Generated("text 1234567", ("1234567",), 100), Generated("VAR ABCDE = 5", ("ABCDE", "FGHIJ"), 100)]
    means, bad = crosscheck.compare_scores("vt", samples)
    assert bad == [] and means["reference"] == (100.0, 100.0) and means["empty"] == (0.0, 0.0)
    assert means["half of the references"] == (25.0, 25.0)  # 0 (a cut number) and 50 (1 of 2)
    # a scorer that ignores the prediction disagrees on every wrong one
    means, bad = crosscheck.compare_scores("vt", samples, ours=lambda *a: 100.0)
    assert len(bad) == 2 * 4 and all("specllama 100.0, RULER " in b for b in bad)


def test_masked_question_line_uses_the_tasks_own_query():
    icl = "Question: Find all variables that are assigned the value 11111 in the text above. Answer: ..."
    text = icl + "\n\nVAR ABCDE = 22222\nQuestion: Find all variables that are assigned the value 22222 in the text above."
    assert crosscheck._masked_line(text, "variable_tracking", -1) == \
        "Question: Find all variables that are assigned the value {query} in the text above."


def test_gguf_tokenizer_is_the_vocab_only_target(tiny_path):
    from specllama.engine.model import Model

    tok = rulerref.GGUFTokenizer(tiny_path)
    with Model(tiny_path) as full:
        text = "The grass is green. VAR ABCDE = 12345"
        assert tok.text_to_tokens(text) == full.tokenize(text, add_special=False, parse_special=False).tolist()
    assert tok.tokens_to_text(tok.text_to_tokens("green grass")) == "green grass"
    tok.model.close()


def test_shims_give_ruler_scripts_the_gguf_tokenizer_and_punkt(tiny_path, monkeypatch):
    for name in ("long_context_eval.data.tokenizer", "tokenizer", "nltk", "nltk.tokenize"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # restored after the test
    rulerref._install_shims(tiny_path)
    from long_context_eval.data.tokenizer import select_tokenizer
    from nltk.tokenize import sent_tokenize

    tok = select_tokenizer("hf", tiny_path)
    assert isinstance(tok, rulerref.GGUFTokenizer) and len(tok.text_to_tokens("grass")) > 0
    assert sent_tokenize("One. Two words here. Three.") == ["One.", "Two words here.", "Three."]
    tok.model.close()


@pytest.mark.parametrize("tasks,length,n,msg", [
    (["qa_1"], 4096, 5, "the cross-check covers"),
    (["nope"], 4096, 5, "got 'nope'"),
    (["vt"], 0, 5, "--length must be >= 1, got 0"),
    (["vt"], 4096, 0, "-n must be >= 1, got 0"),
])
def test_bad_arguments_are_one_line(tasks, length, n, msg, capsys):
    with pytest.raises(ConfigError, match=msg):
        crosscheck.check_args(tasks, length, n)
    argv = ["--tasks", ",".join(tasks), "--length", str(length), "-n", str(n)]
    assert crosscheck.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("specllama: error: ") and msg in err[0]


def test_unknown_ruler_task_is_a_clear_error():
    with pytest.raises(rulerref.RulerError, match="RULER has no task 'niah_single_9'"):
        rulerref.task_config("niah_single_9")
