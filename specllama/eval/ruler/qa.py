"""Question answering over real documents with distractors (RULER's ``qa.py``, Apache-2.0).

``qa_1`` uses SQuAD, ``qa_2`` HotpotQA. The gold paragraph(s) of a question are mixed with the
other paragraphs of its article (SQuAD) and random paragraphs until the length is reached, then
shuffled and numbered ``Document i:``. RULER takes questions in file order; here sample ``i`` takes
the ``i``-th question of a seeded permutation, so seeds give different question sets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from .. import data
from .base import GenEnv, Rendered
from .fit import TOLERANCE
from .templates import QA as T

DOCUMENT = "Document {i}:\n{document}"
SOURCES = {"squad": data.squad, "hotpotqa": data.hotpotqa}
REFINE_TRIES = 400


@lru_cache(maxsize=8)
def question_order(dataset: str, seed: int) -> tuple[int, ...]:
    qas, _ = SOURCES[dataset]()
    order = list(range(len(qas)))
    random.Random(f"specllama-qa/{dataset}/{seed}").shuffle(order)
    return tuple(order)


@dataclass(frozen=True)
class QADraw:
    query: str
    answers: tuple[str, ...]
    gold: tuple[int, ...]
    order: tuple[int, ...]  # candidate doc ids: gold, then same-article, then random ones
    place_seed: int


@dataclass(frozen=True)
class QA:
    dataset: str = "squad"
    max_new_tokens: int = T.max_new_tokens

    def draw(self, rng: random.Random, env: GenEnv) -> QADraw:
        qas, docs = SOURCES[self.dataset]()
        order = question_order(self.dataset, env.seed)
        q = qas[order[env.index % len(order)]]
        gold = list(q["context"])
        more = [i for i in q.get("more_context", []) if i not in gold]
        rng.shuffle(more)
        taken = set(gold) | set(more)
        cap = min(len(docs), env.length // 8 + 64)  # far more than fit: a document is > 8 tokens
        extra = [i for i in rng.sample(range(len(docs)), min(len(docs), cap + len(taken))) if i not in taken]
        return QADraw(q["query"], tuple(q["outputs"]), tuple(gold), tuple(gold + more + extra),
                      rng.getrandbits(64))

    def sizes(self, draw: QADraw, env: GenEnv) -> tuple[int, int]:
        return len(draw.gold), len(draw.order)

    def _render_docs(self, d: QADraw, ids: list[int]) -> Rendered:
        _, docs = SOURCES[self.dataset]()
        ids = list(ids)
        random.Random(d.place_seed).shuffle(ids)
        context = "\n\n".join(DOCUMENT.format(i=i + 1, document=docs[j]) for i, j in enumerate(ids))
        head, tail, prefix = T.render(query=d.query)
        gold_pos = sorted(ids.index(g) for g in d.gold)
        return Rendered(parts=((head, False), (context, True), (tail, False)), answer_prefix=prefix,
                        outputs=d.answers,
                        evidence=tuple(DOCUMENT.format(i=p + 1, document=docs[ids[p]]) for p in gold_pos),
                        depths=tuple(p / len(ids) for p in gold_pos), context_part=1)

    def render(self, d: QADraw, size: int) -> Rendered:
        return self._render_docs(d, list(d.order[:size]))

    def refine(self, d: QADraw, size: int, measure: Callable[[Rendered], int], target: int) -> tuple[Rendered, int]:
        """Documents come whole, so the last one rarely ends at the length: add later candidates
        that still fit, in candidate order, until the sample is within the tolerance."""
        ids = list(d.order[:size])
        best = self._render_docs(d, ids)
        best_m = measure(best)
        for j in d.order[size + 1:size + 1 + REFINE_TRIES]:
            if best_m >= (1 - TOLERANCE / 2) * target:
                break
            r = self._render_docs(d, ids + [j])
            m = measure(r)
            if m <= target:
                ids.append(j)
                best, best_m = r, m
        return best, best_m
