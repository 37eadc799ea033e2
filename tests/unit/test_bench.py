"""``specllama bench``: idle-check parsing, the bound arithmetic, medians, the JSON schema, the
tables, the prompt builder, and a smoke run on tiny models."""

import json
import os
import subprocess
import sys

import pytest

from specllama.bench import idle
from specllama.engine.ggufmeta import context_length, read_scalars
from specllama.bench.measure import MeasureConfig
from specllama.bench.prompts import generated_prose, make_prompt, parse_lengths
from specllama.bench.report import SCHEMA, TIMING_FIELDS, Bound, Cell, ProbeResult, Repeat, Report, validate
from specllama.bench.tables import markdown
from specllama.errors import ConfigError, PromptError
from specllama.timings import Timings

# -- idle check --------------------------------------------------------------------------------
PROC_STAT = """cpu  1000 10 200 5000 50 5 5 30 0 0
cpu0 500 5 100 2500 25 2 2 15 0 0
intr 12345
"""


def pid_stat(pid, comm, utime, stime, start=100):
    # fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime priority nice num_threads itrealvalue starttime ...
    rest = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0", str(utime), str(stime), "0", "0", "20",
            "0", "1", "0", str(start), "0", "0"]
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


def test_parse_proc_stat_counts_idle_and_iowait_as_idle_and_steal_as_busy():
    t = idle.parse_proc_stat(PROC_STAT)
    assert t.total == 1000 + 10 + 200 + 5000 + 50 + 5 + 5 + 30
    assert t.busy == t.total - 5000 - 50
    assert t.steal == 30
    with pytest.raises(ValueError):
        idle.parse_proc_stat("intr 1\n")


def test_parse_pid_stat_handles_spaces_and_parentheses_in_the_command():
    comm, ticks, start = idle.parse_pid_stat(pid_stat(42, "tmux: server (x) y", 7, 5, start=999))
    assert (comm, ticks, start) == ("tmux: server (x) y", 12, 999)


def snap(busy, total, own, procs):
    return idle.Snapshot(idle.CpuTicks(busy=busy, total=total, steal=0), own, procs)


def test_other_share_subtracts_our_own_cpu_and_ranks_the_busiest():
    a = snap(100, 1000, 10, {5: ("make", 50, 1), 6: ("kworker/0:1-ev", 20, 2)})
    b = snap(400, 1400, 60, {5: ("make", 250, 1), 6: ("kworker/0:1-other", 30, 2), 7: ("cc1", 40, 3)})
    s = idle.other_share(a, b, 0.5)
    # machine busy 300 of 400 jiffies, 50 of them ours
    assert s.other_share == pytest.approx(250 / 400)
    # a kernel worker whose name changed is the same process (same start time): 10, not 30
    assert [(p, c) for p, c, _ in s.top] == [(5, "make"), (7, "cc1"), (6, "kworker/0:1-other")]
    assert s.top[0][2] == pytest.approx(200 / 400) and s.top[2][2] == pytest.approx(10 / 400)
    # a reused pid (new start time) counts all its time as new
    c = snap(500, 1500, 60, {5: ("make", 30, 77)})
    assert idle.other_share(b, c).top[0] == (5, "make", pytest.approx(30 / 100))


def test_other_share_is_clamped_and_zero_without_elapsed_time():
    a = snap(100, 1000, 0, {})
    assert idle.other_share(a, a).other_share == 0.0
    assert idle.other_share(a, snap(150, 1100, 80, {})).other_share == 0.0  # own > busy: clamp


