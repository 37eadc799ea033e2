"""Markdown for ``specllama eval --compare``: the paired table, and optionally every sample.

Formatting only: the numbers come from :class:`.compare.Comparison` (statistics in :mod:`.paired`).
"""

from __future__ import annotations

from .compare import Comparison
from .paired import Interval, PairedRow


def signed(x: float, digits: int = 1) -> str:
    """``+1.5`` / ``-1.5`` / ``+0.0`` (no ``-0.0``)."""
    x = 0.0 if round(x, digits) == 0 else x
    return f"{x:+.{digits}f}"


def interval_text(diff: float, ci: Interval) -> str:
    """``-19.4 [-38.9, -2.8]``."""
    return f"{signed(diff)} [{signed(ci.low)}, {signed(ci.high)}]"


def p_text(p: float | None) -> str:
    """McNemar's p with three decimals (``<0.001`` below), ``-`` when not binary."""
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def caption(c: Comparison) -> str:
    """The line above the table: what A and B are and how the columns are computed."""
    t = c.table
    seed = f", data seed {c.seed}" if c.seed is not None else ""
    return (f"A = {c.a.name}, B = {c.b.name}: {t.overall.n} paired sample(s) in {len(t.rows)} task(s){seed}. "
            f"A - B in points with a bootstrap {t.level:.0%} interval ({t.n_resamples:,} resamples, "
            f"seed {t.seed}); right = full marks; McNemar's exact p where every score is 0 or 100; "
            "the all row averages the tasks.")


def _line(name: str, row: PairedRow, bold: bool = False) -> str:
    diff = interval_text(row.diff, row.interval)
    if bold:
        name, diff = f"**{name}**", f"**{diff}**"
    return (f"| {name} | {row.n} | {row.mean_a:.1f} | {row.mean_b:.1f} | {diff} | {row.only_a} | "
            f"{row.only_b} | {p_text(row.p_value)} |")


def table(c: Comparison) -> str:
    """The paired table: a row per task and an ``all`` row, as markdown."""
    lines = [f"| task | n | A | B | A - B [{c.table.level:.0%} CI] | only A right | only B right | McNemar p |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_line(task, row) for task, row in c.table.rows.items()]
    if len(c.table.rows) > 1:
        lines.append(_line("all", c.table.overall, bold=True))
    return "\n".join(lines) + "\n"


def per_sample(c: Comparison) -> str:
    """Every paired sample's scores and difference, as markdown."""
    lines = ["| task | index | A | B | A - B |", "|---|---:|---:|---:|---:|"]
    for task, rows in c.samples.items():
        lines += [f"| {task} | {i} | {a:.1f} | {b:.1f} | {signed(a - b)} |" for i, a, b in rows]
    return "\n".join(lines) + "\n"


def markdown(c: Comparison, samples: bool = False) -> str:
    """The caption and the paired table; with ``samples``, the per-sample table after them."""
    out = caption(c) + "\n\n" + table(c)
    if samples:
        out += "\n" + per_sample(c)
    return out
