"""Scores, per sample, on a 0-100 scale.

RULER (NVIDIA/RULER ``scripts/eval/synthetic/constants.py``, Apache-2.0): predictions are stripped
and control characters become newlines; ``string_match_all`` is the fraction of references found
(case-insensitive substring), ``string_match_part`` is 100 if any reference is found.

LongBench (THUDM/LongBench ``metrics.py`` and ``eval.py``, MIT), English metrics: the score is the
best over the references. Two are re-implemented without their packages: ROUGE-L is the
longest-common-subsequence F1 over whitespace tokens (the ``rouge`` package's ``rouge-l`` f, which
LongBench uses, is this on single-sentence inputs), and ``code_sim`` uses ``difflib``'s ratio in
place of ``fuzzywuzzy``'s ``fuzz.ratio`` (both are 2*matches/total; they differ slightly on ties).
"""

from __future__ import annotations

import difflib
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess(pred: str | None) -> str:
    """RULER's prediction clean-up: strip, control characters to newlines, strip again."""
    if pred is None:
        return ""
    return _CONTROL.sub("\n", pred.strip()).strip()


def string_match_all(pred: str, refs: Sequence[str], **_) -> float:
    """100 x the fraction of ``refs`` contained in ``pred`` (case-insensitive)."""
    if not refs:
        return 0.0
    p = pred.lower()
    return 100.0 * sum(r.lower() in p for r in refs) / len(refs)


def string_match_part(pred: str, refs: Sequence[str], **_) -> float:
    """100 if any of ``refs`` is contained in ``pred`` (case-insensitive), else 0."""
    p = pred.lower()
    return 100.0 if any(r.lower() in p for r in refs) else 0.0


# -- LongBench ------------------------------------------------------------------------------------

def normalize_answer(s: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalisation)."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _f1(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_f1(pred: str, ref: str, **_) -> float:
    return _f1(normalize_answer(pred).split(), normalize_answer(ref).split())


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str, **_) -> float:
    """ROUGE-L F1 over whitespace tokens (0 when either side is empty)."""
    p, r = pred.split(), ref.split()
    if not p or not r:
        return 0.0
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def classification(pred: str, ref: str, all_classes: Sequence[str] = (), **_) -> float:
    """1/k when the reference is among the k class names found in ``pred`` (names that are
    substrings of the reference do not count). LongBench's fuzzy fallback for no match is
    unreachable in its code (``em_match_list != 0`` is always true), so no match scores 0."""
    matches = [c for c in all_classes if c in pred]
    matches = [m for m in matches if not (m in ref and m != ref)]
    return 1.0 / len(matches) if ref in matches else 0.0


def retrieval(pred: str, ref: str, **_) -> float:
    found = re.findall(r"Paragraph (\d+)", ref)
    numbers = re.findall(r"\d+", pred)
    if not found or not numbers:
        return 0.0
    return sum(n == found[0] for n in numbers) / len(numbers)


def count(pred: str, ref: str, **_) -> float:
    numbers = re.findall(r"\d+", pred)
    return sum(n == str(ref) for n in numbers) / len(numbers) if numbers else 0.0


def code_sim(pred: str, ref: str, **_) -> float:
    line = next((ln for ln in pred.lstrip("\n").split("\n")
                 if "`" not in ln and "#" not in ln and "//" not in ln), "")
    return round(100 * difflib.SequenceMatcher(None, line, ref).ratio()) / 100


PER_REFERENCE: dict[str, Callable[..., float]] = {
    "qa_f1": qa_f1, "rouge": rouge_l, "classification": classification, "retrieval": retrieval,
    "count": count, "code_sim": code_sim,
}
ALL_REFERENCES: dict[str, Callable[..., float]] = {
    "string_match_all": string_match_all, "string_match_part": string_match_part,
}
METRICS = tuple(ALL_REFERENCES) + tuple(PER_REFERENCE)


def score(metric: str, pred: str, refs: Sequence[str], first_line: bool = False,
          all_classes: Sequence[str] = ()) -> float:
    """The 0-100 score of ``pred`` against ``refs`` under ``metric``.

    RULER metrics clean the prediction with :func:`postprocess`; LongBench metrics read it as is,
    and ``first_line`` keeps only its first line (LongBench's few-shot tasks).
    """
    if metric in ALL_REFERENCES:
        return ALL_REFERENCES[metric](postprocess(pred), refs)
    pred = pred or ""
    if first_line:
        pred = pred.lstrip("\n").split("\n")[0]
    fn = PER_REFERENCE[metric]
    return 100.0 * max((fn(pred, r, all_classes=all_classes) for r in refs), default=0.0)
