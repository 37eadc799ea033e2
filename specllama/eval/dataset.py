"""Generated RULER sets, cached on disk and keyed by everything that shapes them.

A set lives in ``cache_dir()/eval/{task}-L{length}-s{seed}-{key}-n{n}.jsonl``: a header line with
the full key, then one sample per line. ``key`` hashes the task, length, seed, the target's
tokenizer and chat template, the generator version and the data packages' versions. Sample ``i``
does not depend on ``n``, so a cached larger set serves any smaller ``n``. Files are written to a
temporary name and renamed, so an interrupted generation never leaves a half file that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from .. import registry
from ..engine.model import Model
from ..prompt import resolve_template
from .data import source_versions
from .ruler import generate_sample
from .sample import PromptStyle, Sample

GENERATOR_VERSION = 1
FORMAT = "specllama-eval-set/1"
LogFn = Callable[[str], None]


def cache_root() -> Path:
    return registry.cache_dir() / "eval"


def set_key(task: str, length: int, seed: int, model: Model, style: PromptStyle) -> tuple[str, dict]:
    """``(hash, fields)`` identifying a generated set apart from its size."""
    template = "raw" if style.raw else resolve_template(model, style.template)
    fields = {
        "task": task, "length": length, "seed": seed, "generator": GENERATOR_VERSION,
        "tokenizer": model.vocab_fingerprint,
        "template": hashlib.sha256(template.encode()).hexdigest(),
        "sources": source_versions(("long_context_eval", "wonderwords", "punkt")),
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return digest, fields


def _path(root: Path, task: str, length: int, seed: int, key: str, n: int) -> Path:
    return root / f"{task}-L{length}-s{seed}-{key}-n{n}.jsonl"


def _read(path: Path, key: str) -> list[Sample] | None:
    """The samples in ``path`` if its header matches ``key`` and it is complete, else None."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = json.loads(fh.readline())
            if head.get("format") != FORMAT or head.get("key") != key:
                return None
            samples = [Sample.from_dict(json.loads(line)) for line in fh if line.strip()]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return samples if len(samples) == head.get("n") else None


def _write(path: Path, key: str, fields: dict, samples: list[Sample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"format": FORMAT, "key": key, "n": len(samples), "fields": fields}) + "\n")
            fh.writelines(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in samples)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cached_sets(root: Path, task: str, length: int, seed: int, key: str) -> list[tuple[int, Path]]:
    """``(n, path)`` of the cached sets for this key, largest first."""
    pat = re.compile(re.escape(f"{task}-L{length}-s{seed}-{key}-n") + r"(\d+)\.jsonl$")
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = pat.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def load_or_generate(task: str, model: Model, length: int, seed: int, n: int,
                     style: PromptStyle = PromptStyle(), root: Path | None = None,
                     log: LogFn = lambda s: None) -> tuple[list[Sample], str]:
    """The first ``n`` samples of ``task`` (from the cache when possible) and the set's key."""
    root = cache_root() if root is None else root
    key, fields = set_key(task, length, seed, model, style)
    for size, path in cached_sets(root, task, length, seed, key):
        if size < n:
            break
        samples = _read(path, key)
        if samples is not None:
            return samples[:n], key
    log(f"generating {n} {task} sample(s) at {length} tokens (seed {seed})")
    samples = [generate_sample(task, model, length, seed, i, style) for i in range(n)]
    _write(_path(root, task, length, seed, key, n), key, fields, samples)
    return samples, key
