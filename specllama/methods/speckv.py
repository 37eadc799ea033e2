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
from ..scoring import greedy_continuation
from .base import Budget, Job, Method
from ..scoring import ScoreCache, greedy_continuation
from .catalog import KERNEL, LOOKAHEAD, POOL, REDUCTION, WINDOW
from .crossvocab import draft_view, to_target
from .draft import AttentionConfig
from .scored import ScoredKVStage
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


class AttentionKVStage(ScoredKVStage):
    """KV stage scored by the target's attention from its window and the draft's lookahead."""

    needs_attention = True

    def __init__(self, cfg: SpecKVConfig, name: str):
        self.cfg = cfg
        self.name = name
        self.attention = cfg.attention
        self.window = cfg.attention.window
        self.needs_draft = cfg.lookahead != 0
        self.kernel, self.pool = cfg.kernel, cfg.pool

    def lookahead(self, job: Job) -> np.ndarray:
        """The draft's greedy answer to the prompt (reused from SpecPC's run when there was one),
        in the target's tokens (a draft with another tokenizer answers its own reading of the
        request, and its answer is tokenized again by the target)."""
        none = super().lookahead(job)
        n = self.cfg.lookahead_len(job.gen.n_predict)
        if not self.needs_draft or n == 0:
            return none
        if job.lookahead is not None and len(job.lookahead) >= min(n, 1):
            return np.asarray(job.lookahead[:n], dtype=np.int32)
        rt = job.rt
        # the answer depends only on the prompt and its length: one draft pass serves every budget
        cache = rt.score_cache
        key = ScoreCache.key(job.prompt.tokens, "speckv-lookahead", n)
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            t0 = time.perf_counter()
            view = draft_view(rt, job.prompt)  # None: the draft shares the target's tokenizer
            tokens = job.prompt.tokens if view is None else view.tokens
            ctx, _tap = rt.draft_ctx(len(tokens) + n)
            out = greedy_continuation(ctx, rt.draft, tokens, n)
            fed = len(tokens) + max(0, len(out) - 1)
            if view is not None:  # the answer goes over as text
                out = to_target(rt, out)[:n]
            draft_ms = 1000.0 * (time.perf_counter() - t0)
            if cache is not None:
                cache.put(key, out, draft_ms, fed)
        else:  # counted as if it ran again, as SpecPC's reused draft pass is
            out, draft_ms, fed = hit
            job.timings.reused_ms += draft_ms
        job.timings.draft_ms += draft_ms
        job.timings.draft_tokens += fed
        job.lookahead = out
        return out

    def score(self, job: Job, attention: np.ndarray | None, protected: np.ndarray) -> np.ndarray:
        return attention


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