def test_snapshot_and_wait_idle_read_a_proc_tree(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text(PROC_STAT)
    for pid, comm in ((11, "a b"), (12, "c")):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(pid_stat(pid, comm, 3, 4))
    (proc / "self").mkdir()
    s = idle.snapshot(str(proc), own_pid=12)
    assert s.cpu.total == idle.parse_proc_stat(PROC_STAT).total
    assert s.own == 7 and set(s.procs) == {11}
    w = idle.wait_idle(0.1, 0.0, interval_s=0.01, proc=str(proc))
    assert w.idle and w.other_share == 0.0
    missing = idle.sample(0.01, proc=str(tmp_path / "nope"))
    assert missing.other_share is None and "unavailable" in missing.describe()


def test_real_proc_sample_is_a_share():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc")
    s = idle.sample(0.05)
    assert 0.0 <= s.other_share <= 1.0


def test_a_run_disturbed_by_other_processes_is_measured_again(monkeypatch):
    from specllama.bench import measure

    # machine counters: first run 300 of 400 jiffies busy (others), second run idle
    snaps = iter([snap(0, 0, 0, {}), snap(300, 400, 0, {}), snap(300, 400, 0, {}), snap(310, 800, 5, {})])
    monkeypatch.setattr(measure.idle, "snapshot", lambda *a, **k: next(snaps))
    monkeypatch.setattr(measure.idle, "wait_idle", lambda *a, **k: idle.IdleSample(other_share=0.01))
    calls, logs = [], []
    w = measure.watched(lambda: calls.append(1) or len(calls), MeasureConfig(max_busy=0.1, retries=2), "x",
                        logs.append)
    assert w.value == 2 and w.attempts == 2 and w.idle
    assert w.during.other_share == pytest.approx(5 / 400)
    assert "measuring again" in logs[0]
    # out of retries: the last attempt is kept and flagged
    snaps = iter([snap(0, 0, 0, {}), snap(300, 400, 0, {})])
    w = measure.watched(lambda: "v", MeasureConfig(max_busy=0.1, retries=0), "x", logs.append)
    assert w.attempts == 1 and not w.idle and "disturbed" in logs[-1]


# -- records, medians, bound ------------------------------------------------------------------
def timings(**kw) -> dict:
    return Timings(**kw).as_dict()


def cell(method, length, ttft, prefill, draft=0.0, stages="dense", needs_draft=False, ran=None, n=3,
         kv=1000, decode=(100.0, 10)):
    reps = [Repeat(timings=timings(n_prompt=length, n_kept=length // 5 if stages != "dense" else length,
                                   ttft_ms=ttft * (1 + 0.1 * (i - 1)), prefill_ms=prefill, draft_ms=draft,
                                   decode_ms=decode[0], decode_tokens=decode[1], kv_bytes=kv),
                   other_cpu=0.01 * i, idle=True, ran=ran or method, stop="length") for i in range(n)]
    return Cell(length=length, n_prompt=length, prompt_sha256="ab" * 32, method=method,
                label=method if method == "dense" else f"{method} keep 0.2", stages=stages,
                needs_draft=needs_draft, repeats=reps, peak_rss_bytes=123 << 20)


def probe(length, off, on, captured):
    runs = []
    for v, ms in (("plain_fa_off", off), ("plain_fa_on", on), ("hooked", off * 1.01), ("captured", captured)):
        runs += [{"variant": v, "ms": ms * k, "sink_ms": 2.0 if v == "captured" else 0.0, "other_cpu": 0.0,
                  "idle": True} for k in (0.9, 1.0, 1.3)]
    return ProbeResult(length=length, n_prompt=length, prompt_sha256="ab" * 32, runs=runs, peak_rss_bytes=1)


def report(random=False) -> Report:
    rep = Report(machine={"cpu": "Test CPU", "n_cpu": 2, "mem_bytes": 8 << 30, "gpu": None},
                 models={"target": {"name": "t.gguf", "size_bytes": 1 << 30, "n_layer": 28, "n_embd": 3584,
                                    "random_weights": random,
                                    "label": "RANDOM WEIGHTS, timing only" if random else None},
                         "draft": {"name": "d.gguf", "size_bytes": 1 << 28}},
                 config={"lengths": [2048, 8192], "repeats": 3, "n_predict": 32, "threads": 2, "budget": "keep 0.2",
                         "isolation": "process", "max_busy": 0.1, "corpus": "test"},
                 created="2026-01-01T00:00:00+00:00", command="specllama bench --keep 0.2")
    for L, scale in ((2048, 1.0), (8192, 4.0)):
        rep.cells.append(cell("dense", L, 1000 * scale, 990 * scale))
        rep.cells.append(cell("specpc", L, 500 * scale, 200 * scale, draft=280 * scale, stages="prompt",
                              needs_draft=True))
        rep.cells.append(cell("speckv", L, 1200 * scale, 1000 * scale, draft=150 * scale, stages="kv",
                              needs_draft=True, kv=200, decode=(50.0, 10)))
        rep.probes.append(probe(L, off=270 * scale, on=250 * scale, captured=280 * scale))
    return rep


def test_bound_arithmetic():
    b = Bound(length=8192, method="specpc", dense_ttft_ms=1000.0, draft_plain_ms=150.0,
              draft_plain_variant="plain_fa_on", target_prefill_ms=250.0, measured_ttft_ms=500.0)
    assert b.ideal_ms == 400.0
    assert b.ideal_speedup == pytest.approx(2.5)
    assert b.measured_speedup == pytest.approx(2.0)
    assert b.efficiency == pytest.approx(0.8) == pytest.approx(b.ideal_ms / b.measured_ttft_ms)
    assert Bound(8192, "x", 1.0, 0.0, "v", 0.0, 0.0).ideal_speedup == 0.0


def test_cell_median_is_per_field_and_counts_stay_integers():
    c = cell("dense", 2048, 1000.0, 900.0)
    m = c.median()
    assert m["ttft_ms"] == pytest.approx(1000.0)  # of 900, 1000, 1100
    assert m["decode_tps"] == pytest.approx(100.0) and isinstance(m["n_prompt"], int)
    c.repeats.pop()  # even count: mean of the middle two
    assert c.median()["ttft_ms"] == pytest.approx(950.0)
    assert set(TIMING_FIELDS) <= set(m)


def test_report_bounds_use_the_faster_plain_prefill_and_skip_what_does_not_apply():
    rep = report()
    bounds = rep.bounds()
    # keyed by row label (a method with its settings); not speckv
    assert [(b.length, b.method) for b in bounds] == [(2048, "specpc keep 0.2"), (8192, "specpc keep 0.2")]
    b = bounds[1]
    assert b.draft_plain_variant == "plain_fa_on" and b.draft_plain_ms == pytest.approx(1000.0)
    assert b.target_prefill_ms == pytest.approx(800.0) and b.dense_ttft_ms == pytest.approx(4000.0)
    assert b.ideal_speedup == pytest.approx(4000 / 1800)
    p = rep.probe(8192)
    assert p.capture_overhead == pytest.approx(280 / 270 - 1)
    assert rep.speedup(rep.cell(8192, "specpc")) == pytest.approx(2.0)
    # a method that fell back to dense has no bound
    rep.cells[1] = cell("specpc", 2048, 1000, 990, stages="prompt", needs_draft=True, ran="dense")
    assert [b.length for b in rep.bounds()] == [8192]
    # a cheap draft pass is bounded by its own plain prefill, not the exact draft's
    rep.cells[4].draft = "draft sparse 64+512"
    assert rep.bounds() == []  # the probe did not time that pass
    p.plain_pass = "draft sparse 64+512"
    p.runs += [{"variant": "plain_pass", "ms": 300.0, "idle": True}]
    (b,) = rep.bounds()
    assert b.draft_plain_variant == "plain_pass" and b.draft_plain_ms == pytest.approx(300.0)
    assert rep.draft_share(rep.cells[4]) == pytest.approx(280 * 4 / (990 * 4))


def test_json_schema_round_trip_and_markdown():
    rep = report(random=True)
    d = json.loads(json.dumps(rep.to_json()))
    assert validate(d) == [] and d["schema"] == SCHEMA
    assert d["cells"][1]["ttft_speedup_vs_dense"] == pytest.approx(2.0)
    assert d["probes"][0]["capture_overhead"] == pytest.approx(280 / 270 - 1)
    assert d["bounds"][0]["efficiency"] == pytest.approx(d["bounds"][0]["ideal_ms"] / 500.0)
    back = Report.from_json(d)
    assert markdown(back) == markdown(rep)
    md = markdown(rep)
    assert "RANDOM WEIGHTS, timing only" in md
    assert md.count("| 8,192 | specpc keep 0.2 |") == 1 and "2.00×" in md
    assert "+3.7%" in md  # capture overhead 280/270 - 1
    assert "`specllama bench --keep 0.2`" in md


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("cells"), "missing 'cells'"),
    (lambda d: d.update(schema="other/9"), "report.schema"),
    (lambda d: d["cells"][0].update(n_prompt="2048"), "cells[0].n_prompt: expected int"),
    (lambda d: d["cells"][0]["repeats"][0]["timings"].pop("ttft_ms"), "missing ttft_ms"),
    (lambda d: d["cells"][0]["repeats"][0].update(other_cpu="x"), "other_cpu"),
    (lambda d: d["cells"][0]["repeats"][0].pop("other_cpu_during"), "other_cpu_during"),
    (lambda d: d["probes"][0]["runs"][0].update(variant="nope"), "probes[0].runs[0]"),
    (lambda d: d["bounds"][0].pop("ideal_ms"), "bounds[0]: missing 'ideal_ms'"),
])
def test_schema_check_names_the_problem(mutate, needle):
    d = json.loads(json.dumps(report().to_json()))
    mutate(d)
    problems = validate(d)
    assert any(needle in p for p in problems), problems
    with pytest.raises(ValueError):
        Report.from_json(d)


