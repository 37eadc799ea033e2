"""Cross-check specllama's RULER generator and scorer against RULER's own (``nvidia-long-context-eval``).

For each task, samples come from RULER's script (:mod:`.rulerref`) and from specllama's generator,
at the same length, with the same tokenizer (the target GGUF's, vocab-only) and the same prompt
text: RULER's ``base`` template, i.e. specllama's ``--raw`` prompts (no chat template). The report
compares what each generator produced (lengths, evidence statements, the question and instruction
lines, where the answer sits), then scores every sample's reference answer and a few deliberately
wrong answers with RULER's scorer and with specllama's, and lists every disagreement. No model
inference runs: it is generation and scoring only.

    python -m specllama.eval.crosscheck --tasks niah_single_2,vt --length 4096 -n 10 \\
        --out docs/results/ruler-crosscheck.md
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass
from collections.abc import Callable, Sequence

from ..errors import ConfigError, SpecllamaError
from . import rulerref
from .metrics import score
from .ruler import TASKS, generate_sample
from .sample import PromptStyle

# per task family: the question's query, and the statements that carry the answer
QUERY = {"niah": re.compile(r"for (.+?) mentioned in the provided text\?"),
         "variable_tracking": re.compile(r"assigned the value (\d+) in the text above\.")}
EVIDENCE = {"niah": re.compile(r"One of the special magic \w+ for \S+ is: \S+\."),
            "variable_tracking": re.compile(r"VAR [A-Z]{5} = (?:VAR [A-Z]{5}|\d+)")}
SUPPORTED = tuple(t for t in TASKS if t.startswith("niah")) + ("vt",)


@dataclass(frozen=True)
class Generated:
    """One sample as either generator made it: the whole prompt text, references and length."""

    text: str
    outputs: tuple[str, ...]
    length: int  # as the generator counted it: prompt tokens + tokens to generate


def _family(task: str) -> str:
    return rulerref.task_config(task)["task"]


def specllama_samples(task: str, model, length: int, n: int, seed: int) -> list[Generated]:
    out = []
    for i in range(n):
        s = generate_sample(task, model, length, seed, i, PromptStyle(raw=True))
        out.append(Generated(s.text + s.answer_prefix, tuple(s.outputs), s.length))
    return out


def ruler_samples(task: str, gguf: str, length: int, n: int, seed: int) -> list[Generated]:
    return [Generated(r["input"], tuple(r["outputs"]), int(r["length"]))
            for r in rulerref.generate(task, gguf, length, n, seed)]


def predictions(outputs: Sequence[str]) -> dict[str, str | None]:
    """The reference answer and deliberately wrong ones, by kind."""
    outs = list(outputs)
    wrong = [o[::-1] if not o.isdigit() else str((int(o) + 1) % 10 ** len(o)).zfill(len(o)) for o in outs]
    return {
        "reference": ", ".join(outs),
        "reference, upper case, control characters": "\x02  " + " and ".join(o.upper() for o in outs) + ".\n\t",
        "half of the references": ", ".join(outs[:len(outs) // 2]) if len(outs) > 1 else outs[0][:-1],
        "wrong values": ", ".join(wrong),
        "empty": "",
        "missing (None)": None,
    }


def specllama_score(task: str, pred: str | None, refs: Sequence[str]) -> float:
    return score(TASKS[task].metric, pred, refs)  # type: ignore[arg-type]  (None is cleaned to "")


def compare_scores(task: str, samples: Sequence[Generated],
                   ours: Callable[[str, str | None, Sequence[str]], float] = specllama_score,
                   theirs: Callable[[str, str | None, Sequence[str]], float] = rulerref.ruler_score,
                   ) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Mean scores by prediction kind, ``(ours, RULER's)``, and one line per disagreement."""
    sums: dict[str, list[float]] = {}
    bad = []
    for i, s in enumerate(samples):
        for kind, pred in predictions(s.outputs).items():
            a, b = ours(task, pred, s.outputs), theirs(task, pred, s.outputs)
            acc = sums.setdefault(kind, [0.0, 0.0])
            acc[0] += a
            acc[1] += b
            if abs(a - b) > 1e-9:
                bad.append(f"{task} sample {i}, {kind} {pred!r}: specllama {a:.1f}, RULER {b:.1f}")
    return {k: (v[0] / len(samples), v[1] / len(samples)) for k, v in sums.items()}, bad


def _masked_line(text: str, family: str, which: int) -> str:
    """The first (0) or last (-1) line with the query replaced by ``{query}``."""
    found = QUERY[family].findall(text)  # the last one: an in-context example may ask its own
    line = text.strip("\n ").split("\n")[which]
    return line.replace(found[-1], "{query}") if found else line


