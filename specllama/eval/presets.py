"""Named evaluation sizes: ``quick`` for a small CPU machine, ``full`` for real hardware.

``quick`` is sized for the 2-core development machine with the default pair (Qwen2.5-Coder 1.5B
target, 0.5B draft). Measured there at 2,944 prompt tokens: dense 48 s a sample (40 s of prefill),
SpecPC 21 s of draft plus 8 s (budget 512) to 14 s (budget 1024) of target prefill. At 4K one
draft pass per sample serves both budgets (``Runtime.score_cache``); the whole preset took 13.5
minutes on a quiet machine (2026-11-24). Its tasks are the ones where dropping the wrong tokens shows: a needle among
distractor needles, four values spread through the text, and SQuAD answers in real paragraphs.
Each further method adds its own cost per sample and budget: run it with ``--methods``.

``full`` is RULER's 13 tasks with 100 samples each at 16K tokens, every registered method, at the
paper's budgets (256 to 2048). Explicit flags override a preset's values.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .ruler import task_names


@dataclass(frozen=True)
class Preset:
    """Defaults for ``specllama eval``; ``methods`` None means every registered method."""

    name: str
    tasks: tuple[str, ...]
    length: int
    methods: tuple[str, ...] | None
    budgets: tuple[int, ...]
    limit: int
    about: str


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        tasks=("niah_multikey_1", "niah_multivalue", "qa_1"),
        length=4096, methods=("dense", "specpc"), budgets=(512, 1024), limit=3,
        about="3 RULER tasks x 3 samples at 4K, dense + specpc at 512 and 1024 (about 14 min on 2 cores)",
    ),
    "full": Preset(
        name="full",
        tasks=tuple(task_names()), length=16384, methods=None, budgets=(256, 512, 1024, 2048), limit=100,
        about="all 13 RULER tasks x 100 samples at 16K, every method at 256-2048 (real hardware)",
    ),
}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
