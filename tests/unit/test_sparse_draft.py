"""The cheap draft of SpecPC: local attention (patches/0002) and layer prefixes, on tiny models.

* a query before ``pos_full`` gives exactly zero attention to every key that is neither a sink nor
  within its local window, and a query at or after ``pos_full`` still sees every key;
* the flash-attention kernel (which skips fully masked tiles, and converts the tiles it computes with
  the vectorised fp16 routine: patches/0003) agrees with the plain one;
* positions are unchanged, and switching it off restores exact attention bit for bit;
* a layer prefix is a loadable model whose layers compute what the full model's first layers do;
* every new flag refuses bad values with one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from models.synth import TinySpec, write_tiny
from specllama.engine import Context, ContextConfig, Model, lib
from specllama.engine.capture import TensorTap
from specllama.engine.kvstate import read_keys
from specllama.engine.prefix import layer_prefix
from specllama.errors import ConfigError
from specllama.methods.base import GenConfig, Job
from specllama.methods.draft import AttentionConfig
from specllama.scoring import ScoreCache, score_with_attention
from specllama.methods.draftpass import DraftPass
from specllama.methods.specpc import SpecPCConfig, SpecPCStage
from specllama.prompt import Prompt
from specllama.runtime import Runtime, RuntimeConfig
from specllama.timings import Timings

# an unpatched build skips here, except under SPECLLAMA_REQUIRE_MODELS=1 (make test, CI), where
# test_patches.py fails on it
pytestmark = pytest.mark.skipif(lib.llama_set_local_attn is None and os.environ.get("SPECLLAMA_REQUIRE_MODELS") != "1",
                                reason="llama.cpp built without patches/0002 (run `make install`)")

N_SINK, N_WINDOW = 3, 16


@pytest.fixture(scope="module")
def wide_path(tmp_path_factory):
    """A 3-layer tiny model with a long context (attention over a few hundred tokens)."""
    return write_tiny(tmp_path_factory.mktemp("sparse") / "wide.gguf", TinySpec(seed=3, n_layer=3))


def _tokens(model: Model, n: int) -> np.ndarray:
    toks = model.tokenize("the quick brown fox jumps over the lazy dog and the green sky. " * 200)
    assert len(toks) >= n
    return toks[:n]


def _probs_by_row(path: str, n: int, pos_full: int, n_ubatch: int = 64) -> tuple[dict, np.ndarray]:
    """kq_soft_max of layer 1 for every query row, with local attention before ``pos_full``."""
    rows: dict[int, np.ndarray] = {}
    state = {"i0": 0}
    with Model(path) as m:
        def sink(_b, layer, block):
            if layer == 1:
                for r in range(block.shape[1]):
                    rows[state["i0"] + r] = block[:, r, :].copy()

        tap = TensorTap({"kq_soft_max"}, {1}, sink)
        cfg = ContextConfig(n_ctx=512, n_batch=n_ubatch, n_ubatch=n_ubatch, n_threads=2, flash_attn=False)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = _tokens(m, n)
            ctx.set_local_attn(N_SINK, N_WINDOW, pos_full)

            def before(i0, _i1):
                state["i0"] = i0
                tap.arm()

            ctx.decode(toks, before_chunk=before)
            tap.check()
            k_pos, _ = read_keys(ctx.state_get(), m.info.n_head_kv)
    return rows, k_pos


def test_queries_before_pos_full_see_only_sinks_and_window(wide_path):
    n, pos_full = 200, 150
    rows, k_pos = _probs_by_row(wide_path, n, pos_full)
    assert np.array_equal(k_pos, np.arange(n))  # positions unchanged
    for p in (20, 64, 100, 149):
        probs = rows[p][:, :n]  # [n_head, n_kv]
        allowed = (np.arange(n) < N_SINK) | ((p - np.arange(n) < N_WINDOW) & (np.arange(n) <= p))
        assert np.all(probs[:, ~allowed] == 0.0), p  # exactly zero, not merely small
        assert np.all(probs[:, allowed] > 0.0), p
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    for p in (150, 199):  # the scoring rows attend to every key up to themselves
        probs = rows[p][:, :n]
        assert np.all(probs[:, : p + 1] > 0.0), p
        assert np.all(probs[:, p + 1:] == 0.0), p


def _last_logits(path: str, n: int, flash: bool, local: tuple[int, int, int] | None,
                 reset: bool = False) -> np.ndarray:
    with Model(path) as m:
        cfg = ContextConfig(n_ctx=1024, n_batch=256, n_ubatch=256, n_threads=2, flash_attn=flash)
        with Context(m, cfg) as ctx:
            if local is not None:
                ctx.set_local_attn(*local)
            if reset:
                ctx.set_local_attn(0, 0, 0)
            ctx.decode(_tokens(m, n))
            return ctx.logits().copy()


def test_flash_attention_kernel_skips_masked_tiles_correctly(wide_path):
    # 768 tokens in ubatches of 256 rows: many 64x64 tiles are fully masked, so the tiled CPU
    # flash-attention kernel takes its skip path; it must agree with the plain kernel
    local = (N_SINK, 64, 700)
    fa = _last_logits(wide_path, 768, True, local)
    ref = _last_logits(wide_path, 768, False, local)
    np.testing.assert_allclose(fa, ref, rtol=2e-2, atol=2e-2)
    full = _last_logits(wide_path, 768, False, None)
    assert not np.allclose(ref, full, rtol=1e-3, atol=1e-3)  # the mask changed the computation


@pytest.mark.parametrize("n", [768, 700])
def test_flash_attention_kernel_agrees_with_the_plain_one_on_causal_tiles(wide_path, n):
    # patches/0003 converts the mask and K of every tile it computes with the vectorised fp16 routine
    # (diagonal tiles are partly masked; 700 leaves a partial last ubatch): same answer as plain attention
    fa = _last_logits(wide_path, n, True, None)
    ref = _last_logits(wide_path, n, False, None)
    np.testing.assert_allclose(fa, ref, rtol=2e-2, atol=2e-2)


def test_switching_it_off_restores_exact_attention(wide_path):
    exact = _last_logits(wide_path, 300, True, None)
    again = _last_logits(wide_path, 300, True, (N_SINK, 8, 250), reset=True)
    assert np.array_equal(exact, again)
    # a window covering the whole prompt changes nothing either
    wide = _last_logits(wide_path, 300, True, (0, 4096, 299))
    np.testing.assert_array_equal(exact, wide)


@pytest.mark.parametrize("flash", [False, True])
def test_scoring_rows_still_score_every_key(wide_path, flash):
    with Model(wide_path) as m:
        tap = TensorTap({"kq_soft_max"}, None, lambda *a: None)
        cfg = ContextConfig(n_ctx=512, n_batch=64, n_ubatch=64, n_threads=2, flash_attn=flash)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = _tokens(m, 300)
            att = score_with_attention(ctx, tap, m, toks, AttentionConfig(window=16, start_layer=0), len(toks),
                                       1, Timings(), local=(N_SINK, N_WINDOW))
    assert att.scores.shape == (300,)
    assert np.all(att.scores > 0.0)  # far keys included: the window's queries see all of them


def test_layer_prefix_is_the_first_layers_of_the_model(tiny_dir, tmp_path):
    src = write_tiny(tiny_dir / "four-layers.gguf", TinySpec(seed=5, n_layer=4))
    dst = layer_prefix(src, 2, tmp_path)
    assert layer_prefix(src, 2, tmp_path) == dst  # cached, not rewritten
    got = {}
    for path in (src, str(dst)):
        with Model(path) as m:
            if path != src:
                assert m.info.n_layer == 2
            seen = []
            tap = TensorTap({"kq_soft_max"}, {0, 1}, lambda _b, layer, x: seen.append((layer, x.copy())))
            cfg = ContextConfig(n_ctx=256, n_batch=64, n_ubatch=64, n_threads=2, flash_attn=False)
            with Context(m, cfg, cb_eval=tap.callback) as ctx:
                tap.arm()
                ctx.decode(m.tokenize("the green sky and the blue grass. " * 4))
                tap.check()
            got[path] = seen
    for (la, a), (lb, b) in zip(got[src], got[str(dst)]):
        assert la == lb
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="--draft-layers"):
        layer_prefix(src, 5, tmp_path)


def _stage_keep(rt: Runtime, dp: DraftPass, toks: np.ndarray, budget: int) -> np.ndarray:
    prompt = Prompt(toks, np.zeros(len(toks), bool))
    job = Job(prompt=prompt, budget=budget, gen=GenConfig(), rt=rt, timings=Timings())
    return SpecPCStage(SpecPCConfig(attention=AttentionConfig(window=16), kernel=5, draft=dp)).select(job, budget)


def test_specpc_draft_pass_variants(tiny_path, wide_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path))
    with Runtime(RuntimeConfig(target=tiny_path, draft=wide_path, n_threads=2, n_batch=64, n_ubatch=64)) as rt:
        toks = _tokens(rt.draft, 300)
        exact = _stage_keep(rt, DraftPass(attn="full", layer_share=1.0), toks, 90)
        # a local window as long as the prompt is the exact draft
        assert np.array_equal(_stage_keep(rt, DraftPass(local_window=4096, layer_share=1.0), toks, 90), exact)
        sparse = _stage_keep(rt, DraftPass(local_window=16, sinks=2), toks, 90)
        assert len(sparse) == len(exact) and np.all(np.diff(sparse) > 0)
        two = _stage_keep(rt, DraftPass(attn="full", layers=2), toks, 90)
        # the default share: ceil(2/3 * 3) = 2 layers, the same prefix
        assert np.array_equal(_stage_keep(rt, DraftPass(attn="full"), toks, 90), two)
        assert len(two) == len(exact)
        assert (tmp_path / "derived" / "wide.first2.gguf").exists()
        with pytest.raises(ConfigError, match="--draft-layers 4: the draft has 3 layers"):
            _stage_keep(rt, DraftPass(layers=4), toks, 90)
        with pytest.raises(ConfigError, match="leaves no layer to score"):
            _stage_keep(rt, DraftPass(layers=1), toks, 90)  # start layer 3 // 3 = 1


def test_draft_pass_validation():
    for kw, flag in ((dict(local_window=0), "--draft-window"), (dict(local_window=1 << 21), "--draft-window"),
                     (dict(sinks=-1), "--draft-sinks"), (dict(layers=0), "--draft-layers"),
                     (dict(attn="dense"), "--draft-attn")):
        with pytest.raises(ConfigError, match=flag):
            DraftPass(**kw)
    with pytest.raises(ConfigError, match="--draft-layers"):
        SpecPCConfig(lookahead=4, draft=DraftPass(layers=2))


def _sl(*args, cache):
    env = dict(os.environ, SPECLLAMA_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "specllama", *args], capture_output=True, env=env, timeout=120)


@pytest.mark.parametrize("flags,needle", [
    (["--draft-window", "0"], "--draft-window"),
    (["--draft-window", "-5"], "--draft-window"),
    (["--draft-window", str(1 << 30)], "--draft-window"),
    (["--draft-sinks", "-1"], "--draft-sinks"),
    (["--draft-layers", "-2"], "--draft-layers"),
    (["--draft-layers", "99"], "--draft-layers 99: the draft has 3 layers"),
    (["--draft-attn", "dense"], "--draft-attn"),
    (["--method", "speckvpc", "--draft-layers", "2"], "applies to --method specpc only"),
])
def test_cli_refuses_bad_draft_flags(tiny_path, tiny_draft_path, tmp_path, flags, needle):
    doc = "the green sky and the blue grass. " * 40
    proc = _sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-p", doc, "--budget", "80", "-n", "2",
               *flags, cache=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: "), err
    assert needle in err and "Traceback" not in err


def test_cli_runs_sparse_and_layer_prefix_draft(tiny_path, tiny_draft_path, tmp_path):
    doc = "the green sky and the blue grass. " * 40
    proc = _sl("run", "-m", tiny_path, "-md", tiny_draft_path, "-p", doc, "--budget", "80", "-n", "2",
               "--draft-window", "16", "--draft-layers", "2", "--json", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["timings"]["n_kept"] <= 80 if "n_kept" in out["timings"] else True


def test_eval_exact_draft_columns_are_their_own_jobs(tmp_path, tiny_path, tiny_draft_path, monkeypatch):
    pytest.importorskip("long_context_eval")
    from specllama.eval import runner
    from specllama.eval.runner import Column, EvalConfig, record_key

    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))
    cfg = EvalConfig(tasks=("niah_single_2",), length=1024, methods=("specpc",), budgets=(384,), limit=1,
                     out=str(tmp_path / "run"), exact_draft=True)
    assert [c.label for c in cfg.columns] == ["dense", "specpc@384", "specpc~exact@384"]
    # the sparse and the exact draft never stand in for each other in predictions.jsonl
    keys = {record_key("s", c, "t", "d") for c in cfg.columns}
    assert len(keys) == 3
    assert record_key("s", Column("specpc", 384, exact=True), "t", "d")[-1] == "exact draft"
    with Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=1, n_batch=256,
                               n_ubatch=256)) as rt:
        rt.score_cache = ScoreCache()
        res = runner.run(cfg, rt, log=lambda s: None)
    assert res.ran == 3
    recs = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["label"] for r in recs) == ["dense", "specpc@384", "specpc~exact@384"]


def test_bench_measures_the_exact_draft_beside_the_default(tiny_path, tiny_draft_path, tmp_path):
    env = dict(os.environ, SPECLLAMA_CACHE=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "specllama", "bench", "-m", tiny_path, "-md", tiny_draft_path,
                           "--lengths", "900,1400", "--probe-lengths", "1400", "--methods", "specpc",
                           "--exact-draft", "--draft-window", "128", "--draft-layers", "2", "-t", "2", "-r", "1",
                           "-n", "2", "--idle-wait", "0", "--idle-sample", "0.05", "--max-busy", "1",
                           "--keep", "0.4", "--in-process", "--json"], capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    d = json.loads(proc.stdout)
    labels = {c["label"] for c in d["cells"]}
    assert labels == {"dense", "specpc keep 0.4 (draft sparse 64+128, 2 layers)", "specpc keep 0.4 (exact draft)"}
    assert [p["length"] for p in d["probes"]] == [1400]
    assert d["probes"][0]["plain_pass"] == "draft sparse 64+128, 2 layers"
    bounds = {b["method"]: b for b in d["bounds"]}
    assert set(bounds) == set(labels) - {"dense"}
    cheap = bounds["specpc keep 0.4 (draft sparse 64+128, 2 layers)"]
    assert cheap["draft_plain_variant"] == "plain_pass"
    assert all(c["draft_share_of_dense_prefill"] > 0 for c in d["cells"] if c["needs_draft"])


def test_score_cache_keeps_routes_and_draft_passes_apart(tiny_path, wide_path, tmp_path, monkeypatch):
    """One draft pass per prompt serves several budgets, but never across attention routes or
    draft passes (their scores differ)."""
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path))
    with Runtime(RuntimeConfig(target=tiny_path, draft=wide_path, n_threads=2, n_batch=64, n_ubatch=64)) as rt:
        rt.score_cache = ScoreCache()
        toks = _tokens(rt.draft, 300)
        _stage_keep(rt, DraftPass(attn="full", layer_share=1.0), toks, 90)
        _stage_keep(rt, DraftPass(attn="full", layer_share=1.0), toks, 120)  # same pass: reused
        assert len(rt.score_cache) == 1
        rt.attn_route = "kq"
        _stage_keep(rt, DraftPass(attn="full", layer_share=1.0), toks, 90)
        assert len(rt.score_cache) == 2
        _stage_keep(rt, DraftPass(local_window=16), toks, 90)
        assert len(rt.score_cache) == 3
