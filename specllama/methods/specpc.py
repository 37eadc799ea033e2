"""SpecPC: the draft's attention decides which prompt tokens the target reads.

The draft prefills the whole prompt; the attention of its last ``window`` queries (weighted
towards the end) and of ``lookahead`` generated tokens scores every prompt token. Scores are
max-pooled over a ``kernel``-wide neighbourhood, the top tokens are expanded to ``neighbours``-wide
spans, the window and the protected tokens (template, system prompt, question) are always kept,
and the target prefills only the kept tokens (arXiv 2506.08373, section 4).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..engine import lib
from ..errors import ConfigError
from ..select.scores import pool1d
from ..select.topk import select_tokens
from .base import Budget, Job, Method
from .catalog import (KEPT_POSITIONS, KERNEL, LOOKAHEAD, NEIGHBOURS, NO_WEIGHTED_QUERY, POOL, POSITIONS, REDUCTION,
                      START_LAYER, WINDOW)
from .draft import AttentionConfig, score_with_attention
from .draftpass import DraftPass
from .setting import Configured, nested, validate

__all__ = ["POSITIONS", "SpecPC", "SpecPCConfig", "SpecPCStage"]


@dataclass(frozen=True)
class SpecPCConfig:
    """SpecPC settings (paper defaults; kernel 64 is the paper's value for Qwen).

    Attributes:
        attention: window, reduction, query weighting and first layer.
        lookahead: draft tokens generated; 1 reads the prefill window only.
        pool: ``max`` or ``avg`` pooling of scores.
        kernel: pooling width.
        neighbours: span kept around each chosen token; None means ``kernel``.
        positions: ``renumber`` feeds the kept tokens at 0..k-1, ``original`` at their prompt
            positions.
        draft: how the draft prefills the prompt (sparse attention, fewer layers, or exact).
    """

    attention: AttentionConfig = nested(AttentionConfig, window=WINDOW, reduction=REDUCTION,
                                        weighted_query=NO_WEIGHTED_QUERY, start_layer=START_LAYER)
    lookahead: int = LOOKAHEAD.field(1, min=1, where="for specpc")
    pool: str = POOL.field("max")
    kernel: int = KERNEL.field(64)
    neighbours: int | None = NEIGHBOURS.field(None)
    positions: str = KEPT_POSITIONS.field("renumber")
    draft: DraftPass = field(default_factory=DraftPass)

    def __post_init__(self):
        validate(self)
        if self.draft.layers is not None and self.draft.layers > 0 and self.lookahead > 1:
            raise ConfigError(f"--draft-layers cuts the draft, which then cannot write the {self.lookahead} "
                              "lookahead tokens asked for; drop --draft-layers or use --lookahead 1")


class SpecPCStage:
    """Prompt stage: draft attention -> pooled scores -> kept token indices."""

    needs_draft = True

    def __init__(self, cfg: SpecPCConfig = SpecPCConfig()):
        self.cfg = cfg
        self.window = cfg.attention.window
        self.positions = cfg.positions

    def select(self, job: Job, budget: int) -> np.ndarray:
        rt, prompt = job.rt, job.prompt
        if self.positions == "original" and not lib.has_patch("0001"):
            raise ConfigError("--positions original needs llama.cpp built with patches/0001 "
                              "(run `make install`)")
        rt.check_same_tokenizer()
        key = (hashlib.sha1(prompt.tokens.tobytes()).hexdigest(), self.cfg.attention, self.cfg.lookahead,
               self.cfg.draft, rt.attn_route)
        hit = rt.score_cache.get(key) if rt.score_cache is not None else None
        if hit is None:
            t0 = time.perf_counter()
            model, attention, local = self.draft_pass(rt, prompt.n)
            ctx, tap = rt.draft_ctx(prompt.n + self.cfg.lookahead, model)
            att = score_with_attention(ctx, tap, model, prompt.tokens, attention, prompt.n,
                                       self.cfg.lookahead, job, local=local)
            draft_ms = 1000.0 * (time.perf_counter() - t0)
            job.timings.draft_ms += draft_ms
            job.timings.draft_tokens += prompt.n + max(0, len(att.lookahead) - 1)
            if rt.score_cache is not None:
                rt.score_cache[key] = (att, draft_ms)
        else:  # the draft pass ran for another budget: count its cost as if it ran again
            att, draft_ms = hit
            job.timings.draft_ms += draft_ms
            job.timings.reused_ms += draft_ms
            job.timings.draft_tokens += prompt.n + max(0, len(att.lookahead) - 1)
        job.lookahead = att.lookahead
        t1 = time.perf_counter()
        keep = self.choose(att.scores, budget, prompt.protected)
        job.timings.select_ms += 1000.0 * (time.perf_counter() - t1)
        return keep

    def draft_pass(self, rt, n: int) -> tuple:
        """The draft model to run (all its layers or a prefix), the attention settings with the
        first scored layer fixed against the full draft, and the local-attention ``(sinks,
        window)`` (None when exact, or when the prompt fits the local window anyway)."""
        dp = self.cfg.draft
        n_layer = rt.draft.info.n_layer
        start = self.cfg.attention.start_layer
        start = n_layer // 3 if start is None else start
        if start >= n_layer:
            raise ConfigError(f"--start-layer {start} leaves no layer of a {n_layer}-layer model")
        run = dp.run_layers(n_layer, start, self.cfg.lookahead)
        attention = replace(self.cfg.attention, start_layer=start)
        local = (dp.sinks, dp.local_window) if dp.sparse and n > dp.sinks + dp.local_window else None
        return rt.draft_prefix(run), attention, local

    def choose(self, scores: np.ndarray, budget: int, protected: np.ndarray) -> np.ndarray:
        """SpecPC's selection on draft scores ``[n]``: pool, expand to spans, keep window and
        ``protected[n]``; sorted indices ``[<=budget]``."""
        pooled = pool1d(scores, self.cfg.kernel, self.cfg.pool)
        return select_tokens(pooled, budget, window=self.window, neighbours=self.cfg.neighbours or self.cfg.kernel,
                             protected=protected)


class SpecPC(Method):
    name = "specpc"
    help = "draft attention picks the prompt tokens the target prefills"
    settings = {"cfg": Configured(SpecPCConfig)}

    def __init__(self, budget: Budget = Budget(), cfg: SpecPCConfig = SpecPCConfig(), **_):
        super().__init__(prompt_stage=SpecPCStage(cfg), budget=budget)

    def describe(self) -> str:
        """``specpc keep 0.2``, naming the draft pass when it is not the default one."""
        dp = self.prompt_stage.cfg.draft
        return super().describe() + ("" if dp == DraftPass() else f" ({dp.describe()})")
