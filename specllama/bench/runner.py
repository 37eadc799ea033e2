"""One ``specllama bench`` run: every method (dense first) and the draft probe at every length,
with each draft of ``--drafts`` in turn for the methods that read one (``drafts.py``).

By default each cell runs in a fresh worker process (``worker.py``) so that its peak RSS is its
own; ``isolate=False`` runs them in this process (faster to start, RSS then a process-lifetime
high-water mark, and the report says so). Cells at one length must see the same prompt tokens,
which is checked by hash.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from typing import Callable

from ..errors import ConfigError, SpecllamaError
from ..methods.base import Method
from ..runtime import RuntimeConfig
from ..engine.ggufmeta import context_length
from .drafts import BenchDraft, Row, check_distinct, expand_rows, unreadable
from .measure import MeasureConfig, run_cell
from .probe import attention_of
from .prompts import corpus_text
from .report import Cell, ProbeResult, Report

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class BenchPlan:
    """What to measure.

    Attributes:
        runtime: models, threads and offload (``-ngl``/``-ngld`` flow through to every cell).
        methods: the methods to compare; dense is added first when missing.
        lengths: prompt lengths in target tokens.
        measure: repeats, generation length, idle policy, corpus.
        isolate: one fresh process per cell (honest per-method peak RSS).
        probe: time the draft prefill with and without capture when a method reads the draft.
        probe_lengths: the lengths to probe at (None: every length); the probe repeats exact
            draft passes, which at 32K take minutes each.
        drafts: the drafts to compare, each in its own rows (empty: ``runtime.draft`` alone);
            dense and draft-free methods run once per length whatever their number.
    """

    runtime: RuntimeConfig
    methods: tuple[Method, ...]
    lengths: tuple[int, ...]
    measure: MeasureConfig = MeasureConfig()
    isolate: bool = True
    probe: bool = True
    probe_lengths: tuple[int, ...] | None = None
    drafts: tuple[BenchDraft, ...] = ()

    def __post_init__(self):
        if not self.lengths:
            raise ConfigError("no prompt lengths to measure")
        names = [m.describe() for m in self.methods]
        if len(set(names)) != len(names):
            raise ConfigError(f"a method is listed twice: {', '.join(names)}")
        extra = sorted(set(self.probe_lengths or ()) - set(self.lengths))
        if extra:
            raise ConfigError(f"--probe-lengths {extra[0]} is not among --lengths")
        if any(m.needs_draft for m in self.methods) and not (self.runtime.draft or self.drafts):
            raise ConfigError("a selected method needs a draft model: pass -md")
        if self.drafts and not any(m.needs_draft for m in self.methods):
            raise ConfigError("--drafts: none of the methods compared reads a draft")
        check_distinct(self.drafts)

    @property
    def draft_list(self) -> tuple[BenchDraft, ...]:
        """The drafts compared: ``drafts``, else the runtime's one draft (or none)."""
        return self.drafts or ((BenchDraft.of(self.runtime.draft),) if self.runtime.draft else ())

    @property
    def rows(self) -> list[Row]:
        return expand_rows(self.ordered, self.draft_list)

    def runtime_for(self, draft: BenchDraft | None) -> RuntimeConfig:
        return self.runtime if draft is None else replace(self.runtime, draft=draft.path)

    @property
    def ordered(self) -> list[Method]:
        from ..methods import make_method

        dense = [m for m in self.methods if not m.compresses and m.name == "dense"]
        rest = [m for m in self.methods if m not in dense]
        return (dense or [make_method("dense")]) + rest

    @property
    def wants_probe(self) -> bool:
        return self.probe and any(m.needs_draft and m.prompt_stage is not None for m in self.methods)


def _worker_env() -> dict:
    """The child's environment: this process's import path first, so the same code runs."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_isolated(job: tuple, timeout: float | None = None):
    """Run one cell in a fresh ``python -m specllama.bench.worker`` and return its result."""
    with tempfile.TemporaryDirectory(prefix="specllama-bench-") as tmp:
        out = os.path.join(tmp, "result.pickle")
        proc = subprocess.Popen([sys.executable, "-m", "specllama.bench.worker", out],
                                stdin=subprocess.PIPE, env=_worker_env())
        try:
            proc.stdin.write(pickle.dumps(job))
            proc.stdin.close()
            rc = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc == 130:
            raise KeyboardInterrupt
        if not os.path.exists(out):
            raise SpecllamaError(f"the bench worker died (exit {rc}) without a result; rerun with -v")
        with open(out, "rb") as fh:
            result = pickle.load(fh)
    if "error" in result:
        err = SpecllamaError(result["error"])
        err.exit_code = result.get("code", 2)
        raise err
    return result["ok"]


def machine_info(runtime: RuntimeConfig) -> dict:
    """CPU, memory, llama.cpp's build features and, where offload is asked for, the GPU."""
    cpu = platform.processor() or platform.machine()
    mem = 0
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    from ..engine.lib import C

    info = {"cpu": cpu, "n_cpu": os.cpu_count() or 0, "mem_bytes": mem, "platform": platform.platform(),
            "system_info": C.llama_print_system_info().decode("utf-8", "replace").strip(),
            "gpu_offload_supported": bool(C.llama_supports_gpu_offload()), "gpu": None}
    try:
        import llama_cpp

        info["llama_cpp_python"] = llama_cpp.__version__
    except (ImportError, AttributeError):
        info["llama_cpp_python"] = None
    if (runtime.n_gpu_layers or runtime.n_gpu_layers_draft) and shutil.which("nvidia-smi"):
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10, check=False)
            info["gpu"] = q.stdout.strip().splitlines()[0] if q.returncode == 0 and q.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def check_lengths(plan: BenchPlan) -> dict:
    """Refuse, before measuring anything, lengths the target cannot read (with -n on top) or that
    no draft reads; returns ``{(draft path, length): why}`` for the drafts whose rows are skipped."""
    longest, n_pred = max(plan.lengths), plan.measure.n_predict
    try:
        limit = plan.runtime.n_ctx or context_length(plan.runtime.target)
    except (OSError, ValueError, struct.error) as exc:
        raise ConfigError(f"cannot read the model metadata: {exc}") from None
    if limit and longest + n_pred > limit:
        raise ConfigError(f"--lengths {longest}: with -n {n_pred} the target reads at most {limit} "
                          f"tokens; use lengths up to {limit - n_pred}")
    drafts = plan.draft_list
    if not drafts or not any(m.needs_draft for m in plan.methods):
        return {}
    skips = unreadable(plan.runtime.target, drafts, plan.lengths, plan.measure.corpus)
    for n in plan.lengths:
        why = [skips[(d.path, n)] for d in drafts if (d.path, n) in skips]
        if len(why) == len(drafts):
            raise ConfigError(f"--lengths {n}: {why[0]}" if len(why) == 1 else
                              f"--lengths {n}: no draft reads the prompt ({'; '.join(why)})")
    return skips


