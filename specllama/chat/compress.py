"""When and what the chat compresses, and who scores it.

Two triggers, checked every turn on the sequence the target would read:

* **budget**: the turn sends new documents and the method compresses (SpecPC, SpecKV...): with
  ``--budget N`` the turn's whole prompt is cut to ``N`` tokens (as ``run`` would); with
  ``--keep F`` it drops ``1 - F`` of the new documents' tokens. The documents are compressed
  once, when first sent, and the history keeps their compressed form.
* **context**: the prompt plus room for the answer would not fit the target's context: it is cut
  to three quarters of what fits, so the following turns again only append.

Candidates are whole units (documents, earlier questions and answers): the new documents first
(with a compressing method), then the oldest units, until they hold twice the tokens to drop (or all of
them). The template, the system prompt and the current question are never candidates. The
method's prompt stage scores the candidates (SpecPC: the draft's attention, reusing the draft's
own KV across turns); a method with only a KV stage (SpecKV, SnapKV, ...) picks the target cells to
keep (:class:`KVScorer`); a method with neither drops the oldest candidate tokens first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from ..engine.capture import TensorTap
from ..methods.base import Budget, GenConfig, Job, KVStage, Method, PromptStage
from ..pipeline import check_budget
from ..prompt import Prompt
from ..runtime import Runtime
from ..scoring import score_with_attention
from ..select.topk import select_tokens
from ..timings import Timings
from .history import Sequence, View
from .progress import Progress
from .reuse import Track

HEADROOM = 0.25  # a context overflow frees this fraction of the context for later turns
SLACK = 2  # candidates hold at least SLACK x the tokens to drop


@dataclass(frozen=True)
class Plan:
    """A compression to run before the target reads the turn.

    Attributes:
        goal: tokens the target reads after compression.
        candidates: unit indices that may lose tokens.
        reason: ``budget`` or ``context``.
        limit: the budget or the context room that triggered it, for messages.
    """

    goal: int
    candidates: tuple[int, ...]
    reason: str
    limit: int


def new_documents(view: View) -> list[int]:
    """Units of the current turn that are documents never compressed before."""
    return [i for i in view.current if view.units[i].kind == "document" and view.unit_mask(i) is None
            and view.n_unit_tokens(i) > 0]


def budget_goal(budget: Budget, n: int, new_doc_tokens: int) -> int | None:
    """Prompt tokens a budget allows on a turn sending ``new_doc_tokens`` of new documents."""
    if new_doc_tokens == 0:
        return None
    if budget.tokens is not None:
        return budget.tokens
    if budget.keep is not None:
        return n - (new_doc_tokens - math.ceil(budget.keep * new_doc_tokens))
    return None


def plan(view: View, seq: Sequence, method: Method, room: int) -> Plan | None:
    """Decide whether this turn compresses, to how many tokens, and which units are candidates.

    Args:
        view, seq: the rendering and what the target would read with the current masks.
        method: the chat's method (its budget and whether it has a prompt stage).
        room: prompt tokens that fit the target's context with room left for the answer.
    """
    n = seq.n
    sizes = {i: int((seq.unit == i).sum()) for i in range(len(view.units))}
    fresh = new_documents(view) if method.compresses else []
    goal, reason, limit = None, "", 0
    g = budget_goal(method.budget, n, sum(sizes[i] for i in fresh))
    if g is not None and n > g:
        goal, reason, limit = g, "budget", g
    if n > room:
        g = room - int(room * HEADROOM)
        if goal is None or g < goal:
            goal, reason, limit = g, "context", room
    if goal is None:
        return None
    excess = n - goal
    order = [i for i in range(len(view.units)) if i != view.question and i not in fresh]
    chosen = list(fresh)  # new documents are compressed when first sent, whatever the trigger
    total = sum(sizes[i] for i in chosen)
    for i in order:
        if total >= SLACK * excess:
            break
        if sizes[i]:
            chosen.append(i)
            total += sizes[i]
    return Plan(goal, tuple(sorted(chosen)), reason, limit)


def protected_mask(seq: Sequence, candidates: tuple[int, ...]) -> np.ndarray:
    """``[m]`` bool: the tokens of ``seq`` that are not candidates (never dropped)."""
    return ~np.isin(seq.unit, np.asarray(candidates, dtype=np.int32))


# -- scorers ----------------------------------------------------------------------------------
class Scorer(Protocol):
    window: int
    label: str

    def select(self, seq: Sequence, protected: np.ndarray, goal: int, timings: Timings) -> np.ndarray:
        """Indices ``[k]`` (sorted) of ``seq`` to keep, ``k <= goal``, every protected one included."""


class OldestFirst:
    """No prompt stage: the oldest candidate tokens go first."""

    window = 0
    label = "dropped"

    def select(self, seq: Sequence, protected: np.ndarray, goal: int, timings: Timings) -> np.ndarray:
        t0 = time.perf_counter()
        keep = select_tokens(np.arange(seq.n, dtype=np.float32), goal, protected=protected)
        timings.select_ms += 1000.0 * (time.perf_counter() - t0)
        return keep


class StageScorer:
    """Any prompt stage, run on the whole sequence with the non-candidates protected."""

    label = "compressed"

    def __init__(self, stage: PromptStage, rt: Runtime):
        self.stage = stage
        self.rt = rt
        self.window = stage.window

    def select(self, seq: Sequence, protected: np.ndarray, goal: int, timings: Timings) -> np.ndarray:
        job = Job(prompt=Prompt(seq.tokens, protected), budget=goal, gen=GenConfig(), rt=self.rt,
                  timings=timings)
        return np.sort(np.asarray(self.stage.select(job, goal), dtype=np.int64))


class HookedContext:
    """A context whose ``decode`` checks for interruption before each chunk and reports progress
    of its first (prefill) call; everything else is the wrapped context's."""

    def __init__(self, ctx, check: Callable[[], None], progress: Progress | None, offset: int = 0):
        self._ctx = ctx
        self._check = check
        self._progress = progress
        self._offset = offset
        self._calls = 0
        self.done = 0

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def decode(self, tokens, positions=None, **kw):
        first = self._calls == 0
        self._calls += 1
        inner = kw.pop("before_chunk", None)
        outer = kw.pop("progress", None)

        def before(i0: int, i1: int) -> None:
            self._check()
            if inner is not None:
                inner(i0, i1)

        def progress(done: int, total: int) -> None:
            if first:
                self.done = done
                if self._progress is not None:
                    self._progress.update(self._offset + done)
            if outer is not None:
                outer(done, total)

        return self._ctx.decode(tokens, positions, before_chunk=before, progress=progress, **kw)


