"""Benchmark results: records, medians, the SpecPC ideal bound and their JSON.

The JSON's schema check is ``schema.py``, the markdown tables ``tables.py``. Nothing here runs a
model; :mod:`specllama.bench.runner` fills these records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..timings import Timings
from .schema import COUNT_FIELDS, PROBE_VARIANTS, SCHEMA, TIMING_FIELDS, validate  # noqa: F401 (re-exported)


def median(values) -> float:
    vals = [float(v) for v in values]
    return float(np.median(vals)) if vals else 0.0


@dataclass
class Repeat:
    """One measured request: its :class:`Timings` as a dict, and the share of the machine's CPU
    other processes took just before it (``other_cpu``) and while it ran (``other_cpu_during``);
    ``idle`` is False when either was above the run's ``max_busy``; ``attempts`` counts the runs
    made to get one undisturbed (the last is kept)."""

    timings: dict
    other_cpu: float | None
    other_cpu_during: float | None = None
    idle: bool = True
    ran: str = ""
    stop: str = ""
    attempts: int = 1


@dataclass
class Cell:
    """One method at one prompt length: its repeats and the process's peak RSS.

    Attributes:
        length: requested prompt length in target tokens; ``n_prompt`` what was built.
        method: registry name; ``label`` e.g. ``specpc keep 0.2``.
        stages: ``dense``, ``prompt``, ``kv`` or ``prompt+kv``.
        needs_draft: whether the method reads the draft.
        peak_rss_bytes: high-water resident memory of the measuring process; ``rss_scope`` is
            ``method`` when that process ran only this cell, ``process`` when it ran others too.
        draft: how SpecPC ran the draft (``DraftPass.describe()``, e.g. ``exact draft``), or "".
        draft_model: the draft the row ran with (``name``: its file name, ``n_layer``,
            ``size_bytes``), None for a row that reads no draft.
    """

    length: int
    n_prompt: int
    prompt_sha256: str
    method: str
    label: str
    stages: str
    needs_draft: bool
    repeats: list[Repeat] = field(default_factory=list)
    peak_rss_bytes: int = 0
    rss_scope: str = "method"
    notes: list[str] = field(default_factory=list)
    draft: str = ""
    draft_model: dict | None = None

    @property
    def draft_name(self) -> str | None:
        return self.draft_model.get("name") if self.draft_model else None

    def median(self) -> dict:
        """Per-field medians of the repeats' timings, plus ``decode_tps``."""
        out: dict = {k: median(r.timings.get(k, 0) for r in self.repeats) for k in TIMING_FIELDS}
        for k in COUNT_FIELDS:
            out[k] = int(round(out[k]))
        out["decode_tps"] = median(Timings(**{k: r.timings[k] for k in TIMING_FIELDS if k in r.timings}).decode_tps
                                   for r in self.repeats)
        return out

    @property
    def ran(self) -> list[str]:
        return sorted({r.ran for r in self.repeats if r.ran})

    @property
    def busy(self) -> bool:
        return any(not r.idle for r in self.repeats)

    @property
    def max_other_cpu(self) -> float | None:
        """The highest share other processes took before or during any repeat."""
        shares = [v for r in self.repeats for v in (r.other_cpu, r.other_cpu_during) if v is not None]
        return max(shares) if shares else None


