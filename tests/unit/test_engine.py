"""Engine layer on tiny generated GGUFs: model, context, batches, sampling, template."""

import os
import subprocess
import sys

import numpy as np
import pytest

from specllama.engine import Context, ContextConfig, Model, Sampler, SamplingConfig
from specllama.engine.context import kv_bytes_for
from specllama.engine.template import apply_template
from specllama.errors import ConfigError, ModelError, PromptError


def test_model_metadata_and_tokenizer_round_trip(tiny_path):
    with Model(tiny_path) as m:
        assert m.info.arch == "llama"
        assert (m.info.n_layer, m.info.n_head, m.info.n_head_kv, m.info.group) == (2, 4, 2, 2)
        toks = m.tokenize("the secret code is 42", add_special=True)
        assert toks[0] == m.bos and len(toks) > 3
        assert m.detokenize(toks[1:]).strip() == "the secret code is 42"
        assert m.tokenize("<|im_start|>", parse_special=True).tolist() == [3]
        assert len(m.tokenize("<|im_start|>", parse_special=False)) > 1
        assert "<|im_start|>" in m.chat_template()
        assert m.is_eog(4) and not m.is_eog(100)


def test_model_is_freed_deterministically(tiny_path):
    m = Model(tiny_path)
    m.close()
    with pytest.raises(RuntimeError):
        m.tokenize("x")
    m.close()  # idempotent


@pytest.mark.parametrize("content,err", [(None, "not found"), (b"", "not a GGUF"), (b"GGML-not-really", "not a GGUF")])
def test_bad_model_files_are_refused_with_one_line(tmp_path, content, err):
    p = tmp_path / "model.gguf"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ModelError, match=err):
        Model(p)


def test_truncated_gguf_is_refused(tmp_path, tiny_path):
    data = open(tiny_path, "rb").read()
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="could not load"):
        Model(p)


def test_vocab_fingerprint_tells_tokenizers_apart(tiny_path, tiny_draft_path, tiny_other_vocab_path):
    with Model(tiny_path) as a, Model(tiny_draft_path) as b, Model(tiny_other_vocab_path) as c:
        assert a.vocab_fingerprint == b.vocab_fingerprint
        assert a.vocab_fingerprint != c.vocab_fingerprint


def test_decode_with_explicit_positions_and_greedy_is_deterministic(tiny_path):
    with Model(tiny_path) as m:
        toks = m.tokenize("the green sky and the blue grass " * 8, add_special=True)
        outs = []
        for n_batch in (512, 16):  # one call vs many chunks: same result
            cfg = ContextConfig(n_ctx=256, n_batch=n_batch, n_ubatch=n_batch, n_threads=2)
            with Context(m, cfg) as ctx, Sampler(SamplingConfig()) as s:
                ctx.decode(toks)
                assert ctx.pos_max() == len(toks) - 1
                seq = []
                for _ in range(5):
                    t = s.sample(ctx)
                    seq.append(t)
                    ctx.decode(np.array([t]), np.array([ctx.pos_max() + 1]))
                outs.append(seq)
                assert ctx.kv_bytes() == kv_bytes_for(m, ctx.n_ctx) > 0
        assert outs[0] == outs[1]


def test_sampling_seed_reproduces_and_temperature_validated(tiny_path):
    with Model(tiny_path) as m, Context(m, ContextConfig(n_ctx=256, n_threads=2)) as ctx:
        ctx.decode(m.tokenize("hello world", add_special=True))
        cfg = SamplingConfig(temp=1.5, top_k=0, top_p=1.0, seed=7)
        with Sampler(cfg) as a, Sampler(cfg) as b:
            assert a.sample(ctx) == b.sample(ctx)
    with pytest.raises(ConfigError):
        SamplingConfig(temp=-1)
    with pytest.raises(ConfigError):
        SamplingConfig(top_p=0)


def test_context_full_is_a_clear_error(tiny_path):
    with Model(tiny_path) as m, Context(m, ContextConfig(n_ctx=256, n_batch=64, n_ubatch=64, n_threads=2)) as ctx:
        with pytest.raises(PromptError, match="no room"):
            ctx.decode(np.full(300, 100, dtype=np.int32))


