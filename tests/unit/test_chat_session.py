"""Chat sessions on tiny models: KV reuse across turns, compression, interruption, settings."""

import numpy as np
import pytest

from specllama.chat import compress
from specllama.chat.history import Conversation, Sequence, Unit
from specllama.chat.reuse import common_prefix
from specllama.chat.session import ChatSession
from specllama.engine.context import Context, ContextConfig
from specllama.errors import ConfigError, ModelError, PromptError
from specllama.methods import method_names
from specllama.runtime import Runtime, RuntimeConfig
from specllama.timings import Timings

WORDS = ("the green sky and the blue grass by the river near the house on the mountain "
         "where we go back again at night").split()
DOC = " ".join(WORDS[i % len(WORDS)] for i in range(700)) + " the secret code is magic. "
SYSTEM = "be brief and helpful"
OPTS = {"budget": 300, "window": 16, "kernel": 8, "n_predict": 6}


def make(rt, **kw):
    opts = dict(OPTS)
    opts.update(kw.pop("options", {}))
    return ChatSession(rt, opts, system=kw.pop("system", SYSTEM), **kw)


@pytest.fixture()
def session(tiny_runtime):
    s = make(tiny_runtime)
    yield s
    s.close()


def held_is_consistent(track):
    """The context holds exactly the recorded cells (one per token, at the recorded positions)."""
    ctx = track.ctx
    if track.n == 0:
        return ctx is None or ctx.pos_max() == -1
    return ctx.pos_max() == int(track.positions[-1]) and ctx.pos_min() == int(track.positions[0])


def test_common_prefix_counts_matching_tokens_and_positions():
    a = np.array([1, 2, 3, 4])
    assert common_prefix(a, np.arange(4), a[:3], np.arange(3)) == 3
    assert common_prefix(a, np.arange(4), np.array([1, 2, 9]), np.arange(3)) == 2
    assert common_prefix(a, np.arange(4), a, np.array([0, 1, 5, 6])) == 2
    assert common_prefix(a[:0], a[:0], a, np.arange(4)) == 0


def test_turn_two_prefills_only_the_new_tokens(session):
    notes = []
    session.note = notes.append
    session.attach(DOC, "doc.txt")
    first = session.ask("what is the secret code?")
    assert first.answered and first.compressed and len(notes) == 1
    t1 = first.timings
    assert t1.n_kept <= 300 < t1.n_prompt and t1.prefill_tokens == t1.n_kept
    assert first.draft_reused == 0 and t1.draft_tokens == t1.n_prompt
    second = session.ask("and where is it?")
    t2 = second.timings
    # the whole first prompt is reused; only the answer's tail, the template and the question are new
    assert second.reused >= t1.n_kept
    assert t2.prefill_tokens == t2.n_kept - second.reused < 60
    assert second.compressed is None and second.draft_reused is None and t2.draft_ms == 0
    assert len(notes) == 1  # nothing compressed on turn 2
    assert held_is_consistent(session.target)


def test_reused_kv_matches_a_fresh_prefill(session, tiny_runtime):
    session.attach(DOC, "doc.txt")
    session.ask("what is the secret code?")
    session.ask("and where is it?")
    tr = session.target
    got = tr.ctx.logits().copy()
    with Context(tiny_runtime.target, ContextConfig(n_ctx=1024, n_batch=64, n_ubatch=64, n_threads=2)) as fresh:
        fresh.decode(tr.tokens, tr.positions)
        want = fresh.logits()
        # f16 cells written over two turns and one token at a time differ from one batched prefill
        # by 0.002-0.006 here, depending on which tokens were kept (measured at budgets 280-340);
        # a misplaced or missing cell moves the logits by far more
        np.testing.assert_allclose(got, want, atol=1e-2)


