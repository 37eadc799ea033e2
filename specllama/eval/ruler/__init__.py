"""RULER's 13 tasks, generated offline for the target's tokenizer.

Task definitions, templates and metrics follow RULER (Hsieh et al., 2024, "RULER: What's the Real
Context Size of Your Long-Context Language Models?"; NVIDIA/RULER, Apache-2.0: ``synthetic.yaml``
and ``scripts/data/synthetic/``). The code is specllama's own; differences from RULER are stated in
the family modules (exact length search, per-sample seeding, chat-template answer prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...engine.model import Model
from ..sample import PromptStyle, Sample
from .base import Family, GenEnv, build_sample
from .niah import Niah
from .qa import QA
from .vt import VariableTracking
from .words import CommonWords, FreqWords


@dataclass(frozen=True)
class TaskSpec:
    """A named RULER task: its family configuration and RULER's metric for it."""

    name: str
    family: Family
    metric: str

    @property
    def max_new_tokens(self) -> int:
        return self.family.max_new_tokens


def _specs() -> dict[str, TaskSpec]:
    all_, part = "string_match_all", "string_match_part"
    table = [
        ("niah_single_1", Niah("repeat", "words", "numbers"), all_),
        ("niah_single_2", Niah("essay", "words", "numbers"), all_),
        ("niah_single_3", Niah("essay", "words", "uuids"), all_),
        ("niah_multikey_1", Niah("essay", "words", "numbers", num_k=4), all_),
        ("niah_multikey_2", Niah("needle", "words", "numbers"), all_),
        ("niah_multikey_3", Niah("needle", "uuids", "uuids"), all_),
        ("niah_multivalue", Niah("essay", "words", "numbers", num_v=4), all_),
        ("niah_multiquery", Niah("essay", "words", "numbers", num_q=4), all_),
        ("vt", VariableTracking(num_chains=1, num_hops=4), all_),
        ("cwe", CommonWords(freq_cw=30, freq_ucw=3, num_cw=10), all_),
        ("fwe", FreqWords(alpha=2.0), all_),
        ("qa_1", QA("squad"), part),
        ("qa_2", QA("hotpotqa"), part),
    ]
    return {name: TaskSpec(name, fam, metric) for name, fam, metric in table}


TASKS: dict[str, TaskSpec] = _specs()


def task_names() -> list[str]:
    return list(TASKS)


def generate_sample(task: str, model: Model, length: int, seed: int, index: int,
                    style: PromptStyle = PromptStyle()) -> Sample:
    """Sample ``index`` of ``task`` at ``length`` target tokens (prompt + answer), for ``seed``."""
    spec = TASKS[task]
    return build_sample(task, spec.family, spec.metric, GenEnv(model, style, length, seed, index))


__all__ = ["TASKS", "TaskSpec", "generate_sample", "task_names"]
