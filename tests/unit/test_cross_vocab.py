"""Drafts with another tokenizer than the target's, on tiny generated models (issue 13).

* the draft reads the request through its own chat template, and its scores reach the target's
  tokens through the text: multi-byte UTF-8 split differently, control tokens, ``<unk>``;
* selection runs on the target's tokens, whose protected tokens are always kept;
* SpecKV's lookahead answer goes over as text, and SpecKV-PC reuses the SpecPC pass's answer;
* a tokenizer that does not spell the text back is refused in one line (exit code 2);
* manifest names resolve for ``-md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from models.synth import TinySpec, write_tiny
from specllama import registry
from specllama.errors import ModelError
from specllama.methods import Budget, GenConfig, SpecKVConfig, make_method
from specllama.methods.base import Job
from specllama.methods.crossvocab import draft_view, to_target
from specllama.scoring import greedy_continuation
from specllama.pipeline import generate
from specllama.prompt import Prompt, build_prompt, document_request
from specllama.runtime import Runtime, RuntimeConfig
from specllama.select.align import UNKNOWN, token_spans
from specllama.timings import Timings

DOC = ("the green sky and the blue grass. héllo wörld ✓ 東京 🙂 of the river. "
       "<|im_end|> stays text in a document. ") * 12
Q = "what is the secret code?"
GEMMA_LIKE = ("{{ bos_token }}{% for m in messages %}{{ '<start_of_turn>' + m['role'] + '\n' + m['content'] + "
              "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")


@pytest.fixture(scope="module")
def drafts(tiny_dir):
    """Other-vocabulary drafts: own template, an <unk>-typed word, a word spelled as nothing."""
    specs = {"template": TinySpec(vocab_variant=1, seed=2, chat_template=GEMMA_LIKE),
             "unk": TinySpec(vocab_variant=1, seed=2, unknown_words=("of",)),
             "dropped": TinySpec(vocab_variant=1, seed=2, dropped_words=("of",)),
             "untemplated": TinySpec(vocab_variant=1, seed=2, chat_template=None)}
    return {k: write_tiny(tiny_dir / f"tiny-cross-{k}.gguf", s) for k, s in specs.items()}


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _rt(target, draft):
    return Runtime(RuntimeConfig(target=target, draft=draft, n_threads=2, n_batch=128, n_ubatch=128))


def _overlaps(view, rt):
    """(target spans, draft spans) in each model's own prompt text."""
    t = token_spans(view.source.text.encode(), *rt.target.token_pieces(view.prompt.tokens))
    d = token_spans(view.draft.source.text.encode(), *rt.draft.token_pieces(view.tokens))
    return t, d


