"""Variable tracking (RULER's ``variable_tracking.py``, Apache-2.0).

A chain ``VAR A = 12345``, ``VAR B = VAR A``... of ``num_hops`` assignments is hidden at random
positions in repeated noise; the model names every variable that ends up holding the value. As in
RULER, a one-shot example (3-letter names, sized to 500 tokens) precedes the task; here it is a
compressible part of the user message, since it is context rather than instruction.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from .base import GenEnv, Rendered
from .fit import fit_size
from .templates import VARIABLE_TRACKING as T

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"
ICL_LENGTH = 500


@dataclass(frozen=True)
class Chain:
    names: tuple[str, ...]   # [num_hops + 1] variables, in assignment order
    links: tuple[str, ...]   # [num_hops + 1] statements
    value: str
    depths: tuple[float, ...]  # [num_hops + 1] sorted insertion points in [0, 1)


def draw_chains(rng: random.Random, num_chains: int, num_hops: int, name_len: int) -> list[Chain]:
    """``num_chains`` chains with distinct ``name_len``-letter variable names."""
    names: list[str] = []
    while len(set(names)) < num_chains * (num_hops + 1):
        names = list(dict.fromkeys(names + ["".join(rng.choices(string.ascii_uppercase, k=name_len))]))
    chains = []
    for c in range(num_chains):
        these = names[c * (num_hops + 1):(c + 1) * (num_hops + 1)]
        value = str(rng.randint(10000, 99998))
        links = [f"VAR {these[0]} = {value}"] + [f"VAR {these[j + 1]} = VAR {these[j]} " for j in range(num_hops)]
        depths = tuple(sorted(rng.random() for _ in links))
        chains.append(Chain(tuple(these), tuple(links), value, depths))
    return chains


def render_context(chains: list[Chain], size: int) -> tuple[str, list[float]]:
    """Noise with each chain's links inserted in order; returns the text and each link's depth
    (its sentence index over the final sentence count), chain by chain."""
    sentences = [NOISE] * size
    for ch in chains:
        base = sorted(int(d * len(sentences)) for d in ch.depths)
        for j, (pos, link) in enumerate(zip(base, ch.links)):
            sentences.insert(pos + j, link)
    total = len(sentences)
    # later chains' insertions shift earlier chains' links: recover final indices by identity
    depths = [sentences.index(link) / total for ch in chains for link in ch.links]
    return " ".join(sentences).replace(". \n", ".\n"), depths


@dataclass(frozen=True)
class VTDraw:
    chains: tuple[Chain, ...]
    example: str  # the one-shot example with its answer, ready to prepend


@dataclass(frozen=True)
class VariableTracking:
    num_chains: int = 1
    num_hops: int = 4
    max_new_tokens: int = T.max_new_tokens

    def _example(self, rng: random.Random, env: GenEnv) -> str:
        hops = min(10, self.num_hops)
        chains = draw_chains(rng, self.num_chains, hops, 3)

        def text(size: int) -> str:
            ctx, _ = render_context(chains, size)
            return T.full(ctx, query=chains[0].value, num_v=hops + 1) + " " + " ".join(chains[0].names)

        def measure(size: int) -> int:
            return env.count(text(size)) + T.max_new_tokens

        lo = hops + 2
        if measure(lo) > ICL_LENGTH:  # a tokenizer far less efficient than RULER's: smallest example
            return text(lo)
        size, _ = fit_size(measure, ICL_LENGTH, lo, 10_000, "the variable-tracking example")
        return text(size)

    def draw(self, rng: random.Random, env: GenEnv) -> VTDraw:
        chains = draw_chains(rng, self.num_chains, self.num_hops, 5)
        return VTDraw(tuple(chains), self._example(rng, env))

    def sizes(self, draw: VTDraw, env: GenEnv) -> tuple[int, int]:
        return self.num_hops + 2, 1_000_000

    def render(self, d: VTDraw, size: int) -> Rendered:
        context, depths = render_context(list(d.chains), size)
        first = d.chains[0]
        head, tail, prefix = T.render(query=first.value, num_v=self.num_hops + 1)
        return Rendered(parts=((d.example + "\n\n", True), (head, False), (context, True), (tail, False)),
                        answer_prefix=prefix, outputs=first.names,
                        evidence=tuple(link.strip() for ch in d.chains for link in ch.links),
                        depths=tuple(depths), context_part=2)