# -- configuration and prompts ----------------------------------------------------------------
def test_parse_lengths():
    assert parse_lengths("8K, 2K,4096,2048") == [2048, 4096, 8192]
    assert parse_lengths("0.5K") == [512]
    for bad in ("", "2K,x", "10"):
        with pytest.raises(ConfigError):
            parse_lengths(bad)


def test_measure_config_validation():
    for kw in ({"repeats": 0}, {"n_predict": 0}, {"max_busy": 1.5}, {"idle_wait_s": -1}):
        with pytest.raises(ConfigError):
            MeasureConfig(**kw)


def test_prompts_have_the_exact_length_and_are_deterministic(tiny_path):
    from specllama.engine.model import Model

    with Model(tiny_path) as m:
        a = make_prompt(m, 700)
        b = make_prompt(m, 700)
        assert a.n == 700 and a.sha256 == b.sha256
        assert m.detokenize(a.prompt.tokens).count("secret passphrase is") == 1
        assert a.prompt.protected[-5:].all() and not a.prompt.protected[50:400].any()
        assert make_prompt(m, 300).sha256 != a.sha256
        with pytest.raises(PromptError):
            make_prompt(m, 20)


def test_prompt_from_a_corpus_file_and_generated_prose(tiny_path, tmp_path):
    from specllama.engine.model import Model

    f = tmp_path / "c.txt"
    f.write_text(generated_prose(2000, seed=3))
    assert generated_prose(500, seed=3) == generated_prose(500, seed=3)
    with Model(tiny_path) as m:
        p = make_prompt(m, 400, corpus=str(f))
        assert p.n == 400 and p.source == "c.txt"
        with pytest.raises(ConfigError):
            make_prompt(m, 400, corpus=str(tmp_path / "missing.txt"))


