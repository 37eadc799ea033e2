"""What the draft's attention capture costs: the same draft prefill with and without it.

Four variants of one draft prefill of the whole prompt (the last token's logits only), each on a
context created beforehand so that allocation is not timed:

* ``plain_fa_off``: no ``cb_eval``, flash attention off (like for like with capture);
* ``plain_fa_on``: no ``cb_eval``, flash attention on (what the draft could do without capture);
* ``hooked``: the runtime's capture context with the tap installed but never armed (the cost of
  llama.cpp calling back into Python for every graph node);
* ``captured``: exactly what SpecPC runs (``methods.draft.score_with_attention`` with the method's
  attention settings, lookahead 1: the last window as its own graph, its attention copied out and
  reduced);
* ``qk_fa_on``: the prototype in ``qkscore.py``: flash attention on, Q and K captured, the window's
  attention computed in numpy (only for llama/qwen2 drafts with ``-ub`` equal to ``-b``).

Capture overhead = captured / plain - 1, against the plain variant with the same flash-attention
setting as the capture context (``plain_fa_on`` on the default Q·K route, ``plain_fa_off`` on the
``kq_soft_max`` route). The SpecPC ideal bound uses the faster plain variant: a draft prefill with no
capture at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..engine.context import Context, ContextConfig
from ..methods.base import GenConfig, Job, Method
from ..methods.draft import AttentionConfig, score_with_attention
from ..prompt import Prompt
from ..runtime import Runtime, round_ctx
from ..timings import Timings
from .qkscore import SUPPORTED_ARCHS, QKScorer

VARIANTS = ("plain_fa_off", "plain_fa_on", "hooked", "captured", "qk_fa_on")


def attention_of(methods: list[Method]) -> AttentionConfig:
    """The attention settings of the first method whose prompt stage reads draft attention."""
    for m in methods:
        cfg = getattr(getattr(m, "prompt_stage", None), "cfg", None)
        att = getattr(cfg, "attention", None)
        if isinstance(att, AttentionConfig):
            return att
    return AttentionConfig()


@dataclass
class ProbeRun:
    """One timed variant: wall milliseconds and, for ``captured`` and ``qk_fa_on``, the part spent
    in numpy (reducing blocks; computing the window's attention)."""

    variant: str
    ms: float
    sink_ms: float = 0.0
    flash_attn: bool | None = None  # ``captured``: whether its context ran with flash attention


class DraftProbe:
    """Times the draft prefill variants of one prompt on ``rt.draft``.

    Args:
        rt: a runtime with a draft model (the target is only used to have built ``prompt``).
        prompt: ``[n]`` tokens the draft prefills.
        attention: the capture settings of the method being measured.
    """

    def __init__(self, rt: Runtime, prompt: Prompt, attention: AttentionConfig):
        self.rt = rt
        self.prompt = prompt
        self.attention = attention
        self._ctx: dict[str, Context] = {}
        self._qk: QKScorer | None = None

    def _cfg(self, flash_attn: bool) -> ContextConfig:
        c = self.rt.cfg
        return ContextConfig(n_ctx=round_ctx(self.prompt.n + 1), n_batch=c.n_batch,
                             n_ubatch=min(c.n_ubatch, c.n_batch), n_threads=c.n_threads, flash_attn=flash_attn)

    def _plain(self, flash_attn: bool) -> Context:
        key = f"fa{int(flash_attn)}"
        if key not in self._ctx:
            self._ctx[key] = Context(self.rt.draft, self._cfg(flash_attn))
        ctx = self._ctx[key]
        ctx.clear()
        return ctx

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants this draft and batch setting allow (``qk_fa_on`` needs llama/qwen2)."""
        cfg = self._cfg(True)
        qk_ok = self.rt.draft.info.arch in SUPPORTED_ARCHS and cfg.n_ubatch == cfg.n_batch
        return tuple(v for v in VARIANTS if v != "qk_fa_on" or qk_ok)

    def warm(self, n: int = 128) -> None:
        """Page the draft's weights in and start its threads (untimed)."""
        ctx = self._plain(False)
        ctx.decode(self.prompt.tokens[:n], start_pos=0)
        ctx.clear()

    def run(self, variant: str) -> ProbeRun:
        tokens = self.prompt.tokens
        if variant in ("plain_fa_off", "plain_fa_on"):
            ctx = self._plain(variant == "plain_fa_on")
            t0 = time.perf_counter()
            ctx.decode(tokens, start_pos=0)
            return ProbeRun(variant, 1000.0 * (time.perf_counter() - t0))
        ctx, tap = self.rt.draft_ctx(self.prompt.n + 1)  # created (untimed) or cleared
        if variant == "hooked":
            tap.disarm()
            t0 = time.perf_counter()
            ctx.decode(tokens, start_pos=0)
            return ProbeRun(variant, 1000.0 * (time.perf_counter() - t0))
        if variant == "captured":
            job = Job(prompt=self.prompt, budget=self.prompt.n, gen=GenConfig(n_predict=1), rt=self.rt,
                      timings=Timings(n_prompt=self.prompt.n))
            t0 = time.perf_counter()
            score_with_attention(ctx, tap, self.rt.draft, tokens, self.attention, self.prompt.n, 1, job)
            return ProbeRun(variant, 1000.0 * (time.perf_counter() - t0), job.timings.capture_ms,
                            bool(ctx.cfg.flash_attn))
        if variant == "qk_fa_on":
            if self._qk is None:
                self._qk = QKScorer(self.rt.draft, self._cfg(True), self.attention)
            t0 = time.perf_counter()
            _, numpy_ms = self._qk.score(tokens)
            return ProbeRun(variant, 1000.0 * (time.perf_counter() - t0), numpy_ms)
        raise ValueError(f"unknown probe variant {variant!r}")

    def close(self) -> None:
        for ctx in self._ctx.values():
            ctx.close()
        self._ctx.clear()
        if self._qk is not None:
            self._qk.close()
            self._qk = None

