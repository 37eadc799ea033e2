#!/usr/bin/env python3
"""Measure each lever that makes SpecPC's draft pass cheaper, alone and combined, against the exact
draft, on the same prompts in one process: draft seconds, kept-set overlap (Jaccard) with the
exact draft's, and whether the needle sentence survives.

Prompts are the benchmark's (``bench/prompts.py``: essays with a passphrase needle) at several
depths. Each variant runs SpecPC's real draft pass (``SpecPCStage.select``) with one
``DraftPass`` setting, optionally on a requantized copy of the draft.

    python scripts/draft_levers.py --length 8192 --depths 0.1,0.5,0.9 -t 2 \\
        --variants exact,w256,w512,w1024,w2048,l12,l16,w1024+l16 --out docs/results/draft-levers-8k.md

The first variant (``exact`` when listed) is the reference. Variant names: ``exact``; ``wN`` sparse with local window N; ``lN`` the first N layers;
``sK`` sinks K (with a ``w``); ``qTYPE`` the draft requantized to TYPE (q4_0, q8_0); joined with
``+`` (``w1024+l16+q4_0``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from specllama import registry  # noqa: E402
from specllama.bench.prompts import make_prompt  # noqa: E402
from specllama.engine import lib  # noqa: E402
from specllama.methods.base import GenConfig, Job  # noqa: E402
from specllama.methods.draftpass import EXACT, DraftPass  # noqa: E402
from specllama.methods.specpc import SpecPCConfig, SpecPCStage  # noqa: E402
from specllama.runtime import Runtime, RuntimeConfig  # noqa: E402
from specllama.timings import Timings  # noqa: E402

FTYPES = {"q4_0": 2, "q8_0": 7, "q4_k_m": 15}


def parse_variant(spec: str) -> tuple[DraftPass, str | None]:
    """``w1024+l16+q4_0`` -> (DraftPass(sparse, window 1024, 16 layers), "q4_0")."""
    dp, quant = EXACT, None  # full attention, every layer
    for part in spec.split("+"):
        if part == "exact":
            continue
        if part.startswith("w"):
            dp = replace(dp, attn="sparse", local_window=int(part[1:]))
        elif part.startswith("s"):
            dp = replace(dp, sinks=int(part[1:]))
        elif part.startswith("l"):
            dp = replace(dp, layers=int(part[1:]))
        elif part.startswith("q"):
            quant = part
        else:
            raise SystemExit(f"unknown variant part {part!r}")
    return dp, quant


def requantized(src: str, quant: str) -> str:
    """The draft converted to ``quant`` with llama.cpp's own quantizer (cached beside the models)."""
    C = lib.C
    dst = str(registry.cache_dir() / "derived" / (os.path.basename(src).rsplit(".", 1)[0] + f".{quant}.gguf"))
    if os.path.exists(dst):
        return dst
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    p = C.llama_model_quantize_default_params()
    p.ftype = FTYPES[quant]
    p.allow_requantize = True
    p.nthread = 2
    t0 = time.time()
    rc = C.llama_model_quantize(src.encode(), (dst + ".tmp").encode(), p)
    if rc != 0:
        raise SystemExit(f"quantize to {quant} failed ({rc})")
    os.replace(dst + ".tmp", dst)
    print(f"# quantized {os.path.basename(src)} -> {quant} in {time.time() - t0:.1f} s", file=sys.stderr)
    return dst


