"""SpecKV and SnapKV: the target's own attention from its last window (and, for SpecKV, from the
draft's lookahead answer) decides which KV cells survive into the decode context.

SpecKV (arXiv 2506.08373, section 3): the draft writes a lookahead answer; the target prefills the
prompt and then that answer in the same graph as its last ``window`` prompt tokens; the attention of
those queries, max-reduced over each GQA group, queries and layers and max-pooled over ``kernel``
neighbouring keys, scores every prompt cell; the top ``budget - window`` cells plus the window
survive, the lookahead cells are dropped. SnapKV is the same with no lookahead.

llama.cpp's KV cell is shared by every layer and head, so cells are chosen per token, not per
(layer, head) as in the paper.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..select.scores import pool1d
from ..select.topk import select_tokens
from .base import Budget, Job, Method
from .catalog import KERNEL, LOOKAHEAD, POOL, REDUCTION, WINDOW
from .draft import AttentionConfig, greedy_continuation
from .setting import Configured, nested, validate


def _speckv_attention() -> AttentionConfig:
    return AttentionConfig(window=32, reduction="max", weighted_query=False, start_layer=0)


@dataclass(frozen=True)
class SpecKVConfig:
    """SpecKV settings (the paper's defaults: window 32, max reduction, max pool kernel 7).

    Attributes:
        attention: the target's scoring window and reduction.
        lookahead: cap on the draft's lookahead answer; None means ``-n`` (the paper's default).
            0 means no draft at all (SnapKV).
        pool: ``max`` or ``avg`` pooling of scores.
        kernel: pooling width (odd in the paper).
    """

    attention: AttentionConfig = nested(_speckv_attention, window=WINDOW, reduction=REDUCTION)
    lookahead: int | None = LOOKAHEAD.field(None)
    pool: str = POOL.field("max")
    kernel: int = KERNEL.field(7)

    def __post_init__(self):
        validate(self)

    def lookahead_len(self, n_predict: int) -> int:
        n = n_predict if n_predict > 0 else 256
        return n if self.lookahead is None else min(n, self.lookahead)


def refuse_non_attention(job: Job, method: str) -> None:
    """KV selection needs a plain attention KV cache: refuse recurrent and hybrid targets by name."""
    info = job.rt.target.info
    if info.recurrent or info.hybrid:
        kind = "recurrent" if info.recurrent else "hybrid (attention + recurrent)"
        raise ConfigError(f"{method} prunes the target's attention KV cache, but {job.rt.target.name} "
                          f"is a {kind} model (architecture {info.arch}); use specpc, truncate or dense")


class AttentionKVStage:
    """KV stage scored by the target's attention from its window and the draft's lookahead."""

    needs_attention = True

    def __init__(self, cfg: SpecKVConfig, name: str):
        self.cfg = cfg
        self.name = name
        self.attention = cfg.attention
        self.window = cfg.attention.window
        self.needs_draft = cfg.lookahead != 0

    def lookahead(self, job: Job) -> np.ndarray:
        """The draft's greedy answer to the prompt (reused from SpecPC's run when there was one)."""
        refuse_non_attention(job, self.name)
        n = self.cfg.lookahead_len(job.gen.n_predict)
        if not self.needs_draft or n == 0:
            return np.zeros(0, dtype=np.int32)
        if job.lookahead is not None and len(job.lookahead) >= min(n, 1):
            return np.asarray(job.lookahead[:n], dtype=np.int32)
        rt = job.rt
        rt.check_same_tokenizer()
        t0 = time.perf_counter()
        ctx, _tap = rt.draft_ctx(job.prompt.n + n)
        out = greedy_continuation(ctx, rt.draft, job.prompt.tokens, n)
        job.timings.draft_ms += 1000.0 * (time.perf_counter() - t0)
        job.timings.draft_tokens += job.prompt.n + max(0, len(out) - 1)
        job.lookahead = out
        return out

    def select(self, job: Job, budget: int, attention: np.ndarray | None, protected: np.ndarray) -> np.ndarray:
        pooled = pool1d(attention, self.cfg.kernel, self.cfg.pool)
        return select_tokens(pooled, budget, window=self.window, neighbours=1, protected=protected)


class SpecKV(Method):
    name = "speckv"
    help = "the target keeps the KV cells its window and the draft's answer attend to"
    settings = {"speckv": Configured(SpecKVConfig)}

    def __init__(self, budget: Budget = Budget(), speckv: SpecKVConfig = SpecKVConfig(), **_):
        if speckv.lookahead == 0:
            raise ConfigError("--lookahead 0 leaves SpecKV without a draft answer; use --method snapkv")
        super().__init__(kv_stage=AttentionKVStage(speckv, self.name), budget=budget)


class SnapKV(Method):
    name = "snapkv"
    help = "baseline: the target keeps the KV cells its own last window attends to (no draft)"
    settings = {"speckv": Configured(SpecKVConfig, skip=("lookahead",))}

    def __init__(self, budget: Budget = Budget(), speckv: SpecKVConfig = SpecKVConfig(), **_):
        cfg = SpecKVConfig(attention=speckv.attention, lookahead=0, pool=speckv.pool, kernel=speckv.kernel)
        super().__init__(kv_stage=AttentionKVStage(cfg, self.name), budget=budget)