def draft_pass(stage: PromptStage | None, rt: Runtime, n: int) -> tuple:
    """``(model, attention, local)`` of the draft's pass over ``n`` tokens: the stage's own
    (SpecPC's ``draft_pass``: a prefix of the draft's layers, sparse attention for the queries
    before the window, as in ``run``), else the whole draft with full attention (``attention`` is
    then the stage's ``draft_scoring`` settings, or None without a stage)."""
    pass_ = getattr(stage, "draft_pass", None)
    if pass_ is not None:
        return pass_(rt, n)
    scoring = getattr(stage, "draft_scoring", None)
    return rt.draft, scoring.attention if scoring is not None else None, None


class DraftScorer:
    """A prompt stage scored by the draft's attention (its ``draft_scoring``: SpecPC), with the
    draft's own KV reused across turns.

    The draft's context keeps the sequence it last read; a turn decodes only what differs, and at
    least the last ``window`` tokens, whose queries score every cell. Selection is the stage's own
    (``stage.keep``: pooling, neighbour spans, window, budget) on those scores.
    """

    label = "compressed"

    def __init__(self, stage: PromptStage, rt: Runtime, track: Track, tap: TensorTap,
                 check: Callable[[], None], progress: Callable[[str, int], Progress | None]):
        if stage.draft_scoring is None:
            raise ValueError("DraftScorer needs a stage scored by the draft's attention")
        self.stage = stage
        self.cfg = stage.draft_scoring
        self.window = stage.window
        self.rt = rt
        self.track = track
        self.tap = tap
        self.check = check
        self.progress = progress

    def scores(self, seq: Sequence, timings: Timings) -> np.ndarray:
        """Draft scores ``[m]`` for every token of ``seq``; the draft then holds ``seq``."""
        self.rt.check_same_tokenizer("the draft that follows the chat token for token")
        cfg = self.cfg
        # queries decoded in an earlier turn keep the attention they had then: a token of that
        # turn's scoring window attended to every key, so cells can differ a little from a fresh
        # sparse pass over the sequence
        model, attention, local = draft_pass(self.stage, self.rt, seq.n)
        window = min(cfg.attention.window, seq.n)
        t0 = time.perf_counter()
        q = self.track.sync(seq.tokens, seq.positions, keep_last=window)
        ctx = self.track.reserve(seq.n + cfg.lookahead)
        bar = self.progress("draft prefill", seq.n - q)
        hooked = HookedContext(ctx, self.check, bar)
        try:
            scores = score_with_attention(hooked, self.tap, model, seq.tokens[q:], attention, seq.n,
                                          cfg.lookahead, timings, positions=seq.positions[q:], local=local).scores
        except BaseException:
            self.track.held(seq.tokens[q:q + hooked.done], seq.positions[q:q + hooked.done])
            self.track.rewind(self.track.n)
            raise
        finally:
            if bar is not None:
                bar.close()
        self.track.held(seq.tokens[q:], seq.positions[q:])
        self.track.rewind(self.track.n)  # forget the lookahead tokens' cells
        timings.draft_ms += 1000.0 * (time.perf_counter() - t0)
        timings.draft_tokens += seq.n - q
        return scores

    def select(self, seq: Sequence, protected: np.ndarray, goal: int, timings: Timings) -> np.ndarray:
        scores = self.scores(seq, timings)
        t1 = time.perf_counter()
        keep = self.stage.keep(scores, goal, protected)
        timings.select_ms += 1000.0 * (time.perf_counter() - t1)
        return keep


