"""Needle-in-a-haystack tasks (RULER's ``niah.py``: 8 of the 13 tasks).

Definitions follow RULER (NVIDIA/RULER, Apache-2.0): needles ``One of the special magic
{type_needle_v} for {key} is: {value}.`` are hidden in a haystack of Paul Graham essays (``essay``:
inserted between sentences at depths drawn from 40 evenly spaced percentages), of one repeated
sentence (``repeat``) or of other needles (``needle``), at uniformly random positions. ``num_k``
keys each get ``num_v`` values; ``num_q`` keys are asked for and all their values are expected.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from .. import data
from .base import GenEnv, Rendered
from .templates import NIAH, Template, singular

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
REPEAT = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
DEPTHS = tuple(round(100 * i / 39) for i in range(40))  # np.round(np.linspace(0, 100, 40))
HAYSTACKS = ("essay", "repeat", "needle")
NEEDLE_TYPES = ("numbers", "words", "uuids")


def random_value(rng: random.Random, kind: str) -> str:
    """A 7-digit number, an ``adjective-noun`` word or a UUID4, as RULER draws them."""
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        adjs, nouns = data.key_word_parts()
        return f"{rng.choice(adjs)}-{rng.choice(nouns)}"
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class NiahDraw:
    needles: tuple[str, ...]
    depths: tuple[float, ...]  # [len(needles)] in [0, 1], paired with needles in order
    query: str
    answers: tuple[str, ...]
    distractor_seed: int


@dataclass(frozen=True)
class Niah:
    """One NIAH configuration (RULER's ``synthetic.yaml`` arguments)."""

    haystack: str = "essay"
    type_k: str = "words"
    type_v: str = "numbers"
    num_k: int = 1
    num_v: int = 1
    num_q: int = 1
    max_new_tokens: int = NIAH.max_new_tokens

    def __post_init__(self):
        if self.haystack not in HAYSTACKS or self.type_k not in NEEDLE_TYPES or self.type_v not in NEEDLE_TYPES:
            raise ValueError(f"bad NIAH configuration {self}")
        object.__setattr__(self, "num_k", max(self.num_k, self.num_q))

    @property
    def template(self) -> Template:
        return singular(NIAH) if self.num_q * self.num_v == 1 else NIAH

    @property
    def shown_type(self) -> str:
        return self.type_v[:-1] if self.num_q * self.num_v == 1 else self.type_v

    def draw(self, rng: random.Random, env: GenEnv) -> NiahDraw:
        keys, values, needles = [], [], []
        for _ in range(self.num_k):
            keys.append(random_value(rng, self.type_k))
            vals = [random_value(rng, self.type_v) for _ in range(self.num_v)]
            values.append(vals)
            needles += [NEEDLE.format(type_needle_v=self.type_v, key=keys[-1], value=v) for v in vals]
        rng.shuffle(needles)
        if self.haystack == "essay":
            depths = sorted(d / 100 for d in rng.sample(DEPTHS, len(needles)))
        else:
            depths = sorted(rng.random() for _ in needles)
        picked = rng.sample(range(self.num_k), self.num_q)
        queries = [keys[i] for i in picked]
        answers = tuple(v for i in picked for v in values[i])
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
        return NiahDraw(tuple(needles), tuple(depths), query, answers, rng.getrandbits(64))

    def sizes(self, draw: NiahDraw, env: GenEnv) -> tuple[int, int]:
        if self.haystack == "essay":
            return 1, len(data.essay_words())
        return 1, 1_000_000

    def render(self, d: NiahDraw, size: int) -> Rendered:
        if self.haystack == "essay":
            sents = data.sentences(" ".join(data.essay_words()[:size]).strip())
            cuts = [int(len(sents) * depth) for depth in d.depths]
            pieces, last = [], 0
            for cut, needle in zip(cuts, d.needles):
                pieces.append(" ".join(sents[last:cut]))
                pieces.append(needle)
                last = cut
            pieces.append(" ".join(sents[last:]))
            context = " ".join(pieces)
        else:
            if self.haystack == "repeat":
                sentences = [REPEAT] * size
            else:
                rng = random.Random(d.distractor_seed)
                sentences = [NEEDLE.format(type_needle_v=self.type_v, key=random_value(rng, self.type_k),
                                           value=random_value(rng, self.type_v)) for _ in range(size)]
            # insert from the deepest so earlier indices stay valid, as RULER does
            for depth, needle in sorted(zip(d.depths, d.needles), reverse=True):
                sentences.insert(int(depth * size), needle)
            context = "\n".join(sentences)
        head, tail, prefix = self.template.render(type_needle_v=self.shown_type, query=d.query)
        return Rendered(parts=((head, False), (context, True), (tail, False)), answer_prefix=prefix,
                        outputs=d.answers, evidence=d.needles, depths=d.depths, context_part=1)