@dataclass
class ProbeResult:
    """Draft prefill of one prompt with and without attention capture (see ``probe.py``)."""

    length: int
    n_prompt: int
    prompt_sha256: str
    runs: list[dict] = field(default_factory=list)  # {variant, ms, sink_ms, other_cpu, idle}
    peak_rss_bytes: int = 0
    plain_pass: str = ""  # the cheap draft pass timed as ``plain_pass`` (DraftPass.describe())
    draft_model: dict | None = None  # the draft probed, as ``Cell.draft_model`` (None: older reports)

    def median(self, variant: str) -> float:
        return median(r["ms"] for r in self.runs if r["variant"] == variant)

    def has(self, variant: str) -> bool:
        return any(r["variant"] == variant for r in self.runs)

    @property
    def sink_ms(self) -> float:
        return median(r.get("sink_ms", 0.0) for r in self.runs if r["variant"] == "captured")

    @property
    def capture_baseline(self) -> str:
        """The plain variant like for like with ``captured``: the same flash-attention setting."""
        fa = any(r.get("flash_attn") for r in self.runs if r["variant"] == "captured")
        return "plain_fa_on" if fa else "plain_fa_off"

    @property
    def capture_overhead(self) -> float:
        """captured / plain - 1, with flash attention set alike (:attr:`capture_baseline`)."""
        plain = self.median(self.capture_baseline)
        return self.median("captured") / plain - 1.0 if plain > 0 else 0.0

    @property
    def best_plain(self) -> tuple[str, float]:
        """The faster draft prefill without capture: ``(variant, ms)``."""
        cands = [(self.median(v), v) for v in ("plain_fa_off", "plain_fa_on")
                 if any(r["variant"] == v for r in self.runs)]
        ms, v = min(cands)
        return v, ms

    @property
    def busy(self) -> bool:
        return any(not r.get("idle", True) for r in self.runs)


@dataclass(frozen=True)
class Bound:
    """SpecPC's ideal bound at one length: a draft prefill with no capture plus the target's
    prefill of the kept tokens, against dense TTFT (all medians, in ms)."""

    length: int
    method: str
    dense_ttft_ms: float
    draft_plain_ms: float
    draft_plain_variant: str
    target_prefill_ms: float
    measured_ttft_ms: float
    draft_name: str = ""  # the row's draft (file name); "" in reports from before --drafts

    @property
    def ideal_ms(self) -> float:
        return self.draft_plain_ms + self.target_prefill_ms

    @property
    def ideal_speedup(self) -> float:
        return self.dense_ttft_ms / self.ideal_ms if self.ideal_ms > 0 else 0.0

    @property
    def measured_speedup(self) -> float:
        return self.dense_ttft_ms / self.measured_ttft_ms if self.measured_ttft_ms > 0 else 0.0

    @property
    def efficiency(self) -> float:
        """Measured speed-up as a fraction of the ideal one (= ideal_ms / measured_ms)."""
        return self.measured_speedup / self.ideal_speedup if self.ideal_speedup > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(ideal_ms=self.ideal_ms, ideal_speedup=self.ideal_speedup,
                 measured_speedup=self.measured_speedup, efficiency=self.efficiency)
        return d