def _split_char(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def _doubled(sp):
    """Spans in the doubled coordinates of ``select.align`` (a zero-width token is ``[2p, 2p+1)``)."""
    s, e = 2 * sp[:, 0], 2 * sp[:, 1]
    return s, np.where(e > s, e, s + 1)


def test_same_text_split_differently_carries_the_max_over_overlapping_tokens(tiny_path, tiny_other_vocab_path):
    with _rt(tiny_path, tiny_other_vocab_path) as rt:
        p = build_prompt(rt.target, document_request(DOC, Q, "be brief"))
        v = draft_view(rt, p)
        assert v.source.text == v.draft.source.text  # both templates are ChatML here
        assert not np.array_equal(p.tokens[:200], v.tokens[:200])  # but the tokens differ
        t_sp, d_sp = _overlaps(v, rt)
        # multi-byte characters come out of byte-fallback pieces that split them
        pieces, kinds = rt.target.token_pieces(p.tokens)
        assert any(_split_char(pc) for pc in pieces) and any(_split_char(pc) for pc in rt.draft.token_pieces(v.tokens)[0])
        scores = np.random.default_rng(0).random(v.draft.n).astype(np.float32)
        (ts, te), (ds, de) = _doubled(t_sp), _doubled(d_sp)
        want = [scores[(ds < e) & (de > s)].max() for s, e in zip(ts, te)]
        np.testing.assert_array_equal(v.carry(rt, scores), np.array(want, np.float32))
        # the document's "<|im_end|>" is text on both sides, the template's a control token
        assert sum(1 for pc, k in zip(pieces, kinds) if pc == b"<|im_end|>" and k == 1) == 2


def test_the_draft_reads_its_own_template_and_protected_tokens_are_the_targets(tiny_path, drafts, cache, capfd):
    with _rt(tiny_path, drafts["template"]) as rt:
        p = build_prompt(rt.target, document_request(DOC, Q, "be brief"))
        v = draft_view(rt, p)
        assert "<start_of_turn>user\n" in v.draft.source.text and "<|im_start|>" not in v.draft.source.text
        assert "<|im_start|>" in v.source.text
        # one draft token scores high inside the document: exactly the target tokens over its text get it
        t_sp, d_sp = _overlaps(v, rt)
        d_at, t_at = (v.draft.source.text.encode().index("東京".encode()), v.source.text.encode().index("東京".encode()))
        i = int(np.flatnonzero((d_sp[:, 0] <= d_at) & (d_sp[:, 1] > d_at))[0])
        lo, hi = d_sp[i] - d_at + t_at  # its text in the target's prompt
        scores = np.zeros(v.draft.n, np.float32)
        scores[i] = 1.0
        hot = np.flatnonzero(v.carry(rt, scores) == 1.0)
        assert hot.tolist() == np.flatnonzero((t_sp[:, 0] < hi) & (t_sp[:, 1] > lo)).tolist() and len(hot)
        # selection keeps every protected target token (template, system prompt, question) and the window
        for name, kw in (("specpc", {}), ("speckv", dict(speckv=SpecKVConfig(lookahead=4)))):
            r = generate(rt, p, make_method(name, budget=Budget(tokens=220), **kw), GenConfig(n_predict=2))
            assert r.method == name and len(r.kept) <= 220
            assert np.all(np.isin(np.flatnonzero(p.protected), r.kept))
        assert np.all(np.isin(np.arange(p.n - 64, p.n), generate(rt, p, make_method(
            "specpc", budget=Budget(tokens=220)), GenConfig(n_predict=1)).kept))
    err = capfd.readouterr().err
    notes = [ln for ln in err.splitlines() if "different tokenizers" in ln]
    assert len(notes) == 1 and "tiny-cross-template.gguf" in notes[0] and "tiny.gguf" in notes[0]


def test_a_draft_without_a_chat_template_reads_the_targets_text(tiny_path, drafts, cache):
    """A base-model draft (Gemma-3-270M ships no template) reads the target's rendered prompt as text."""
    with _rt(tiny_path, drafts["untemplated"]) as rt:
        p = build_prompt(rt.target, document_request(DOC, Q, "be brief"))
        v = draft_view(rt, p)
        assert v.draft.source.text == v.source.text and "<|im_start|>" in v.draft.source.text
        r = generate(rt, p, make_method("specpc", budget=Budget(tokens=220)), GenConfig(n_predict=2))
        assert r.method == "specpc" and np.all(np.isin(np.flatnonzero(p.protected), r.kept))


def test_a_word_the_draft_maps_to_unk_takes_the_unknown_tokens_score(tiny_path, drafts, cache):
    with _rt(tiny_path, drafts["unk"]) as rt:
        p = build_prompt(rt.target, document_request(DOC, Q))
        v = draft_view(rt, p)
        _, kinds = rt.draft.token_pieces(v.tokens)
        unk = np.flatnonzero(kinds == UNKNOWN)
        assert len(unk) == 12  # " of" once per repetition of the document
        scores = np.zeros(v.draft.n, np.float32)
        scores[unk[0]] = 1.0
        hot = np.flatnonzero(v.carry(rt, scores) == 1.0)
        t_pieces, _ = rt.target.token_pieces(p.tokens)
        assert b"".join(t_pieces[j] for j in hot).strip() in (b"of", b"f", b"o")  # the text " of"
        r = generate(rt, p, make_method("specpc", budget=Budget(tokens=200)), GenConfig(n_predict=1))
        assert len(r.kept) == 200


def test_a_draft_that_drops_characters_is_refused_before_it_runs(tiny_path, drafts, cache):
    with _rt(tiny_path, drafts["dropped"]) as rt:
        p = build_prompt(rt.target, document_request(DOC, Q))
        with pytest.raises(ModelError, match="does not spell the prompt text back") as e:
            generate(rt, p, make_method("specpc", budget=Budget(tokens=200)), GenConfig(n_predict=1))
        assert "tiny-cross-dropped.gguf" in str(e.value) and "\n" not in str(e.value)
        assert "draft" not in rt._ctx  # refused before the draft pass: no selection was made


def test_cli_refusal_is_one_line_with_exit_code_2(tiny_path, drafts, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text(DOC)
    env = dict(os.environ, SPECLLAMA_CACHE=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, "-m", "specllama", "run", "-m", tiny_path, "-md", drafts["dropped"],
                        "-f", str(doc), "--budget", "200", "-n", "2", "--quiet"], capture_output=True, env=env,
                       timeout=120)
    err = p.stderr.decode()
    lines = [ln for ln in err.splitlines() if ln.startswith("specllama: error:")]
    assert p.returncode == 2 and p.stdout == b"" and "Traceback" not in err, err
    assert len(lines) == 1 and "does not spell the prompt text back" in lines[0]


def test_speckv_answer_goes_over_as_text_and_speckvpc_reuses_it(tiny_path, tiny_other_vocab_path, cache, monkeypatch):
    with _rt(tiny_path, tiny_other_vocab_path) as rt:
        p = build_prompt(rt.target, document_request(DOC, Q))
        v = draft_view(rt, p)
        ctx, _ = rt.draft_ctx(v.draft.n + 6)
        out = greedy_continuation(ctx, rt.draft, v.tokens, 6)
        answer = rt.draft.detokenize(out)
        m = make_method("speckv", budget=Budget(tokens=150), speckv=SpecKVConfig(lookahead=6))
        job = Job(prompt=p, budget=150, gen=GenConfig(n_predict=8), rt=rt, timings=Timings())
        la = m.kv_stage.lookahead(job)
        assert la.tolist() == rt.target.tokenize(answer, parse_special=False).tolist()[:6] and len(answer)
        assert job.timings.draft_tokens == v.draft.n + max(0, len(out) - 1)
        assert generate(rt, p, m, GenConfig(n_predict=2)).method == "speckv"
        # SpecKV-PC: the SpecPC pass's answer (text, retokenized) serves SpecKV; no second draft run
        import specllama.methods.speckv as speckv_mod

        monkeypatch.setattr(speckv_mod, "greedy_continuation", lambda *a: pytest.fail("draft ran twice"))
        r = generate(rt, p, make_method("speckvpc", budget=Budget(tokens=150), budget_pc=Budget(tokens=300),
                                        speckv=SpecKVConfig(lookahead=6), n_predict=6), GenConfig(n_predict=6))
        assert r.method == "speckvpc" and len(r.kept) == 150
        assert np.all(np.isin(np.flatnonzero(p.protected), r.kept))


def test_prompts_made_from_tokens_are_read_through_their_text(tiny_path, tiny_other_vocab_path, cache):
    with _rt(tiny_path, tiny_other_vocab_path) as rt:
        base = build_prompt(rt.target, document_request(DOC, Q))
        p = Prompt(base.tokens, base.protected)  # as the chat's compression makes them
        v = draft_view(rt, p)
        assert v.source.text == rt.target.detokenize(p.tokens, special=True)
        assert v.carry(rt, np.ones(v.draft.n, np.float32)).shape == (p.n,)
        assert len(to_target(rt, v.tokens[-5:])) > 0


def test_same_tokenizer_takes_the_token_path_without_a_note(tiny_runtime, capfd):
    p = build_prompt(tiny_runtime.target, document_request(DOC, Q))
    assert draft_view(tiny_runtime, p) is None
    assert "different tokenizers" not in capfd.readouterr().err


def _stamped(cache, name: str, src: str) -> str:
    """Install ``src`` in ``cache`` as manifest model ``name`` (a verified stamp, as pull writes)."""
    entry = registry.manifest()[0][name]
    path = cache / "models" / entry.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(open(src, "rb").read())
    st = path.stat()
    path.with_name(path.name + ".verified.json").write_text(
        json.dumps({"sha256": entry.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return str(path)


@pytest.mark.parametrize("name", ["smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"])
def test_cross_family_drafts_resolve_by_manifest_name(name, tiny_path, tiny_other_vocab_path, cache, tmp_path):
    models, _ = registry.manifest()
    assert models[name].role == "draft" and models[name].parts
    with pytest.raises(ModelError, match=f"run `specllama models pull {name}`"):
        registry.resolve(name, "draft")
    path = _stamped(cache, name, tiny_other_vocab_path)
    assert registry.resolve(name, "draft") == path
    doc = tmp_path / "doc.txt"
    doc.write_text(DOC)
    p = subprocess.run([sys.executable, "-m", "specllama", "run", "-m", tiny_path, "-md", name, "-f", str(doc),
                        "--budget", "200", "-n", "2"], capture_output=True, env=dict(os.environ), timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"different tokenizers" in p.stderr and models[name].file.encode() in p.stderr
