"""Edges of the attention pass found by reading (issue 14): a micro-batch smaller than the scoring
rows, an end-of-generation token in the draft's lookahead, and the runtime's attention route."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from specllama.engine import Context, ContextConfig, Model
from specllama.engine.capture import TensorTap
from specllama.errors import ConfigError
from specllama.methods.draft import AttentionConfig
from specllama.runtime import Runtime, RuntimeConfig
from specllama.scoring import score_with_attention
from specllama.timings import Timings


@pytest.mark.parametrize("flash", [False, True])
def test_micro_batch_smaller_than_the_window_is_one_clear_error(tiny_path, flash):
    with Model(tiny_path) as m:
        tap = TensorTap({"kq_soft_max"}, None, lambda *a: None)
        cfg = ContextConfig(n_ctx=512, n_batch=128, n_ubatch=16, n_threads=2, flash_attn=flash)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = m.tokenize("the green sky and the blue grass. " * 8)
            with pytest.raises(ConfigError, match=r"-ub 16 splits the 32 scoring rows \(--window 32\)"):
                score_with_attention(ctx, tap, m, toks, AttentionConfig(window=32, start_layer=0), len(toks), 1,
                                     Timings())
            # -b no larger than -ub: every decode call is one micro-batch, and it works
            cfg2 = ContextConfig(n_ctx=512, n_batch=16, n_ubatch=16, n_threads=2, flash_attn=flash)
            with Context(m, cfg2, cb_eval=tap.callback) as ctx2:
                att = score_with_attention(ctx2, tap, m, toks, AttentionConfig(window=32, start_layer=0),
                                           len(toks), 1, Timings())
                assert att.scores.shape == (len(toks),)


def test_cli_ub_below_window(tiny_path, tiny_draft_path, tmp_path):
    env = dict(os.environ, SPECLLAMA_CACHE=str(tmp_path))
    doc = "the green sky and the blue grass. " * 40
    proc = subprocess.run([sys.executable, "-m", "specllama", "run", "-m", tiny_path, "-md", tiny_draft_path,
                           "-p", doc, "--budget", "100", "-n", "2", "-ub", "32"], capture_output=True, env=env,
                          timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "-ub 32 splits the 64 scoring rows" in err, err


class _EogAfterFirst:
    """The model, except that every token after the first generated one counts as end of generation."""

    def __init__(self, model):
        self._m, self.calls = model, 0

    def __getattr__(self, name):
        return getattr(self._m, name)

    def is_eog(self, tok: int) -> bool:
        self.calls += 1
        return self.calls > 1


def test_lookahead_never_holds_end_of_generation(tiny_path):
    with Model(tiny_path) as m:
        tap = TensorTap({"kq_soft_max"}, None, lambda *a: None)
        cfg = ContextConfig(n_ctx=512, n_batch=64, n_ubatch=64, n_threads=2, flash_attn=False)
        with Context(m, cfg, cb_eval=tap.callback) as ctx:
            toks = m.tokenize("the green sky and the blue grass. " * 8)
            fake = _EogAfterFirst(m)
            att = score_with_attention(ctx, tap, fake, toks, AttentionConfig(window=16, start_layer=0), len(toks),
                                       4, Timings())
    # the second generated token is "end of generation": it is neither kept nor fed back
    assert len(att.lookahead) == 1


def test_attention_route_is_validated(tiny_path):
    with Runtime(RuntimeConfig(target=tiny_path)) as rt:
        assert rt.attn_route == "qk"
        rt.attn_route = "kq"
        with pytest.raises(ConfigError, match="attention route"):
            rt.attn_route = "fast"
        assert rt.attn_route == "kq"