def facts(samples: Sequence[Generated], family: str, model, requested: int, new: int) -> dict:
    """What a generator produced, summarized over its samples."""
    lens = [s.length for s in samples]
    recount = [len(model.tokenize(s.text, add_special=False, parse_special=False)) + new for s in samples]
    depth = []
    for s in samples:
        pos = [s.text.find(o) for o in s.outputs if o in s.text]
        if pos:
            depth.append(100 * min(pos) / len(s.text))
    return {
        "length": f"{statistics.mean(lens):.0f} ({min(lens)}-{max(lens)})",
        "fill": f"{100 * statistics.mean(lens) / requested:.1f}%",
        "recount": f"{statistics.mean(recount):.0f} ({min(recount)}-{max(recount)})",
        "evidence": f"{statistics.mean(len(EVIDENCE[family].findall(s.text)) for s in samples):.1f}",
        "answers": f"{statistics.mean(len(s.outputs) for s in samples):.1f}",
        "in text": f"{100 * statistics.mean(all(o in s.text for o in s.outputs) for s in samples):.0f}%",
        "depth": f"{statistics.mean(depth):.0f}% ({min(depth):.0f}-{max(depth):.0f})" if depth else "-",
        "first": {_masked_line(s.text, family, 0) for s in samples},
        "last": {_masked_line(s.text, family, -1) for s in samples},
    }


ROWS = (("length", "length as the generator counts it (prompt + answer tokens): mean (range)"),
        ("fill", "share of the requested length"),
        ("recount", "the whole text retokenized at once, + answer tokens"),
        ("evidence", "evidence statements in the text (needles / chain links, any)"),
        ("answers", "reference answers per sample"),
        ("in text", "samples whose every answer appears in the text"),
        ("depth", "first answer's position in the text (% of characters)"))


def report_task(task: str, ours: dict, theirs: dict, scores: dict, bad: list[str]) -> list[str]:
    lines = [f"### {task}", "", "| | RULER's script | specllama |", "|---|---|---|"]
    lines += [f"| {what} | {theirs[k]} | {ours[k]} |" for k, what in ROWS]
    for k, what in (("first", "first line (query masked)"), ("last", "question line (query masked)")):
        same = ours[k] == theirs[k]
        lines.append(f"| {what} | {len(theirs[k])} distinct | {len(ours[k])} distinct; "
                     f"{'the same as' if same else 'NOT the same as'} RULER's |")
        if not same:
            lines += [f"| RULER: | `{t!r}` | |" for t in sorted(theirs[k])]
            lines += [f"| specllama: | | `{t!r}` |" for t in sorted(ours[k])]
    lines += ["", "| prediction | generator | specllama's scorer | RULER's scorer |", "|---|---|---:|---:|"]
    for gen, sc in scores.items():
        for kind, (a, b) in sc.items():
            lines.append(f"| {kind} | {gen} | {a:.1f} | {b:.1f} |")
    lines += ["", f"Disagreements between the scorers: **{len(bad)}**" + (":" if bad else ".")]
    lines += [f"- {b}" for b in bad]
    return lines + [""]


def run(tasks: Sequence[str], gguf: str, length: int, n: int, seed: int, log=lambda s: None) -> str:
    """The cross-check as markdown."""
    from ..engine.model import Model

    model = Model(gguf, role="target", vocab_only=True)
    t0 = time.perf_counter()
    body, total_bad = [], 0
    try:
        for task in tasks:
            fam = _family(task)
            log(f"{task}: RULER's script, {n} sample(s) at {length} tokens")
            theirs = ruler_samples(task, gguf, length, n, seed)
            log(f"{task}: specllama's generator")
            ours = specllama_samples(task, model, length, n, seed)
            new = TASKS[task].max_new_tokens
            scores, bad = {}, []
            for gen, ss in (("RULER's script", theirs), ("specllama", ours)):
                scores[gen], b = compare_scores(task, ss)
                bad += [f"[{gen}] {x}" for x in b]
            total_bad += len(bad)
            body += report_task(task, facts(ours, fam, model, length, new), facts(theirs, fam, model, length, new),
                                scores, bad)
    finally:
        model.close()
    head = [f"RULER cross-check: {', '.join(tasks)} at {length} tokens, {n} sample(s) per generator (seed {seed}),",
            f"tokenizer of `{gguf.rsplit('/', 1)[-1]}` (vocab-only); {total_bad} scorer disagreement(s); "
            f"{time.perf_counter() - t0:.0f} s.", ""]
    return "\n".join(head + body)


def check_args(tasks: Sequence[str], length: int, n: int) -> None:
    for t in tasks:
        if t not in SUPPORTED:
            raise ConfigError(f"--tasks: the cross-check covers {', '.join(SUPPORTED)}; got {t!r}")
    if length < 1:
        raise ConfigError(f"--length must be >= 1, got {length}")
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="niah_single_2,vt")
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("-m", "--model", default=None, help="GGUF whose tokenizer is used [default: the default target]")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    a = ap.parse_args(argv)
    try:
        tasks = [t.strip() for t in a.tasks.split(",")]
        check_args(tasks, a.length, a.n)
        from .. import registry

        gguf = registry.resolve(a.model or "default", "target")
        text = run(tasks, gguf, a.length, a.n, a.seed, log=lambda s: print(f"specllama: {s}", file=sys.stderr))
    except SpecllamaError as exc:
        print(f"specllama: error: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
