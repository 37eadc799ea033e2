"""The evaluation grid: every sample through :func:`specllama.pipeline.generate`, per method and budget.

Methods without a budget (``dense``) run once per sample; every other method runs once per
budget. Each finished job is appended to ``predictions.jsonl`` (flushed at once), keyed by the
sample's content, the method, the budget and the models, so a rerun skips what is already scored
and an interrupted run loses at most the job in flight. ``summary.json``, ``table.md`` and
``plot.png`` are rewritten from the predictions at the end.

Everything a user can get wrong (task, method, budget, length against the models' context, the
LongBench path, an unwritable ``--out``, missing data packages) is checked in
:meth:`EvalConfig.__post_init__` (:mod:`.config`) and :func:`check_models` before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import pipeline
from ..engine.sampling import SamplingConfig
from ..errors import ConfigError, SpecllamaError
from ..methods import GenConfig
from ..methods.draftpass import draft_pass_of
from ..outpaths import check_writable_dir
from ..prompt import Prompt
from ..runtime import Runtime, RuntimeConfig
from ..scoring import PrefillCache, ScoreCache
from . import data, longbench
from .config import BUDGET_SCOPES, MAX_SEED, Column, EvalConfig, budget_free  # noqa: F401 (re-exported)
from .dataset import load_or_generate
from .metrics import score
from .preflight import context_length
from .progress import Progress
from .ruler import TASKS
from .sample import PromptStyle, Sample, to_prompt

LogFn = Callable[[str], None]
PREDICTIONS = "predictions.jsonl"
SUMMARY = "summary.json"


def _stderr(msg: str) -> None:
    sys.stderr.write(f"specllama: {msg}\n")
    sys.stderr.flush()


def check_out(out: str) -> None:
    """Refuse an ``--out`` that is a file, or where the outputs cannot be created (nothing is left
    on disk by the check)."""
    check_writable_dir(out, "--out")
    for name in (PREDICTIONS, SUMMARY, "table.md", "plot.png"):
        if os.path.isdir(os.path.join(out, name)):
            raise ConfigError(f"--out {out}: {os.path.join(out, name)} is a directory, not a file")


def check_models(cfg: EvalConfig, rt: RuntimeConfig) -> None:
    """Refuse an unwritable ``--out``, a length the target (or the draft, for draft-based methods)
    cannot read, and missing packages (RULER's data, matplotlib for the plot), reading only GGUF
    headers."""
    check_out(cfg.out)
    readers = [("target", rt.target, rt.n_ctx or None)]
    if cfg.needs_draft:
        readers += [("draft", path, None) for path in dict.fromkeys([*([rt.draft] if rt.draft else []),
                                                                     *(d.path for d in cfg.drafts)])]
    for role, path, override in readers:
        limit = override or context_length(path, role)
        if limit and cfg.length > limit:
            why = f"-c {limit}" if override else f"its context of {limit} tokens"
            raise ConfigError(f"--length {cfg.length} is over the {role}'s limit: {os.path.basename(path)} "
                              f"reads at most {limit} tokens ({why})")
    if any(t in TASKS for t in cfg.tasks):
        for mod in ("long_context_eval", "wonderwords", "punkt"):
            data.require(mod, "RULER")
    if cfg.plot:
        data.require("matplotlib", "plot.png")


def load_samples(cfg: EvalConfig, rt: Runtime, log: LogFn = _stderr) -> dict[str, list[Sample]]:
    """The samples of every task: RULER sets from the cache (or generated), LongBench files cut
    to ``cfg.length``."""
    out: dict[str, list[Sample]] = {}
    for task in longbench.expand(list(cfg.tasks), cfg.longbench):
        if task in TASKS:
            out[task], _ = load_or_generate(task, rt.target, cfg.length, cfg.seed, cfg.limit, cfg.style,
                                            log=log)
        else:
            raw = longbench.load(task, cfg.longbench, cfg.limit)
            out[task] = [longbench.fit_length(rt.target, s, cfg.length, cfg.style) for s in raw]
            cut = sum("truncated" in s.meta for s in out[task])
            if cut:
                log(f"{task}: {cut} of {len(out[task])} sample(s) cut in the middle to {cfg.length} "
                    "tokens (LongBench's protocol)")
    return out


def sample_id(sample: Sample, style: PromptStyle) -> str:
    """A content hash: the same prompt and references give the same id in any run."""
    blob = json.dumps([sample.to_dict(), style.key()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Job:
    task: str
    sample: Sample
    sid: str
    column: Column


def record_key(sid: str, col: Column, target: str, draft: str | None) -> tuple:
    """A job's identity in ``predictions.jsonl``: sample, method, budget, models and, for SpecPC,
    how the draft ran (so that the sparse and the exact draft never stand in for each other)."""
    dp = draft_pass_of(col.build()) if draft else None
    return ((sid, col.method, col.budget, target, draft) + ((dp.describe(),) if dp is not None else ())
            + (("context budget",) if col.context else ()))


class PredictionStore:
    """``predictions.jsonl``: one JSON object per finished job, appended and flushed."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[tuple, dict] = {}
        self.bad_lines = 0
        self._newline = False  # the file ends in a line cut by a crash: start on a new line
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell():
                    fh.seek(-1, os.SEEK_END)
                    self._newline = fh.read(1) != b"\n"
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        r = json.loads(line)
                        self.records[tuple(r["key"])] = r
                    except (ValueError, KeyError, TypeError):
                        self.bad_lines += 1  # a line cut by a crash: that job runs again

    def __contains__(self, key: tuple) -> bool:
        return key in self.records

    def add(self, record: dict) -> None:
        self.records[tuple(record["key"])] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(("\n" if self._newline else "") + json.dumps(record, ensure_ascii=False) + "\n")
            self._newline = False
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class RunResult:
    """What :func:`run` did: the summary, and how many jobs ran now and were reused."""

    summary: dict
    ran: int = 0
    reused: int = 0
    records: list[dict] = field(default_factory=list)


def plan_jobs(cfg: EvalConfig, samples: dict[str, list[Sample]]) -> list[Job]:
    """Sample by sample, every column: partial runs stay comparable across methods."""
    jobs = []
    for task, ss in samples.items():
        for s in ss:
            sid = sample_id(s, cfg.style)
            jobs += [Job(task, s, sid, col) for col in cfg.columns]
    return jobs


def check_budgets(cfg: EvalConfig, rt: Runtime, samples: dict[str, list[Sample]]) -> None:
    """Run the pipeline's own budget checks on every prompt before the first generation."""
    cols = [c for c in cfg.columns if c.budget is not None]
    for task, ss in samples.items():
        for s in ss:
            prompt = to_prompt(rt.target, s, cfg.style)
            protected = int(prompt.protected.sum())
            for col in cols:
                try:
                    pipeline.plan(col.build(s.max_new_tokens, protected), prompt, [])
                except SpecllamaError as exc:
                    hint = ("; --budget-scope context counts only the context tokens, the protected "
                            "ones on top" if "never dropped" in str(exc) and not col.context else "")
                    raise ConfigError(f"{task} sample {s.index}, {col.label}: {exc}{hint}") from None


def run(cfg: EvalConfig, rt: Runtime, log: LogFn = _stderr, stream=None) -> RunResult:
    """Run the grid (resuming from ``cfg.out``), write the outputs, return the summary."""
    from .report import summarize, write_outputs

    samples = load_samples(cfg, rt, log)
    check_budgets(cfg, rt, samples)
    out = Path(cfg.out)
    store = PredictionStore(out / PREDICTIONS)
    if store.bad_lines:
        log(f"{store.path}: ignored {store.bad_lines} unreadable line(s); those jobs run again")
    target = os.path.basename(rt.cfg.target)
    jobs = plan_jobs(cfg, samples)
    runtimes = {None: rt}  # the column's draft tag -> its runtime (--drafts: one per draft, one target)
    for col in cfg.columns:
        path = cfg.draft_path(col)
        if col.draft not in runtimes:
            runtimes[col.draft] = rt if path == rt.cfg.draft else rt.with_draft(path)
    drafts = {tag: os.path.basename(r.cfg.draft) if r.cfg.draft else None for tag, r in runtimes.items()}
    needs_draft = {c: c.build().needs_draft for c in cfg.columns}

    def key(job: Job) -> tuple:
        return record_key(job.sid, job.column, target, drafts[job.column.draft] if needs_draft[job.column] else None)

    todo = [j for j in jobs if key(j) not in store]
    if len(todo) < len(jobs):
        log(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} job(s) already scored in {store.path}")
    progress = Progress([j.column.label for j in todo], stream=stream)
    prompts: dict[str, Prompt] = {}
    if rt.prefill_cache is None:
        rt.prefill_cache = PrefillCache()  # and one target prefill per KV setting (SnapKV, SpecKV, ...)
    for r in runtimes.values():
        if r.score_cache is None:
            r.score_cache = ScoreCache()  # one draft pass per sample serves every budget (SpecPC, SpecKV)
        r.prefill_cache = rt.prefill_cache  # one target for all: its key holds what the draft decides
    ran = 0
    interrupted = False
    try:
        for job in todo:
            s = job.sample
            if job.sid not in prompts:
                prompts.clear()  # jobs come sample by sample: keep one prompt
                rt.prefill_cache.clear()  # and target prefills (a full-prompt KV state each)
                for r in runtimes.values():
                    r.score_cache.clear()  # and its draft passes only (they can hold a KV state each)
                prompts[job.sid] = to_prompt(rt.target, s, cfg.style)
            prompt = prompts[job.sid]
            gen = GenConfig(n_predict=s.max_new_tokens, sampling=SamplingConfig(temp=0.0, seed=0))
            method = job.column.build(s.max_new_tokens, int(prompt.protected.sum()))
            t0 = time.perf_counter()
            result = pipeline.generate(runtimes[job.column.draft], prompt, method, gen)
            seconds = time.perf_counter() - t0
            sc = score(s.metric, result.text, s.outputs, first_line=bool(s.meta.get("first_line")),
                       all_classes=s.meta.get("all_classes", ()))
            store.add({
                "key": list(key(job)), "task": job.task, "index": s.index, "method": job.column.method,
                "label": job.column.label,
                "budget": job.column.budget, "budget_tokens": method.budget.tokens, "ran": result.method, "pred": result.text,
                "outputs": list(s.outputs), "score": sc, "stop": result.stop, "seconds": round(seconds, 3),
                "length": s.length, "timings": result.timings.as_dict(), "notes": result.notes,
                "seed": cfg.seed if job.task in TASKS else None,  # RULER's data seed (--compare checks it)
            })
            ran += 1
            progress.done(job.column.label, seconds, f"{job.task}#{s.index} {job.column.label} "
                                                      f"score {sc:.0f} ({seconds:.1f}s)")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        for r in runtimes.values():
            if r is not rt:
                r.close()
    records = [store.records[key(j)] for j in jobs if key(j) in store]
    listed = [d for tag, d in drafts.items() if tag is not None] or [drafts[None]]
    summary = summarize(cfg, records, {"target": target, "draft": listed[0] if len(listed) == 1 else listed})
    write_outputs(cfg, summary, out)
    if interrupted:
        log(f"interrupted after {ran} job(s): the summary covers what was scored; rerun the same "
            "command to resume")
        raise KeyboardInterrupt
    return RunResult(summary=summary, ran=ran, reused=len(jobs) - len(todo), records=records)
