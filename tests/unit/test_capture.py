"""Attention capture through cb_eval, checked against attention recomputed in numpy."""

import numpy as np
import pytest

from models.synth import TinySpec, write_tiny
from specllama.engine import Context, ContextConfig, Model
from specllama.engine.capture import TensorTap, split_name
from specllama.methods.draft import AttentionConfig
from specllama.scoring import score_with_attention
from specllama.select.scores import ScoreAccumulator, linear_query_weights
from specllama.timings import Timings


def _run(model_path, text, n_ubatch, names, rows=None, window=None):
    got = []
    with Model(model_path) as m:
        tap = TensorTap(names, None, lambda b, l, x: got.append((b, l, x.copy())))
        cfg = ContextConfig(n_ctx=512, n_batch=n_ubatch, n_ubatch=n_ubatch, n_threads=2, flash_attn=False)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = m.tokenize(text, add_special=True)
            split = [len(toks) - window] if window else []

            def before(i0, i1):
                if window is None or i0 >= len(toks) - window:
                    tap.arm(rows)
                else:
                    tap.disarm()

            ctx.decode(toks, split_at=split, before_chunk=before)
            tap.check()
        return toks, got


def _reference_probs(q, k_all, offset, n_head_kv):
    """softmax(q k^T / sqrt(d)) with a causal mask; q [n_tok, n_head, d], k_all [n_kv, n_head_kv, d]."""
    n_tok, n_head, d = q.shape
    group = n_head // n_head_kv
    out = np.zeros((n_head, n_tok, len(k_all)), dtype=np.float64)
    k16 = k_all.astype(np.float16).astype(np.float64)  # the KV cache holds f16
    for h in range(n_head):
        s = q[:, h, :].astype(np.float16).astype(np.float64) @ k16[:, h // group, :].T / np.sqrt(d)
        pos = np.arange(offset, offset + n_tok)[:, None]
        s = np.where(np.arange(len(k_all))[None, :] <= pos, s, -np.inf)
        s = np.exp(s - s.max(1, keepdims=True))
        out[h] = s / s.sum(1, keepdims=True)
    return out


@pytest.mark.parametrize("n_ubatch", [256, 32])
def test_kq_soft_max_matches_numpy_attention_with_gqa_and_padding(tiny_path, n_ubatch):
    toks, got = _run(tiny_path, "the secret code is 42 and the magic word is banana. " * 3, n_ubatch,
                     {"kq_soft_max", "Qcur", "Kcur"})
    # per layer 0: Qcur/Kcur are named several times (before/after RoPE); the last one precedes kq
    qs, ks, ps, cur = [], [], [], {}
    for base, layer, x in got:
        if layer != 0:
            continue
        if base in ("Qcur", "Kcur") and x.ndim == 3 and x.shape[1] in (2, 4) and x.shape[2] == 16:
            cur[base] = x
        if base == "kq_soft_max":
            qs.append(cur["Qcur"]), ks.append(cur["Kcur"]), ps.append(x)
    assert len(ps) == -(-len(toks) // n_ubatch)
    k_all = np.concatenate(ks)
    n = len(k_all)
    assert n == len(toks)
    offset = 0
    for q, p in zip(qs, ps):
        ref = _reference_probs(q, k_all, offset, n_head_kv=2)
        np.testing.assert_allclose(p[:, :, :n], ref, atol=2e-5)
        assert np.all(p[:, :, n:] == 0)  # padding cells beyond the prompt get no attention
        offset += len(q)


def test_only_armed_chunks_and_wanted_rows_are_copied(tiny_path):
    toks, got = _run(tiny_path, "green sky blue grass " * 20, 32, {"kq_soft_max"}, rows=(2, 5), window=8)
    assert {l for _, l, _ in got} == {0, 1}
    assert all(x.shape[:2] == (4, 3) for _, _, x in got)  # 4 heads, rows 2..4 of the window chunk
    assert len(got) == 2  # one window chunk x 2 layers


def test_split_name():
    assert split_name(b"kq_soft_max-12") == ("kq_soft_max", 12)
    assert split_name(b"Qcur-0 (view)")[1] == -1


def test_errors_inside_the_callback_surface_after_decode(tiny_path):
    def boom(*_):
        raise RuntimeError("sink failed")

    with Model(tiny_path) as m:
        tap = TensorTap({"kq_soft_max"}, None, boom)
        with Context(m, ContextConfig(n_ctx=256, n_threads=2, flash_attn=False), cb_eval=tap.callback) as ctx:
            tap.arm()
            ctx.decode(m.tokenize("hello", add_special=True))
            with pytest.raises(RuntimeError, match="sink failed"):
                tap.check()


def _score(model_path, text, window, lookahead, n_ubatch=64, swa_full=True):
    with Model(model_path) as m:
        tap = TensorTap({"kq_soft_max"}, None, lambda *a: None)
        cfg = ContextConfig(n_ctx=1024, n_batch=n_ubatch, n_ubatch=n_ubatch, n_threads=2, flash_attn=False,
                            swa_full=swa_full)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = m.tokenize(text, add_special=True)
            acfg = AttentionConfig(window=window, start_layer=0)
            att = score_with_attention(ctx, tap, m, toks, acfg, len(toks), lookahead, Timings())
            return toks, att.scores, att.lookahead, att


def test_window_scores_equal_a_manual_reduction_of_the_window_rows(tiny_path):
    text = "the secret code is 42 and the magic word is banana. " * 4
    toks, scores, la, _ = _score(tiny_path, text, window=8, lookahead=1)
    assert scores.shape == (len(toks),) and len(la) == 1
    _, got = _run(tiny_path, text, 64, {"kq_soft_max"}, window=8)
    acc = ScoreAccumulator(len(toks), 4, 2)
    for _, _, x in got:
        acc.add(x[:, -8:, :], linear_query_weights(8))
    np.testing.assert_allclose(scores, acc.scores(), rtol=1e-6)


def test_lookahead_steps_add_queries(tiny_path):
    text = "apple banana cherry dragon eagle falcon garden harbor " * 3
    toks, s1, la1, _ = _score(tiny_path, text, window=4, lookahead=1)
    _, s3, la3, _ = _score(tiny_path, text, window=4, lookahead=3)
    assert len(la3) == 3 and la3[0] == la1[0]
    assert np.all(s3 >= s1 - 1e-7)  # max over more queries never decreases a score
    assert np.any(s3 > s1 + 1e-6)


def test_sliding_window_layers_are_skipped_once_their_cells_wrap(tiny_dir):
    path = write_tiny(tiny_dir / "tiny-gemma3.gguf", TinySpec(arch="gemma3", n_layer=6, sliding_window=16))
    with Model(path) as m:
        assert m.info.n_swa == 16
    text = "green sky blue grass the sun is yellow " * 10
    _, _, _, short = _score(path, "green sky blue grass", window=4, lookahead=1, n_ubatch=16, swa_full=False)
    assert (short.blocks, short.skipped) == (6, 0)  # prompt fits the local window cache: all usable
    toks, scores, _, long = _score(path, text, window=8, lookahead=1, n_ubatch=16, swa_full=False)
    assert len(toks) > 256
    # with a small local cache only the global layer (5 of 0..5) still maps cells to positions
    assert (long.blocks, long.skipped) == (1, 5)
    assert np.isfinite(scores).all() and scores.max() > 0
    # with llama.cpp's default full-size local cache every layer scores; local layers only inside
    # their window (the mask zeroes the rest), so the scores can only grow
    _, full_scores, _, full = _score(path, text, window=8, lookahead=1, n_ubatch=16, swa_full=True)
    assert (full.blocks, full.skipped) == (6, 0)
    assert np.all(full_scores >= scores - 1e-7)


def _score_route(model_path, text, flash, lookahead=1, extra=None, window=8):
    with Model(model_path) as m:
        tap = TensorTap({"kq_soft_max"}, None, lambda *a: None)
        cfg = ContextConfig(n_ctx=1024, n_batch=32, n_ubatch=32, n_threads=2, flash_attn=flash)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = m.tokenize(text, add_special=True)
            acfg = AttentionConfig(window=window, start_layer=0)
            return score_with_attention(ctx, tap, m, toks, acfg, len(toks), lookahead, Timings(), extra=extra)


@pytest.mark.parametrize("lookahead,extra", [(1, None), (4, None), (0, [100, 200, 300])])
def test_flash_attention_route_recomputes_the_same_scores(tiny_path, lookahead, extra):
    text = "the secret code is 42 and the magic word is banana. " * 4
    off = _score_route(tiny_path, text, False, lookahead, extra)
    on = _score_route(tiny_path, text, True, lookahead, extra)
    assert off.blob is None and on.blob is not None
    assert on.lookahead.tolist() == off.lookahead.tolist()
    # flash attention changes each layer's output in the last bits, so later layers' Q and K differ
    # slightly (on the real Qwen pair the two routes pick the same tokens; see the README)
    np.testing.assert_allclose(on.scores, off.scores, rtol=2e-2, atol=1e-4)
    top_on, top_off = set(np.argsort(-on.scores)[:16]), set(np.argsort(-off.scores)[:16])
    assert len(top_on & top_off) >= 14


def test_flash_attention_route_is_refused_for_sliding_window_models(tiny_dir):
    from specllama.errors import ConfigError
    from specllama.engine.capture import qk_route

    path = write_tiny(tiny_dir / "tiny-gemma3-qk.gguf", TinySpec(arch="gemma3", n_layer=6, sliding_window=16))
    with Model(path) as m:
        assert not qk_route(m)
    with pytest.raises(ConfigError, match="flash attention off"):
        _score_route(path, "green sky blue grass " * 5, True)
