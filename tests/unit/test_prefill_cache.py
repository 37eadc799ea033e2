"""The target-prefill memo of KV methods (``Runtime.prefill_cache``): a hit runs exactly as a fresh
run, the key keeps apart what must be kept apart, its cost is counted as if it ran, and it is off
unless asked for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from default_methods import DEFAULT_METHODS
from specllama import pipeline
from specllama.engine.context import Context
from specllama.engine.sampling import SamplingConfig
from specllama.methods import Budget, GenConfig, make_method
from specllama.methods.speckv import SpecKVConfig
from specllama.pipeline import generate, prefill_key
from specllama.prompt import build_prompt, document_request
from specllama.runtime import Runtime, RuntimeConfig
from specllama.scoring import PrefillCache

DOC = "the green sky and the blue grass. " * 60
OTHER = "a red moon over the grey sea. " * 50
Q = "what is the secret code?"
BUDGETS = (200, 300)
GREEDY = GenConfig(n_predict=6, sampling=SamplingConfig(temp=0.0, seed=0))
KV_METHODS = [m for m in DEFAULT_METHODS if make_method(m["name"]).kv_stage is not None]


def _prompt(rt, doc=DOC):
    return build_prompt(rt.target, document_request(doc, Q, "be brief"))


def _method(entry: dict, tokens: int):
    """``entry``'s first case at ``tokens`` (a two-stage method keeps its own ``--budget-pc``, so
    both budgets prefill the same tokens)."""
    return make_method(entry["name"], **{**entry["cases"][0], "budget": Budget(tokens=tokens)})


def _same(a, b) -> None:
    assert a.kept.tolist() == b.kept.tolist()
    assert a.tokens.tolist() == b.tokens.tolist() and a.text == b.text
    assert a.method == b.method and a.stop == b.stop


@pytest.fixture()
def prefills(monkeypatch):
    """Counts the target's multi-token decodes (prefills; decode steps feed one token), and among
    them the ones that read attention."""
    seen = {"target": 0, "attention": 0}
    real_decode, real_score = Context.decode, pipeline.score_with_attention

    def decode(self, tokens, *a, **kw):
        if self.model.role == "target" and len(tokens) > 1:
            seen["target"] += 1
        return real_decode(self, tokens, *a, **kw)

    def score(ctx, *a, **kw):
        seen["attention"] += 1
        return real_score(ctx, *a, **kw)

    monkeypatch.setattr(Context, "decode", decode)
    monkeypatch.setattr(pipeline, "score_with_attention", score)
    return seen


@pytest.mark.parametrize("entry", KV_METHODS, ids=[m["name"] for m in KV_METHODS])
def test_a_hit_runs_exactly_as_a_fresh_run_at_every_budget(tiny_runtime, entry, prefills):
    rt = tiny_runtime
    p = _prompt(rt)
    fresh = {b: generate(rt, p, _method(entry, b), GREEDY) for b in BUDGETS}
    assert len(fresh[BUDGETS[0]].kept) < len(fresh[BUDGETS[1]].kept)
    assert prefills["target"] == 2
    rt.prefill_cache = PrefillCache()
    first = generate(rt, p, _method(entry, BUDGETS[0]), GREEDY)
    # another prompt through the same contexts: the hit cannot lean on what they still hold
    generate(rt, _prompt(rt, OTHER), _method(entry, BUDGETS[0]), GREEDY)
    assert len(rt.prefill_cache) == 2 and prefills["target"] == 4
    hit = generate(rt, p, _method(entry, BUDGETS[1]), GREEDY)
    assert prefills["target"] == 4, "the second budget prefilled the target again"
    _same(first, fresh[BUDGETS[0]])
    _same(hit, fresh[BUDGETS[1]])
    a, h = first.timings, hit.timings
    assert h.prefill_ms == pytest.approx(a.prefill_ms) and h.prefill_tokens == a.prefill_tokens
    assert h.reused_ms >= h.prefill_ms > 0  # reported, and counted into TTFT, as if it ran
    assert h.ttft_ms - h.ttft_wall_ms == pytest.approx(h.reused_ms)
    assert h.ttft_ms >= h.prefill_ms + h.select_ms
    assert h.kv_bytes == fresh[BUDGETS[1]].timings.kv_bytes  # a decode context of its own budget
    assert h.n_kept == len(hit.kept)


def test_stored_scores_cannot_be_changed_by_a_stage():
    from specllama.scoring import Prefill

    memo = PrefillCache()
    scores = np.arange(4, dtype=np.float32)
    memo.put(("k",), Prefill(scores, b"", 1, 2.0))
    scores[0] = 9  # the caller's array is not the stored one
    held = memo.get(("k",)).scores
    assert held.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        held[1] = 5


def test_the_lookahead_is_in_the_key(tiny_runtime):
    """SnapKV and SpecKV prefill the same prompt with the same attention settings; only SpecKV
    reads the draft's answer after it. A key without the lookahead would hand SpecKV SnapKV's
    scores."""
    rt = tiny_runtime
    p = _prompt(rt)
    snap, spec = make_method("snapkv", budget=Budget(tokens=200)), make_method("speckv", budget=Budget(tokens=200))
    fresh_snap, fresh_spec = generate(rt, p, snap, GREEDY), generate(rt, p, spec, GREEDY)
    assert fresh_snap.kept.tolist() != fresh_spec.kept.tolist()  # the test can tell them apart
    rt.prefill_cache = PrefillCache()
    _same(generate(rt, p, snap, GREEDY), fresh_snap)
    _same(generate(rt, p, spec, GREEDY), fresh_spec)
    assert len(rt.prefill_cache) == 2


def test_the_key_separates_every_setting_that_decides_the_prefill(tiny_runtime, tiny_path):
    rt = tiny_runtime
    kv = make_method("snapkv", budget=Budget(tokens=200)).kv_stage
    tokens = np.arange(300, dtype=np.int32) % 50
    positions = np.arange(300, dtype=np.int32)
    la = np.array([5, 6, 7], dtype=np.int32)
    s = SamplingConfig(temp=0.0, seed=0)
    base = prefill_key(rt, kv, tokens, positions, la, s)
    assert prefill_key(rt, kv, tokens.copy(), positions.copy(), la.copy(), s) == base
    other_kv = make_method("snapkv", budget=Budget(tokens=200), speckv=SpecKVConfig(
        attention=replace(kv.attention, window=16))).kv_stage
    plain = make_method("streaming", budget=Budget(tokens=200)).kv_stage
    variants = {
        "lookahead": prefill_key(rt, kv, tokens, positions, la[:2], s),
        "no lookahead": prefill_key(rt, kv, tokens, positions, la[:0], s),
        "tokens": prefill_key(rt, kv, np.roll(tokens, 1), positions, la, s),
        "positions": prefill_key(rt, kv, tokens, positions + 1, la, s),
        # tokens and lookahead hashed apart: moving a token across the boundary changes the key
        "boundary": prefill_key(rt, kv, tokens[:-1], positions[:-1], np.r_[tokens[-1:], la], s),
        "seed": prefill_key(rt, kv, tokens, positions, la, replace(s, seed=1)),
        "temp": prefill_key(rt, kv, tokens, positions, la, replace(s, temp=0.7)),
        "attention": prefill_key(rt, other_kv, tokens, positions, la, s),
        "no attention": prefill_key(rt, plain, tokens, positions, la, s),
    }
    rt.attn_route = "kq"
    variants["route"] = prefill_key(rt, kv, tokens, positions, la, s)
    rt.attn_route = "qk"
    with Runtime(RuntimeConfig(target=tiny_path, n_threads=2, n_batch=64, n_ubatch=64, flash_attn=False)) as no_fa:
        variants["-fa"] = prefill_key(no_fa, plain, tokens, positions, la, s)
    with Runtime(replace(rt.cfg, n_ubatch=32)) as ub:
        variants["-ub"] = prefill_key(ub, kv, tokens, positions, la, s)
    for what, key in variants.items():
        assert key != base, f"{what} left out of the key"
    assert variants["-fa"] != prefill_key(rt, plain, tokens, positions, la, s)
    # the draft decides nothing here: a runtime with another draft shares the key
    with Runtime(replace(rt.cfg, draft=None)) as no_draft:
        assert prefill_key(no_draft, kv, tokens, positions, la, s) == base


def test_routes_and_stochastic_sampling_never_share(tiny_runtime):
    rt = tiny_runtime
    p = _prompt(rt)
    snap = make_method("snapkv", budget=Budget(tokens=200))
    rt.prefill_cache = PrefillCache()
    generate(rt, p, snap, GREEDY)
    rt.attn_route = "kq"
    generate(rt, p, snap, GREEDY)
    assert len(rt.prefill_cache) == 2
    rt.attn_route = "qk"
    # a random sampler is not memoised: its first draw decides the rest of the answer
    hot = GenConfig(n_predict=6, sampling=SamplingConfig(temp=0.9, seed=3))
    rt.prefill_cache.clear()
    a = generate(rt, p, snap, hot)
    b = generate(rt, p, snap, hot)
    assert len(rt.prefill_cache) == 0 and a.timings.reused_ms == b.timings.reused_ms == 0
    rt.prefill_cache = None
    _same(generate(rt, p, snap, hot), b)


def test_kv_stages_that_prefill_alike_share_one_prefill(tiny_runtime, prefills):
    """StreamingLLM and the random baseline both prefill plainly: one prefill serves both, and the
    random baseline's result is the one it gets alone."""
    rt = tiny_runtime
    p = _prompt(rt)
    rand = make_method("random", budget=Budget(tokens=200))
    alone = generate(rt, p, rand, GREEDY)
    rt.prefill_cache = PrefillCache()
    generate(rt, p, make_method("streaming", budget=Budget(tokens=300)), GREEDY)
    shared = generate(rt, p, rand, GREEDY)
    assert len(rt.prefill_cache) == 1 and prefills["target"] == 2
    _same(shared, alone)
    assert shared.timings.reused_ms > 0


def test_off_by_default_outside_eval(tiny_runtime, prefills):
    rt = tiny_runtime
    assert rt.prefill_cache is None
    p = _prompt(rt)
    for name in ("snapkv", "streaming"):
        for b in BUDGETS:
            r = generate(rt, p, make_method(name, budget=Budget(tokens=b)), GREEDY)
            assert r.timings.reused_ms == 0
    assert prefills == {"target": 4, "attention": 2}
    with pytest.raises(TypeError, match="PrefillCache"):
        rt.prefill_cache = {}
