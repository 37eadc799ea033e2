"""What ``specllama eval`` evaluates: the grid's columns and the validated configuration.

Everything a user can get wrong in the grid itself (task, method, budget, budget scope, length,
seed, the LongBench path) is refused here with one :class:`ConfigError` line, before any model
loads; the checks that need the models' headers are in :func:`specllama.eval.runner.check_models`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import pipeline
from ..errors import ConfigError
from ..drafts import NamedDraft, check_distinct
from ..methods import METHODS, Budget, Method, make_method
from ..methods.draftpass import EXACT
from ..methods.specpc import SpecPCConfig
from ..prompt import Prompt
from . import longbench
from .ruler import TASKS
from .sample import PromptStyle

MAX_SEED = 0xFFFFFFFF


@dataclass(frozen=True)
class Column:
    """One column of the grid: a method, at a budget unless it has none."""

    method: str
    budget: int | None = None
    exact: bool = False  # specpc with the exact draft (``--exact-draft``): labelled ``specpc~exact``
    context: bool = False  # ``--budget-scope context``: labelled ``method@ctxB``
    draft: str | None = None  # the tag of its draft when a run compares several (``--drafts``):
    # labelled ``method~TAG@B``; None: the run's one draft (or none)

    @property
    def label(self) -> str:
        name = self.method + ("~exact" if self.exact else "") + (f"~{self.draft}" if self.draft else "")
        if self.budget is None:
            return name
        return f"{name}@{'ctx' if self.context else ''}{self.budget}"

    def tokens(self, protected: int = 0) -> int | None:
        """The budget handed to the method for a prompt with ``protected`` never-dropped tokens:
        the budget itself (``prompt`` scope), or the budget plus those tokens (``context`` scope)."""
        if self.budget is None:
            return None
        return self.budget + (protected if self.context else 0)

    def build(self, n_predict: int = 256, protected: int = 0) -> Method:
        """The method, with each method's defaults; ``n_predict`` sizes draft lookaheads that
        default to the answer length (SpecKV, SpecKV-PC); ``protected`` is the prompt's count of
        protected tokens (read only in the ``context`` budget scope)."""
        kw = {"cfg": SpecPCConfig(draft=EXACT)} if self.exact else {}
        if self.budget is None:
            return make_method(self.method, n_predict=n_predict, seed=0, **kw)
        return make_method(self.method, budget=Budget(tokens=self.tokens(protected)), n_predict=n_predict,
                           seed=0, **kw)


BUDGET_SCOPES = ("prompt", "context")


def budget_free(name: str) -> bool:
    """True for methods that read the whole prompt whatever the budget (``dense``)."""
    return not make_method(name).compresses


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        tasks: RULER task names, ``longbench/<dataset>`` or ``longbench`` (all found).
        length: RULER length in target tokens (prompt + answer); LongBench's cut-off.
        methods: method names from the registry; ``dense`` is always added (the reference).
        budgets: ``[b]`` token budgets for the methods that take one.
        limit: samples per task.
        seed: RULER generation seed.
        out: output directory (predictions, summary, table, plot).
        longbench: a directory or file of LongBench's official JSONL.
        style: chat template or raw prompts.
        plot: write ``plot.png``.
        exact_draft: add a ``specpc~exact`` column (the exact draft) beside each specpc column.
        dense: run the dense reference column (``--no-dense`` skips it, e.g. to compare two drafts
            at long lengths, where dense costs more than everything else; % of dense is then blank).
        budget_scope: ``prompt``: a budget counts every prompt token the target keeps (the
            chat template, instructions and question included); ``context``: it counts only the
            compressible tokens kept, the protected ones come on top (so that budgets below the
            protected tokens, 64 at 4K with a chat template, can run). Columns are labelled
            ``method@ctxB`` in the context scope.
        drafts: the drafts to compare (``--drafts``): with two or more, every column of a method
            that reads a draft comes once per draft, labelled ``method~TAG@B``, on the same samples;
            dense and the draft-free methods run once. Empty: the runtime's one draft (``-md``).
    """

    tasks: tuple[str, ...]
    length: int
    methods: tuple[str, ...]
    budgets: tuple[int, ...]
    limit: int
    seed: int = 42
    out: str = "specllama-eval"
    longbench: str | None = None
    style: PromptStyle = PromptStyle()
    plot: bool = True
    exact_draft: bool = False
    dense: bool = True
    budget_scope: str = "prompt"
    drafts: tuple[NamedDraft, ...] = ()

    def __post_init__(self):
        if self.budget_scope not in BUDGET_SCOPES:
            raise ConfigError(f"--budget-scope must be one of {', '.join(BUDGET_SCOPES)}, got "
                              f"{self.budget_scope!r}")
        if not self.tasks:
            raise ConfigError("--tasks is empty")
        for t in self.tasks:
            if longbench.is_longbench(t):
                longbench.check_task(t, self.longbench)
            elif t not in TASKS:
                raise ConfigError(f"unknown task {t!r}; choose from {', '.join(TASKS)}, "
                                  "longbench or longbench/<dataset>")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError("--tasks lists a task twice")
        if self.longbench is not None and not any(longbench.is_longbench(t) for t in self.tasks):
            raise ConfigError(f"--longbench {self.longbench} is read only by LongBench tasks, and --tasks "
                              "has none: add --tasks longbench (or longbench/<dataset>), or drop "
                              "--longbench")
        if self.length < 1:
            raise ConfigError(f"--length must be >= 1, got {self.length}")
        if self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"--seed must be in [0, {MAX_SEED}], got {self.seed}")
        if not self.methods:
            raise ConfigError("--methods is empty")
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
        methods = tuple(dict.fromkeys((("dense",) if self.dense else ()) + tuple(self.methods)))
        object.__setattr__(self, "methods", methods)
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError("--budgets lists a budget twice")
        compressing = [m for m in methods if not budget_free(m)]
        if compressing and not self.budgets:
            raise ConfigError(f"--budgets is empty but {', '.join(compressing)} need one")
        # the pipeline's own budget checks, on a stand-in prompt of the requested length (the real
        # prompts' protected tokens are checked again once they are tokenized)
        stand_in = Prompt(np.zeros(self.length, dtype=np.int32), np.zeros(self.length, dtype=bool))
        for b in self.budgets:
            if b < 1:
                raise ConfigError(f"--budgets must be >= 1, got {b}")
            if b >= self.length:
                raise ConfigError(f"--budgets {b} is not below --length {self.length}: every method "
                                  "would read the whole prompt")
            for m in compressing:
                try:
                    pipeline.plan(Column(m, b, context=self.context_scope).build(), stand_in, [])
                except ConfigError as exc:
                    raise ConfigError(f"{m}: {exc}") from None
        object.__setattr__(self, "budgets", tuple(sorted(self.budgets)))
        check_distinct(self.drafts)
        if self.drafts and not self.needs_draft:
            raise ConfigError("--drafts: none of the methods evaluated reads a draft")

    @property
    def context_scope(self) -> bool:
        return self.budget_scope == "context"

    @property
    def columns(self) -> list[Column]:
        cols = []
        ctx = self.context_scope
        tags = [d.tag for d in self.drafts] if len(self.drafts) > 1 else [None]
        for m in self.methods:
            if budget_free(m):
                cols.append(Column(m))
                continue
            for tag in (tags if make_method(m).needs_draft else [None]):
                cols += [Column(m, b, context=ctx, draft=tag) for b in self.budgets]
                if self.exact_draft and m == "specpc":
                    cols += [Column(m, b, exact=True, context=ctx, draft=tag) for b in self.budgets]
        return cols

    def draft_path(self, col: Column) -> str | None:
        """The GGUF of the draft ``col`` runs with when the run compares several drafts; None:
        the runtime's own draft."""
        return next((d.path for d in self.drafts if d.tag == col.draft), None) if col.draft else None

    @property
    def needs_draft(self) -> bool:
        return any(make_method(m).needs_draft for m in self.methods)

    def describe(self) -> dict:
        return {"tasks": list(self.tasks), "length": self.length, "methods": list(self.methods),
                "budgets": list(self.budgets), "limit": self.limit, "seed": self.seed,
                "prompts": self.style.key(), "longbench": self.longbench, "exact_draft": self.exact_draft,
                "budget_scope": self.budget_scope, "drafts": [d.tag for d in self.drafts]}
