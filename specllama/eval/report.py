"""Tables and plots from scored predictions.

``summarize`` turns prediction records into ``summary.json``'s structure: per task and column the
mean score and sample count, the average over tasks (RULER's convention: the mean of the per-task
means), the % of dense (average of the column over average of dense, on the same tasks), and mean
timings, and the bootstrap 95% interval of every cell and of every column's average (the average's
resamples each task within itself; :mod:`.paired`). ``markdown`` renders it as a task x
method@budget table followed by a table of the intervals; ``plot`` draws the average score against
the budget with its interval, one line per method, dense as a horizontal line and band.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import paired

TIMING_FIELDS = ("ttft_ms", "prefill_ms", "draft_ms", "decode_ms", "n_prompt", "n_kept")


def _mean(xs) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def intervals(scores: dict[str, list[float]], n_resamples: int = paired.RESAMPLES,
              seed: int = paired.SEED) -> tuple[dict[str, list[float]], list[float] | None]:
    """One column's bootstrap intervals: per task (``{task: scores}``, tasks without scores left
    out) ``[low, high]``, and that of the average of the task means (None without any score)."""
    tasks = [t for t, xs in scores.items() if xs]
    if not tasks:
        return {}, None
    per_task, average = paired.stratified_means([np.asarray(scores[t], dtype=float) for t in tasks],
                                                n_resamples, seed)
    cells = {t: paired.percentile_interval(d).as_list() for t, d in zip(tasks, per_task)}
    return cells, paired.percentile_interval(average).as_list()


def summarize(cfg, records: list[dict], models: dict) -> dict:
    """The summary of ``records`` for ``cfg``'s grid (see the module docstring)."""
    cols = cfg.columns
    labels = [c.label for c in cols]
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    tasks: list[str] = []
    for r in records:
        label = r.get("label") or (r["method"] if r["budget"] is None else f"{r['method']}@{r['budget']}")
        by[(r["task"], label)].append(r)
        if r["task"] not in tasks:
            tasks.append(r["task"])
    scores = {t: {lb: _mean(r["score"] for r in by[(t, lb)]) for lb in labels} for t in tasks}
    counts = {t: {lb: len(by[(t, lb)]) for lb in labels} for t in tasks}
    fallbacks = {lb: sum(r["ran"] != r["method"] for t in tasks for r in by[(t, lb)]) for lb in labels}
    average, percent = {}, {}
    for lb in labels:
        common = [t for t in tasks if scores[t][lb] is not None and scores[t].get("dense") is not None]
        average[lb] = _mean(scores[t][lb] for t in tasks if scores[t][lb] is not None)
        dense = _mean(scores[t]["dense"] for t in common)
        mine = _mean(scores[t][lb] for t in common)
        percent[lb] = 100.0 * mine / dense if common and dense else None
    timings = {lb: {f: _mean(r["timings"].get(f, 0) for t in tasks for r in by[(t, lb)]) for f in TIMING_FIELDS}
               for lb in labels}
    cell_ci: dict[str, dict[str, list[float] | None]] = {t: {} for t in tasks}
    average_ci: dict[str, list[float] | None] = {}
    for lb in labels:
        cells, average_ci[lb] = intervals({t: [r["score"] for r in by[(t, lb)]] for t in tasks})
        for t in tasks:
            cell_ci[t][lb] = cells.get(t)
    return {
        "config": cfg.describe(), "models": models,
        "columns": [{"label": c.label, "method": c.method, "budget": c.budget} for c in cols],
        "tasks": tasks, "scores": scores, "n": counts, "average": average, "percent_of_dense": percent,
        "fallbacks_to_dense": fallbacks, "timings": timings,
        "intervals": cell_ci, "average_interval": average_ci,
        "interval_settings": {"level": paired.LEVEL, "resamples": paired.RESAMPLES, "seed": paired.SEED,
                              "method": "percentile bootstrap; the average resamples each task"},
    }