class KVScorer:
    """A KV stage (SpecKV, SnapKV, StreamingLLM, random): the target prefills the sequence (and the
    draft's lookahead answer) in an attention-reading context, the stage picks the cells, and the
    kept cells move into the chat's target context at their original positions, so the next turn
    only appends. The chat runs these methods with original positions for that reason."""

    label = "evicted"

    def __init__(self, stage: KVStage, rt: Runtime, track: Track, gen: GenConfig):
        self.stage = stage
        self.rt = rt
        self.track = track
        self.gen = gen
        self.window = stage.window

    def select(self, seq: Sequence, protected: np.ndarray, goal: int, timings: Timings) -> np.ndarray:
        kv, rt = self.stage, self.rt
        job = Job(prompt=Prompt(seq.tokens, protected), budget=goal, gen=self.gen, rt=rt, timings=timings)
        lookahead = kv.lookahead(job)
        t0 = time.perf_counter()
        if kv.needs_attention:
            ctx, tap = rt.target_attn_ctx(seq.n + len(lookahead))
            scores = score_with_attention(ctx, tap, rt.target, seq.tokens, kv.attention, seq.n, 0, timings,
                                          positions=seq.positions, extra=lookahead).scores
        else:
            ctx = rt.target_ctx(seq.n)
            ctx.decode(seq.tokens, seq.positions)
            scores = None
        timings.prefill_ms += 1000.0 * (time.perf_counter() - t0)
        t1 = time.perf_counter()
        cells = np.sort(np.asarray(kv.select(job, goal, scores, protected), dtype=np.int64))
        self.track.adopt(ctx, seq.tokens[cells], seq.positions[cells])
        timings.select_ms += 1000.0 * (time.perf_counter() - t1)
        return cells


# -- running a plan ---------------------------------------------------------------------------
def run(plan_: Plan, view: View, seq: Sequence, scorer: Scorer, timings: Timings) -> dict:
    """Score and select; return the new masks ``{unit index: [n_unit_tokens] bool}``."""
    protected = protected_mask(seq, plan_.candidates)
    goal = plan_.goal
    if plan_.reason == "context":  # give up headroom rather than fail while the room suffices
        must = protected.copy()
        must[max(0, seq.n - scorer.window):] = True
        goal = max(goal, min(int(must.sum()), plan_.limit))
    what = "the budget" if plan_.reason == "budget" else "the context room"
    check_budget(scorer, goal, Prompt(seq.tokens, protected), what)
    kept = scorer.select(seq, protected, goal, timings)
    keep_seq = np.zeros(seq.n, dtype=bool)
    keep_seq[kept] = True
    if not keep_seq[protected].all():
        raise RuntimeError("a compression dropped a protected token")
    full = view.keep()
    full[seq.index[~keep_seq]] = False
    part = view.prompt.part
    return {i: full[part == i] for i in plan_.candidates}


def describe(plan_: Plan, view: View, masks: dict, method: Method, scorer: Scorer,
             before: int, after: int) -> str:
    """The one stderr line saying what was compressed."""
    changed = []
    for i, m in masks.items():
        old = view.unit_mask(i)
        n_old = int(old.sum()) if old is not None else view.n_unit_tokens(i)
        if int(m.sum()) != n_old:
            changed.append((view.units[i], n_old, int(m.sum())))
    if len(changed) == 1:
        u, a, b = changed[0]
        what = f"{u.label()} of turn {u.turn}" if u.kind != "document" else u.label()
        what += f" ({a} -> {b} tokens)"
    else:
        kinds: dict[str, int] = {}
        for u, _, _ in changed:
            kinds[u.kind] = kinds.get(u.kind, 0) + 1
        turns = sorted({u.turn for u, _, _ in changed})
        span = f"turn {turns[0]}" if len(turns) == 1 else f"turns {turns[0]}-{turns[-1]}"
        parts = ", ".join(f"{k} {kind}{'s' if k > 1 else ''}" for kind, k in kinds.items())
        what = (f"{parts} of {span} ({sum(a for _, a, _ in changed)} -> "
                f"{sum(b for _, _, b in changed)} tokens)")
    why = (f"{method.describe()}" if plan_.reason == "budget"
           else f"the conversation outgrew the {plan_.limit}-token room of the target's context")
    verb = scorer.label
    return f"{verb} {what}: {why}; the target reads {after} of {before} tokens"