def test_draft_scores_with_reused_kv_match_fresh_scores(tiny_runtime):
    # full attention (on the default layer prefix): with the sparse pass a token of the first call's
    # scoring window keeps the full attention it had then, so reuse differs from a fresh sparse pass
    # by design (test_chat_draft_runs_the_cheap_pass_of_run covers that pass)
    a = make(tiny_runtime, options={"draft_attn": "full"})
    b = make(tiny_runtime, options={"draft_attn": "full"})
    try:
        conv = Conversation(SYSTEM)
        conv.attach(DOC, "doc.txt")
        view = conv.render(tiny_runtime.target, a.template, conv.new_turn("what is the code?"))
        seq = view.sequence()
        scorer_a = a._scorer()
        assert isinstance(scorer_a, compress.DraftScorer)
        scorer_a.scores(seq, Timings())
        n_before = a.draft.n
        # a longer sequence sharing the prefix: only the tail (at least the window) is decoded again
        longer = view.sequence()
        ext_tokens = np.concatenate([longer.tokens, tiny_runtime.target.tokenize(" and the river", parse_special=False)])
        ext = Sequence(ext_tokens.astype(np.int32), np.arange(len(ext_tokens), dtype=np.int32),
                       np.full(len(ext_tokens), -1, dtype=np.int32), np.arange(len(ext_tokens)))
        t = Timings()
        inc = scorer_a.scores(ext, t)
        assert t.draft_tokens == max(16, ext.n - n_before)  # the window is always read again
        full = b._scorer().scores(ext, Timings())
        np.testing.assert_allclose(inc, full, rtol=1e-3, atol=1e-4)
        assert a.draft.n == ext.n and held_is_consistent(a.draft)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("route", ["qk", "kq"])
def test_chat_draft_reads_attention_by_the_route_run_uses(tiny_runtime, route):
    """The chat's draft context takes flash attention from the attention route, as ``run``'s draft
    context does (the default Q·K route keeps it on), instead of always running without it."""
    tiny_runtime.attn_route = route
    s = make(tiny_runtime)
    try:
        s.attach(DOC, "doc.txt")
        first = s.ask("what is the secret code?")
        assert first.compressed and first.draft_reused == 0
        run_ctx, _ = tiny_runtime.draft_ctx(300)
        assert s.draft.ctx.cfg.flash_attn is run_ctx.cfg.flash_attn is (route == "qk")
    finally:
        s.close()


def test_protected_material_survives_compression(session, tiny_runtime):
    session.attach(DOC, "doc.txt")
    session.ask("what is the secret code?")
    text = tiny_runtime.target.detokenize(session.target.tokens, special=True)
    assert SYSTEM in text and "what is the secret code?" in text and "<|im_start|>assistant" in text
    doc = session.conv.turns[0].docs[0]
    assert doc.keep is not None and 0 < doc.keep.sum() < len(doc.keep)


def test_keep_fraction_compresses_the_new_document_by_that_fraction(tiny_runtime):
    s = make(tiny_runtime, options={"budget": None, "keep": 0.5})
    try:
        s.attach(DOC, "doc.txt")
        st = s.ask("what is the code?")
        doc = s.conv.turns[0].docs[0]
        assert abs(doc.keep.sum() - 0.5 * len(doc.keep)) <= 1
        assert st.timings.n_kept == st.timings.n_prompt - (len(doc.keep) - doc.keep.sum())
    finally:
        s.close()


def test_context_overflow_compresses_the_oldest_material_with_one_note(tiny_path, tiny_draft_path):
    cfg = RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=2, n_ctx=512, n_batch=64, n_ubatch=64)
    with Runtime(cfg) as rt:
        notes = []
        s = make(rt, options={"method": "dense", "n_predict": 8}, note=notes.append)
        try:
            part = " ".join(WORDS)
            turns = 8
            for i in range(turns):
                s.attach(part, f"part{i}.txt")
                st = s.ask(f"question number {i}?")
                assert st.answered
                assert s.target.n <= 512 and held_is_consistent(s.target)
                text = rt.target.detokenize(s.target.tokens, special=True)
                assert SYSTEM in text and f"question number {i}?" in text
            assert notes and all(n.startswith("dropped") and "room of the target's context" in n for n in notes)
            assert len(notes) <= turns - 3  # headroom: later turns append again before compressing
            first = s.conv.turns[0]
            assert first.docs[0].keep is not None and not first.docs[0].keep.any()
        finally:
            s.close()


def test_budget_too_small_for_the_protected_tokens_is_one_clear_error(tiny_runtime):
    s = make(tiny_runtime, options={"budget": 20})
    try:
        s.attach(DOC, "doc.txt")
        with pytest.raises(ConfigError, match="never dropped|protected window"):
            s.ask("what is the secret code, please tell me now?")
        assert s.conv.turns == [] and len(s.conv.pending) == 1
        assert held_is_consistent(s.target)
    finally:
        s.close()


