"""One request end to end: prompt -> method stages -> target prefill -> decode.

This is the only place that sequences a method's stages, so every front end (``run``, ``chat``,
``eval``, ``bench``, ``serve``) gets identical behaviour, timings and fallbacks.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .engine.context import kv_bytes_for
from .engine.kvstate import keep_cells
from .engine.sampling import Sampler
from .errors import ConfigError, Interrupted, PromptError
from .methods.base import GenConfig, Job, KVStage, Method, PromptStage
from .prompt import Prompt
from .runtime import Runtime, round_ctx
from .scoring import Prefill, PrefillCache, score_with_attention
from .timings import Timings

TextFn = Callable[[str], None]
UNBOUNDED_PREDICT = 2048  # -n -1: generate until end of generation, sized for this many tokens


@dataclass
class Result:
    """What a request produced.

    Attributes:
        text: generated text.
        tokens: ``[m]`` generated token ids.
        kept: ``[k]`` prompt indices the target read (all of them for dense).
        timings: where time and memory went.
        method: the method that actually ran (``dense`` after a fallback).
        notes: one-line messages for stderr.
        stop: ``eog`` (end of generation), ``length`` (-n reached) or ``interrupted``.
        n_out: tokens generated when ``tokens`` does not hold them (an upstream server's count).
    """

    text: str
    tokens: np.ndarray
    kept: np.ndarray
    timings: Timings
    method: str
    notes: list[str] = field(default_factory=list)
    stop: str = "eog"
    n_out: int | None = None

    @property
    def n_generated(self) -> int:
        """Tokens generated, end of generation not counted (``usage.completion_tokens``)."""
        return int(len(self.tokens)) if self.n_out is None else int(self.n_out)


def check_budget(stage, budget: int, prompt: Prompt, what: str = "--budget") -> None:
    """Refuse a budget below the ``stage.window`` or below the tokens that are never dropped."""
    window = stage.window
    if budget < window:
        raise ConfigError(f"{what} {budget} is smaller than the protected window of {window} tokens")
    must = prompt.protected.copy()
    must[max(0, prompt.n - window):] = True
    if int(must.sum()) > budget:
        raise ConfigError(
            f"{what} {budget} is smaller than the {int(must.sum())} tokens that are never dropped "
            f"(chat template, system prompt, question and the last {window} tokens)")


def _fit(rt: Runtime, prompt: Prompt, method: Method, n_pred: int) -> None:
    """Refuse prompts that do not fit the models that must read them whole."""
    reader = rt.draft if method.prompt_stage is not None and method.prompt_stage.needs_draft else rt.target
    limit = reader.info.n_ctx_train
    if rt.cfg.n_ctx and reader is rt.target:
        limit = rt.cfg.n_ctx
    if reader is rt.target:
        extra, what = n_pred, "to generate"
    else:  # the draft writes its lookahead answer after the prompt (1: the prompt's last token)
        extra = max(0, int(getattr(getattr(method.prompt_stage, "cfg", None), "lookahead", 1)) - 1)
        what = "lookahead"
    if limit and prompt.n + extra > limit:
        raise PromptError(
            f"the prompt has {prompt.n} tokens (+{extra} {what}) but {reader.role} "
            f"{reader.name} reads at most {limit}")


@dataclass
class Plan:
    """The stages that will actually run for a request, with resolved budgets."""

    prompt_stage: PromptStage | None
    kv_stage: KVStage | None
    budget: int
    budget_pc: int
    name: str


def plan(method: Method, prompt: Prompt, notes: list[str]) -> Plan:
    """Resolve budgets, validate them against the protected tokens, and fall back to dense when the
    budget covers the whole prompt (saying so in ``notes``)."""
    ps, kv = method.prompt_stage, method.kv_stage
    if not method.compresses:
        return Plan(None, None, prompt.n, prompt.n, method.name)
    budget = method.budget.resolve(prompt.n)
    budget_pc = method.budget_pc.resolve(prompt.n, default=budget) if ps and kv else budget
    if ps and kv and budget_pc < budget:
        raise ConfigError(f"--budget-pc {budget_pc} must be >= --budget {budget}")
    if budget >= prompt.n:
        notes.append(f"{method.describe()}: budget {budget} >= prompt of {prompt.n} tokens, running dense")
        return Plan(None, None, prompt.n, prompt.n, "dense")
    if ps is not None:
        check_budget(ps, budget_pc, prompt, "--budget-pc" if kv else "--budget")
    if kv is not None:
        check_budget(kv, budget, prompt)
    if ps is not None and budget_pc >= prompt.n:
        ps = None
    return Plan(ps, kv, budget, budget_pc, method.name)


def select_prompt(rt: Runtime, prompt: Prompt, method: Method) -> tuple[np.ndarray, Job]:
    """Run only the prompt stage (``specllama compress``): kept indices and the job's timings."""
    job = Job(prompt=prompt, budget=prompt.n, gen=GenConfig(), rt=rt, timings=Timings(n_prompt=prompt.n))
    p = plan(method, prompt, job.notes)
    kept = np.arange(prompt.n, dtype=np.int64)
    if p.prompt_stage is not None:
        kept = p.prompt_stage.select(job, p.budget_pc)
    job.timings.n_kept = len(kept)
    return kept, job


def generate(rt: Runtime, prompt: Prompt, method: Method, gen: GenConfig = GenConfig(),
             on_text: TextFn | None = None) -> Result:
    """Run ``method`` on ``prompt`` and generate; ``on_text`` receives text as it is produced."""
    t_start = time.perf_counter()
    timings = Timings(n_prompt=prompt.n)
    n_pred = gen.n_predict if gen.n_predict > 0 else UNBOUNDED_PREDICT
    job = Job(prompt=prompt, budget=prompt.n, gen=gen, rt=rt, timings=timings)
    p = plan(method, prompt, job.notes)
    ps, kv, budget, budget_pc, name = p.prompt_stage, p.kv_stage, p.budget, p.budget_pc, p.name
    job.budget = budget
    _fit(rt, prompt, Method(ps, kv), n_pred)

    # -- prompt stage ---------------------------------------------------------------------------
    kept = np.arange(prompt.n, dtype=np.int64)
    if ps is not None:
        kept = ps.select(job, budget_pc)
    tokens = prompt.tokens[kept]
    renumber = ps is None or ps.positions == "renumber"
    positions = (np.arange(len(kept)) if renumber else kept).astype(np.int32)

    # -- target prefill (+ KV stage) -----------------------------------------------------------
    sampler = Sampler(gen.sampling)
    try:
        lookahead = kv.lookahead(job) if kv is not None else np.zeros(0, dtype=np.int32)
        if kv is None:
            t_pre = time.perf_counter()
            ctx = rt.target_ctx(len(tokens) + n_pred)
            ctx.decode(tokens, positions)
            first = sampler.sample(ctx)
            timings.prefill_ms = 1000.0 * (time.perf_counter() - t_pre)
        else:
            pre = kv_prefill(rt, kv, tokens, positions, lookahead, gen, sampler, timings)
            first = pre.first
            timings.prefill_ms = pre.prefill_ms
            t_sel = time.perf_counter()
            cells = kv.select(job, budget, pre.scores, prompt.protected[kept])
            ctx = keep_cells(None, positions[cells], rt.decode_ctx(len(cells) + n_pred), pre.blob)
            timings.select_ms += 1000.0 * (time.perf_counter() - t_sel) + pre.state_ms
            kept = kept[cells]
        timings.prefill_tokens = len(tokens) + len(lookahead)
        timings.n_kept = len(kept)
        timings.kv_bytes = ctx.kv_bytes()
        timings.kv_bytes_dense = kv_bytes_for(rt.target, round_ctx(prompt.n + n_pred))
        timings.ttft_ms = 1000.0 * (time.perf_counter() - t_start) + timings.reused_ms

        # -- decode ---------------------------------------------------------------------------
        room = ctx.n_ctx - len(kept)
        out, stop = decode_loop(ctx, sampler, first, int(ctx.pos_max()) + 1, min(n_pred, room + 1),
                            rt.target, on_text, timings)
    finally:
        sampler.close()
    text = rt.target.detokenize(out)
    return Result(text=text, tokens=np.asarray(out, dtype=np.int32), kept=kept, timings=timings,
                  method=name, notes=job.notes, stop=stop)


def prefill_key(rt: Runtime, kv: KVStage, tokens: np.ndarray, positions: np.ndarray, lookahead: np.ndarray,
                sampling) -> tuple:
    """The :class:`PrefillCache` key of a KV stage's target prefill: ``tokens[n]`` at
    ``positions[n]`` then ``lookahead[L]``, the stage's attention settings (or none read), the
    attention route and the flash-attention setting of the prefill context, the target's runtime
    settings (batch sizes, threads, ``-c``, ``-fa``: the draft's are left out, they decide nothing
    here) and the sampling settings. The KV stage itself is not in it: two stages that prefill the
    same way (StreamingLLM and the random baseline; SnapKV and a SpecKV whose draft answered
    nothing) share one prefill, since everything after it is theirs."""
    if kv.needs_attention:
        setup = ("attention", kv.attention, rt.attn_route, rt.attn_flash(rt.target))
    else:
        setup = ("plain", rt.cfg.flash_attn)
    target = replace(rt.cfg, draft=None, n_gpu_layers_draft=0)
    return PrefillCache.key(tokens, positions, lookahead, *setup, target, sampling)


def kv_prefill(rt: Runtime, kv: KVStage, tokens: np.ndarray, positions: np.ndarray, lookahead: np.ndarray,
               gen: GenConfig, sampler: Sampler, timings: Timings) -> Prefill:
    """The target's prefill for a KV stage: ``tokens[n]`` at ``positions[n]`` (then ``lookahead[L]``
    in the scoring graph when the stage reads attention), the scores, the first token and the
    sequence state, all independent of the budget.

    Served by ``rt.prefill_cache`` when it holds this prefill (a hit adds the cached prefill and
    state time to ``timings.reused_ms`` and its attention reading to ``capture_ms``, as if it ran).
    Only greedy sampling is memoised: a sampler with a random state would have to sample the first
    token again for the rest of the answer to follow the same draws.
    """
    memo = rt.prefill_cache if gen.sampling.greedy else None
    key = prefill_key(rt, kv, tokens, positions, lookahead, gen.sampling) if memo is not None else None
    hit = memo.get(key) if memo is not None else None
    if hit is not None:
        timings.capture_ms += hit.capture_ms
        timings.reused_ms += hit.prefill_ms + hit.state_ms
        return hit
    first: list[int] = []
    capture0 = timings.capture_ms
    t0 = time.perf_counter()
    if kv.needs_attention:
        ctx, tap = rt.target_attn_ctx(len(tokens) + len(lookahead))
        att = score_with_attention(
            ctx, tap, rt.target, tokens, kv.attention, len(tokens), 0, timings, positions=positions,
            extra=lookahead, on_prompt_logits=lambda i: first.append(sampler.sample(ctx, i)))
        scores, blob = att.scores, att.blob
    else:
        ctx = rt.target_ctx(len(tokens))
        ctx.decode(tokens, positions)
        first.append(sampler.sample(ctx))
        scores = blob = None
    t1 = time.perf_counter()
    if blob is None:
        blob = ctx.state_get()
    pre = Prefill(scores, blob, first[0], 1000.0 * (t1 - t0), timings.capture_ms - capture0,
                  1000.0 * (time.perf_counter() - t1))
    if memo is not None:
        memo.put(key, pre)
    return pre


def decode_loop(ctx, sampler: Sampler, tok: int, pos: int, n_pred: int, model, on_text: TextFn | None,
                timings: Timings, *, should_stop: Callable[[], bool] | None = None,
                next_ctx: Callable[[], object | None] | None = None,
                fed: Callable[[int, int], None] | None = None,
                on_error: Callable[[], None] | None = None) -> tuple[list[int], str]:
    """Emit ``tok``, feed it at ``pos``, sample the next, until a stop; returns ``(tokens, stop)``.

    ``stop`` is ``eog``, ``length`` (``n_pred`` reached), ``interrupted`` (``should_stop()`` or an
    aborted decode) or ``context`` (``next_ctx()`` returned None: no room left). ``next_ctx()``
    gives the context to feed the next token into (a session may grow it); ``fed(tok, pos)`` runs
    after each token is in; ``on_error()`` runs when a decode fails, before the error is handled.
    ``timings.decode_tokens`` counts forward passes (the first token comes from the prefill).
    """
    out: list[int] = []
    passes = 0
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    t0 = time.perf_counter()
    stop = "length"
    try:
        while True:
            if model.is_eog(tok):
                stop = "eog"
                break
            out.append(tok)
            if on_text is not None:
                piece = dec.decode(model.token_bytes(tok))
                if piece:
                    on_text(piece)
            if len(out) >= n_pred:
                break
            if should_stop is not None and should_stop():
                stop = "interrupted"
                break
            if next_ctx is not None:
                ctx = next_ctx()
                if ctx is None:
                    stop = "context"
                    break
            try:
                ctx.decode(np.array([tok], dtype=np.int32), np.array([pos], dtype=np.int32))
            except BaseException as exc:
                if on_error is not None:
                    on_error()
                if isinstance(exc, Interrupted):
                    stop = "interrupted"
                    break
                raise
            if fed is not None:
                fed(tok, pos)
            passes += 1
            pos += 1
            tok = sampler.sample(ctx)
    finally:
        if on_text is not None:
            tail = dec.decode(b"", final=True)
            if tail:
                on_text(tail)
        timings.decode_ms = 1000.0 * (time.perf_counter() - t0)
        timings.decode_tokens = passes
    return out, stop
