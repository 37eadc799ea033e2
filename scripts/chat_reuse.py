#!/usr/bin/env python3
"""Measure `specllama chat`'s turn-2 latency with KV reuse against re-prefilling the whole history,
on the same ~3K-token needle document, in one process. Prints a markdown table.

    python scripts/chat_reuse.py -t 2 --method specpc
"""

from __future__ import annotations

import argparse
import time

from specllama import registry
from specllama.chat.session import ChatSession
from specllama.engine import lib
from specllama.eval.haystack import ANSWER, QUESTION, needle_document
from specllama.runtime import Runtime, RuntimeConfig

FOLLOW_UP = "Which bird was that number about? Answer in a few words."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="specpc")
    ap.add_argument("--words", type=int, default=2300)
    ap.add_argument("-n", "--n-predict", type=int, default=16)
    ap.add_argument("-t", "--threads", type=int, default=2)
    a = ap.parse_args()
    lib.init()
    cfg = RuntimeConfig(target=registry.resolve(None, "target"), draft=registry.resolve(None, "draft"),
                        n_threads=a.threads)
    doc = needle_document(a.words)
    rows = []
    with Runtime(cfg) as rt:
        for reuse in (True, False):
            chat = ChatSession(rt, {"method": a.method, "n_predict": a.n_predict}, reuse=reuse)
            chat.attach(doc, "doc.txt")
            t0 = time.perf_counter()
            s1 = chat.ask(QUESTION)
            t1 = time.perf_counter()
            s2 = chat.ask(FOLLOW_UP)
            t2 = time.perf_counter()
            rows.append((reuse, s1, s2, t1 - t0, t2 - t1))
            chat.close()
    print(f"method {a.method}, document {a.words} words, -n {a.n_predict}, -t {a.threads}\n")
    print("| turn 2 | turn-1 answer | turn-2 TTFT s | turn-2 total s | target tokens prefilled | "
          "draft tokens prefilled | turn-2 answer |")
    print("|---|---|---:|---:|---:|---:|---|")
    for reuse, s1, s2, d1, d2 in rows:
        ok = "correct" if ANSWER in s1.text else f"wrong ({s1.text.strip()[:30]!r})"
        t = s2.timings
        print(f"| {'reuse KV' if reuse else 're-prefill history'} | {ok} | {t.ttft_ms / 1000:.2f} | {d2:.2f} | "
              f"{t.prefill_tokens} | {t.draft_tokens if s2.draft_reused is not None else '-'} | "
              f"{s2.text.strip()[:40]!r} |")


if __name__ == "__main__":
    main()
