"""Moving kept KV cells into a small context through the state blob."""

import numpy as np
import pytest

from specllama.engine import Context, ContextConfig, Model, Sampler, SamplingConfig
from specllama.engine.kvstate import BlobError, blob_positions, filter_blob, keep_cells


@pytest.mark.parametrize("flash", [False, True])  # V is stored transposed without flash attention
def test_kept_blob_holds_exactly_the_chosen_positions(tiny_path, flash):
    with Model(tiny_path) as m:
        cfg = ContextConfig(n_ctx=512, n_threads=2, flash_attn=flash)
        with Context(m, cfg) as big, Context(m, ContextConfig(n_ctx=256, n_threads=2, flash_attn=flash)) as small:
            toks = m.tokenize("the green sky and the blue grass " * 10, add_special=True)
            big.decode(toks)
            full = big.state_get()
            assert blob_positions(full).tolist() == list(range(len(toks)))
            keep = np.array([0, 1, 5, 17, 30, len(toks) - 2, len(toks) - 1])
            blob, n = filter_blob(full, keep)
            assert n == len(keep)
            assert blob_positions(blob).tolist() == keep.tolist()
            assert len(blob) < len(full)
            keep_cells(big, keep, small)
            assert small.pos_max() == len(toks) - 1 and small.pos_min() == 0
            assert small.kv_bytes() < big.kv_bytes()


def test_kept_cells_decode_like_the_same_tokens_in_the_big_context(tiny_path):
    """Keeping every cell must not change the next tokens; dropping cells continues at pos_max + 1."""
    with Model(tiny_path) as m:
        toks = m.tokenize("apple banana cherry dragon eagle " * 6, add_special=True)

        def continue_greedy(ctx, n=6):
            out = []
            with Sampler(SamplingConfig()) as s:
                t = s.sample(ctx)
                for _ in range(n):
                    out.append(t)
                    ctx.decode(np.array([t]), np.array([ctx.pos_max() + 1]))
                    t = s.sample(ctx)
            return out

        with Context(m, ContextConfig(n_ctx=512, n_threads=2)) as big:
            big.decode(toks)
            ref = continue_greedy(big)
        with Context(m, ContextConfig(n_ctx=512, n_threads=2)) as big, \
                Context(m, ContextConfig(n_ctx=256, n_threads=2)) as small:
            big.decode(toks)
            keep_cells(big, np.arange(len(toks)), small)
            # the sampler needs logits: re-feed nothing, so decode the last token again at its position
            small.seq_rm(len(toks) - 1)
            small.decode(toks[-1:], np.array([len(toks) - 1]))
            assert continue_greedy(small) == ref
        with Context(m, ContextConfig(n_ctx=512, n_threads=2)) as big, \
                Context(m, ContextConfig(n_ctx=256, n_threads=2)) as small:
            big.decode(toks)
            keep = np.r_[0:4, len(toks) - 8:len(toks)]
            keep_cells(big, keep, small)
            small.decode(np.array([100], dtype=np.int32))  # default position: pos_max + 1
            assert small.pos_max() == len(toks)


def test_garbage_blobs_are_refused():
    with pytest.raises(BlobError):
        filter_blob(b"\x00" * 16, np.array([0]))
    with pytest.raises(BlobError):
        filter_blob(b"\xd8\x3c\x14\xaf\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00", np.array([0]))
