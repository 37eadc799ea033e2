"""What every RULER task family shares: the per-sample environment, seeding and the sample builder.

A family draws all of a sample's random choices once (:meth:`Family.draw`), then renders the
sample for any haystack size (:meth:`Family.render`) deterministically, so the size can be searched
to fill the requested length without changing the needles, keys, values or depths.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Protocol

from ...engine.model import Model
from ..data import DataError
from ..sample import PromptStyle, Sample, prompt_length
from .fit import TOLERANCE, fit_size


def sample_seed(seed: int, task: str, index: int) -> int:
    """A stable 64-bit seed for one sample: the same for any ``n`` and in any process."""
    h = hashlib.sha256(f"specllama-ruler/{seed}/{task}/{index}".encode()).digest()
    return int.from_bytes(h[:8], "little")


@dataclass(frozen=True)
class GenEnv:
    """What a family may consult while drawing a sample."""

    model: Model
    style: PromptStyle
    length: int
    seed: int
    index: int

    def count(self, text: str) -> int:
        """Tokens of ``text`` alone, without the chat template."""
        return len(self.model.tokenize(text, add_special=False, parse_special=False))


@dataclass(frozen=True)
class Rendered:
    """A sample's content for one haystack size (see :class:`specllama.eval.sample.Sample`)."""

    parts: tuple[tuple[str, bool], ...]
    answer_prefix: str
    outputs: tuple[str, ...]
    evidence: tuple[str, ...] = ()
    depths: tuple[float, ...] = ()
    context_part: int = 0


class Family(Protocol):
    """A RULER task family (niah, variable tracking, common words, frequent words, qa)."""

    max_new_tokens: int

    def draw(self, rng: random.Random, env: GenEnv) -> object:
        """Every random choice of one sample."""

    def sizes(self, draw: object, env: GenEnv) -> tuple[int, int]:
        """The smallest and largest haystack sizes."""

    def render(self, draw: object, size: int) -> Rendered:
        """The sample with ``size`` haystack units (words, sentences, documents...)."""


def build_sample(task: str, family: Family, metric: str, env: GenEnv) -> Sample:
    """Draw sample ``env.index`` of ``task`` and size it to ``env.length`` target tokens.

    The length counted is the prompt as the target reads it (chat template and answer prefix
    included) plus the task's tokens to generate; it ends within ``TOLERANCE`` below the request.
    """
    rng = random.Random(sample_seed(env.seed, task, env.index))
    draw = family.draw(rng, env)

    def as_sample(r: Rendered, length: int = 0) -> Sample:
        return Sample(task=task, index=env.index, parts=r.parts, answer_prefix=r.answer_prefix,
                      outputs=r.outputs, max_new_tokens=family.max_new_tokens, metric=metric,
                      evidence=r.evidence, depths=r.depths, context_part=r.context_part, length=length)

    def measure_rendered(r: Rendered) -> int:
        return prompt_length(env.model, as_sample(r), env.style)

    lo, hi = family.sizes(draw, env)
    size, length = fit_size(lambda s: measure_rendered(family.render(draw, s)), env.length, lo, hi, task)
    rendered = family.render(draw, size)
    refine = getattr(family, "refine", None)
    if length < (1 - TOLERANCE) * env.length and refine is not None:
        rendered, length = refine(draw, size, measure_rendered, env.length)
    if length < (1 - TOLERANCE) * env.length:
        step = measure_rendered(family.render(draw, size + 1)) - length if size < hi else 0
        why = (f"its haystack grows in pieces of about {step} tokens; use a longer --length"
               if step > TOLERANCE * env.length else "the source data is too short for this length")
        raise DataError(f"{task}: sample {env.index} fills only {length} of the {env.length} tokens "
                        f"requested (2% tolerance): {why}")
    return as_sample(rendered, length)
