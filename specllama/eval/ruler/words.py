"""Aggregation tasks: common words (CWE) and frequent coded words (FWE).

Definitions follow RULER (``common_words_extraction.py``, ``freq_words_extraction.py``,
NVIDIA/RULER, Apache-2.0). CWE: a numbered list where ``num_cw`` words appear ``freq_cw`` times and
the others ``freq_ucw`` times (6 and 1 below 4K tokens), preceded by a solved example; the answer is
the common words. FWE: random 6-letter words drawn with Zipf frequencies (``alpha``), the most
frequent one replaced by dots; the answer is the three next most frequent.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from .. import data
from .base import GenEnv, Rendered
from .templates import COMMON_WORDS, FREQ_WORDS


def numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


@dataclass(frozen=True)
class CWEDraw:
    words: tuple[str, ...]     # a random order of the vocabulary; the first num_cw are common
    example: str               # the solved example, ready to prepend
    shuffle_seed: int
    small: bool                # below 4K tokens: RULER's smaller repeat counts


@dataclass(frozen=True)
class CommonWords:
    freq_cw: int = 30
    freq_ucw: int = 3
    num_cw: int = 10
    max_new_tokens: int = COMMON_WORDS.max_new_tokens

    def _list(self, words: list[str], common_repeats: int, uncommon_repeats: int, rng: random.Random) -> list[str]:
        common, uncommon = words[:self.num_cw], words[self.num_cw:]
        out = common * common_repeats + uncommon * uncommon_repeats
        rng.shuffle(out)
        return out

    def draw(self, rng: random.Random, env: GenEnv) -> CWEDraw:
        vocab = data.common_words()
        small = env.length < 4096
        n_ex, cr, ucr = (20, 3, 1) if small else (40, 10, 3)
        ex_words = rng.sample(vocab, n_ex)
        ex_list = self._list(ex_words, cr, ucr, rng)
        head, tail, prefix = COMMON_WORDS.render(query="")
        example = head + numbered(ex_list) + tail + prefix + numbered(ex_words[:self.num_cw]) + "\n"
        words = tuple(rng.sample(vocab, len(vocab)))
        return CWEDraw(words, example, rng.getrandbits(64), small)

    def sizes(self, draw: CWEDraw, env: GenEnv) -> tuple[int, int]:
        return self.num_cw + 1, len(draw.words)

    def render(self, d: CWEDraw, size: int) -> Rendered:
        cr, ucr = (6, 1) if d.small else (self.freq_cw, self.freq_ucw)
        lst = self._list(list(d.words[:size]), cr, ucr, random.Random(d.shuffle_seed))
        head, tail, prefix = COMMON_WORDS.render(query="")
        return Rendered(parts=((d.example, True), (head, False), (numbered(lst), True), (tail, False)),
                        answer_prefix=prefix, outputs=d.words[:self.num_cw], context_part=2)


def zeta(s: float, n: int = 1000) -> float:
    """Riemann zeta for ``s > 1`` (Euler-Maclaurin tail; error far below 1e-9 for s >= 1.5)."""
    head = sum(k ** -s for k in range(1, n))
    return head + n ** (1 - s) / (s - 1) + 0.5 * n ** -s + s * n ** (-s - 1) / 12


@dataclass(frozen=True)
class FWEDraw:
    vocab: tuple[str, ...]  # ranked; vocab[0] is the dots
    shuffle_seed: int


@dataclass(frozen=True)
class FreqWords:
    alpha: float = 2.0
    coded_wordlen: int = 6
    max_new_tokens: int = FREQ_WORDS.max_new_tokens

    def draw(self, rng: random.Random, env: GenEnv) -> FWEDraw:
        size = max(5, env.length // 50)  # RULER: vocab_size = max_seq_length // 50
        vocab: set[str] = set()
        while len(vocab) < size:
            vocab.add("".join(rng.choices(string.ascii_lowercase, k=self.coded_wordlen)))
        ranked = sorted(vocab)
        rng.shuffle(ranked)
        ranked[0] = "..."  # the top-ranked word is noise
        return FWEDraw(tuple(ranked), rng.getrandbits(64))

    def counts(self, n_words: int, n_vocab: int) -> list[int]:
        z = zeta(self.alpha)
        return [int(n_words * k ** -self.alpha / z) for k in range(1, n_vocab + 1)]

    def sizes(self, draw: FWEDraw, env: GenEnv) -> tuple[int, int]:
        return 50, 10_000_000

    def render(self, d: FWEDraw, size: int) -> Rendered:
        words = [w for w, c in zip(d.vocab, self.counts(size, len(d.vocab))) for _ in range(c)]
        random.Random(d.shuffle_seed).shuffle(words)
        head, tail, prefix = FREQ_WORDS.render(query="")
        return Rendered(parts=((head, False), (" ".join(words), True), (tail, False)), answer_prefix=prefix,
                        outputs=d.vocab[1:4], context_part=1)
