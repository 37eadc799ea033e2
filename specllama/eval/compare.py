"""``specllama eval --compare A B``: two columns of saved predictions, paired on the same samples.

A column reference is a label of the eval grid (``dense``, ``specpc@512``), read from the run in
``--out``, or ``DIR:LABEL`` for a column of another run's ``DIR/predictions.jsonl`` (two runs, two
models, two settings). Records are paired by their sample id (a hash of the prompt and the
references), never by position. Anything that would pair different samples is refused with a
:class:`~specllama.errors.ConfigError` before any statistic is computed: an unknown label or task,
samples generated with different seeds, one side holding two versions of a sample (several seeds,
lengths or models run into one directory), or sample sets that differ (another limit, an unfinished
run, other tasks).

This module reads files and checks them; the statistics are in :mod:`.paired` and the table in
:mod:`.paired_report`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import paired

PREDICTIONS = "predictions.jsonl"  # as written by runner.PredictionStore
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class ColumnRef:
    """One side of a comparison: a grid label in a run directory."""

    directory: Path
    label: str
    explicit_dir: bool = False

    @property
    def name(self) -> str:
        """How the report names this side: the label, with its directory when one was given."""
        return f"{self.directory}:{self.label}" if self.explicit_dir else self.label


def parse_ref(text: str, default_dir: str) -> ColumnRef:
    """``LABEL`` (in ``default_dir``) or ``DIR:LABEL``; labels never hold a colon."""
    directory, sep, label = text.rpartition(":")
    label = label.strip()
    if not label:
        raise ConfigError(f"--compare: {text!r} names no column; use LABEL or DIR:LABEL, e.g. specpc@512")
    if sep and directory:
        return ColumnRef(Path(directory), label, explicit_dir=True)
    return ColumnRef(Path(default_dir), label)


def read_predictions(directory: Path) -> list[dict]:
    """Every readable record of ``directory/predictions.jsonl`` (lines cut by a crash are skipped)."""
    path = directory / PREDICTIONS
    if not path.is_file():
        raise ConfigError(f"--compare: {path} does not exist; run `specllama eval --out {directory}` first")
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and {"key", "task", "index", "method", "score"} <= set(r):
                records.append(r)
    if not records:
        raise ConfigError(f"--compare: {path} holds no scored predictions")
    return records


def label_of(record: dict) -> str:
    """The grid label of a record: ``method`` or ``method@budget`` (``specpc~exact@512`` for the
    exact-draft columns of ``--exact-draft``)."""
    if record.get("label"):
        return record["label"]
    budget = record.get("budget")
    return record["method"] if budget is None else f"{record['method']}@{budget}"


def sample_of(record: dict) -> str:
    """The record's sample id (the first field of its key)."""
    return str(record["key"][0])


def select(records: list[dict], ref: ColumnRef, tasks: Sequence[str] | None) -> dict[str, dict]:
    """``ref``'s records by sample id, restricted to ``tasks``; refuses unknown labels and tasks,
    mixed data seeds, and a sample or a task index held twice (several models, seeds or lengths
    run into one directory)."""
    labels = list(dict.fromkeys(label_of(r) for r in records))
    if ref.label not in labels:
        raise ConfigError(f"--compare: no column {ref.label!r} in {ref.directory / PREDICTIONS}; "
                          f"it holds {', '.join(labels)}")
    mine = [r for r in records if label_of(r) == ref.label]
    if tasks is not None:
        have = set(r["task"] for r in mine)
        missing = [t for t in tasks if t not in have]
        if missing:
            raise ConfigError(f"--compare: {ref.name} has no task {', '.join(missing)}; it has "
                              f"{', '.join(sorted(have))}")
        mine = [r for r in mine if r["task"] in tasks]
    seeds = sorted({r["seed"] for r in mine if r.get("seed") is not None})
    if len(seeds) > 1:
        raise ConfigError(f"--compare: {ref.name} mixes samples generated with seeds "
                          f"{', '.join(map(str, seeds))} (several runs into {ref.directory}); compare runs "
                          "kept in separate --out directories")
    return index_by_sample(mine, ref)


def index_by_sample(mine: list[dict], ref: ColumnRef) -> dict[str, dict]:
    """One column's records by sample id; refuses a sample scored twice (several model pairs) and a
    task index that names two samples (several seeds, lengths or prompt styles)."""
    by_sample: dict[str, dict] = {}
    by_index: dict[tuple[str, int], str] = {}
    for r in mine:
        sid, where = sample_of(r), (r["task"], r["index"])
        if sid in by_sample:
            models = sorted({" + ".join(str(m) for m in x["key"][3:] if m)
                             for x in mine if sample_of(x) == sid})
            raise ConfigError(f"--compare: {ref.name} scored sample {r['task']}#{r['index']} with "
                              f"{len(models)} model pairs ({'; '.join(models)}); compare runs kept in "
                              "separate --out directories")
        if by_index.setdefault(where, sid) != sid:
            raise ConfigError(f"--compare: {ref.name} holds two different samples {r['task']}#{r['index']} "
                              "(several seeds, lengths or prompt styles were run into "
                              f"{ref.directory}); compare runs kept in separate --out directories")
        by_sample[sid] = r
    return by_sample


