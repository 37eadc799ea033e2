"""A chat session: the conversation, the models' long-lived contexts, and one turn end to end.

Each turn renders the whole conversation with the chat template, compresses it when the budget or
the context asks for it (``compress.py``), then the target prefills only the tokens past the
longest common prefix with what its context already holds (``reuse.py``) and generates. The draft
does the same with its own context whenever it scores. :meth:`ChatSession.interrupt` (Ctrl-C,
from another thread) stops a prefill or generation: a turn stopped before its first token is
forgotten, one stopped while answering keeps the partial answer; either way every context is left
holding exactly what its record says.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


from ..settings import resolve
from ..engine import lib
from ..engine.context import kv_bytes_for
from ..engine.sampling import Sampler
from ..engine.template import apply_template
from ..errors import ConfigError, Interrupted, ModelError, PromptError
from ..methods.base import GenConfig, Method
from ..pipeline import UNBOUNDED_PREDICT, decode_loop
from ..prompt import resolve_template
from ..runtime import Runtime, round_ctx
from ..timings import Timings
from . import compress
from .history import Conversation, Turn, Unit
from .progress import ProgressFactory, no_progress
from .reuse import Track

TextFn = Callable[[str], None]
DEFAULT_CAP = 4096  # context cap when the GGUF does not say how long it was trained


@dataclass
class TurnStats:
    """What one turn did.

    Attributes:
        timings: draft, prefill, TTFT and decode (``prefill_tokens`` counts only new tokens;
            ``n_prompt`` is the uncompressed conversation, ``n_kept`` what the target read).
        reused: target cells reused from earlier turns.
        draft_reused: draft cells reused (when the draft ran).
        text: the answer (partial when interrupted).
        stop: ``eog``, ``length``, ``context`` (the context is full) or ``interrupted``.
        answered: False when the turn was stopped before its first token (and forgotten).
        compressed: the line saying what was compressed, if anything was.
        n_held: target cells held after the turn.
        n_generated: tokens generated (the end-of-generation token excluded).
    """

    timings: Timings
    reused: int = 0
    draft_reused: int | None = None
    text: str = ""
    stop: str = "eog"
    answered: bool = True
    compressed: str | None = None
    n_held: int = 0
    n_generated: int = 0

    def lines(self) -> list[str]:
        t = self.timings
        if not self.answered:
            return ["the last turn was interrupted before its answer and was not kept"]
        out = [f"prompt: the conversation is {t.n_prompt} tokens; the target reads {t.n_kept} "
               f"(kept {t.n_kept}/{t.n_prompt})"]
        if self.compressed:
            out.append(f"compressed: {self.compressed}")
        if self.draft_reused is not None:
            out.append(f"draft: prefilled {t.draft_tokens} new tokens ({self.draft_reused} reused) "
                       f"in {t.draft_ms / 1000:.2f} s")
        else:
            out.append("draft: not run")
        out.append(f"target: prefilled {t.prefill_tokens} new tokens ({self.reused} reused) "
                   f"in {t.prefill_ms / 1000:.2f} s | TTFT {t.ttft_ms / 1000:.2f} s")
        out.append(f"decode: {self.n_generated} tokens at {t.decode_tps:.1f} t/s "
                   f"(stop: {self.stop})")
        return out

    def summary(self) -> str:
        t = self.timings
        parts = [f"prefilled {t.prefill_tokens} new ({self.reused} reused)",
                 f"kept {t.n_kept}/{t.n_prompt}"]
        if self.draft_reused is not None:
            parts.append(f"draft {t.draft_ms / 1000:.2f} s")
        parts += [f"target prefill {t.prefill_ms / 1000:.2f} s", f"TTFT {t.ttft_ms / 1000:.2f} s",
                  f"decode {t.decode_tps:.1f} t/s"]
        return " | ".join(parts)


def renumbers(method: Method) -> bool:
    """Whether the chat feeds the kept tokens at consecutive positions. A prompt stage says so
    itself (``--positions``); a KV stage keeps cells where they were computed (original positions)."""
    if method.prompt_stage is not None:
        return method.prompt_stage.positions == "renumber"
    return method.kv_stage is None


class ChatSession:
    """A conversation over a :class:`Runtime`'s models.

    Args:
        rt: the models; the session's long-lived contexts are its own (``Runtime.owned_ctx``).
        options: the CLI's option dict; method and generation settings are built from it with
            ``settings.resolve`` and changed with :meth:`configure`.
        template: chat template name or Jinja text overriding the target GGUF's.
        system: the system prompt (never compressed).
        reuse: keep the KV of earlier turns (False re-prefills the whole conversation each turn,
            for measurements).
        progress: makes progress bars for long prefills.
        note: receives one-line messages for stderr.
    """

    def __init__(self, rt: Runtime, options: dict | None = None, *, template: str | None = None,
                 system: str | None = None, reuse: bool = True, progress: ProgressFactory = no_progress,
                 note: Callable[[str], None] = lambda _m: None):
        self.rt = rt
        self.set_template(template)
        self.options = dict(options or {})
        self.method, self.gen = self._build(self.options)
        self.conv = Conversation(system)
        self.reuse = reuse
        self.progress = progress
        self.note = note
        cfg = rt.cfg
        t_cap = cfg.n_ctx or rt.target.info.n_ctx_train or DEFAULT_CAP
        self.target = Track(lambda n: rt.owned_ctx(rt.target, n, abortable=True), t_cap, fixed=bool(cfg.n_ctx),
                            name=f"target {rt.target.name}")
        self._tap = rt.attn_tap()
        self.draft: Track | None = None
        if rt.has_draft:
            d_cap = rt.draft.info.n_ctx_train or DEFAULT_CAP
            # the draft model the method's pass runs (a prefix of its layers by default, as `run`'s
            # cheap draft), with flash attention as the attention route chooses
            self.draft = Track(lambda n: rt.owned_ctx(self.draft_model(), n, tap=self._tap, abortable=True), d_cap,
                               name=f"draft {rt.draft.name}",
                               hint="/clear the conversation or attach a shorter document")
        self._stop = threading.Event()
        self.last: TurnStats | None = None

    # -- settings -----------------------------------------------------------------------------
    def set_template(self, template: str | None) -> None:
        """Use ``template`` (a name or Jinja text; None: the target GGUF's); checked now, not mid-chat."""
        rt = self.rt
        if not template and not rt.target.chat_template():
            raise ModelError(f"{rt.target.name} has no chat template in its GGUF metadata; pass "
                             "--chat-template NAME (e.g. chatml)")
        resolved = resolve_template(rt.target, template)
        apply_template(resolved, [("user", "hi")], True, rt.target.name)
        self.template_override, self.template = template, resolved

    def _build(self, o: dict) -> tuple[Method, GenConfig]:
        _, method, gen = resolve(o, self.rt.cfg)
        if method.needs_draft and not self.rt.has_draft:
            raise ConfigError(f"method {method.name} needs a draft model: restart with -md FILE.gguf")
        if not renumbers(method) and not lib.has_patch("0001"):
            raise ConfigError(f"{method.name} keeps original positions in chat, which needs llama.cpp "
                              "built with patches/0001 (run `make install`)")
        return method, gen

    def configure(self, **changes) -> None:
        """Change CLI-level settings (``method``, ``budget``, ``keep``, ``temp``, ``n_predict``...);
        nothing changes unless the result is valid. A change of the draft model the method runs
        (e.g. ``--draft-layers``) empties the draft's context: its cells belong to the other one."""
        o = dict(self.options)
        o.update(changes)
        before = self.draft_model() if self.draft is not None else None
        self.method, self.gen = self._build(o)
        self.options = o
        if self.draft is not None and self.draft_model() is not before:
            self.draft.close()

    def draft_model(self):
        """The draft model the method's draft pass runs: the draft, or the prefix of its layers that
        SpecPC's cheap pass reads (``DraftPass.run_layers``); the draft for methods without one."""
        return compress.draft_pass(self.method.prompt_stage, self.rt, 0)[0]

    @property
    def renumber(self) -> bool:
        return renumbers(self.method)

    @property
    def n_predict(self) -> int:
        return self.gen.n_predict if self.gen.n_predict > 0 else UNBOUNDED_PREDICT

    @property
    def room(self) -> int:
        """Prompt tokens that fit the target's context with room left for an answer (at most half
        the context is set aside; a longer answer stops when the context is full)."""
        cap = self.target.cap
        return cap - min(self.n_predict, cap // 2)

    # -- scoring ------------------------------------------------------------------------------
    def _scorer(self) -> compress.Scorer:
        stage = self.method.prompt_stage
        if stage is not None and stage.draft_scoring is not None and self.draft is not None \
                and self.rt.same_tokenizer:
            # the draft's context follows the conversation token for token; a draft with another
            # tokenizer scores each compression afresh through the text (StageScorer)
            return compress.DraftScorer(stage, self.rt, self.draft, self._tap, self._check, self.progress)
        if stage is not None:
            return compress.StageScorer(stage, self.rt)
        if self.method.kv_stage is not None:
            return compress.KVScorer(self.method.kv_stage, self.rt, self.target, self.gen)
        return compress.OldestFirst()

    # -- interruption -------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Stop the running prefill or generation as soon as possible (safe from any thread)."""
        self._stop.set()
        for t in (self.target, self.draft):
            if t is not None and t.ctx is not None:
                t.ctx.request_abort()

    def _check(self) -> None:
        if self._stop.is_set():
            raise Interrupted("interrupted")

    # -- conversation -------------------------------------------------------------------------
    def attach(self, text: str, name: str = "") -> int:
        """Attach a document to the next message; return its token count."""
        if not text.strip():
            raise PromptError(f"{name or 'the document'} is empty")
        self.conv.attach(text, name)
        return len(self.rt.target.tokenize(text, parse_special=False))

    def clear(self) -> None:
        """Forget the conversation (the system prompt stays) and empty the contexts."""
        self.conv.clear()
        self.target.clear()
        if self.draft is not None:
            self.draft.clear()
        self.last = None

    def ask(self, text: str, on_text: TextFn | None = None) -> TurnStats:
        """Answer ``text`` with the pending documents attached; record the turn."""
        if not text.strip() and not self.conv.pending:
            raise PromptError("empty message")
        return self._answer(self.conv.new_turn(text), on_text)

    def regen(self, on_text: TextFn | None = None) -> TurnStats:
        """Answer the last message again, replacing its answer."""
        if not self.conv.turns:
            raise PromptError("nothing to regenerate yet")
        turn = self.conv.turns.pop()
        old = turn.answer
        turn.answer = None
        try:
            stats = self._answer(turn, on_text)
        except BaseException:
            turn.answer = old
            self.conv.turns.append(turn)
            raise
        if not stats.answered:
            turn.answer = old
            self.conv.turns.append(turn)
        return stats

    def close(self) -> None:
        self.target.close()
        if self.draft is not None:
            self.draft.close()

    # -- one turn -----------------------------------------------------------------------------
    def _answer(self, turn: Turn, on_text: TextFn | None) -> TurnStats:
        self._stop.clear()
        t_start = time.perf_counter()
        model = self.rt.target
        view = self.conv.render(model, self.template, turn)
        seq = view.sequence(self.renumber)
        timings = Timings(n_prompt=view.prompt.n)
        stats = TurnStats(timings=timings)
        masks: dict = {}
        try:
            p = compress.plan(view, seq, self.method, self.room)
            if p is not None:
                scorer = self._scorer()
                masks = compress.run(p, view, seq, scorer, timings)
                if isinstance(scorer, compress.DraftScorer):
                    stats.draft_reused = seq.n - timings.draft_tokens
                new = view.with_masks(masks).sequence(self.renumber)
                stats.compressed = compress.describe(p, view, masks, self.method, scorer, seq.n, new.n)
                self.note(stats.compressed)
                seq = new
            self._prefill(seq, timings, stats)
        except Interrupted:
            stats.answered = False
            stats.stop = "interrupted"
            self.last = stats
            return stats
        timings.n_kept = seq.n
        out, stats.stop = self._generate(seq, timings, on_text, t_start)
        stats.text, stats.n_generated = model.detokenize(out), len(out)
        turn.answer = Unit(stats.text, "answer", turn=turn.question.turn)
        self.conv.commit(turn, masks, view)
        stats.n_held = self.target.n
        timings.kv_bytes = kv_bytes_for(model, self.target.n_ctx)
        timings.kv_bytes_dense = kv_bytes_for(model, round_ctx(view.prompt.n + self.n_predict))
        self.last = stats
        return stats

    def _prefill(self, seq, timings: Timings, stats: TurnStats) -> None:
        """Bring the target's context to ``seq``, decoding only what it does not hold yet."""
        self._check()
        track = self.target
        if self.reuse:
            q = track.sync(seq.tokens, seq.positions)
        else:
            track.rewind(0)
            q = 0
        ctx = track.reserve(min(track.cap, max(seq.n + 1, seq.n + min(self.n_predict, 256))))
        bar = self.progress("target prefill", seq.n - q)
        hooked = compress.HookedContext(ctx, self._check, bar)
        t0 = time.perf_counter()
        try:
            hooked.decode(seq.tokens[q:], seq.positions[q:])
        except BaseException:
            track.held(seq.tokens[q:q + hooked.done], seq.positions[q:q + hooked.done])
            track.rewind(track.n)
            raise
        finally:
            if bar is not None:
                bar.close()
        track.held(seq.tokens[q:], seq.positions[q:])
        timings.prefill_ms += 1000.0 * (time.perf_counter() - t0)
        timings.prefill_tokens += seq.n - q
        stats.reused = q

    def _generate(self, seq, timings: Timings, on_text: TextFn | None, t_start: float) -> tuple[list[int], str]:
        """Sample from the prefilled context until end of generation, ``-n``, a full context or an
        interruption; the context then holds every token fed back."""
        model = self.rt.target
        track = self.target
        ctx = track.ctx
        pos = int(seq.positions[-1]) + 1
        sampler = Sampler(self.gen.sampling)

        def next_ctx():
            if track.n >= track.n_ctx:
                if track.n_ctx >= track.cap:
                    return None
                return track.reserve(track.n + 1)
            return track.ctx

        try:
            tok = sampler.sample(ctx)
            timings.ttft_ms = 1000.0 * (time.perf_counter() - t_start)
            out, stop = decode_loop(ctx, sampler, tok, pos, self.n_predict, model, on_text, timings,
                                    should_stop=self._stop.is_set, next_ctx=next_ctx,
                                    fed=lambda t, p: track.held([t], [p]),
                                    on_error=lambda: track.rewind(track.n))
        finally:
            sampler.close()
        return out, stop

    # -- facts for /show ----------------------------------------------------------------------
    def facts(self) -> list[tuple[str, str]]:
        rt = self.rt
        t = rt.target
        rows = [("target", f"{t.name} ({t.info.arch}, {t.info.n_layer} layers, trained ctx {t.info.n_ctx_train})")]
        if rt.has_draft:
            d = rt.draft
            rows.append(("draft", f"{d.name} ({d.info.arch}, {d.info.n_layer} layers)"))
        else:
            rows.append(("draft", "none"))
        tmpl = self.template_override or "from the target GGUF"
        if "\n" in tmpl or len(tmpl) > 60:
            tmpl = "custom Jinja (--chat-template)"
        rows.append(("template", tmpl))
        m = self.method
        what = m.describe() if m.compresses else m.name
        if m.prompt_stage is not None and m.kv_stage is not None:
            what += " (chat runs its prompt stage only, to the budget)"
        rows.append(("method", what))
        s = self.gen.sampling
        rows.append(("sampling", f"temp {s.temp:g}, top-k {s.top_k}, top-p {s.top_p:g}, n {self.gen.n_predict}"))
        rows.append(("system", self.conv.system or "(none)"))
        alloc = f"{self.target.n_ctx}" if self.target.n_ctx else "not yet"
        rows.append(("context", f"target holds {self.target.n} tokens (allocated {alloc}, cap {self.target.cap}"
                     f"{', -c' if self.target.fixed else ''}; room for prompts {self.room})"))
        if self.draft is not None:
            rows.append(("", f"draft holds {self.draft.n} tokens (cap {self.draft.cap})"))
        rows.append(("turns", str(len(self.conv.turns))))
        docs = ", ".join(u.name or "text" for u in self.conv.pending)
        rows.append(("attached", docs or "(none)"))
        return rows
