#!/usr/bin/env python3
"""Measure SpecPC with the kept tokens renumbered (0..k-1) against kept at their original positions,
on RULER retrieval tasks, with one draft pass per sample serving both. Prints a markdown table.

    python scripts/compare_positions.py --length 4096 --limit 5 --budgets 512,1024 -t 2
"""

from __future__ import annotations

import argparse
import sys
import time

from specllama import registry
from specllama.engine import lib
from specllama.eval.dataset import load_or_generate
from specllama.eval.metrics import score
from specllama.eval.sample import to_prompt
from specllama.methods import Budget, GenConfig, make_method
from specllama.methods.specpc import SpecPCConfig
from specllama.pipeline import generate
from specllama.runtime import Runtime, RuntimeConfig
from specllama.scoring import ScoreCache


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="niah_single_2,niah_multikey_1,niah_multivalue")
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--budgets", default="512,1024")
    ap.add_argument("-t", "--threads", type=int, default=2)
    a = ap.parse_args()
    lib.init()
    cfg = RuntimeConfig(target=registry.resolve(None, "target"), draft=registry.resolve(None, "draft"),
                        n_threads=a.threads)
    budgets = [int(b) for b in a.budgets.split(",")]
    scores: dict[tuple[str, int], list[float]] = {}
    t0 = time.time()
    with Runtime(cfg) as rt:
        rt.score_cache = ScoreCache()
        for task in a.tasks.split(","):
            samples, _ = load_or_generate(task, rt.target, a.length, 0, a.limit)
            for s in samples:
                prompt = to_prompt(rt.target, s)
                for b in budgets:
                    for pos in ("renumber", "original"):
                        m = make_method("specpc", budget=Budget(tokens=b), cfg=SpecPCConfig(positions=pos))
                        r = generate(rt, prompt, m, GenConfig(n_predict=s.max_new_tokens))
                        sc = score(s.metric, r.text, s.outputs)
                        scores.setdefault((pos, b), []).append(sc)
                        print(f"{task}#{s.index} budget {b} {pos}: {sc:.0f} ({time.time() - t0:.0f} s)",
                              file=sys.stderr, flush=True)
    n = len(next(iter(scores.values())))
    print("| positions | " + " | ".join(f"budget {b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for pos in ("renumber", "original"):
        cells = [f"{sum(scores[(pos, b)]) / n:.1f}" for b in budgets]
        print(f"| {pos} | " + " | ".join(cells) + " |")
    print(f"\n{n} samples ({a.tasks} at {a.length} tokens), score = RULER string_match_all (0-100)")


if __name__ == "__main__":
    main()
