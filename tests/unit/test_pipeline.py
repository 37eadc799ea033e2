"""One request end to end on tiny models: dense, SpecPC, fallbacks and budget errors."""

import numpy as np
import pytest

from specllama.errors import ConfigError, PromptError
from specllama.methods import Budget, GenConfig, make_method
from specllama.pipeline import generate, select_prompt
from specllama.prompt import build_prompt, document_request
from specllama.runtime import Runtime, RuntimeConfig
from specllama.scoring import ScoreCache

DOC = "the green sky and the blue grass. " * 60
Q = "what is the secret code?"


def _prompt(rt):
    return build_prompt(rt.target, document_request(DOC, Q, "be brief"))


def test_dense_generates_and_reports_timings(tiny_runtime):
    p = _prompt(tiny_runtime)
    streamed = []
    r = generate(tiny_runtime, p, make_method("dense"), GenConfig(n_predict=6), on_text=streamed.append)
    assert r.method == "dense" and len(r.tokens) == 6 and r.stop == "length"
    assert "".join(streamed) == r.text
    t = r.timings
    assert t.n_prompt == t.n_kept == t.prefill_tokens == p.n
    assert t.decode_tokens == 5 and t.ttft_ms >= t.prefill_ms > 0
    assert t.kv_bytes == t.kv_bytes_dense > 0
    s = t.server_timings()
    assert s["prompt_n"] == p.n and s["predicted_n"] == 5 and s["prompt_kept_n"] == p.n


def test_specpc_keeps_protected_tokens_and_the_budget(tiny_runtime):
    p = _prompt(tiny_runtime)
    r = generate(tiny_runtime, p, make_method("specpc", budget=Budget(tokens=200)), GenConfig(n_predict=4))
    assert r.method == "specpc" and len(r.kept) == 200 == r.timings.n_kept
    assert np.all(np.isin(np.flatnonzero(p.protected), r.kept))
    assert np.all(np.isin(np.arange(p.n - 64, p.n), r.kept))  # the window
    assert r.timings.draft_ms > 0 and r.timings.prefill_tokens == 200
    assert r.timings.kv_bytes < r.timings.kv_bytes_dense


