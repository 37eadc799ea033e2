"""The eval table's bootstrap intervals: per cell, per column average (stratified by task), in
summary.json, table.md and the plot."""

from __future__ import annotations

import pytest

from specllama.eval.report import intervals, markdown, plot, summarize
from specllama.eval.runner import EvalConfig


def rec(task, method, budget, score, index):
    return {"task": task, "index": index, "method": method, "budget": budget, "ran": method, "score": score,
            "timings": {"ttft_ms": 1000.0}}


@pytest.fixture()
def summary(tmp_path):
    cfg = EvalConfig(tasks=("niah_single_2", "vt"), length=4096, methods=("specpc",), budgets=(512,), limit=4,
                     out=str(tmp_path))
    scores = {("niah_single_2", "dense"): [100, 100, 100, 100], ("niah_single_2", "specpc"): [100, 0, 100, 0],
              ("vt", "dense"): [60, 40, 80, 20], ("vt", "specpc"): [0, 0, 0, 0]}
    records = [rec(t, m, None if m == "dense" else 512, s, i)
               for (t, m), ss in scores.items() for i, s in enumerate(ss)]
    return summarize(cfg, records, {"target": "t.gguf", "draft": "d.gguf"})


def test_cell_and_average_intervals(summary):
    ci = summary["intervals"]
    assert ci["niah_single_2"]["dense"] == [100.0, 100.0] and ci["vt"]["specpc@512"] == [0.0, 0.0]
    low, high = ci["niah_single_2"]["specpc@512"]
    assert 0.0 <= low < 50.0 < high <= 100.0
    avg_low, avg_high = summary["average_interval"]["specpc@512"]
    # the average (25) resamples niah_single_2 only: vt is constant, so the interval is half as wide
    assert avg_low == pytest.approx(low / 2) and avg_high == pytest.approx(high / 2)
    assert summary["interval_settings"]["resamples"] == 10_000 and summary["interval_settings"]["level"] == 0.95


def test_interval_table_follows_the_means(summary, tmp_path):
    lines = markdown(summary).splitlines()
    assert lines[0] == "| task | dense | specpc@512 |"          # the means table is unchanged
    assert "| niah_single_2 (n=4) | 100.0 | 50.0 |" in lines
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Bootstrap 95% intervals (10,000 resamples"))
    assert lines[start + 2] == "| task | dense | specpc@512 |"
    assert lines[start + 4].startswith("| niah_single_2 | [100.0, 100.0] | [")
    assert lines[start + 5].startswith("| vt | [") and lines[start + 5].endswith("| [0.0, 0.0] |")
    assert lines[-1].startswith("| **average** | **[") and lines[-1].endswith("]** |")
    plot(summary, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_intervals_skip_empty_cells():
    cells, average = intervals({"a": [], "b": [50.0, 50.0]}, n_resamples=100)
    assert cells == {"b": [50.0, 50.0]} and average == [50.0, 50.0]
    assert intervals({"a": []}) == ({}, None)
