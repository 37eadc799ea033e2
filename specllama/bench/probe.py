"""What the draft's attention capture costs, and what a draft prefill with no capture costs.

Variants of one draft prefill of the whole prompt (the last token's logits only), each on a
context created beforehand so that allocation is not timed:

* ``plain_fa_on`` / ``plain_fa_off``: the exact draft, no ``cb_eval``, flash attention as the
  capture context has it (on for the default Q·K route, off for the ``kq_soft_max`` route);
* ``captured``: the exact draft as SpecPC runs it (``scoring.score_with_attention`` with the
  method's attention settings, lookahead 1: the last window as its own graph, its attention read);
* ``plain_pass``: the cheap draft pass being measured (``--draft-attn sparse``, ``--draft-layers``),
  flash attention on, no ``cb_eval``: the ideal bound of a SpecPC row that uses it.

Capture overhead = captured / plain - 1, like for like. The SpecPC ideal bound of a row is its own
draft pass with no capture plus the target's prefill of the kept tokens. (Older reports also hold
``hooked`` and ``qk_fa_on`` runs; they are still read.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..engine.context import Context
from ..methods.base import Method
from ..methods.draft import AttentionConfig
from ..methods.draftpass import DraftPass, draft_pass_of
from ..prompt import Prompt
from ..runtime import Runtime, round_ctx
from ..scoring import score_with_attention
from ..timings import Timings

VARIANTS = ("plain_fa_off", "plain_fa_on", "captured", "plain_pass")


def attention_of(methods: list[Method]) -> tuple[AttentionConfig, DraftPass | None]:
    """The attention settings of the first method whose prompt stage reads draft attention, and
    the first cheap (non-exact) draft pass among them (None if every one is exact)."""
    att, cheap = None, None
    for m in methods:
        scoring = m.prompt_stage.draft_scoring if m.prompt_stage is not None else None
        dp = draft_pass_of(m)
        if att is None and scoring is not None:
            att = scoring.attention
        if cheap is None and dp is not None and not dp.exact:
            cheap = dp
    return att or AttentionConfig(), cheap


@dataclass
class ProbeRun:
    """One timed variant: wall milliseconds and, for ``captured``, the part spent in numpy."""

    variant: str
    ms: float
    sink_ms: float = 0.0
    flash_attn: bool | None = None  # ``captured``: whether its context ran with flash attention


class DraftProbe:
    """Times the draft prefill variants of one prompt.

    Args:
        rt: a runtime with a draft model (the target is only used to have built ``prompt``).
        prompt: ``[n]`` tokens the draft prefills.
        attention: the capture settings of the method being measured.
        cheap: the non-exact draft pass to time as ``plain_pass`` (None: skip it).
    """

    def __init__(self, rt: Runtime, prompt: Prompt, attention: AttentionConfig, cheap: DraftPass | None = None):
        self.rt = rt
        self.prompt = prompt
        self.attention = attention
        self.cheap = cheap
        self._ctx: dict[str, Context] = {}

    def _plain(self, key: str, model, flash_attn: bool) -> Context:
        if key not in self._ctx:
            self._ctx[key] = self.rt.owned_ctx(model, round_ctx(self.prompt.n + 1), flash_attn=flash_attn)
        ctx = self._ctx[key]
        ctx.clear()
        return ctx

    @property
    def capture_flash(self) -> bool:
        """Whether the capture context runs with flash attention (the Q·K route)."""
        return self.rt.attn_flash(self.rt.draft)

    @property
    def variants(self) -> tuple[str, ...]:
        plain = "plain_fa_on" if self.capture_flash else "plain_fa_off"
        return (plain, "captured") + (("plain_pass",) if self.cheap is not None else ())

    def warm(self, n: int = 128) -> None:
        """Page the draft's weights in and start its threads (untimed)."""
        ctx = self._plain("warm", self.rt.draft, False)
        ctx.decode(self.prompt.tokens[:n], start_pos=0)
        ctx.clear()

    def run(self, variant: str) -> ProbeRun:
        tokens = self.prompt.tokens
        if variant in ("plain_fa_off", "plain_fa_on"):
            ctx = self._plain(variant, self.rt.draft, variant == "plain_fa_on")
            t0 = time.perf_counter()
            ctx.decode(tokens, start_pos=0)
            return ProbeRun(variant, 1000.0 * (time.perf_counter() - t0))
        if variant == "plain_pass":
            cheap = self.cheap
            n_layer = self.rt.draft.info.n_layer
            start = n_layer // 3 if self.attention.start_layer is None else self.attention.start_layer
            ctx = self._plain(variant, self.rt.draft_prefix(cheap.run_layers(n_layer, start)), True)
            window = min(self.attention.window, self.prompt.n)
            if cheap.sparse:
                ctx.set_local_attn(cheap.sinks, cheap.local_window, self.prompt.n - window)
            t0 = time.perf_counter()
            ctx.decode(tokens, start_pos=0, split_at=[self.prompt.n - window])
            ms = 1000.0 * (time.perf_counter() - t0)
            ctx.set_local_attn(0, 0, 0)
            return ProbeRun(variant, ms)
        if variant == "captured":
            ctx, tap = self.rt.draft_ctx(self.prompt.n + 1)  # created (untimed) or cleared
            timings = Timings(n_prompt=self.prompt.n)
            t0 = time.perf_counter()
            score_with_attention(ctx, tap, self.rt.draft, tokens, self.attention, self.prompt.n, 1, timings)
            return ProbeRun(variant, 1000.0 * (time.perf_counter() - t0), timings.capture_ms,
                            bool(ctx.cfg.flash_attn))
        raise ValueError(f"unknown probe variant {variant!r}")

    def close(self) -> None:
        for ctx in self._ctx.values():
            ctx.close()
        self._ctx.clear()
