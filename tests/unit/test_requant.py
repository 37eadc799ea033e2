"""The draft's Q5_0 tensors rewritten as Q8_0 (engine/requant.py, engine/prefix.py, Runtime.draft).

* the Q8_0 bytes dequantize to exactly the Q5_0 values, for random blocks and for every 5-bit code;
* the derived file is a loadable model computing the same logits and attention as its source;
* it is written once, only on the CPU and only when the draft has Q5_0 tensors, keeps the user's
  draft name, and replaces a prefix cached by an older specllama.
"""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest

from models.synth import TinySpec, write_tiny
from specllama.engine import Context, ContextConfig, Model
from specllama.engine.capture import TensorTap
from specllama.engine.prefix import STAMP_SUFFIX, has_q5_0, layer_prefix, prefix_path
from specllama.engine.requant import q5_0_to_q8_0
from specllama.runtime import Runtime, RuntimeConfig

Q5, Q8 = gguf.GGMLQuantizationType.Q5_0, gguf.GGMLQuantizationType.Q8_0


def test_q8_0_bytes_dequantize_to_the_q5_0_values():
    x = np.random.default_rng(0).standard_normal((7, 4 * 32)).astype(np.float32)
    q5 = gguf.quants.quantize(x, Q5)                                        # (7, 4 * 22)
    q8 = q5_0_to_q8_0(q5)
    assert q8.shape == (7, 4 * 34)
    np.testing.assert_array_equal(gguf.quants.dequantize(q8, Q8), gguf.quants.dequantize(q5, Q5))


def test_every_5_bit_code_and_high_bit_survives():
    # one block per (code, lane) pattern: weight j = code (j + k) % 32 - 16, scale 1
    blocks = []
    for k in range(32):
        codes = (np.arange(32) + k) % 32
        qs = (codes[:16] & 15) | ((codes[16:] & 15) << 4)
        qh = int(sum(int(c >> 4) << j for j, c in enumerate(codes)))
        blocks.append(np.concatenate([np.frombuffer(np.float16(1.0).tobytes(), np.uint8),
                                      np.frombuffer(np.uint32(qh).tobytes(), np.uint8), qs.astype(np.uint8)]))
    q5 = np.stack(blocks)                                                   # (32, 22)
    want = np.stack([(np.arange(32) + k) % 32 - 16 for k in range(32)]).astype(np.float32)
    np.testing.assert_array_equal(gguf.quants.dequantize(q5, Q5), want)
    np.testing.assert_array_equal(gguf.quants.dequantize(q5_0_to_q8_0(q5), Q8), want)


def test_a_partial_block_is_refused():
    with pytest.raises(ValueError, match="22-byte blocks"):
        q5_0_to_q8_0(np.zeros((2, 30), np.uint8))


@pytest.fixture(scope="module")
def q5_model(tmp_path_factory) -> str:
    return write_tiny(tmp_path_factory.mktemp("q5") / "tiny-q5.gguf", TinySpec(seed=3, n_layer=3, quant="Q5_0"))


def _run(path: str) -> tuple[np.ndarray, list]:
    """Last-token logits and every layer's attention for one prompt."""
    seen = []
    with Model(path) as m:
        tap = TensorTap({"kq_soft_max"}, set(range(m.info.n_layer)), lambda _b, layer, x: seen.append((layer, x.copy())))
        cfg = ContextConfig(n_ctx=256, n_batch=64, n_ubatch=64, n_threads=2, flash_attn=False)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            tap.arm()
            ctx.decode(m.tokenize("the green sky and the blue grass. " * 4))
            tap.check()
            return ctx.logits().copy(), seen


