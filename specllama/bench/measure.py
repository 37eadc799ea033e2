"""Measuring one cell (one method, or the draft probe, at one prompt length) in this process.

Each cell gets a fresh :class:`~specllama.runtime.Runtime`, so contexts sized by one method never
serve another (the KV bytes reported are the method's own), and runs ``repeats`` times after an
idle check; requests go through :func:`specllama.pipeline.generate` exactly as ``specllama run``
sends them. Peak RSS is this process's high-water mark: per method only when the process ran
nothing else (see ``worker.py``).
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, replace
from typing import Callable

from ..engine import lib
from ..engine.model import Model
from ..errors import ConfigError
from ..methods.base import GenConfig, Method
from ..methods.crossvocab import draft_view
from ..methods.draft import AttentionConfig
from ..methods.draftpass import DraftPass, draft_pass_of
from ..pipeline import generate
from ..runtime import Runtime, RuntimeConfig
from . import idle
from .probe import DraftProbe
from .prompts import BenchPrompt, make_prompt
from .report import Cell, ProbeResult, Repeat

LogFn = Callable[[str], None]
RANDOM_MARK = "RANDOM WEIGHTS"


@dataclass(frozen=True)
class MeasureConfig:
    """How each cell is measured.

    Attributes:
        repeats: timed runs per cell; the report gives their median.
        n_predict: tokens generated per run (decode speed is measured over them).
        warmup: pay once-per-process costs untimed first (see ``_warm``).
        max_busy: share of the machine's CPU other processes may take for it to count as idle.
        idle_wait_s: how long to wait for idleness before measuring anyway (flagged in the report).
        idle_interval_s: sampling interval of the idle check.
        retries: times a run is measured again when other processes took more than ``max_busy``
            of the CPU *while* it ran (the last attempt is kept either way, and flagged).
        corpus: text file for the prompts (None: the essays if installed, else generated prose).
    """

    repeats: int = 3
    n_predict: int = 32
    warmup: bool = True
    max_busy: float = 0.10
    idle_wait_s: float = 30.0
    idle_interval_s: float = 0.5
    retries: int = 2
    corpus: str | None = None

    def __post_init__(self):
        if self.repeats < 1:
            raise ConfigError(f"--repeats must be >= 1, got {self.repeats}")
        if self.n_predict < 1:
            raise ConfigError(f"-n must be >= 1 for bench, got {self.n_predict}")
        if not 0.0 <= self.max_busy <= 1.0:
            raise ConfigError(f"--max-busy must be in [0, 1], got {self.max_busy}")
        if self.idle_wait_s < 0:
            raise ConfigError(f"--idle-wait must be >= 0, got {self.idle_wait_s}")
        if self.idle_interval_s <= 0:
            raise ConfigError(f"idle sampling interval must be > 0, got {self.idle_interval_s}")
        if self.retries < 0:
            raise ConfigError(f"--retries must be >= 0, got {self.retries}")


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``ru_maxrss``: kB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def model_info(m: Model) -> dict:
    """What the report says about a model; random-weight stand-ins are labelled."""
    name = m.meta("general.name") or m.name
    desc = m.meta("general.description") or ""
    random = RANDOM_MARK in name.upper() or RANDOM_MARK in desc.upper()
    return {"name": m.name, "general_name": name, "path": m.path, "size_bytes": m.size_bytes,
            "n_layer": m.info.n_layer, "n_embd": m.info.n_embd, "n_head": m.info.n_head,
            "n_head_kv": m.info.n_head_kv, "n_vocab": m.info.n_vocab, "random_weights": random,
            "label": "RANDOM WEIGHTS, timing only" if random else None}


def draft_brief(m: Model) -> dict:
    """What a row says about the draft it ran with: file name, layers and size."""
    return {"name": m.name, "n_layer": m.info.n_layer, "size_bytes": m.size_bytes}


def draft_of(method: Method) -> str:
    """How the method's SpecPC stage runs the draft (``DraftPass.describe``), or ""."""
    dp = draft_pass_of(method)
    return dp.describe() if dp is not None else ""


def stages_of(method: Method) -> str:
    parts = [n for n, s in (("prompt", method.prompt_stage), ("kv", method.kv_stage)) if s is not None]
    return "+".join(parts) or "dense"


@dataclass(frozen=True)
class Watched:
    """A measured run and what other processes did: just ``before`` it and ``during`` it."""

    value: object
    before: idle.IdleSample
    during: idle.IdleSample
    attempts: int

    @property
    def idle(self) -> bool:
        return self.before.idle and self.during.idle

    def describe(self) -> str:
        d = self.during.other_share
        s = f"{self.before.describe()} before" + ("" if d is None else f", {100 * d:.0f}% during")
        return s + (f" ({self.attempts} attempts)" if self.attempts > 1 else "")


def watched(fn: Callable[[], object], cfg: MeasureConfig, what: str, log: LogFn) -> Watched:
    """Run ``fn`` once the machine is idle (or ``idle_wait_s`` has passed), watching the CPU that
    other processes take meanwhile; run it again (up to ``retries`` times) when they took more
    than ``max_busy`` while it ran."""
    for attempt in range(cfg.retries + 1):
        before = idle.wait_idle(cfg.max_busy, cfg.idle_wait_s, cfg.idle_interval_s)
        if not before.idle:
            log(f"warning: machine busy before {what} ({before.describe()}); measuring anyway after "
                f"waiting {before.waited_s:.0f} s")
        a = idle.snapshot()
        value = fn()
        b = idle.snapshot()
        during = idle.IdleSample(other_share=None) if a is None or b is None else idle.other_share(a, b)
        busy = during.other_share is not None and during.other_share > cfg.max_busy
        during = replace(during, idle=not busy)
        if not busy or attempt == cfg.retries:
            if busy:
                log(f"warning: {what} was disturbed ({during.describe()} while it ran); kept, flagged")
            return Watched(value, before, during, attempt + 1)
        log(f"{what}: {during.describe()} while it ran; measuring again")
    raise AssertionError("unreachable")


