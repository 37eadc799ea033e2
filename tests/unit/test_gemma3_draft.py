"""Gemma 3 as a draft: its sliding-window layers on the kq route and under the sparse draft.

Gemma 3 runs 5 of every 6 layers with a sliding window (``gemma3.attention.sliding_window``;
layer ``i`` is global when ``i % 6 == 5``). Its attention is read from llama.cpp's
``kq_soft_max`` (flash attention off), with full-size caches for the local layers so their cells
keep mapping to positions. The sparse draft's local mask (``patches/0002``) is applied on top of
the model's own window mask, so with ``--draft-window`` at least the model's window the local
layers compute exactly what they compute without it, and only the global layers read sparsely.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from models.synth import TinySpec, write_tiny
from specllama.engine import Context, ContextConfig, Model, lib
from specllama.engine.capture import TensorTap
from specllama.methods import Budget, GenConfig, SpecPCConfig
from specllama.methods.base import Job
from specllama.methods.draft import AttentionConfig
from specllama.scoring import score_with_attention
from specllama.methods.draftpass import DraftPass
from specllama.methods.specpc import SpecPCStage
from specllama.prompt import Prompt, build_prompt, document_request
from specllama.runtime import Runtime, RuntimeConfig
from specllama.timings import Timings

pytestmark = pytest.mark.skipif(lib.llama_set_local_attn is None and os.environ.get("SPECLLAMA_REQUIRE_MODELS") != "1",
                                reason="llama.cpp built without patches/0002 (run `make install`)")

SWA = 16
TEXT = "the quick brown fox jumps over the lazy dog and the green sky. " * 30


@pytest.fixture(scope="module")
def gemma(tiny_dir):
    """5 layers (all local) and 7 layers (layer 5 global), both with a 16-token window; the
    7-layer one has another vocabulary than the tiny target."""
    return {n: write_tiny(tiny_dir / f"tiny-gemma3-{n}l.gguf",
                          TinySpec(arch="gemma3", n_layer=n, sliding_window=SWA, seed=4, vocab_variant=int(n > 5)))
            for n in (5, 7)}


def _scores(path: str, local):
    with Model(path) as m:
        assert m.info.n_swa == SWA
        tap = TensorTap({"kq_soft_max"}, None, lambda *a: None)
        cfg = ContextConfig(n_ctx=1024, n_batch=64, n_ubatch=64, n_threads=2, flash_attn=False)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = m.tokenize(TEXT, add_special=True)[:300]
            job = Job(Prompt(toks, np.zeros(len(toks), bool)), 0, GenConfig(), None, Timings())
            att = score_with_attention(ctx, tap, m, toks, AttentionConfig(window=8, start_layer=0), len(toks), 1,
                                       job.timings, local=local)
            assert (att.blocks, att.skipped) == (m.info.n_layer, 0)  # every layer, local ones included, scores
            return att.scores


def test_local_layers_are_exact_under_the_sparse_draft_and_global_ones_sparse(gemma):
    exact = _scores(gemma[5], None)
    # every layer is local: a sparse window as wide as the model's changes nothing, bit for bit
    np.testing.assert_array_equal(_scores(gemma[5], (2, SWA)), exact)
    np.testing.assert_array_equal(_scores(gemma[5], (0, 4 * SWA)), exact)
    # a narrower one does cut the local layers
    assert not np.array_equal(_scores(gemma[5], (2, SWA // 2)), exact)
    # with a global layer (5), the same sparse window cuts what it reads before the scoring window,
    # which changes the keys of the layer after it
    assert not np.array_equal(_scores(gemma[7], (2, SWA)), _scores(gemma[7], None))
    # the scoring window's local layers see only their last 16 keys: older keys score on the global layer only
    s5 = exact
    assert np.all(s5[: 300 - 8 - SWA] == 0) and s5[-SWA:].min() > 0


@pytest.mark.parametrize("dp", [DraftPass(), DraftPass(attn="full", layer_share=1.0)], ids=["cheap", "exact"])
def test_specpc_with_a_gemma3_draft_of_another_vocabulary(tiny_path, gemma, dp, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path))
    with Runtime(RuntimeConfig(target=tiny_path, draft=gemma[7], n_threads=2, n_batch=128, n_ubatch=128)) as rt:
        assert not rt.same_tokenizer
        p = build_prompt(rt.target, document_request(TEXT, "what is the secret code?"))
        job = Job(prompt=p, budget=200, gen=GenConfig(), rt=rt, timings=Timings())
        stage = SpecPCStage(SpecPCConfig(draft=dp))
        keep = stage.select(job, 200)
        assert len(keep) == 200 and np.all(np.isin(np.flatnonzero(p.protected), keep))
        assert rt._ctx["draft"].cfg.flash_attn is False  # the kq route: local layers need their mask
        model = stage.draft_pass(rt, p.n)[0]
        assert model.info.arch == "gemma3" and model.info.n_swa == SWA  # a layer prefix keeps the window
        assert model.info.n_layer == (5 if dp.layer_share < 1 else 7)