def test_state_blob_round_trip_keeps_positions(tiny_path):
    with Model(tiny_path) as m, Context(m, ContextConfig(n_ctx=256, n_threads=2)) as a, \
            Context(m, ContextConfig(n_ctx=256, n_threads=2)) as b:
        a.decode(m.tokenize("the sun is yellow", add_special=True))
        b.state_set(a.state_get())
        assert b.pos_max() == a.pos_max()


def test_chat_template_applies_and_unknown_template_is_refused(tiny_path):
    with Model(tiny_path) as m:
        text = apply_template(m.chat_template(), [("user", "hi")])
        assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ConfigError, match="Jinja syntax error on line 1"):
        apply_template("{{ not a known template }}", [("user", "hi")])
    with pytest.raises(ConfigError, match="unknown chat template name 'nope'"):
        apply_template("nope", [("user", "hi")])


def test_ubatch_larger_than_batch_is_refused():
    with pytest.raises(ConfigError):
        ContextConfig(n_ctx=256, n_batch=32, n_ubatch=64)


def test_gpu_offload_flags_reach_the_models_and_a_cpu_build_still_runs(tiny_path, tiny_draft_path):
    """-ngl/-ngld go to llama.cpp's model params; a CPU-only build offloads nothing and gives the
    same greedy tokens (a CUDA/Metal build offloads; not testable without a GPU)."""
    from specllama.methods import GenConfig, make_method
    from specllama.methods.base import Budget
    from specllama.pipeline import generate
    from specllama.prompt import build_prompt, document_request
    from specllama.runtime import Runtime
    from specllama.settings import runtime_config

    outs = []
    for ngl, ngld in ((0, 0), (99, 7)):
        cfg = runtime_config({"target": tiny_path, "draft": tiny_draft_path, "ngl": ngl, "ngld": ngld,
                              "threads": 2}, True)
        assert (cfg.n_gpu_layers, cfg.n_gpu_layers_draft) == (ngl, ngld)
        with Runtime(cfg) as rt:
            p = build_prompt(rt.target, document_request("the green sky and the blue grass. " * 40,
                                                         "what is green?", None))
            r = generate(rt, p, make_method("specpc", budget=Budget(tokens=120)), GenConfig(n_predict=4))
            outs.append((list(r.kept), list(r.tokens)))
    assert outs[0] == outs[1]
    with pytest.raises(ConfigError, match="-ngl"):
        runtime_config({"target": tiny_path, "ngl": -1}, False)


def test_position_gap_switch_is_set_by_init_not_by_import():
    """``engine.lib`` leaves the environment alone at import; ``lib.init()`` (which ``Model`` calls
    before loading) sets LLAMA_ALLOW_POS_GAPS=1, unless the user set it."""
    import os
    import subprocess
    import sys

    script = ("import os; from specllama.engine import lib; before = os.environ.get('LLAMA_ALLOW_POS_GAPS'); "
              "lib.init(); print(before, os.environ.get('LLAMA_ALLOW_POS_GAPS'))")
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_ALLOW_POS_GAPS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["None", "1"], out.stderr[-2000:]
    env["LLAMA_ALLOW_POS_GAPS"] = "0"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "0"], out.stderr[-2000:]


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_one_copy_of_ggml_base_is_mapped(tiny_path):
    """Regression (issue 12): specllama once dlopen'ed lib/libggml-base.so by path, RTLD_GLOBAL. pip
    installs the .so/.so.0 names as separate files, so that mapped a second copy of ggml beside the
    libggml-base.so.0 libllama links, and CUDA builds crashed at model load. A fresh process that
    loads a model and captures attention must map exactly one libggml-base."""
    code = f"""
import re
import specllama
with specllama.Session({tiny_path!r}, {tiny_path!r}, threads=1) as s:
    s.generate("the river and the mountain " * 60, "What?", method="specpc", budget=96, n_predict=2)
maps = open("/proc/self/maps").read()
print(sorted({{p.rsplit("/", 1)[-1] for p in re.findall(r"\\s(/\\S*libggml-base[^\\s/]*)$", maps, re.M)}}))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SPECLLAMA_CACHE="/tmp/specllama-test-no-models"))
    assert p.returncode == 0, p.stderr[-2000:]
    copies = eval(p.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list
    assert len(copies) == 1, f"libggml-base mapped {len(copies)} times: {copies}"
