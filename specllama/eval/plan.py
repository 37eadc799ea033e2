"""``specllama eval --dry-run``: what a grid will run, and an estimate of how long, without a model.

The estimate counts, per sample, the target's passes (a full-prompt prefill for dense, and one for
every KV method and KV setting, shared by every budget: the runner keeps it in
``Runtime.prefill_cache``; a short prefill of the kept tokens for the prompt methods, at every
budget) and the draft's passes (one per sample and draft setting, shared by every budget: the
runner keeps them in ``Runtime.score_cache``), and prices them with the per-token costs measured in the README for the
default pair (Qwen2.5-Coder 1.5B target, 0.5B draft, Q4_K_M, ``-t 2`` on the 2-core development
machine; ``specllama bench``, 2026-12-01). Other models or machines scale these costs; the counts
hold for any pair.

Assumptions, stated so the estimate can be checked against a run: each job generates half of its
task's ``max_new_tokens`` (RULER's answers mostly stop early); the draft writes SpecKV's lookahead at
``DRAFT_DECODE_TPS``; in the ``context`` budget scope each prompt has ``PROTECTED`` never-dropped
tokens (68-95 measured on the quick preset's prompts with the default chat template).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..methods.draftpass import draft_pass_of
from .config import Column, EvalConfig
from .ruler import TASKS

# (prompt tokens, seconds), measured (README, "SpecPC now answers 3.05x sooner"; one repeat each)
TARGET_PREFILL = ((2048, 25.3), (4096, 56.6), (8192, 151.8), (16383, 499.9), (32752, 1714.6))
DRAFT_CHEAP = ((2048, 6.8), (4096, 16.1), (8192, 30.8), (16383, 74.9), (32752, 158.8))
DRAFT_EXACT = ((2048, 12.5), (4096, 30.4), (8192, 76.3), (16383, 290.1), (32752, 1078.5))
# (context cells, target decode tokens/s): dense rows, and SpecPC's 410 kept cells at 2K
DECODE_TPS = ((410, 22.3), (2048, 16.7), (4096, 14.0), (8192, 9.7), (16383, 4.0), (32752, 1.3))
DRAFT_DECODE_TPS = 40.0  # assumed: the 0.5B draft decodes about 3x faster than the 1.5B target
PROTECTED = 90
GENERATED_SHARE = 0.5


def interpolate(points: tuple[tuple[int, float], ...], n: float) -> float:
    """Piecewise log-log interpolation through ``points``; linear in ``n`` below the first point,
    the last segment's slope above the last."""
    if n <= 0:
        return 0.0
    (x0, y0) = points[0]
    if n <= x0:
        return y0 * n / x0
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        if n <= xb or (xb, yb) == points[-1]:
            slope = math.log(yb / ya) / math.log(xb / xa)
            return ya * (n / xa) ** slope
    return points[-1][1]  # pragma: no cover


def decode_s(tokens: float, cells: float) -> float:
    tps = DECODE_TPS[0][1] if cells <= DECODE_TPS[0][0] else interpolate(DECODE_TPS, cells)
    return tokens / tps


@dataclass
class ColumnCost:
    """One column's target work per job: tokens prefilled, and estimated prefill and decode seconds.

    ``prefill_key`` names a KV method's target prefill, which does not depend on the budget (None
    for the others); ``shared_with`` is the earlier column whose prefill this one reuses, and then
    ``prefill_s`` is not spent again.
    """

    label: str
    target_tokens: int
    full_prompt: bool
    prefill_s: float
    decode_s: float
    prefill_key: tuple | None = None
    shared_with: str | None = None

    @property
    def seconds(self) -> float:
        return (0.0 if self.shared_with else self.prefill_s) + self.decode_s


@dataclass
class Plan:
    """What a grid runs: samples, jobs, target and draft passes, and the estimated seconds."""

    samples: int
    columns: list[ColumnCost]
    draft_passes: dict[str, int] = field(default_factory=dict)  # kind -> passes in the whole run
    draft_s: float = 0.0
    target_s: float = 0.0
    decode_s: float = 0.0

    @property
    def jobs(self) -> int:
        return self.samples * len(self.columns)

    @property
    def full_target_passes(self) -> int:
        return self.samples * sum(c.full_prompt and not c.shared_with for c in self.columns)

    @property
    def short_target_passes(self) -> int:
        return self.samples * sum(not c.full_prompt and not c.shared_with for c in self.columns)

    @property
    def seconds(self) -> float:
        return self.draft_s + self.target_s + self.decode_s


def _task_lengths(cfg: EvalConfig) -> list[tuple[int, int]]:
    """``(prompt tokens, max_new_tokens)`` per task (LongBench: the length and 128 tokens)."""
    out = []
    for t in cfg.tasks:
        new = TASKS[t].max_new_tokens if t in TASKS else 128
        out.append((cfg.length - new, new))
    return out