def run_bench(plan: BenchPlan, log: LogFn = lambda s: None, command: str = "",
              on_cell: Callable[[Report], None] | None = None) -> Report:
    """Measure every method and length of ``plan``; returns the report.

    ``on_cell(report)`` runs after every measured cell with the results so far (the CLI saves
    them, so an interrupted or failed run keeps what it measured).
    """
    from ..engine import lib

    lib.init()
    skips = check_lengths(plan)
    cfg = plan.measure
    machine = machine_info(plan.runtime)
    lib.warn_gpu_offload(max(plan.runtime.n_gpu_layers, plan.runtime.n_gpu_layers_draft))
    methods, rows, drafts = plan.ordered, plan.rows, plan.draft_list
    _, corpus_src = corpus_text(cfg.corpus)
    skipped = [{"length": n, "label": r.label, "reason": skips[(r.draft.path, n)]}
               for n in plan.lengths for r in rows if r.draft is not None and (r.draft.path, n) in skips]
    for d, n in sorted(skips, key=lambda k: k[1]):
        log(f"note: {skips[(d, n)]}: its rows at {n} tokens are skipped")
    rep = Report(machine=machine, models={}, config={
        "lengths": list(plan.lengths), "methods": [m.name for m in methods],
        "labels": [r.label for r in rows], "drafts": [d.tag for d in drafts], "skipped": skipped,
        "budget": next((m.budget.describe() for m in methods if m.compresses), "dense only"),
        "repeats": cfg.repeats, "n_predict": cfg.n_predict, "threads": plan.runtime.n_threads,
        "n_batch": plan.runtime.n_batch, "n_ubatch": plan.runtime.n_ubatch,
        "n_gpu_layers": plan.runtime.n_gpu_layers, "n_gpu_layers_draft": plan.runtime.n_gpu_layers_draft,
        "isolation": "process" if plan.isolate else "in-process", "max_busy": cfg.max_busy,
        "idle_wait_s": cfg.idle_wait_s, "retries": cfg.retries, "warmup": cfg.warmup, "corpus": corpus_src,
    }, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), command=command)

    def cell(kind: str, draft: BenchDraft | None, payload, length: int):
        job = (kind, plan.runtime_for(draft), payload, length, cfg)
        return run_isolated(job) if plan.isolate else run_cell(*job, log)

    def done() -> None:
        if on_cell is not None:
            on_cell(rep)

    attention = attention_of(methods)
    # compressing methods first: a budget that does not fit the prompt fails at once, not after
    # dense has been measured (the report orders rows by config["labels"])
    run_order = [r for r in rows if r.method.compresses] + [r for r in rows if not r.method.compresses]
    probing = drafts if plan.wants_probe else ()
    for length in plan.lengths:
        digests = set()
        for r in run_order:
            if r.draft is not None and (r.draft.path, length) in skips:
                continue
            log(f"measuring {r.label} at {length} tokens")
            c, models = cell("method", r.draft, r.method, length)
            assert isinstance(c, Cell)
            c.label = r.label
            if not plan.isolate:
                c.rss_scope = "process"
            rep.cells.append(c)
            digests.add(c.prompt_sha256)
            _note_models(rep, models)
            done()
        for d in probing if plan.probe_lengths is None or length in plan.probe_lengths else ():
            if (d.path, length) in skips:
                continue
            of = f" of {d.tag}" if len(drafts) > 1 else ""
            log(f"measuring the draft prefill{of} with and without attention capture at {length} tokens")
            p = cell("probe", d, attention, length)
            assert isinstance(p, ProbeResult)
            rep.probes.append(p)
            digests.add(p.prompt_sha256)
            done()
        if len(digests) > 1:
            raise SpecllamaError(f"the {length}-token prompt differed between cells; the benchmark "
                                 "is not comparing like with like")
    rep.models.setdefault("draft", None)
    return rep


def _note_models(rep: Report, models: dict) -> None:
    """Keep the target's and each draft's description (the first draft is ``models["draft"]``,
    every one is in ``models["drafts"]``, in the order measured)."""
    rep.models.setdefault("target", models["target"])
    d = models.get("draft")
    if not d:
        return
    rep.models.setdefault("draft", d)
    listed = rep.models.setdefault("drafts", [])
    if all(x.get("path") != d.get("path") for x in listed):
        listed.append(d)
