#!/usr/bin/env python3
"""Compare the two ways specllama reads attention, on the real default pair, in one process:

- ``qk``: flash attention stays on; the post-RoPE queries of the scoring rows are captured and scored
  against K read back from the KV state (the default where the architecture allows it);
- ``kq``: flash attention off, llama.cpp's ``kq_soft_max`` rows are copied (the reference route).

For SpecPC (draft attention) and SpecKV (target attention) it prints, per route, the median time of
the attention-reading pass (draft prefill for SpecPC, target prefill for SpecKV), the overlap of the
kept sets between routes (Jaccard) and the RULER score.

    python scripts/compare_routes.py --length 4096 --limit 2 -t 2
"""

from __future__ import annotations

import argparse
import statistics

from specllama import registry
from specllama.engine import lib
from specllama.eval.dataset import load_or_generate
from specllama.eval.metrics import score
from specllama.eval.sample import to_prompt
from specllama.methods import Budget, GenConfig, make_method
from specllama.pipeline import generate
from specllama.runtime import Runtime, RuntimeConfig

ROUTES = ("qk", "kq")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="niah_multikey_1")
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--budget", type=int, default=512)
    ap.add_argument("-t", "--threads", type=int, default=2)
    a = ap.parse_args()
    lib.init()
    cfg = RuntimeConfig(target=registry.resolve(None, "target"), draft=registry.resolve(None, "draft"),
                        n_threads=a.threads)
    rows = []
    with Runtime(cfg) as rt:
        samples, _ = load_or_generate(a.task, rt.target, a.length, 0, a.limit)
        for method, timed in (("specpc", "draft_ms"), ("speckv", "prefill_ms")):
            ms = {r: [] for r in ROUTES}
            sc = {r: [] for r in ROUTES}
            jac = []
            for s in samples:
                prompt = to_prompt(rt.target, s)
                kept = {}
                for route in ROUTES:
                    rt.attn_route = route
                    m = make_method(method, budget=Budget(tokens=a.budget))
                    r = generate(rt, prompt, m, GenConfig(n_predict=s.max_new_tokens))
                    ms[route].append(getattr(r.timings, timed))
                    sc[route].append(score(s.metric, r.text, s.outputs))
                    kept[route] = set(int(i) for i in r.kept)
                jac.append(len(kept["qk"] & kept["kq"]) / max(1, len(kept["qk"] | kept["kq"])))
            for route in ROUTES:
                rows.append((method, route, timed, statistics.median(ms[route]) / 1000,
                             statistics.mean(sc[route]), statistics.mean(jac)))
    print(f"{a.task}, {a.length} tokens, budget {a.budget}, {a.limit} samples, -t {a.threads}\n")
    print("| method | route | timed pass | seconds (median) | score % | kept-set Jaccard qk vs kq |")
    print("|---|---|---|---:|---:|---:|")
    for m, route, timed, sec, s, j in rows:
        print(f"| {m} | {route} | {timed.replace('_ms', '')} | {sec:.2f} | {s:.0f} | {j:.3f} |")


if __name__ == "__main__":
    main()