def test_keep_fraction_and_greedy_determinism(tiny_runtime):
    p = _prompt(tiny_runtime)
    m = make_method("specpc", budget=Budget(keep=0.5))
    a = generate(tiny_runtime, p, m, GenConfig(n_predict=5))
    b = generate(tiny_runtime, p, m, GenConfig(n_predict=5))
    assert len(a.kept) == -(-p.n // 2)
    assert a.tokens.tolist() == b.tokens.tolist() and a.kept.tolist() == b.kept.tolist()


def test_budget_at_least_the_prompt_falls_back_to_dense_and_says_so(tiny_runtime):
    p = _prompt(tiny_runtime)
    r = generate(tiny_runtime, p, make_method("specpc", budget=Budget(tokens=p.n + 10)), GenConfig(n_predict=2))
    assert r.method == "dense" and len(r.kept) == p.n
    assert any("running dense" in n for n in r.notes)


@pytest.mark.parametrize("budget,match", [(10, "protected window of 64"), (70, "never dropped")])
def test_budgets_below_what_is_protected_are_refused(tiny_runtime, budget, match):
    with pytest.raises(ConfigError, match=match):
        generate(tiny_runtime, _prompt(tiny_runtime), make_method("specpc", budget=Budget(tokens=budget)))


def test_bad_budget_values():
    with pytest.raises(ConfigError):
        Budget(tokens=0)
    with pytest.raises(ConfigError):
        Budget(keep=1.5)
    with pytest.raises(ConfigError):
        Budget(tokens=5, keep=0.5)
    with pytest.raises(ConfigError):
        make_method("nope")
    with pytest.raises(ConfigError):
        GenConfig(n_predict=0)


def test_draft_with_another_tokenizer_is_aligned(tiny_path, tiny_other_vocab_path):
    with Runtime(RuntimeConfig(target=tiny_path, draft=tiny_other_vocab_path, n_threads=2)) as rt:
        p = _prompt(rt)
        r = generate(rt, p, make_method("specpc", budget=Budget(tokens=200)), GenConfig(n_predict=1))
        assert r.method == "specpc" and len(r.kept) == 200 and np.all(np.isin(np.flatnonzero(p.protected), r.kept))
        # dense does not need the draft at all
        assert generate(rt, _prompt(rt), make_method("dense"), GenConfig(n_predict=1)).method == "dense"


def test_prompt_longer_than_the_context_is_refused(tiny_path):
    with Runtime(RuntimeConfig(target=tiny_path, n_threads=2, n_ctx=256)) as rt:
        with pytest.raises(PromptError, match="reads at most 256"):
            generate(rt, _prompt(rt), make_method("dense"))


def test_specpc_needs_a_draft(tiny_path):
    with Runtime(RuntimeConfig(target=tiny_path, n_threads=2)) as rt:
        with pytest.raises(ConfigError, match="draft"):
            generate(rt, _prompt(rt), make_method("specpc", budget=Budget(tokens=200)))


def test_original_positions_feed_gaps_with_the_patch(tiny_runtime):
    from specllama.engine import lib
    from specllama.methods.specpc import SpecPCConfig

    p = _prompt(tiny_runtime)
    m = make_method("specpc", budget=Budget(tokens=200), cfg=SpecPCConfig(positions="original"))
    if not lib.has_patch("0001"):
        with pytest.raises(ConfigError, match="patches/0001"):
            generate(tiny_runtime, p, m)
        pytest.skip("llama-cpp-python was not built by scripts/install.py (no patches)")
    r = generate(tiny_runtime, p, m, GenConfig(n_predict=3))
    assert len(r.kept) == 200 and len(r.tokens) == 3


def test_select_prompt_runs_only_the_prompt_stage(tiny_runtime):
    p = _prompt(tiny_runtime)
    kept, job = select_prompt(tiny_runtime, p, make_method("specpc", budget=Budget(tokens=150)))
    assert len(kept) == 150 and job.timings.prefill_ms == 0 and job.timings.draft_ms > 0


def test_attention_route_switch_gets_a_context_with_the_right_flash_setting(tiny_runtime):
    rt = tiny_runtime
    rt.attn_route = "qk"
    ctx_qk, _ = rt.draft_ctx(300)
    assert ctx_qk.cfg.flash_attn is True  # llama without sliding window: Q·K route
    rt.attn_route = "kq"
    ctx_kq, _ = rt.draft_ctx(300)
    assert ctx_kq.cfg.flash_attn is False  # same size, but not reused: kq_soft_max needs FA off
    again, _ = rt.draft_ctx(300)
    assert again is ctx_kq  # same size and setting: reused


def test_score_cache_serves_budgets_with_one_draft_pass_and_counts_its_cost(tiny_runtime):
    rt = tiny_runtime
    rt.score_cache = ScoreCache()
    p = _prompt(rt)
    a = generate(rt, p, make_method("specpc", budget=Budget(tokens=150)), GenConfig(n_predict=2))
    b = generate(rt, p, make_method("specpc", budget=Budget(tokens=200)), GenConfig(n_predict=2))
    assert len(rt.score_cache) == 1
    assert a.timings.reused_ms == 0 and b.timings.reused_ms == pytest.approx(a.timings.draft_ms)
    assert b.timings.draft_ms == pytest.approx(a.timings.draft_ms)  # reported as if it ran again
    assert b.timings.ttft_ms >= b.timings.reused_ms + b.timings.prefill_ms


def test_a_score_cache_hit_reports_wall_and_accounted_ttft_apart(tiny_runtime):
    """On a cache hit TTFT counts the cached draft pass as if it ran (accounted), and the wall time
    to the first token is reported beside it under its own name, in --json and on stderr."""
    rt = tiny_runtime
    rt.score_cache = ScoreCache()
    p = _prompt(rt)
    a = generate(rt, p, make_method("specpc", budget=Budget(tokens=150)), GenConfig(n_predict=2))
    b = generate(rt, p, make_method("specpc", budget=Budget(tokens=200)), GenConfig(n_predict=2))
    assert a.timings.ttft_wall_ms == pytest.approx(a.timings.ttft_ms)  # a miss: the same
    t = b.timings
    assert 0 < t.ttft_wall_ms < t.ttft_ms
    assert t.ttft_ms - t.ttft_wall_ms == pytest.approx(t.reused_ms)
    s = t.server_timings()
    assert s["ttft_wall_ms"] < s["ttft_ms"] and s["reused_ms"] == pytest.approx(t.reused_ms, abs=1e-3)
    line = t.summary()
    assert "accounted" in line and "wall" in line and "score cache" in line
    assert "wall" not in a.timings.summary()  # no cache hit: the line is as before


def test_score_cache_is_typed(tiny_runtime):
    with pytest.raises(TypeError, match="ScoreCache"):
        tiny_runtime.score_cache = {}
