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

``cpu`` (4K) and ``cpu-long`` (16K) are the presets meant to tell methods apart on the development
machine. PROVISIONAL UNTIL MEASURED: their tasks and budgets are a first guess at the cells that
separate methods (RULER's harder settings, where the answer sits in a few tokens among many that
look alike, and budgets of 64 to 256 *context* tokens on top of the protected instructions and
question, see ``--budget-scope``); nobody has yet measured which task x budget cells separate
dense, SpecPC, SpecKV, SnapKV and streaming. Replace them by the measured separating cells.

**Sample count.** The comparison that matters is paired: two columns on the same samples,
``d_i = a_i - b_i`` in points (``specllama eval --compare``). For 0/100 scores, with a share ``q`` of
discordant samples (one side right, the other wrong) and a true difference ``delta``, the
difference's variance is ``s^2 = 100^2 q - delta^2``; the 95% interval's half-width is
``h = 1.96 s / sqrt(N)`` over the ``N`` samples pooled across tasks (the ``all`` row). A 10-point
difference lies outside the interval around 0 when ``h < 10``, so::

    N >= (1.96 / 10)^2 * (100^2 q - 10^2) = 0.0384 * (10^4 q - 100)

    q = 0.10 (one side never right where the other is wrong): N >= 35
    q = 0.20 (2 of 9 on the quick preset's specpc@512 vs dense):  N >= 73
    q = 0.25:                                                     N >= 93

Unpaired, a single column's mean at p = 0.5 needs ``N >= (1.96 * 50 / 10)^2 = 97``. The presets plan
for ``q = 0.2``: 4 tasks x 19 samples = 76 >= 73. Per task (19 samples) an interval is about twice
as wide, and the bootstrap under-covers below 30 samples a task (README: 90% at 20), so read
single-task rows as indicative; the pooled row is what the count is sized for.

**Run time.** ``specllama eval --preset cpu --dry-run`` prints the passes and an estimate from the
README's per-token costs (it gives 15 min for ``quick``, measured at 13.5). The hour the issue asks
for cannot hold 76 samples: a dense 4K prefill takes about 57 s on 2 cores, so one hour holds 63
full-prompt target passes, fewer than the 76 dense ones alone, and every KV method (SnapKV, SpecKV,
streaming) prefills the whole prompt once per sample too. ``cpu`` keeps one budget, 128 context
tokens: about 6.1 h (dense 1.2 h; SpecPC and truncation 0.5 h together with their draft passes;
SnapKV, SpecKV and streaming 1.2 h each). A KV method's prefill is shared by every budget
(``Runtime.prefill_cache``), so further budgets cost the prompt methods' short prefills and the
decodes: the dry run now estimates ``--budgets 64,128,256`` at about 6.7 h (304 full-prompt target
passes, as for one budget), where it estimated 13.8 h (760) when every budget prefilled again;
neither figure is measured.
``cpu-long`` (16K, overnight) keeps dense, SpecPC and truncation at 128 and 512: about 12.8 h, of
which dense's 76 prefills of 16K are 10.7 h.
"""

from __future__ import annotations

import math
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
    budget_scope: str = "prompt"


# RULER's harder settings: a needle among needles, four needles asked at once, a five-link variable
# chain, multi-hop questions over real documents
HARD_TASKS = ("niah_multikey_2", "niah_multiquery", "vt", "qa_2")

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        tasks=("niah_multikey_1", "niah_multivalue", "qa_1"),
        length=4096, methods=("dense", "specpc"), budgets=(512, 1024), limit=3,
        about="3 RULER tasks x 3 samples at 4K, dense + specpc at 512 and 1024 (about 14 min on 2 cores)",
    ),
    # PROVISIONAL UNTIL MEASURED (see the module docstring): tasks, budgets and methods are a guess
    # at the separating cells; the sample count (4 x 19 = 76) comes from the interval calculation.
    "cpu": Preset(
        name="cpu",
        tasks=HARD_TASKS, length=4096, methods=("dense", "specpc", "truncate", "snapkv", "speckv", "streaming"),
        budgets=(128,), limit=19, budget_scope="context",
        about="4 hard RULER tasks x 19 samples at 4K, dense/specpc/truncate/snapkv/speckv/streaming at 128 "
              "context tokens (provisional cells; see --dry-run for the time)",
    ),
    "cpu-long": Preset(
        name="cpu-long",
        tasks=HARD_TASKS, length=16384, methods=("dense", "specpc", "truncate"),
        budgets=(128, 512), limit=19, budget_scope="context",
        about="4 hard RULER tasks x 19 samples at 16K, dense/specpc/truncate at 128 and 512 context "
              "tokens (provisional cells; overnight, see --dry-run)",
    ),
    "full": Preset(
        name="full",
        tasks=tuple(task_names()), length=16384, methods=None, budgets=(256, 512, 1024, 2048), limit=100,
        about="all 13 RULER tasks x 100 samples at 16K, every method at 256-2048 (real hardware)",
    ),
}


def paired_samples_needed(q: float, delta: float = 10.0, z: float = 1.96) -> int:
    """Samples for a paired 0/100 difference of ``delta`` points to fall outside the 95% interval
    around zero when a share ``q`` of them is discordant (module docstring)."""
    var = 100.0 ** 2 * q - delta ** 2
    if var <= 0:
        raise ValueError(f"a difference of {delta} points needs at least {delta / 100:.2f} discordant samples")
    return math.ceil((z / delta) ** 2 * var)


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