@dataclass
class Report:
    """A whole ``specllama bench`` run."""

    machine: dict
    models: dict
    config: dict
    cells: list[Cell] = field(default_factory=list)
    probes: list[ProbeResult] = field(default_factory=list)
    created: str = ""
    command: str = ""

    # -- lookups ------------------------------------------------------------------------------
    @property
    def lengths(self) -> list[int]:
        return sorted({c.length for c in self.cells})

    @property
    def methods(self) -> list[str]:
        """Method names in the order the run was asked for (dense first), then any others."""
        seen: list[str] = [m for m in self.config.get("methods", []) if any(c.method == m for c in self.cells)]
        for c in self.cells:
            if c.method not in seen:
                seen.append(c.method)
        return seen

    @property
    def labels(self) -> list[str]:
        """Row labels (a method with its settings) in the order the run asked for them."""
        seen: list[str] = [lb for lb in self.config.get("labels", []) if any(c.label == lb for c in self.cells)]
        for c in self.cells:
            if c.label not in seen:
                seen.append(c.label)
        return seen

    def cell(self, length: int, method: str) -> Cell | None:
        """The cell of ``method`` (a registry name, e.g. ``dense``, or a row label) at ``length``."""
        return next((c for c in self.cells if c.length == length and method in (c.method, c.label)), None)

    def draft_share(self, c: Cell) -> float | None:
        """This cell's draft time / dense prefill time at the same length."""
        d = self.cell(c.length, "dense")
        if d is None or not d.repeats or not c.repeats or not c.needs_draft:
            return None
        dense = d.median()["prefill_ms"]
        return c.median()["draft_ms"] / dense if dense > 0 else None

    @property
    def draft_names(self) -> list[str]:
        """The file names of the drafts the rows ran with, in the order measured."""
        out: list[str] = []
        for c in self.cells:
            if c.draft_name and c.draft_name not in out:
                out.append(c.draft_name)
        return out

    def probe(self, length: int, draft: str | None = None) -> ProbeResult | None:
        """The probe at ``length`` of the draft whose file name is ``draft`` (a report from before
        probes named their draft: its one probe at that length)."""
        at = [p for p in self.probes if p.length == length]
        if draft is not None:
            at = [p for p in at if p.draft_model and p.draft_model.get("name") == draft] or [
                p for p in at if not p.draft_model]
        return at[0] if at else None

    def speedup(self, c: Cell) -> float | None:
        """Dense TTFT / this cell's TTFT at the same length (None without a dense cell)."""
        d = self.cell(c.length, "dense")
        if d is None or not d.repeats or not c.repeats:
            return None
        t = c.median()["ttft_ms"]
        return d.median()["ttft_ms"] / t if t > 0 else None

    def bounds(self) -> list[Bound]:
        """The ideal bound for every draft-read, prompt-only method that really compressed: its
        own draft pass with no capture (the exact draft's plain prefill, or ``plain_pass`` for the
        cheap pass the probe timed) plus the target's prefill of the kept tokens."""
        out = []
        for c in self.cells:
            d, p = self.cell(c.length, "dense"), self.probe(c.length, c.draft_name)
            if (c.stages != "prompt" or not c.needs_draft or d is None or p is None or not c.repeats
                    or c.ran != [c.method]):
                continue
            if c.draft in ("", "exact draft"):
                variant, plain = p.best_plain
            elif c.draft == p.plain_pass and p.has("plain_pass"):
                variant, plain = "plain_pass", p.median("plain_pass")
            else:
                continue
            m = c.median()
            out.append(Bound(length=c.length, method=c.label, dense_ttft_ms=d.median()["ttft_ms"],
                             draft_plain_ms=plain, draft_plain_variant=variant,
                             target_prefill_ms=m["prefill_ms"], measured_ttft_ms=m["ttft_ms"],
                             draft_name=c.draft_name or ""))
        return out

    # -- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        cells = []
        for c in self.cells:
            d = asdict(c)
            d["median"] = c.median()
            d["ran"] = c.ran
            d["ttft_speedup_vs_dense"] = self.speedup(c)
            d["draft_share_of_dense_prefill"] = self.draft_share(c)
            cells.append(d)
        probes = []
        for p in self.probes:
            d = asdict(p)
            d["median_ms"] = {v: p.median(v) for v in PROBE_VARIANTS if any(r["variant"] == v for r in p.runs)}
            d["capture_overhead"] = p.capture_overhead
            d["sink_ms"] = p.sink_ms
            probes.append(d)
        busy = sum(1 for c in self.cells for r in c.repeats if not r.idle)
        busy += sum(1 for p in self.probes for r in p.runs if not r.get("idle", True))
        return {"schema": SCHEMA, "created": self.created, "command": self.command,
                "machine": self.machine, "models": self.models, "config": self.config,
                "cells": cells, "probes": probes, "bounds": [b.as_dict() for b in self.bounds()],
                "busy_measurements": busy}

    @classmethod
    def from_json(cls, d: dict) -> "Report":
        problems = validate(d)
        if problems:
            raise ValueError("not a specllama bench report: " + "; ".join(problems[:3]))
        cells = []
        for c in d["cells"]:
            reps = [Repeat(**r) for r in c["repeats"]]
            keep = {f.name for f in fields(Cell)} - {"repeats"}
            cells.append(Cell(**{k: v for k, v in c.items() if k in keep}, repeats=reps))
        keep_p = {f.name for f in fields(ProbeResult)}
        probes = [ProbeResult(**{k: v for k, v in p.items() if k in keep_p}) for p in d["probes"]]
        return cls(machine=d["machine"], models=d["models"], config=d["config"], cells=cells,
                   probes=probes, created=d.get("created", ""), command=d.get("command", ""))