def _seeds(records: dict[str, dict]) -> set[int]:
    return {r["seed"] for r in records.values() if r.get("seed") is not None}


def check_seeds(a: dict[str, dict], b: dict[str, dict], ref_a: ColumnRef, ref_b: ColumnRef) -> None:
    """Refuse sides whose recorded data seeds differ (records without a seed pass; :func:`select`
    refuses a side that mixes seeds)."""
    seeds_a, seeds_b = _seeds(a), _seeds(b)
    if seeds_a and seeds_b and seeds_a != seeds_b:
        raise ConfigError(f"--compare: {ref_a.name} was scored on samples of seed {min(seeds_a)} and "
                          f"{ref_b.name} on seed {min(seeds_b)}: different samples; rerun one with "
                          "--data-seed to match")


def _examples(records: dict[str, dict], sids: set[str], k: int = 3) -> str:
    names = sorted(f"{records[s]['task']}#{records[s]['index']}" for s in sids)
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


def check_same_samples(a: dict[str, dict], b: dict[str, dict], ref_a: ColumnRef, ref_b: ColumnRef) -> None:
    """Refuse sides that were not scored on exactly the same samples."""
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if not only_a and not only_b:
        return
    tasks_a, tasks_b = {r["task"] for r in a.values()}, {r["task"] for r in b.values()}
    if tasks_a != tasks_b:
        extra = sorted(tasks_a ^ tasks_b)
        raise ConfigError(f"--compare: {ref_a.name} and {ref_b.name} cover different tasks ({', '.join(extra)} "
                          "in one only); pass --tasks with the tasks both have")
    parts = []
    if only_a:
        parts.append(f"{len(only_a)} only in {ref_a.name} ({_examples(a, only_a)})")
    if only_b:
        parts.append(f"{len(only_b)} only in {ref_b.name} ({_examples(b, only_b)})")
    raise ConfigError(f"--compare: {ref_a.name} and {ref_b.name} were not scored on the same samples: "
                      f"{'; '.join(parts)}; different seeds, lengths, limits, prompt styles or an "
                      "unfinished run")


@dataclass(frozen=True)
class Comparison:
    """Two columns paired on the same samples, and their statistics.

    Attributes:
        a, b: the two sides.
        samples: per task, the ``(index, score_a, score_b)`` of every paired sample, by index.
        table: :class:`~.paired.PairedTable` over the tasks (in the order A's run wrote them).
        fallbacks: per side name, the samples that ran dense because the budget covered the prompt.
        seed: the data seed both sides were generated with, or None when not recorded.
    """

    a: ColumnRef
    b: ColumnRef
    samples: dict[str, list[tuple[int, float, float]]]
    table: paired.PairedTable
    fallbacks: dict[str, int]
    seed: int | None


def pair(a: dict[str, dict], b: dict[str, dict]) -> dict[str, list[tuple[int, float, float]]]:
    """Per task (in A's record order), ``(index, score_a, score_b)`` sorted by index."""
    out: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for sid, r in a.items():
        out[r["task"]].append((int(r["index"]), float(r["score"]), float(b[sid]["score"])))
    return {t: sorted(rows) for t, rows in out.items()}


def _fallbacks(records: dict[str, dict]) -> int:
    return sum(1 for r in records.values() if r.get("ran", r["method"]) != r["method"])


def compare(ref_a: ColumnRef, ref_b: ColumnRef, tasks: Sequence[str] | None = None,
            n_resamples: int = paired.RESAMPLES, seed: int = paired.SEED, log: LogFn | None = None) -> Comparison:
    """Load, check and pair the two sides, and compute the paired table (see the module docstring)."""
    if ref_a.directory.resolve() == ref_b.directory.resolve() and ref_a.label == ref_b.label:
        raise ConfigError(f"--compare: both sides are {ref_a.name}; name two different columns")
    cache: dict[Path, list[dict]] = {}
    sides = []
    for ref in (ref_a, ref_b):
        key = ref.directory.resolve()
        if key not in cache:
            cache[key] = read_predictions(ref.directory)
        sides.append(select(cache[key], ref, tasks))
    a, b = sides
    check_seeds(a, b, ref_a, ref_b)
    check_same_samples(a, b, ref_a, ref_b)
    samples = pair(a, b)
    if log:
        log(f"comparing {ref_a.name} with {ref_b.name} on {len(a)} paired sample(s) in {len(samples)} "
            f"task(s); bootstrap with {n_resamples} resamples, seed {seed}")
    table = paired.paired_table({t: np.array([s[1] for s in rows]) for t, rows in samples.items()},
                                {t: np.array([s[2] for s in rows]) for t, rows in samples.items()},
                                n_resamples=n_resamples, seed=seed)
    fewest = min(len(rows) for rows in samples.values())
    if log and fewest < paired.FEW_SAMPLES:
        log(f"note: {fewest} sample(s) in the smallest task; below {paired.FEW_SAMPLES} a task the bootstrap "
            "interval is too narrow (a nominal 95% covers about 57% at 3, 83% at 10): read it as a rough guide")
    seeds = _seeds(a)
    return Comparison(a=ref_a, b=ref_b, samples=samples, table=table,
                      fallbacks={ref_a.name: _fallbacks(a), ref_b.name: _fallbacks(b)},
                      seed=min(seeds) if seeds else None)