def needle_kept(keep: np.ndarray, prompt, needle_tokens: np.ndarray) -> float:
    """Fraction of the needle sentence's tokens among the kept ones."""
    toks = prompt.tokens
    m = len(needle_tokens)
    for i in range(len(toks) - m + 1):
        if np.array_equal(toks[i:i + m], needle_tokens):
            return float(np.isin(np.arange(i, i + m), keep).mean())
    # tokenization at the boundary may differ: fall back to the longest inner run
    inner = needle_tokens[1:-1]
    for i in range(len(toks) - len(inner) + 1):
        if np.array_equal(toks[i:i + len(inner)], inner):
            return float(np.isin(np.arange(i, i + len(inner)), keep).mean())
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--depths", default="0.1,0.5,0.9")
    ap.add_argument("--variants", default="exact,w1024")
    ap.add_argument("--keep", type=float, default=0.2)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-ub", "--ubatch", type=int, default=512)
    ap.add_argument("-b", "--batch", type=int, default=512)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    lib.init()
    target, draft = registry.resolve(None, "target"), registry.resolve(None, "draft")
    depths = [float(x) for x in a.depths.split(",")]
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    ref_name = "exact" if "exact" in variants else variants[0]  # what Jaccard compares against
    rows = []
    exact_keep: dict[float, np.ndarray] = {}
    runtimes: dict[str | None, Runtime] = {}
    prompts = {}
    for spec in variants:
        dp, quant = parse_variant(spec)
        path = requantized(draft, quant) if quant else draft
        rt = runtimes.get(quant)
        if rt is None:
            rt = runtimes[quant] = Runtime(RuntimeConfig(target=target, draft=path, n_threads=a.threads,
                                                         n_batch=a.batch, n_ubatch=a.ubatch))
        stage = SpecPCStage(SpecPCConfig(draft=dp))
        if dp.layers:
            rt.draft_prefix(dp.layers)  # write/load the prefix outside the timing
        warm = make_prompt(rt.target, 1024, depth=0.5)  # untimed: page the weights in, start threads
        stage.select(Job(prompt=warm.prompt, budget=256, gen=GenConfig(n_predict=1), rt=rt, timings=Timings()), 256)
        for depth in depths:
            if depth not in prompts:
                prompts[depth] = make_prompt(rt.target, a.length, depth=depth, seed=int(depth * 100))
            bp = prompts[depth]
            budget = int(np.ceil(a.keep * bp.n))
            job = Job(prompt=bp.prompt, budget=budget, gen=GenConfig(n_predict=1), rt=rt, timings=Timings())
            t0 = time.perf_counter()
            keep = stage.select(job, budget)
            wall = time.perf_counter() - t0
            needle = rt.target.tokenize(" " + bp.needle)
            if spec == ref_name:
                exact_keep[depth] = keep
            ref = exact_keep[depth]
            jac = len(np.intersect1d(keep, ref)) / len(np.union1d(keep, ref))
            row = dict(variant=spec, depth=depth, n=bp.n, draft_s=job.timings.draft_ms / 1000, wall_s=wall,
                       jaccard=jac, needle=needle_kept(keep, bp.prompt, needle))
            rows.append(row)
            print(f"{spec:>16} depth {depth:.2f}: draft {row['draft_s']:7.2f} s  jaccard {jac:.3f}  "
                  f"needle kept {row['needle']:.2f}", file=sys.stderr, flush=True)
    for rt in runtimes.values():
        rt.close()
    lines = [f"# draft levers at {a.length} tokens (keep {a.keep}, -t {a.threads}, -ub {a.ubatch}, "
             f"{time.strftime('%Y-%m-%d')})", "",
             f"`python scripts/draft_levers.py --length {a.length} --depths {a.depths} -t {a.threads} "
             f"-ub {a.ubatch} --variants {','.join(variants)}`", "",
             f"| variant | draft s (median) | vs {ref_name} | Jaccard vs {ref_name} (min / mean) | needle kept (min) |",
             "|---|---:|---:|---:|---:|"]
    base = np.median([r["draft_s"] for r in rows if r["variant"] == ref_name])
    for spec in variants:
        rs = [r for r in rows if r["variant"] == spec]
        d = float(np.median([r["draft_s"] for r in rs]))
        j = [r["jaccard"] for r in rs]
        lines.append(f"| {spec} | {d:.2f} | {d / base:.2f}x | {min(j):.3f} / {np.mean(j):.3f} | "
                     f"{min(r['needle'] for r in rs):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
