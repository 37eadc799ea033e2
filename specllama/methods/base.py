"""The shared interface of every method, baselines included.

A method is at most two stages around the target's run, in the spirit of kvpress's presses:

* a :class:`PromptStage` picks which prompt tokens the target prefills (SpecPC, truncation);
* a :class:`KVStage` picks, after the target's prefill, which KV cells survive into a small decode
  context (SpecKV, SnapKV, StreamingLLM, random).

``dense`` has neither; ``speckvpc`` has both. The pipeline runs any :class:`Method` the same way, so
``run``, ``chat``, ``eval``, ``bench`` and ``serve`` never branch on method names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from ..prompt import Prompt
from ..runtime import Runtime
from ..timings import Timings
from .budget import Budget, GenConfig  # noqa: F401  (re-exported: the interface's types)
from .draft import AttentionConfig


@dataclass
class Job:
    """One request as it moves through a method's stages (mutable scratch shared by stages).

    Attributes:
        prompt: the full prompt, ``[n]`` tokens with the protection mask.
        budget: resolved budget in tokens for the stage being run.
        gen: generation settings.
        rt: models and contexts.
        timings: filled as stages run.
        lookahead: ``[L]`` draft tokens produced by a stage for a later one (SpecKV-PC).
        notes: one-line messages for stderr (fallbacks, what was compressed).
    """

    prompt: Prompt
    budget: int
    gen: GenConfig
    rt: Runtime
    timings: Timings
    lookahead: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DraftScoring:
    """What a prompt stage scored by the draft's attention reads: a front end that holds its own
    draft context (the chat, reusing it across turns) computes the scores there with these
    settings and hands them to the stage's :meth:`PromptStage.keep`.

    Attributes:
        attention: the scoring window, reduction, query weighting and layers.
        lookahead: draft tokens generated; 1 reads the prefill window only.
    """

    attention: AttentionConfig
    lookahead: int


class PromptStage(Protocol):
    """Chooses the prompt tokens the target prefills.

    Attributes:
        needs_draft: whether :meth:`select` runs the draft.
        window: the last ``window`` prompt tokens are always kept.
        positions: ``renumber`` feeds the kept tokens at ``0..k-1``, ``original`` at their
            prompt positions.
        draft_scoring: how the stage scores with the draft's attention, or None when it does not.
    """

    needs_draft: bool
    window: int
    positions: str
    draft_scoring: DraftScoring | None

    def select(self, job: Job, budget: int) -> np.ndarray:
        """Indices ``[k]`` (sorted, int64) of ``job.prompt.tokens`` to keep, ``k <= budget``."""

    def keep(self, scores: np.ndarray, budget: int, protected: np.ndarray) -> np.ndarray:
        """The stage's selection on given ``scores[n]``: sorted indices ``[<=budget]``, every
        ``protected[n]`` token and the window included."""


class KVStage(Protocol):
    """Chooses the target KV cells that survive into the decode context.

    Attributes:
        needs_draft: whether :meth:`lookahead` runs the draft.
        window: the last ``window`` prompt cells are always kept.
        needs_attention: the target's prefill must read attention for :meth:`select`.
        attention: the target's scoring settings when :attr:`needs_attention`, else None.
    """

    needs_draft: bool
    window: int
    needs_attention: bool
    attention: AttentionConfig | None

    def lookahead(self, job: Job) -> np.ndarray:
        """Tokens ``[L]`` the target prefills after the prompt and scores with (may be empty)."""

    def select(self, job: Job, budget: int, attention: np.ndarray | None,
               protected: np.ndarray) -> np.ndarray:
        """Cells ``[k]`` (sorted) among the ``n`` prefilled prompt cells to keep, ``k <= budget``.

        ``attention`` is ``[n]`` target scores from the window and lookahead queries when
        :attr:`needs_attention`, else None; ``protected[n]`` marks cells that must stay.
        """


class Method:
    """A named pair of optional stages. Subclasses only set attributes and build stages.

    ``settings`` names the constructor arguments the front ends build from the method flags
    (``{"cfg": Configured(SpecPCConfig)}``, see :mod:`.setting`); ``budget`` (``--budget``/
    ``--keep``), ``n_predict`` and ``seed`` reach every method.
    """

    name: ClassVar[str] = "dense"
    help: ClassVar[str] = ""
    settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, prompt_stage: PromptStage | None = None, kv_stage: KVStage | None = None,
                 budget: Budget = Budget(), budget_pc: Budget = Budget()):
        self.prompt_stage = prompt_stage
        self.kv_stage = kv_stage
        self.budget = budget
        self.budget_pc = budget_pc

    @property
    def needs_draft(self) -> bool:
        return any(s is not None and s.needs_draft for s in (self.prompt_stage, self.kv_stage))

    @property
    def compresses(self) -> bool:
        return self.prompt_stage is not None or self.kv_stage is not None

    def describe(self) -> str:
        if not self.compresses:
            return self.name
        return f"{self.name} {self.budget.describe()}"
