"""What every front end checks on a :class:`RuntimeConfig` before any model loads.

Models load lazily, and some requests never load the draft (a prompt under the budget runs dense),
so a broken draft would go unnoticed; a thread count above the machine's cores only slows llama.cpp
down. :func:`prepare_runtime` checks both model files' headers and caps ``-t`` (with one note).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable

from .ggufcheck import check_model_file
from .runtime import RuntimeConfig

NoteFn = Callable[[str], None]


def machine_cores() -> int:
    """CPU cores this process may run on (its affinity set where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def capped_threads(n: int | None, cores: int | None = None) -> tuple[int | None, str | None]:
    """``n`` capped at ``cores`` (the machine's by default), and a note when it was capped."""
    cores = cores or machine_cores()
    if n is None or n <= cores:
        return n, None
    return cores, f"-t {n} is more than the {cores} core(s) of this machine; using -t {cores}"


def prepare_runtime(cfg: RuntimeConfig, note: NoteFn | None = None) -> RuntimeConfig:
    """Check the target's and the draft's GGUF headers and cap the threads; the config to use.

    Raises ``ModelError`` for a missing, truncated or corrupt model file, whether or not the
    request will end up loading it. ``note`` receives the one-line note of a capped ``-t``.
    """
    if cfg.draft and cfg.draft == cfg.target:  # a draft-only runtime (--upstream runs the target)
        check_model_file(cfg.draft, "draft")
    else:
        check_model_file(cfg.target, "target")
        if cfg.draft:
            check_model_file(cfg.draft, "draft")
    threads, msg = capped_threads(cfg.n_threads)
    if msg is None:
        return cfg
    if note is not None:
        note(msg)
    return replace(cfg, n_threads=threads)
