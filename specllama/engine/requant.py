"""Lossless Q5_0 -> Q8_0 rewrite of a tensor's bytes (pure numpy).

A Q5_0 block holds 32 weights as ``d * (q - 16)`` with ``q`` a 5-bit integer; a Q8_0 block holds
32 weights as ``d * q`` with ``q`` an int8. The same ``d`` and the integers ``q - 16`` (in -16..15)
make a Q8_0 block that dequantizes to exactly the same values. It is 34 bytes instead of 22, but
x86 ggml repacks Q8_0 for its fast GEMM and runs Q5_0 through the generic kernels: on the default
0.5B draft the rewrite makes the draft's prefill 13.5% faster at 8K with identical scores
(``docs/results/draft-q8.md``).

Block layouts (ggml-common.h)::

    block_q5_0 (22 B): d fp16 | qh uint32 (bit j: high bit of weight j) | qs[16] (low nibble:
                       weight j, high nibble: weight j + 16)
    block_q8_0 (34 B): d fp16 | qs[32] int8
"""

from __future__ import annotations

import numpy as np

Q5_0_BYTES, Q8_0_BYTES, BLOCK = 22, 34, 32


def q5_0_to_q8_0(raw: np.ndarray) -> np.ndarray:
    """Rewrite Q5_0 bytes as Q8_0 bytes with identical dequantized values.

    Args:
        raw: uint8 ``(rows, nblocks * 22)``, a Q5_0 tensor as ``GGUFReader`` holds it (any leading
            shape; the last axis is whole blocks).
    Returns:
        uint8 ``(rows, nblocks * 34)``: the same tensor as Q8_0.
    """
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if raw.shape[-1] % Q5_0_BYTES:
        raise ValueError(f"a Q5_0 row must be whole {Q5_0_BYTES}-byte blocks, got {raw.shape[-1]} bytes")
    lead = raw.shape[:-1]
    blocks = raw.reshape(-1, Q5_0_BYTES)                                # (n, 22)
    qh = blocks[:, 2:6].copy().view("<u4")[:, 0]                        # (n,)
    qs = blocks[:, 6:]                                                  # (n, 16)
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=1)                  # (n, 32): weights 0..31
    high = (qh[:, None] >> np.arange(BLOCK, dtype=np.uint32)) & 1       # (n, 32)
    vals = (low.astype(np.int16) | (high.astype(np.int16) << 4)) - 16   # (n, 32) in -16..15
    out = np.empty((blocks.shape[0], Q8_0_BYTES), np.uint8)
    out[:, :2] = blocks[:, :2]                                          # the same fp16 scale
    out[:, 2:] = vals.astype(np.int8).view(np.uint8)
    return out.reshape(*lead, raw.shape[-1] // Q5_0_BYTES * Q8_0_BYTES)
