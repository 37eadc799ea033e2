"""The markdown tables of a bench report (what ``specllama bench`` prints and a README pastes)."""

from __future__ import annotations

from .report import Report

MIB = 1024 * 1024


def _ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _mib(b: float) -> str:
    return f"{b / MIB:,.0f}" if b >= 100 * MIB else f"{b / MIB:.1f}"


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _share(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _table(head: list[str], rows: list[list[str]], left: int = 2) -> list[str]:
    """A markdown table; its first ``left`` columns are text (left-aligned), the rest numbers."""
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if i >= left else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def model_line(m: dict | None) -> str:
    if not m:
        return "none"
    s = f"{m.get('name', '?')}"
    if m.get("size_bytes"):
        s += f" ({m['size_bytes'] / 2**30:.2f} GiB"
        if m.get("n_layer"):
            s += f", {m['n_layer']} layers × {m.get('n_embd', '?')}"
        s += ")"
    if m.get("random_weights"):
        s += f" **[{m.get('label') or 'random weights, timing only'}]**"
    return s


def draft_cell(m: dict | None) -> str:
    """A row's draft in the table: its layers and size (the row label names it)."""
    if not m:
        return "–"
    return f"{m.get('n_layer', '?')} layers, {_mib(m.get('size_bytes', 0))} MiB"


def markdown(rep: Report) -> str:
    """The tables a README can paste: per-method measurements, then capture cost and the bound."""
    cfg, mach = rep.config, rep.machine
    out = [f"### specllama bench: {model_line(rep.models.get('target'))}", ""]
    drafts = rep.models.get("drafts")
    drafts = [m for m in drafts if isinstance(m, dict)] if isinstance(drafts, list) else []
    multi = len(rep.draft_names) > 1
    if multi and len(drafts) > 1:
        out.append("- drafts: " + "; ".join(model_line(m) for m in drafts))
    else:
        out.append(f"- draft: {model_line(rep.models.get('draft'))}")
    out.append(f"- machine: {mach.get('cpu', '?')}, {mach.get('n_cpu', '?')} CPUs, "
               f"{mach.get('mem_bytes', 0) / 2**30:.0f} GiB RAM"
               + (f", GPU: {mach['gpu']}" if mach.get("gpu") else ", no GPU offload"))
    out.append(f"- threads {cfg.get('threads') or 'all'}, -ngl {cfg.get('n_gpu_layers', 0)}, "
               f"-ngld {cfg.get('n_gpu_layers_draft', 0)}; {cfg.get('budget', '')}; -n {cfg.get('n_predict')}; "
               f"median of {cfg.get('repeats')} repeat(s); corpus: {cfg.get('corpus', '?')}")
    rss = ("one fresh process per method and length" if cfg.get("isolation") == "process"
           else "process-lifetime high-water mark (not per method)")
    out.append(f"- peak RSS: {rss}")
    if rep.command:
        out.append(f"- command: `{rep.command}`")
    out.append("")
    rows = []
    for c in sorted(rep.cells, key=lambda c: (c.length, rep.labels.index(c.label))):
        m = c.median()
        draft = c.needs_draft and m["draft_ms"] > 0
        ran = c.ran
        name = c.label + (f" (ran {', '.join(ran)})" if ran and ran != [c.method] else "")
        rows.append([f"{c.n_prompt:,}", name] + ([draft_cell(c.draft_model)] if multi else []) + [
            f"{m['n_kept']:,.0f}", _ms(m["draft_ms"]) if draft else "–",
            _share(rep.draft_share(c)) if draft else "–",
            _ms(m["capture_ms"] + m["select_ms"]) if c.stages != "dense" else "–",
            _ms(m["prefill_ms"]), _ms(m["ttft_ms"]), _x(rep.speedup(c)),
            f"{m['decode_tps']:.1f} ({m['decode_tokens']:.0f})", _mib(m["kv_bytes"]),
            _mib(c.peak_rss_bytes), _share(c.max_other_cpu) + (" ⚠" if c.busy else ""),
        ])
    out += _table(["prompt", "method"] + (["draft"] if multi else []) + [
                   "kept", "draft ms", "draft / dense prefill", "scoring ms", "target prefill ms", "TTFT ms",
                   "TTFT vs dense", "decode t/s (n)", "KV MiB", "peak RSS MiB", "others' CPU"], rows, 3 if multi else 2)
    out += ["", "_draft / dense prefill_: the draft's time as a share of dense's own prefill. "
            "_scoring ms_: reducing the captured attention and choosing tokens. _TTFT vs dense_: "
            "dense TTFT / method TTFT. _KV_: target KV cache during decode. _others' CPU_: highest "
            "share of the machine other processes took just before or while a repeat ran (⚠: above "
            f"{100 * cfg.get('max_busy', 0):.0f}% after {cfg.get('retries', 0)} retries, kept anyway)."]
    skipped = cfg.get("skipped") or []
    if skipped:
        out += ["", "_skipped_: " + "; ".join(f"{s['label']} at {s['length']:,} tokens ({s['reason']})"
                                             for s in skipped) + "."]
    if rep.probes:
        out += ["", "#### Draft attention capture cost and SpecPC's ideal bound", ""]
        bounds = rep.bounds()
        rows = []
        for p in sorted(rep.probes, key=lambda p: p.length):
            plain = p.capture_baseline
            name = (p.draft_model or {}).get("name", "")
            mine = [b for b in bounds if b.length == p.length and (not multi or b.draft_name == name)]
            for b in mine or [None]:
                rows.append([f"{p.n_prompt:,}"] + ([name or "?"] if multi else []) + [
                    _ms(p.median(plain)), _ms(p.median("captured")),
                    f"{100 * p.capture_overhead:+.1f}% vs FA {'on' if plain == 'plain_fa_on' else 'off'}",
                    _ms(p.sink_ms), _ms(p.median("plain_pass")) if p.has("plain_pass") else "–",
                    b.method if b else "–", _ms(b.draft_plain_ms) if b else "–", _ms(b.ideal_ms) if b else "–",
                    _x(b.ideal_speedup) if b else "–", _x(b.measured_speedup) if b else "–",
                    f"{b.efficiency:.2f}" if b else "–",
                ])
        cheap = next((p.plain_pass for p in rep.probes if p.plain_pass), "")
        out += _table(["prompt"] + (["draft"] if multi else []) + [
                       "exact draft prefill", "with capture", "capture overhead", "of which reduce ms",
                       f"cheap pass prefill ({cheap or 'none'})", "method", "its draft, no capture ms",
                       "ideal TTFT ms", "ideal speed-up", "measured speed-up", "measured / ideal"], rows)
        out += ["", "_exact draft prefill_: no capture, flash attention as the capture context has it (on "
                "with the default Q·K route, off with the `kq_soft_max` route). _with capture_: the exact "
                "draft as SpecPC runs it. _capture overhead_: with capture / exact prefill - 1. _cheap pass "
                "prefill_: the sparse / fewer-layer draft pass, no capture. _ideal TTFT_: the row's own "
                "draft pass with no capture + the target prefill of the kept tokens (from the method's "
                "own run); speed-ups are against dense TTFT."]
    return "\n".join(out) + "\n"