class Tripwire:
    """A progress bar that interrupts the session once ``after`` tokens are done."""

    def __init__(self, session, label, after):
        self.session, self.label, self.after = session, label, after
        self.seen = []

    def __call__(self, label, total):
        self.seen.append(label)
        if label != self.label:
            return None
        outer = self

        class Bar:
            def update(self, done):
                if done >= outer.after:
                    outer.session.interrupt()

            def close(self):
                pass

        return Bar()


@pytest.mark.parametrize("label", ["draft prefill", "target prefill"])
def test_interrupted_prefill_forgets_the_turn_and_keeps_contexts_consistent(session, label):
    session.progress = Tripwire(session, label, 64)
    session.attach(DOC, "doc.txt")
    st = session.ask("what is the secret code?")
    assert not st.answered and st.stop == "interrupted"
    assert session.conv.turns == [] and len(session.conv.pending) == 1
    track = session.draft if label == "draft prefill" else session.target
    assert 64 <= track.n < 900 and held_is_consistent(track)  # finished chunks are kept
    session.progress = lambda *_: None
    again = session.ask("what is the secret code?")
    assert again.answered and len(session.conv.turns) == 1
    if label == "target prefill":
        assert again.reused >= 64
    else:
        assert again.draft_reused >= 64
    assert held_is_consistent(session.target)


def test_interrupted_answer_keeps_the_partial_answer(session):
    pieces = []

    def on_text(p):
        pieces.append(p)
        if len(pieces) == 3:
            session.interrupt()

    session.configure(n_predict=50)
    st = session.ask("tell me a long story", on_text)
    assert st.answered and st.stop == "interrupted"
    assert st.text == "".join(pieces) and session.conv.turns[0].answer.text == st.text
    assert held_is_consistent(session.target)
    nxt = session.ask("go on")
    assert nxt.answered and nxt.reused > 0


def test_regen_replaces_the_answer_and_reuses_the_prompt(session):
    session.attach(DOC, "doc.txt")
    first = session.ask("what is the secret code?")
    again = session.regen()
    assert len(session.conv.turns) == 1 and again.timings.prefill_tokens == 1
    assert again.reused == first.timings.n_kept - 1 and again.compressed is None
    assert again.text == first.text  # greedy


def test_clear_forgets_everything_but_the_system_prompt(session):
    session.ask("hello")
    session.attach("a document", "x")
    session.clear()
    assert session.conv.turns == [] and session.conv.pending == [] and session.target.n == 0
    assert session.conv.system == SYSTEM and session.last is None
    with pytest.raises(PromptError):
        session.regen()


def test_configure_validates_and_changes_nothing_on_error(session):
    before = session.method
    with pytest.raises(ConfigError):
        session.configure(keep=1.5, budget=None)
    with pytest.raises(ConfigError):
        session.configure(method="nonsense")
    with pytest.raises(ConfigError):
        session.configure(temp=-1.0)
    assert session.method is before
    session.configure(method="dense")
    assert session.method.name == "dense" and session.renumber


def test_draft_method_without_a_draft_is_refused(tiny_path):
    with Runtime(RuntimeConfig(target=tiny_path, n_threads=2)) as rt:
        with pytest.raises(ConfigError, match="draft"):
            ChatSession(rt, {"method": "specpc"})
        s = ChatSession(rt, {})
        assert s.method.name == "dense"
        s.close()


def test_missing_chat_template_names_the_model(tiny_no_template_path):
    with Runtime(RuntimeConfig(target=tiny_no_template_path, n_threads=2)) as rt:
        with pytest.raises(ModelError, match="tiny-no-template.gguf.*--chat-template"):
            ChatSession(rt, {})
        s = ChatSession(rt, {}, template="chatml")
        assert s.ask("hi").answered
        s.close()


def test_kv_method_keeps_cells_at_original_positions_and_reuses_them(tiny_runtime):
    notes = []
    s = make(tiny_runtime, options={"method": "snapkv", "window": 16, "kernel": 7}, note=notes.append)
    try:
        assert not s.renumber
        s.attach(DOC, "doc.txt")
        first = s.ask("what is the secret code?")
        assert first.answered and notes and notes[0].startswith("evicted")
        pos = s.target.positions
        assert np.any(np.diff(pos) > 1)  # gaps where cells were evicted
        assert held_is_consistent(s.target)
        second = s.ask("and where?")
        assert second.reused >= first.timings.n_kept and second.compressed is None
    finally:
        s.close()


