"""A reusable ``llama_batch`` filled from numpy arrays with explicit positions."""

from __future__ import annotations

import numpy as np

from .lib import C


class Batch:
    """A token batch of fixed capacity for one sequence.

    ``fill(tokens[n], positions[n], logits_mask[n])`` writes the arrays in place; the batch is then
    passed to ``llama_decode``. Positions are explicit so callers can keep original positions
    when they skip tokens (SpecPC) or continue after a packed KV cache (SpecKV).
    """

    def __init__(self, capacity: int, seq_id: int = 0):
        self.capacity = int(capacity)
        self._b = C.llama_batch_init(self.capacity, 0, 1)
        self.token = np.ctypeslib.as_array(self._b.token, shape=(self.capacity,))
        self.pos = np.ctypeslib.as_array(self._b.pos, shape=(self.capacity,))
        self.n_seq_id = np.ctypeslib.as_array(self._b.n_seq_id, shape=(self.capacity,))
        self.logits = np.ctypeslib.as_array(self._b.logits, shape=(self.capacity,))
        self.n_seq_id[:] = 1
        for i in range(self.capacity):
            self._b.seq_id[i][0] = seq_id

    def fill(self, tokens: np.ndarray, positions: np.ndarray, logits: np.ndarray) -> None:
        n = len(tokens)
        if n > self.capacity:
            raise ValueError(f"batch of {n} tokens exceeds capacity {self.capacity}")
        self.token[:n] = tokens
        self.pos[:n] = positions
        self.logits[:n] = logits
        self._b.n_tokens = n

    @property
    def raw(self):
        return self._b

    def close(self) -> None:
        if self._b is not None:
            C.llama_batch_free(self._b)
            self._b = None
