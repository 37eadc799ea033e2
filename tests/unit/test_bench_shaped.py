"""The 7B-shaped random-weight target: shapes, quantization, tokenizer copy, labelling, and a
scaled-down model written by the same code that loads and runs in llama.cpp."""

import numpy as np
import pytest

from models.shaped import (LABEL, QWEN25_7B, ShapedSpec, calibration, ensure_shaped, expected_bytes,
                           random_blocks, scales_for, tensor_plan, tensor_types)
from models.synth import TinySpec, write_tiny
from specllama.errors import ConfigError

MINI = ShapedSpec(name="mini", n_layer=2, n_embd=256, n_head=2, n_head_kv=1, n_ff=512, n_ctx_train=2048)


def test_the_7b_plan_has_qwen25_7b_shapes():
    plan = dict(tensor_plan(QWEN25_7B, 151936))
    assert plan["blk.0.attn_q.weight"] == (3584, 3584) and plan["blk.0.attn_q.bias"] == (3584,)
    assert plan["blk.27.attn_k.weight"] == (512, 3584)  # 4 KV heads x 128
    assert plan["blk.5.ffn_down.weight"] == (3584, 18944) and plan["output.weight"] == (151936, 3584)
    assert "blk.28.attn_q.weight" not in plan
    params = sum(int(np.prod(s)) for s in plan.values())
    assert 7.5e9 < params < 7.7e9  # Qwen2.5-7B: 7.6B parameters
    size = expected_bytes(QWEN25_7B, 151936, {"blk.0.attn_v.weight": "Q6_K"})
    assert 4.2e9 < size < 4.8e9  # a Q4_K_M 7B
    assert 4.0e9 < expected_bytes(ShapedSpec(quant="q4_0"), 151936) < 4.6e9


def test_types_copy_the_sources_k_quant_mix():
    plan = tensor_plan(MINI, 100)
    types = tensor_types(MINI, plan, {"blk.1.ffn_down.weight": "Q6_K", "blk.0.attn_q.weight": "F32"})
    assert types["blk.1.ffn_down.weight"] == "Q6_K" and types["blk.0.ffn_down.weight"] == "Q4_K"
    assert types["blk.0.attn_q.weight"] == "Q4_K" and types["output.weight"] == "Q6_K"
    assert "blk.0.attn_norm.weight" not in types
    q40 = ShapedSpec(name="mini", n_layer=2, n_embd=256, n_head=2, n_head_kv=1, n_ff=512, quant="q4_0")
    assert set(tensor_types(q40, plan, {}).values()) == {"Q4_0"}


def test_spec_validation():
    with pytest.raises(ConfigError):
        ShapedSpec(quant="q3")
    with pytest.raises(ConfigError):
        ShapedSpec(n_embd=300, n_head=3, n_head_kv=1)  # not a multiple of the 256-wide K block


@pytest.mark.parametrize("qname", ["Q4_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K"])
def test_random_blocks_dequantize_to_zero_mean_and_the_asked_spread(qname):
    import gguf
    from gguf import quants

    n_in = 1024
    d, m = scales_for(qname, n_in)
    w = quants.dequantize(random_blocks(np.random.PCG64(7), 3000, qname, d, m),
                          gguf.GGMLQuantizationType[qname]).ravel()
    assert np.isfinite(w).all()
    assert abs(w.mean()) < 0.1 / np.sqrt(n_in)
    assert w.std() == pytest.approx(1 / np.sqrt(n_in), rel=0.05)
    assert calibration(qname)[2] > 0


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("src") / "src.gguf", TinySpec(arch="qwen2"))


def test_written_model_loads_runs_and_is_labelled(source, tmp_path):
    from specllama.engine.context import Context, ContextConfig
    from specllama.engine.model import Model

    path = ensure_shaped(tmp_path, source, MINI)
    assert path.name == "mini-q4_k_m-RANDOM-WEIGHTS-timing-only.gguf"
    assert not list(tmp_path.glob("*.partial"))
    import gguf

    r = gguf.GGUFReader(str(path))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["output.weight"] == "Q6_K" and types["blk.0.ffn_up.weight"] == "Q4_K"
    assert types["blk.0.attn_k.bias"] == "F32"
    with Model(path) as m, Model(source) as src:
        assert m.vocab_fingerprint == src.vocab_fingerprint  # the draft stays compatible
        assert LABEL in m.meta("general.name") and LABEL in m.meta("general.description")
        assert m.chat_template() == src.chat_template()
        info = m.info
        assert (info.arch, info.n_layer, info.n_embd, info.n_head, info.n_head_kv) == ("qwen2", 2, 256, 2, 1)
        with Context(m, ContextConfig(n_ctx=512, n_batch=256, n_ubatch=256, n_threads=2)) as ctx:
            toks = m.tokenize("the green sky and the blue grass " * 10)
            ctx.decode(toks, start_pos=0)
            assert np.isfinite(ctx.logits()).all()


def test_ensure_shaped_reuses_the_file_and_rebuilds_when_the_spec_changes(source, tmp_path):
    a = ensure_shaped(tmp_path, source, MINI)
    mtime = a.stat().st_mtime_ns
    assert ensure_shaped(tmp_path, source, MINI).stat().st_mtime_ns == mtime
    other = ShapedSpec(**{**MINI.__dict__, "seed": 1})
    b = ensure_shaped(tmp_path, source, other)
    assert b == a and b.stat().st_mtime_ns != mtime  # same name, new weights
    a.write_bytes(a.read_bytes()[:1000])  # truncated: rebuilt, never used
    assert ensure_shaped(tmp_path, source, other).stat().st_size > 1000