def test_gguf_header_reader(tiny_path, tmp_path):
    assert context_length(tiny_path) == 4096
    assert read_scalars(tiny_path, {"general.name"}) == {"general.name": "tiny-llama-v0"}
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + bytes(40))
    with pytest.raises(ValueError):
        context_length(bad)


# -- the command -------------------------------------------------------------------------------
def sl(*args, timeout=300):
    env = dict(os.environ, SPECLLAMA_CACHE="/tmp/specllama-test-no-models")
    env.pop("SPECLLAMA_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "specllama", "bench", *args], capture_output=True, env=env,
                          timeout=timeout)


QUICK = ("-t", "2", "-r", "1", "-n", "4", "--idle-wait", "0", "--idle-sample", "0.05", "--max-busy", "1",
         "--keep", "0.4")


def test_smoke_run_fresh_process_per_cell(tiny_path, tiny_draft_path, tmp_path):
    png, saved = tmp_path / "ttft.png", tmp_path / "run.json"
    p = sl("-m", tiny_path, "-md", tiny_draft_path, "--lengths", "500,900", "--methods", "specpc", *QUICK,
           "--json", "--save", str(saved), "--plot", str(png))
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    d = json.loads(p.stdout)
    assert validate(d) == []
    assert [(c["length"], c["method"]) for c in d["cells"]] == [
        (500, "specpc"), (500, "dense"), (900, "specpc"), (900, "dense")]
    for c in d["cells"]:
        assert c["n_prompt"] == c["length"] and c["rss_scope"] == "method" and c["peak_rss_bytes"] > 1 << 20
        assert len(c["repeats"]) == 1 and c["repeats"][0]["other_cpu"] is not None
    sp = d["cells"][2]
    assert sp["ran"] == ["specpc"] and sp["median"]["n_kept"] <= 360 and sp["median"]["draft_ms"] > 0
    assert sp["median"]["kv_bytes"] < d["cells"][3]["median"]["kv_bytes"]
    assert {c["prompt_sha256"] for c in d["cells"][2:]} == {d["probes"][1]["prompt_sha256"]}
    assert [b["length"] for b in d["bounds"]] == [500, 900]
    # the exact draft like for like (flash attention on: the Q·K route) and the cheap pass
    assert set(d["probes"][0]["median_ms"]) == {"plain_fa_on", "captured", "plain_pass"}
    assert d["probes"][0]["plain_pass"] == "draft sparse 64+512, 0.67 of the layers"
    assert json.loads(saved.read_text()) == d
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = p.stderr.decode()
    assert "repeat 1/1" in err and "others" in err
    # the saved run renders again without measuring
    q = sl("--from-json", str(saved))
    out = q.stdout.decode()
    assert q.returncode == 0 and out.index("| 900 | dense |") < out.index("| 900 | specpc keep 0.4 |")