def _column_cost(col: Column, n: int, new: int, drafts: dict[tuple, tuple[str, float]]) -> ColumnCost:
    """The target's part of one job; the draft passes it needs go into ``drafts`` (shared by key)."""
    protected = PROTECTED if col.context else 0
    m = col.build(new, protected)
    gen = GENERATED_SHARE * new
    if not m.compresses:
        return ColumnCost(col.label, n, True, interpolate(TARGET_PREFILL, n), decode_s(gen, n))
    budget = m.budget.resolve(n)
    ps, kv = m.prompt_stage, m.kv_stage
    lookahead = kv.cfg.lookahead_len(new) if kv is not None and kv.needs_draft else 0
    kept_prompt = n
    if ps is not None:
        kept_prompt = min(n, m.budget_pc.resolve(n, default=budget) if kv is not None else budget)
        if ps.needs_draft:
            dp = draft_pass_of(m)
            la = ps.cfg.lookahead
            cost = interpolate(DRAFT_EXACT if dp.exact else DRAFT_CHEAP, n) + max(0, la - 1) / DRAFT_DECODE_TPS
            what = (dp.describe() + (f", {la}-token lookahead" if la > 1 else "")
                    + (f", draft {col.draft}" if col.draft else ""))
            drafts[("pc", dp.describe(), la, col.draft)] = (f"SpecPC draft pass ({what})", cost)
    if lookahead and not (ps is not None and ps.needs_draft):
        on = f", draft {col.draft}" if col.draft else ""
        drafts[("la", lookahead, col.draft)] = (f"SpecKV lookahead answer (exact draft{on})",
                                               interpolate(DRAFT_EXACT, n) + lookahead / DRAFT_DECODE_TPS)
    tokens = kept_prompt + lookahead
    full = kept_prompt >= n
    key = None
    if kv is not None:  # what the runner's prefill memo keys on, for eval's default settings (each
        # draft writes its own lookahead answer, so a draft-reading stage never shares across drafts)
        key = (m.name if ps is not None else None, kept_prompt,
               kv.attention if kv.needs_attention else "plain", lookahead, col.draft if kv.needs_draft else None)
    return ColumnCost(col.label, tokens, full, interpolate(TARGET_PREFILL, tokens), decode_s(gen, min(budget, n)),
                      key)


def _share_prefills(costs: list[ColumnCost]) -> None:
    """Mark the columns whose target prefill an earlier column of the same sample already ran."""
    first: dict[tuple, str] = {}
    for c in costs:
        if c.prefill_key in first:
            c.shared_with = first[c.prefill_key]
        elif c.prefill_key is not None:
            first[c.prefill_key] = c.label


def estimate(cfg: EvalConfig) -> Plan:
    """The plan of ``cfg``'s grid: passes and estimated seconds for the default pair. ``columns``
    holds the first task's per-job costs (the table); the totals cover every task."""
    plan = Plan(samples=cfg.limit * len(cfg.tasks), columns=[])
    for n, new in _task_lengths(cfg):
        drafts: dict[tuple, tuple[str, float]] = {}
        costs = [_column_cost(c, n, new, drafts) for c in cfg.columns]
        _share_prefills(costs)
        plan.columns = plan.columns or costs
        plan.target_s += cfg.limit * sum(c.prefill_s for c in costs if not c.shared_with)
        plan.decode_s += cfg.limit * sum(c.decode_s for c in costs)
        for what, s in drafts.values():
            plan.draft_passes[what] = plan.draft_passes.get(what, 0) + cfg.limit
            plan.draft_s += cfg.limit * s
    return plan


def _hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min"


def describe(cfg: EvalConfig, plan: Plan, preset: str | None = None) -> str:
    """The plan as a few lines of markdown for stdout."""
    head = f"preset {preset}: " if preset else ""
    full = [c.label for c in plan.columns if c.full_prompt and not c.shared_with]
    short = [c.label for c in plan.columns if not c.full_prompt and not c.shared_with]
    shared = any(c.shared_with for c in plan.columns)
    lines = [
        f"{head}{len(cfg.tasks)} task(s) x {cfg.limit} sample(s) = {plan.samples} samples at {cfg.length} "
        f"tokens ({', '.join(cfg.tasks)}); budgets {', '.join(map(str, cfg.budgets)) or '-'} "
        f"({cfg.budget_scope} scope)",
        f"jobs: {plan.jobs} ({plan.samples} samples x {len(plan.columns)} columns)",
        f"target passes: {plan.full_target_passes} over the whole prompt ({', '.join(full) or 'none'}), "
        f"{plan.short_target_passes} over the kept tokens only ({', '.join(short) or 'none'})"
        + ("; a KV method prefills once per sample and KV setting, shared by every budget" if shared else ""),
        "draft passes: " + (", ".join(f"{n} x {what}" for what, n in plan.draft_passes.items()) or "none")
        + (" (one per sample, shared by every budget)" if plan.draft_passes else ""),
        f"estimated time: {_hours(plan.seconds)} (target prefill {_hours(plan.target_s)}, draft "
        f"{_hours(plan.draft_s)}, decode {_hours(plan.decode_s)}), from the README's per-token costs for "
        "the default pair at -t 2 on 2 cores; a rerun into the same --out skips finished jobs",
        "",
        "| column | target tokens per job | est. s per job |",
        "|---|---:|---:|",
    ]
    lines += [f"| {c.label} | {c.target_tokens}{f' (prefill of {c.shared_with})' if c.shared_with else ''} | "
              f"{c.seconds:.1f} |" for c in plan.columns]
    return "\n".join(lines) + "\n"