def _warm(rt: Runtime, method: Method, bp: BenchPrompt, n: int = 128) -> None:
    """Untimed once-per-process costs: a short decode per model the method uses (pages the
    weights in, starts llama.cpp's threads) and the draft/target tokenizer comparison (the note
    when they differ)."""
    toks = bp.prompt.tokens[:n]
    ctx = rt.target_ctx(len(toks) + 1)
    ctx.decode(toks, start_pos=0)
    ctx.clear()
    if method.needs_draft:
        if not rt.note_tokenizers():
            toks = rt.draft.tokenize(rt.target.detokenize(toks))[:n]
        stage = method.prompt_stage
        model = stage.draft_pass(rt, bp.n)[0] if draft_pass_of(method) is not None else rt.draft  # untimed write
        dctx, _ = rt.draft_ctx(len(toks) + 1, model)
        dctx.decode(toks, start_pos=0)
        dctx.clear()


def measure_method(rt: Runtime, method: Method, length: int, cfg: MeasureConfig,
                   log: LogFn = lambda s: None) -> tuple[Cell, dict]:
    """Run ``method`` ``cfg.repeats`` times on the ``length``-token prompt.

    Returns the cell and ``{"target": info, "draft": info or None}`` for the report.
    """
    lib.init()
    bp = make_prompt(rt.target, length, cfg.corpus)
    label = method.describe()
    cell = Cell(length=length, n_prompt=bp.n, prompt_sha256=bp.sha256, method=method.name, label=label,
                stages=stages_of(method), needs_draft=method.needs_draft, draft=draft_of(method))
    gen = GenConfig(n_predict=cfg.n_predict)
    if cfg.warmup:
        _warm(rt, method, bp)
    for i in range(cfg.repeats):
        w = watched(lambda: generate(rt, bp.prompt, method, gen), cfg, f"{label} at {bp.n} tokens", log)
        res = w.value
        t = res.timings
        cell.repeats.append(Repeat(timings=t.as_dict(), other_cpu=w.before.other_share,
                                   other_cpu_during=w.during.other_share, idle=w.idle, ran=res.method,
                                   stop=res.stop, attempts=w.attempts))
        for n in res.notes:
            if n not in cell.notes:
                cell.notes.append(n)
        log(f"{bp.n} tokens, {label}, repeat {i + 1}/{cfg.repeats}: TTFT {t.ttft_ms / 1000:.2f} s, "
            f"decode {t.decode_tps:.1f} t/s; {w.describe()}")
    cell.peak_rss_bytes = peak_rss_bytes()
    models = {"target": model_info(rt.target), "draft": model_info(rt.draft) if method.needs_draft else None}
    if method.needs_draft:
        cell.draft_model = draft_brief(rt.draft)
    return cell, models


def measure_probe(rt: Runtime, payload: tuple[AttentionConfig, DraftPass | None], length: int,
                  cfg: MeasureConfig, log: LogFn = lambda s: None) -> ProbeResult:
    """Time the draft prefill variants of ``probe.py``, interleaved, ``cfg.repeats`` times each;
    ``payload`` is the capture settings and the cheap draft pass (see ``probe.attention_of``)."""
    lib.init()
    attention, cheap = payload
    bp = make_prompt(rt.target, length, cfg.corpus)
    res = ProbeResult(length=length, n_prompt=bp.n, prompt_sha256=bp.sha256,
                      plain_pass=cheap.describe() if cheap is not None else "")
    view = draft_view(rt, bp.prompt)  # a draft with another tokenizer prefills its own reading of it
    probe = DraftProbe(rt, bp.prompt if view is None else view.draft, attention, cheap)
    try:
        if cfg.warmup:
            probe.warm()
        for i in range(cfg.repeats):
            for v in probe.variants:
                w = watched(lambda: probe.run(v), cfg, f"draft prefill {v} at {bp.n} tokens", log)
                r = w.value
                res.runs.append({"variant": v, "ms": r.ms, "sink_ms": r.sink_ms, "flash_attn": r.flash_attn,
                                 "other_cpu": w.before.other_share,
                                 "other_cpu_during": w.during.other_share, "idle": w.idle, "attempts": w.attempts})
                log(f"{bp.n} tokens, draft prefill {v}, repeat {i + 1}/{cfg.repeats}: {r.ms / 1000:.2f} s; "
                    f"{w.describe()}")
    finally:
        probe.close()
    res.peak_rss_bytes = peak_rss_bytes()
    res.draft_model = draft_brief(rt.draft)
    return res


def run_cell(kind: str, runtime: RuntimeConfig, payload, length: int, cfg: MeasureConfig,
             log: LogFn = lambda s: None):
    """One cell with its own runtime: ``kind`` is ``method`` (payload: a Method) or ``probe``
    (payload: an AttentionConfig)."""
    with Runtime(runtime) as rt:
        if kind == "method":
            return measure_method(rt, payload, length, cfg, log)
        if kind == "probe":
            return measure_probe(rt, payload, length, cfg, log)
    raise ValueError(f"unknown cell kind {kind!r}")