def test_the_rewritten_model_computes_what_the_source_does(q5_model, tmp_path):
    assert has_q5_0(q5_model)
    dst = layer_prefix(q5_model, None, tmp_path, requant=True)
    assert dst == prefix_path(q5_model, None, tmp_path, True) and dst.name == "tiny-q5.q8.gguf"
    src_t = {t.name: t for t in gguf.GGUFReader(q5_model).tensors}
    n_q5 = 0
    for t in gguf.GGUFReader(str(dst)).tensors:
        s = src_t[t.name]
        if s.tensor_type == Q5:
            n_q5 += 1
            assert t.tensor_type == Q8
            np.testing.assert_array_equal(gguf.quants.dequantize(t.data, Q8), gguf.quants.dequantize(s.data, Q5))
        else:
            assert t.tensor_type == s.tensor_type
            np.testing.assert_array_equal(t.data, s.data)
    assert n_q5 > 0 and not has_q5_0(dst)
    logits_a, attn_a = _run(q5_model)
    logits_b, attn_b = _run(str(dst))
    np.testing.assert_allclose(logits_b, logits_a, rtol=1e-5, atol=1e-5)
    assert [la for la, _ in attn_a] == [lb for lb, _ in attn_b]
    for (_, a), (_, b) in zip(attn_a, attn_b):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_a_layer_prefix_is_cut_and_rewritten(q5_model, tmp_path):
    dst = layer_prefix(q5_model, 2, tmp_path, requant=True)
    assert dst.name == "tiny-q5.first2.q8.gguf" and not has_q5_0(dst)
    assert int(gguf.GGUFReader(str(dst)).fields["llama.block_count"].contents()) == 2
    plain = layer_prefix(q5_model, 2, tmp_path, requant=False)
    assert plain.name == "tiny-q5.first2.gguf" and has_q5_0(plain)
    assert dst.exists()  # both formats may live side by side (CPU and GPU runs)


def test_nothing_is_written_when_there_is_nothing_to_derive(tiny_path, q5_model, tmp_path):
    assert str(layer_prefix(tiny_path, None, tmp_path, requant=True)) == tiny_path  # f32: no Q5_0
    assert str(layer_prefix(q5_model, None, tmp_path, requant=False)) == q5_model
    assert list(tmp_path.iterdir()) == []


def test_a_prefix_from_an_older_specllama_is_replaced(q5_model, tmp_path):
    old = prefix_path(q5_model, 2, tmp_path, False)
    old.write_bytes(b"GGUF old")
    old.with_name(old.name + STAMP_SUFFIX).write_text(json.dumps({"source": q5_model}))
    dst = layer_prefix(q5_model, 2, tmp_path, requant=True)
    assert not old.exists() and not old.with_name(old.name + STAMP_SUFFIX).exists()
    stamp = json.loads(dst.with_name(dst.name + STAMP_SUFFIX).read_text())
    assert stamp["format"] == 2 and stamp["requant"] == "q5_0->q8_0"
    mtime = dst.stat().st_mtime_ns
    assert layer_prefix(q5_model, 2, tmp_path, requant=True) == dst and dst.stat().st_mtime_ns == mtime


def test_the_runtime_loads_the_rewritten_draft_on_the_cpu(tiny_path, q5_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path))
    with Runtime(RuntimeConfig(target=tiny_path, draft=q5_model, n_threads=2)) as rt:
        assert rt.draft.path.endswith("tiny-q5.q8.gguf") and rt.draft.name == "tiny-q5.gguf"
        assert rt.draft_prefix(2).path.endswith("tiny-q5.first2.q8.gguf")
    err = capsys.readouterr().err
    assert "tiny-q5.q8.gguf" in err and "Q8_0" in err


def test_an_unwritable_cache_falls_back_to_the_draft_itself(tiny_path, q5_model, tmp_path, monkeypatch, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("SPECLLAMA_CACHE", str(blocked))  # a file where the cache folder should be
    with Runtime(RuntimeConfig(target=tiny_path, draft=q5_model, n_threads=2)) as rt:
        assert rt.draft.path == q5_model
    assert "runs from its own file" in capsys.readouterr().err
