"""SpecPC: the draft's attention decides which prompt tokens the target reads.

The draft prefills the whole prompt; the attention of its last ``window`` queries (weighted
towards the end) and of ``lookahead`` generated tokens scores every prompt token. Scores are
max-pooled over a ``kernel``-wide neighbourhood, the top tokens are expanded to ``neighbours``-wide
spans, the window and the protected tokens (template, system prompt, question) are always kept,
and the target prefills only the kept tokens (arXiv 2506.08373, section 4).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..engine import lib
from ..errors import ConfigError
from ..scoring import ScoreCache, score_with_attention
from .base import Budget, DraftScoring, Job, Method
from .catalog import (KEPT_POSITIONS, KERNEL, LOOKAHEAD, NEIGHBOURS, NO_WEIGHTED_QUERY, POOL, POSITIONS, REDUCTION,
                      START_LAYER, WINDOW)
from .crossvocab import draft_view, to_target
from .draft import AttentionConfig
from .draftpass import DraftPass
from .scored import ScoredPromptStage
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


class SpecPCStage(ScoredPromptStage):
    """Prompt stage scored by the draft's attention; pooling and spans by the shared base."""

    name = "specpc"
    needs_draft = True

    def __init__(self, cfg: SpecPCConfig = SpecPCConfig()):
        self.cfg = cfg
        self.window = cfg.attention.window
        self.positions = cfg.positions
        self.kernel, self.pool = cfg.kernel, cfg.pool
        self.neighbours = cfg.neighbours or cfg.kernel
        self.draft_scoring = DraftScoring(cfg.attention, cfg.lookahead)

    def score(self, job: Job) -> np.ndarray:
        """The draft's attention ``[n]`` over the prompt (served by ``rt.score_cache`` when it holds
        this prompt); the draft's lookahead tokens go to ``job.lookahead``."""
        rt, prompt = job.rt, job.prompt
        if self.positions == "original" and not lib.has_patch("0001"):
            raise ConfigError("--positions original needs llama.cpp built with patches/0001 "
                              "(run `make install`)")
        cache = rt.score_cache
        key = ScoreCache.key(prompt.tokens, self.cfg.attention, self.cfg.lookahead, self.cfg.draft,
                             rt.attn_route)
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            t0 = time.perf_counter()
            view = draft_view(rt, prompt)  # None: the draft shares the target's tokenizer
            tokens = prompt.tokens if view is None else view.tokens
            if view is not None:
                view.alignment(rt)  # refuse a tokenizer that cannot be aligned before the draft runs
            n = len(tokens)
            model, attention, local = self.draft_pass(rt, n)
            ctx, tap = rt.draft_ctx(n + self.cfg.lookahead, model)
            att = score_with_attention(ctx, tap, model, tokens, attention, n, self.cfg.lookahead,
                                       job.timings, local=local)
            fed = n + max(0, len(att.lookahead) - 1)  # draft tokens read
            if view is not None:
                att = replace(att, scores=view.carry(rt, att.scores), lookahead=to_target(rt, att.lookahead))
            draft_ms = 1000.0 * (time.perf_counter() - t0)
            if cache is not None:
                cache.put(key, att, draft_ms, fed)
        else:  # the draft pass ran for another budget: count its cost as if it ran again
            att, draft_ms, fed = hit
            job.timings.reused_ms += draft_ms
        job.timings.draft_ms += draft_ms
        job.timings.draft_tokens += fed
        job.lookahead = att.lookahead
        return att.scores

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
