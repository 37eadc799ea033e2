"""Summary, markdown table (average, % of dense) and plot from hand-made prediction records; presets."""

from __future__ import annotations

import pytest

from specllama.cli.eval import build_config
from specllama.errors import ConfigError
from specllama.eval import presets
from specllama.eval.report import markdown, plot, plot_lines, summarize
from specllama.eval.runner import EvalConfig
from specllama.methods import method_names


def rec(task, method, budget, score, index=0):
    return {"task": task, "index": index, "method": method, "budget": budget, "ran": method, "score": score,
            "timings": {"ttft_ms": 1000.0 if budget is None else 500.0, "n_kept": budget or 4000}}


@pytest.fixture()
def cfg(tmp_path):
    return EvalConfig(tasks=("niah_single_2", "vt"), length=4096, methods=("specpc",), budgets=(512, 1024),
                      limit=2, out=str(tmp_path))


def test_summary_average_and_percent_of_dense(cfg):
    records = [
        rec("niah_single_2", "dense", None, 100.0, 0), rec("niah_single_2", "dense", None, 100.0, 1),
        rec("niah_single_2", "specpc", 512, 50.0, 0), rec("niah_single_2", "specpc", 512, 100.0, 1),
        rec("niah_single_2", "specpc", 1024, 100.0, 0), rec("niah_single_2", "specpc", 1024, 100.0, 1),
        rec("vt", "dense", None, 60.0, 0), rec("vt", "dense", None, 40.0, 1),
        rec("vt", "specpc", 512, 0.0, 0), rec("vt", "specpc", 512, 20.0, 1),
        rec("vt", "specpc", 1024, 40.0, 0), rec("vt", "specpc", 1024, 60.0, 1),
    ]
    s = summarize(cfg, records, {"target": "t.gguf", "draft": "d.gguf"})
    assert s["scores"]["niah_single_2"] == {"dense": 100.0, "specpc@512": 75.0, "specpc@1024": 100.0}
    assert s["scores"]["vt"] == {"dense": 50.0, "specpc@512": 10.0, "specpc@1024": 50.0}
    assert s["average"] == {"dense": 75.0, "specpc@512": 42.5, "specpc@1024": 75.0}
    assert s["percent_of_dense"]["specpc@512"] == pytest.approx(100 * 42.5 / 75)
    assert s["percent_of_dense"]["specpc@1024"] == 100.0
    assert s["timings"]["dense"]["ttft_ms"] == 1000.0
    table = markdown(s)
    lines = table.splitlines()
    assert lines[0] == "| task | dense | specpc@512 | specpc@1024 |"
    assert "| niah_single_2 (n=2) | 100.0 | 75.0 | 100.0 |" in lines
    assert "| **average** | **75.0** | **42.5** | **75.0** |" in lines
    assert "| % of dense | 100.0 | 56.7 | 100.0 |" in lines


def test_missing_cells_and_plot(cfg, tmp_path):
    s = summarize(cfg, [rec("vt", "dense", None, 50.0)], {"target": "t.gguf", "draft": None})
    assert s["scores"]["vt"]["specpc@512"] is None and s["percent_of_dense"]["specpc@512"] is None
    assert "| vt (n=1) | 50.0 | - | - |" in markdown(s)
    partial = summarize(cfg, [rec("vt", "dense", None, 50.0, 0), rec("vt", "dense", None, 70.0, 1),
                              rec("vt", "specpc", 512, 20.0, 0)], {"target": "t.gguf", "draft": "d.gguf"})
    assert "| vt (n=2) | 60.0 | 20.0 (n=1) | - |" in markdown(partial)  # a partial column says so
    full = summarize(cfg, [rec("vt", "dense", None, 50.0), rec("vt", "specpc", 512, 20.0),
                           rec("vt", "specpc", 1024, 40.0)], {"target": "t.gguf", "draft": "d.gguf"})
    plot(full, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_has_a_line_per_draft_and_draft_pass(tmp_path):
    from specllama.drafts import NamedDraft

    drafts = (NamedDraft("/m/a.gguf", "a"), NamedDraft("/m/b.gguf", "b"))
    cfg = EvalConfig(tasks=("vt",), length=4096, methods=("specpc",), budgets=(512, 1024), limit=1,
                     out=str(tmp_path), exact_draft=True, drafts=drafts)
    recs = [rec("vt", "dense", None, 50.0)]
    for i, c in enumerate(c for c in cfg.columns if c.budget):
        recs.append(dict(rec("vt", "specpc", c.budget, float(i)), label=c.label))
    s = summarize(cfg, recs, {"target": "t.gguf", "draft": ["a.gguf", "b.gguf"]})
    lines = plot_lines(s)
    assert sorted(lines) == ["specpc~a", "specpc~b", "specpc~exact~a", "specpc~exact~b"]
    assert [p[0] for p in lines["specpc~b"]] == [512, 1024]
    assert [p[1] for p in lines["specpc~exact~a"]] == [2.0, 3.0]  # its own two columns, not another's
    plot(s, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_presets_are_valid_and_flags_win(tmp_path):
    quick = build_config({"preset": "quick", "out": str(tmp_path)})
    p = presets.get("quick")
    assert quick.tasks == p.tasks and quick.length == p.length and quick.budgets == p.budgets
    assert quick.methods == ("dense", "specpc") and quick.limit == p.limit
    full = build_config({"preset": "full", "out": str(tmp_path)})
    assert len(full.tasks) == 13 and set(full.methods) == set(method_names())
    mine = build_config({"preset": "quick", "tasks": "vt,cwe", "limit": 1, "budgets": "256", "length": 2048})
    assert mine.tasks == ("vt", "cwe") and mine.limit == 1 and mine.budgets == (256,) and mine.length == 2048
    assert build_config({"tasks": "all"}).tasks == full.tasks
    with pytest.raises(ConfigError, match="--length must be >= 1"):
        build_config({"length": 0})
    with pytest.raises(ConfigError, match="unknown preset"):
        presets.get("huge")