def _cell(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _counted(x: float | None, k: int, n: int) -> str:
    """A score cell; one averaged over fewer samples than its row's ``n`` (an interrupted run) says
    how many, so a partial column never reads as complete."""
    return _cell(x) if x is None or k >= n else f"{_cell(x)} (n={k})"


def markdown(summary: dict) -> str:
    """The task x method@budget table with the average and the % of dense, as markdown."""
    labels = [c["label"] for c in summary["columns"]]
    lines = ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for t in summary["tasks"]:
        counts = summary["n"][t]
        n = max(counts.values(), default=0)
        lines.append(f"| {t} (n={n}) | " + " | ".join(_counted(summary["scores"][t][lb], counts.get(lb, 0), n)
                                                     for lb in labels) + " |")
    lines.append("| **average** | " + " | ".join(f"**{_cell(summary['average'][lb])}**" for lb in labels) + " |")
    lines.append("| % of dense | " + " | ".join(_cell(summary["percent_of_dense"][lb]) for lb in labels) + " |")
    ttft = [summary["timings"][lb]["ttft_ms"] for lb in labels]
    lines.append("| TTFT (s) | " + " | ".join(_cell(None if x is None else x / 1000, 2) for x in ttft) + " |")
    out = "\n".join(lines) + "\n"
    if "intervals" in summary:
        out += "\n" + interval_markdown(summary)
    return out


def _span(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def interval_markdown(summary: dict) -> str:
    """The bootstrap intervals of the table's cells and averages, as a caption and a markdown table."""
    labels = [c["label"] for c in summary["columns"]]
    st = summary["interval_settings"]
    lines = [f"Bootstrap {st['level']:.0%} intervals ({st['resamples']:,} resamples, seed {st['seed']}; "
             "each average resamples every task within itself):", "",
             "| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for t in summary["tasks"]:
        lines.append(f"| {t} | " + " | ".join(_span(summary["intervals"][t].get(lb)) for lb in labels) + " |")
    lines.append("| **average** | " + " | ".join(f"**{_span(summary['average_interval'].get(lb))}**"
                                                 for lb in labels) + " |")
    return "\n".join(lines) + "\n"


def _yerr(points: list[tuple[int, float, list[float] | None]]) -> np.ndarray:
    """Matplotlib's ``yerr`` of shape ``(2, k)`` from ``(budget, mean, [low, high] | None)`` points."""
    low = [m - (ci[0] if ci else m) for _, m, ci in points]
    high = [(ci[1] if ci else m) - m for _, m, ci in points]
    return np.clip(np.array([low, high], dtype=float), 0, None)


def plot_lines(summary: dict) -> dict[str, list[tuple[int, float, list[float] | None]]]:
    """The budgeted columns as plot lines: ``{name: [(budget, average, interval)]}`` by budget, one
    line per column kind, i.e. the label without its ``@budget`` (``specpc``, ``specpc~exact``,
    ``specpc~NAME``: the drafts and draft passes of one method are lines of their own)."""
    lines: dict[str, list[tuple[int, float, list[float] | None]]] = defaultdict(list)
    cis = summary.get("average_interval", {})
    for c in summary["columns"]:
        avg = summary["average"][c["label"]]
        if avg is not None and c["budget"] is not None:
            lines[c["label"].rpartition("@")[0]].append((c["budget"], avg, cis.get(c["label"])))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in lines.items()}


def plot(summary: dict, path: Path) -> None:
    """Average score against budget: one line per method (and per draft or draft pass, as the
    labels tell them apart), dense as a horizontal line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    budgets = sorted({c["budget"] for c in summary["columns"] if c["budget"] is not None})
    cis = summary.get("average_interval", {})
    for c in summary["columns"]:
        avg, ci = summary["average"][c["label"]], cis.get(c["label"])
        if avg is not None and c["budget"] is None:
            span = f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci is not None else ""
            ax.axhline(avg, linestyle="--", color="black", label=f"{c['method']} ({avg:.1f}{span})")
            if ci is not None:
                ax.axhspan(ci[0], ci[1], color="black", alpha=0.08, linewidth=0)
    for method, pts in plot_lines(summary).items():
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=_yerr(pts), marker="o", capsize=3,
                    label=method)
    if budgets:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
    cfg, models = summary["config"], summary["models"]
    ax.set_xlabel("budget (context tokens kept, protected ones on top)"
                  if cfg.get("budget_scope") == "context" else "budget (prompt tokens kept)")
    ax.set_ylabel("average score (0-100), bootstrap 95% interval")
    ax.set_ylim(0, 100)
    n = max((max(c.values(), default=0) for c in summary["n"].values()), default=0)
    ax.set_title(f"specllama eval: {len(summary['tasks'])} task(s) x {n} sample(s) at {cfg['length']} tokens\n"
                 f"target {models.get('target')}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    def w(p):
        with open(p, "w", encoding="utf-8") as fh:
            fh.write(text)
    _atomic(path, w)


def write_outputs(cfg, summary: dict, out: Path) -> None:
    """``summary.json``, ``table.md`` and (with ``cfg.plot``) ``plot.png`` in ``out``."""
    _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write_text(out / "table.md", markdown(summary))
    if cfg.plot:
        plot(summary, out / "plot.png")
