"""The bench report's JSON schema: its version, the fields every record carries, and the check
that a saved report matches them (``Report.from_json`` refuses one that does not)."""

from __future__ import annotations

from dataclasses import fields

from ..timings import Timings

SCHEMA = "specllama-bench/1"
TIMING_FIELDS = tuple(f.name for f in fields(Timings))
COUNT_FIELDS = frozenset(f.name for f in fields(Timings) if f.type in (int, "int"))
# what probe.py measures; ``hooked`` and ``qk_fa_on`` only appear in reports from before 2026-12
PROBE_VARIANTS = ("plain_fa_off", "plain_fa_on", "hooked", "captured", "qk_fa_on", "plain_pass")


_TOP = {"schema": str, "created": str, "command": str, "machine": dict, "models": dict, "config": dict,
        "cells": list, "probes": list, "bounds": list, "busy_measurements": int}
_CELL = {"length": int, "n_prompt": int, "prompt_sha256": str, "method": str, "label": str, "stages": str,
         "needs_draft": bool, "repeats": list, "peak_rss_bytes": int, "rss_scope": str, "notes": list,
         "median": dict, "ran": list}
_REPEAT = {"timings": dict, "idle": bool, "ran": str, "stop": str, "attempts": int}
_PROBE = {"length": int, "n_prompt": int, "prompt_sha256": str, "runs": list, "peak_rss_bytes": int,
          "median_ms": dict, "capture_overhead": float, "sink_ms": float}
# what a row (or probe) says about its draft; absent from reports made before ``--drafts``
_DRAFT_MODEL = {"name": str, "n_layer": int, "size_bytes": int}
_SKIPPED = {"length": int, "label": str, "reason": str}  # config["skipped"]: rows a draft could not read
_BOUND = {"length": int, "method": str, "dense_ttft_ms": float, "draft_plain_ms": float,
          "draft_plain_variant": str, "target_prefill_ms": float, "measured_ttft_ms": float,
          "ideal_ms": float, "ideal_speedup": float, "measured_speedup": float, "efficiency": float}


def _check(obj, spec: dict, where: str, out: list[str]) -> None:
    if not isinstance(obj, dict):
        out.append(f"{where}: expected an object")
        return
    for key, typ in spec.items():
        if key not in obj:
            out.append(f"{where}: missing {key!r}")
            continue
        v = obj[key]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if typ is float else (
            isinstance(v, typ) and not (typ is int and isinstance(v, bool)))
        if not ok:
            out.append(f"{where}.{key}: expected {typ.__name__}, got {type(v).__name__}")


def _check_draft(obj: dict, where: str, out: list[str]) -> None:
    """``draft_model``, where present: null or the draft's name, layers and size."""
    if obj.get("draft_model") is not None:
        _check(obj["draft_model"], _DRAFT_MODEL, f"{where}.draft_model", out)


def validate(d) -> list[str]:
    """Problems with a report's JSON (empty when it matches :data:`SCHEMA`)."""
    out: list[str] = []
    _check(d, _TOP, "report", out)
    if out:
        return out
    if d["schema"] != SCHEMA:
        out.append(f"report.schema: expected {SCHEMA!r}, got {d['schema']!r}")
    skipped = d["config"].get("skipped", [])
    if not isinstance(skipped, list):
        out.append("config.skipped: expected list")
    else:
        for i, s in enumerate(skipped):
            _check(s, _SKIPPED, f"config.skipped[{i}]", out)
    for i, c in enumerate(d["cells"]):
        _check(c, _CELL, f"cells[{i}]", out)
        if not isinstance(c, dict):
            continue
        _check_draft(c, f"cells[{i}]", out)
        for j, r in enumerate(c.get("repeats", [])):
            _check(r, _REPEAT, f"cells[{i}].repeats[{j}]", out)
            if isinstance(r, dict) and isinstance(r.get("timings"), dict):
                missing = [k for k in TIMING_FIELDS if k not in r["timings"]]
                if missing:
                    out.append(f"cells[{i}].repeats[{j}].timings: missing {', '.join(missing)}")
                for key in ("other_cpu", "other_cpu_during"):
                    if key not in r or not (r[key] is None or isinstance(r[key], (int, float))):
                        out.append(f"cells[{i}].repeats[{j}].{key}: expected a number or null")
    for i, p in enumerate(d["probes"]):
        _check(p, _PROBE, f"probes[{i}]", out)
        if isinstance(p, dict):
            _check_draft(p, f"probes[{i}]", out)
        for j, r in enumerate(p.get("runs", []) if isinstance(p, dict) else []):
            ok = isinstance(r, dict) and r.get("variant") in PROBE_VARIANTS and isinstance(r.get("ms"), (int, float))
            if not ok:
                out.append(f"probes[{i}].runs[{j}]: expected a variant and ms")
    for i, b in enumerate(d["bounds"]):
        _check(b, _BOUND, f"bounds[{i}]", out)
    return out