def test_plan_picks_new_documents_then_the_oldest_units(session, tiny_runtime):
    conv = session.conv
    for i in range(3):
        conv.attach(" ".join(WORDS * 3), f"d{i}")
        t = conv.new_turn(f"q{i}")
        view = conv.render(tiny_runtime.target, session.template, t)
        t.answer = Unit("an answer " * 5, "answer", turn=i + 1)
        conv.commit(t, {}, view)
    conv.attach(" ".join(WORDS * 3), "new")
    view = conv.render(tiny_runtime.target, session.template, conv.new_turn("now?"))
    seq = view.sequence()
    p = compress.plan(view, seq, session.method, room=10_000)
    assert p.reason == "budget" and p.goal == 300
    new_doc = view.current[0]
    assert new_doc in p.candidates and view.question not in p.candidates
    oldest = [i for i in range(len(view.units)) if i not in view.current]
    assert set(p.candidates) - {new_doc} == set(oldest[:len(p.candidates) - 1])
    # a context overflow alone never makes the new question a candidate, and leaves headroom
    p2 = compress.plan(view, seq, session.method, room=seq.n - 10)
    assert view.question not in p2.candidates and p2.goal <= 300


@pytest.mark.parametrize("name", method_names())
def test_every_registered_method_answers_a_document_turn_then_reuses(tiny_runtime, name):
    s = make(tiny_runtime, options={"method": name, "window": 16})
    try:
        s.attach(DOC, "doc.txt")
        first = s.ask("what is the secret code?")
        assert first.answered and held_is_consistent(s.target)
        assert (first.compressed is not None) == s.method.compresses
        assert first.timings.n_kept <= (300 if s.method.compresses else first.timings.n_prompt)
        second = s.ask("and where?")
        assert second.reused >= first.timings.n_kept and second.compressed is None
    finally:
        s.close()


def test_a_new_document_larger_than_the_context_is_compressed_to_fit(tiny_path, tiny_draft_path):
    cfg = RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=2, n_ctx=512, n_batch=64, n_ubatch=64)
    with Runtime(cfg) as rt:
        notes = []
        s = make(rt, options={"budget": 5000}, note=notes.append)  # the budget never triggers
        try:
            s.attach(DOC, "doc.txt")
            st = s.ask("what is the secret code?")
            assert st.answered and st.timings.n_prompt > 512 >= s.target.n
            assert len(notes) == 1 and "room of the target's context" in notes[0]
            assert notes[0].startswith("compressed document doc.txt")
        finally:
            s.close()


def test_chat_draft_runs_the_cheap_pass_of_run(tiny_runtime, monkeypatch):
    """The chat's draft reads the prompt as `run`'s default draft pass does: the prefix of its layers
    (2 of the tiny draft's 3) with the queries before the window on sinks + a local window; a
    setting that changes the draft model empties the draft's context, and the exact pass runs the
    whole draft with full attention."""
    calls = []
    real = Context.set_local_attn
    monkeypatch.setattr(Context, "set_local_attn", lambda self, *a: (calls.append(a), real(self, *a))[1])
    s = make(tiny_runtime, options={"draft_window": 32, "draft_sinks": 4})
    try:
        s.attach(DOC, "doc.txt")
        first = s.ask("what is the secret code?")
        assert first.compressed
        prefix = tiny_runtime.draft_prefix(2)
        assert prefix is not tiny_runtime.draft and prefix.info.n_layer == 2
        assert s.draft.ctx.model is prefix
        sparse = [a for a in calls if a[1] > 0]
        assert sparse and sparse[0][:2] == (4, 32)
        assert sparse[0][2] == s.draft.n - 16  # the scoring window (the last 16 queries) sees every key
        s.configure(draft_attn="full", draft_layers=0)
        assert s.draft.n == 0 and s.draft.ctx is None  # the prefix's cells are not the full draft's
        calls.clear()
        s.clear()
        s.attach(DOC, "doc.txt")
        s.ask("what is the secret code?")
        assert s.draft.ctx.model is tiny_runtime.draft
        assert not [a for a in calls if a[1] > 0]
    finally:
        s.close()