def test_smoke_run_in_process_says_rss_is_not_per_method(tiny_path, tiny_draft_path):
    p = sl("-m", tiny_path, "-md", tiny_draft_path, "--lengths", "500", "--methods", "specpc", *QUICK,
           "--in-process", "--no-probe", "--no-warmup")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    out = p.stdout.decode()
    assert "process-lifetime high-water mark" in out and "| 500 | dense |" in out
    assert "ideal bound" not in out


@pytest.mark.parametrize("args, needle", [
    (("--lengths", "2K,x"), "--lengths"),
    (("--lengths", "4K"), "use lengths up to 4064"),
    (("--methods", "nosuch"), "unknown method 'nosuch'"),
    (("--plot", "/nonexistent-dir/x.png"), "does not exist"),
    (("--shaped-target",), "either -m or --shaped-target"),
    (("-r", "0"), "--repeats"),
])
def test_bad_input_is_one_line_before_measuring(tiny_path, tiny_draft_path, args, needle):
    p = sl("-m", tiny_path, "-md", tiny_draft_path, "--idle-wait", "0", *args, timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: ") and needle in err, err
    assert p.stdout == b""


def test_gpu_offload_flags_flow_through_and_a_cpu_build_says_they_do_nothing(tiny_path, tiny_draft_path):
    from specllama.engine.lib import C

    p = sl("-m", tiny_path, "-md", tiny_draft_path, "--lengths", "500", "--methods", "specpc", *QUICK,
           "--no-probe", "--no-warmup", "-ngl", "99", "-ngld", "99", "--json")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    d = json.loads(p.stdout)
    assert d["config"]["n_gpu_layers"] == 99 and d["config"]["n_gpu_layers_draft"] == 99
    gpu = bool(C.llama_supports_gpu_offload())
    assert d["machine"]["gpu_offload_supported"] is gpu
    assert ("no GPU backend" in p.stderr.decode()) is not gpu



def test_a_failing_run_hands_over_what_it_measured_so_far(tiny_path):
    import numpy as np

    from specllama.bench import BenchPlan, run_bench
    from specllama.methods import Budget, Method
    from specllama.runtime import RuntimeConfig

    class Boom:  # a prompt stage (methods.base.PromptStage)
        needs_draft, window, positions, draft_scoring = False, 0, "renumber", None

        def select(self, job, budget):
            if job.prompt.n > 600:
                raise ConfigError("boom")
            return np.arange(budget, dtype=np.int64)

    class BoomMethod(Method):
        name = "boom"

    plan = BenchPlan(runtime=RuntimeConfig(target=tiny_path, n_threads=2),
                     methods=(BoomMethod(prompt_stage=Boom(), budget=Budget(tokens=400)),), lengths=(500, 900),
                     measure=MeasureConfig(repeats=1, n_predict=2, warmup=False, max_busy=1.0, idle_wait_s=0),
                     isolate=False)
    seen = []
    with pytest.raises(ConfigError, match="boom"):
        run_bench(plan, on_cell=lambda rep: seen.append([(c.length, c.method) for c in rep.cells]))
    assert seen == [[(500, "boom")], [(500, "boom"), (500, "dense")]]



@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_qk_route_scores_match_the_kq_soft_max_route(tmp_path, arch):
    import numpy as np

    from models.synth import TinySpec, write_tiny
    from specllama.methods.draft import AttentionConfig
    from specllama.scoring import score_with_attention
    from specllama.runtime import Runtime, RuntimeConfig

    path = write_tiny(tmp_path / "m.gguf", TinySpec(arch=arch, n_layer=3))
    got = {}
    with Runtime(RuntimeConfig(target=path, draft=path, n_threads=2, n_batch=128, n_ubatch=128)) as rt:
        bp = make_prompt(rt.target, 700)
        att = AttentionConfig(window=32, start_layer=1)
        for route in ("kq", "qk"):  # kq: llama.cpp's own kq_soft_max, flash attention off
            rt.attn_route = route
            ctx, tap = rt.draft_ctx(bp.n + 1)
            assert ctx.cfg.flash_attn is (route == "qk")
            got[route] = score_with_attention(ctx, tap, rt.draft, bp.prompt.tokens, att, bp.n, 1, Timings()).scores
    # the Q·K route reads K back from the f16 cache: agreement to f16 precision
    np.testing.assert_allclose(got["qk"], got["kq"], atol=2e-2)
    assert set(np.argsort(-got["qk"])[:100]) == set(np.argsort(-got["kq"])[:100])


def test_capture_overhead_compares_like_with_like_flash_attention():
    rep = report()
    p = rep.probe(8192)
    assert p.capture_baseline == "plain_fa_off"  # runs without the flag: the kq_soft_max route
    for r in p.runs:
        if r["variant"] == "captured":
            r["flash_attn"] = True
    assert p.capture_baseline == "plain_fa_on"
    assert p.capture_overhead == pytest.approx(p.median("captured") / p.median("plain_fa_on") - 1)
    assert "vs FA on" in markdown(rep)


def test_smoke_run_with_a_draft_of_another_tokenizer(tiny_path, tiny_other_vocab_path):
    """Warm-up, the draft probe and the SpecPC cell all give the draft its own tokens."""
    p = sl("-m", tiny_path, "-md", tiny_other_vocab_path, "--lengths", "500", "--methods", "specpc", *QUICK,
           "--in-process", "--json")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    d = json.loads(p.stdout)
    assert validate(d) == [] and d["cells"][0]["median"]["n_kept"] <= 200
    assert p.stderr.decode().count("use different tokenizers") == 1
