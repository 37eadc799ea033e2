"""Tables and plots from scored predictions.

``summarize`` turns prediction records into ``summary.json``'s structure: per task and column the
mean score and sample count, the average over tasks (RULER's convention: the mean of the per-task
means), the % of dense (average of the column over average of dense, on the same tasks), and mean
timings. ``markdown`` renders it as a task x method@budget table; ``plot`` draws the average score
against the budget, one line per method, dense as a horizontal line.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

TIMING_FIELDS = ("ttft_ms", "prefill_ms", "draft_ms", "decode_ms", "n_prompt", "n_kept")


def _mean(xs) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def summarize(cfg, records: list[dict], models: dict) -> dict:
    """The summary of ``records`` for ``cfg``'s grid (see the module docstring)."""
    cols = cfg.columns
    labels = [c.label for c in cols]
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    tasks: list[str] = []
    for r in records:
        label = r["method"] if r["budget"] is None else f"{r['method']}@{r['budget']}"
        by[(r["task"], label)].append(r)
        if r["task"] not in tasks:
            tasks.append(r["task"])
    scores = {t: {lb: _mean(r["score"] for r in by[(t, lb)]) for lb in labels} for t in tasks}
    counts = {t: {lb: len(by[(t, lb)]) for lb in labels} for t in tasks}
    fallbacks = {lb: sum(r["ran"] != r["method"] for t in tasks for r in by[(t, lb)]) for lb in labels}
    average, percent = {}, {}
    for lb in labels:
        common = [t for t in tasks if scores[t][lb] is not None and scores[t]["dense"] is not None]
        average[lb] = _mean(scores[t][lb] for t in tasks if scores[t][lb] is not None)
        dense = _mean(scores[t]["dense"] for t in common)
        mine = _mean(scores[t][lb] for t in common)
        percent[lb] = 100.0 * mine / dense if common and dense else None
    timings = {lb: {f: _mean(r["timings"].get(f, 0) for t in tasks for r in by[(t, lb)]) for f in TIMING_FIELDS}
               for lb in labels}
    return {
        "config": cfg.describe(), "models": models,
        "columns": [{"label": c.label, "method": c.method, "budget": c.budget} for c in cols],
        "tasks": tasks, "scores": scores, "n": counts, "average": average, "percent_of_dense": percent,
        "fallbacks_to_dense": fallbacks, "timings": timings,
    }


def _cell(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(summary: dict) -> str:
    """The task x method@budget table with the average and the % of dense, as markdown."""
    labels = [c["label"] for c in summary["columns"]]
    lines = ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for t in summary["tasks"]:
        n = max(summary["n"][t].values(), default=0)
        lines.append(f"| {t} (n={n}) | " + " | ".join(_cell(summary["scores"][t][lb]) for lb in labels) + " |")
    lines.append("| **average** | " + " | ".join(f"**{_cell(summary['average'][lb])}**" for lb in labels) + " |")
    lines.append("| % of dense | " + " | ".join(_cell(summary["percent_of_dense"][lb]) for lb in labels) + " |")
    ttft = [summary["timings"][lb]["ttft_ms"] for lb in labels]
    lines.append("| TTFT (s) | " + " | ".join(_cell(None if x is None else x / 1000, 2) for x in ttft) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    """Average score against budget: one line per method, dense as a horizontal line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    budgets = sorted({c["budget"] for c in summary["columns"] if c["budget"] is not None})
    lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for c in summary["columns"]:
        avg = summary["average"][c["label"]]
        if avg is None:
            continue
        if c["budget"] is None:
            ax.axhline(avg, linestyle="--", color="black", label=f"{c['method']} ({avg:.1f})")
        else:
            lines[c["method"]].append((c["budget"], avg))
    for method, pts in lines.items():
        pts.sort()
        ax.plot([b for b, _ in pts], [a for _, a in pts], marker="o", label=method)
    if budgets:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
    cfg, models = summary["config"], summary["models"]
    ax.set_xlabel("budget (prompt tokens kept)")
    ax.set_ylabel("average score (0-100)")
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
