"""A long-lived context that remembers which tokens its KV cells hold, so a turn prefills only what
is new: the longest common prefix with the new sequence stays, the diverging tail is removed with
``seq_rm``, and the rest is decoded. The context grows (its cells moved through the state blob) up
to a cap, so short chats do not allocate the model's whole trained context.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..engine.context import Context
from ..engine.kvstate import filter_blob, keep_cells
from ..errors import PromptError
from ..runtime import round_ctx


def common_prefix(a_tok: np.ndarray, a_pos: np.ndarray, b_tok: np.ndarray, b_pos: np.ndarray) -> int:
    """Length of the longest common prefix of two ``(token, position)`` sequences."""
    n = min(len(a_tok), len(b_tok))
    if n == 0:
        return 0
    same = (a_tok[:n] == b_tok[:n]) & (a_pos[:n] == b_pos[:n])
    diff = np.flatnonzero(~same)
    return int(diff[0]) if len(diff) else n


class Track:
    """A context plus the ``tokens[h]``/``positions[h]`` its cells hold, in cell order.

    Args:
        make: ``make(n_ctx) -> Context`` builds a context of ``n_ctx`` cells.
        cap: the most cells the context may grow to.
        fixed: allocate ``cap`` cells at once and never grow (``-c N``).
        name, hint: for the error raised when the cap is reached.
    """

    def __init__(self, make: Callable[[int], Context], cap: int, fixed: bool = False, name: str = "model",
                 hint: str = "/clear the conversation or raise -c"):
        self.make = make
        self.hint = hint
        self.cap = int(cap)
        self.fixed = fixed
        self.name = name
        self.ctx: Context | None = None
        self.tokens = np.zeros(0, dtype=np.int32)
        self.positions = np.zeros(0, dtype=np.int32)

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_ctx(self) -> int:
        return 0 if self.ctx is None else self.ctx.n_ctx

    def reserve(self, n: int) -> Context:
        """The context, grown to hold at least ``n`` cells (cells kept); raises past the cap."""
        if n > self.cap:
            raise PromptError(f"{self.name}: the conversation needs {n} tokens but the context holds "
                              f"at most {self.cap}; {self.hint}")
        if self.ctx is not None and self.ctx.n_ctx >= n:
            return self.ctx
        new = self.make(self._size(n))
        if self.ctx is not None:
            if self.n:
                new.state_set(self.ctx.state_get())
            self.ctx.close()
        self.ctx = new
        return new

    def _size(self, n: int) -> int:
        return self.cap if self.fixed else min(self.cap, max(round_ctx(n), 2 * self.n_ctx))

    def state(self) -> tuple[np.ndarray, np.ndarray, bytes]:
        """``(tokens[h], positions[h], blob)``: what the cells hold and llama.cpp's state of them."""
        blob = self.ctx.state_get() if self.ctx is not None and self.n else b""
        return self.tokens.copy(), self.positions.copy(), blob

    def restore(self, tokens: np.ndarray, positions: np.ndarray, blob: bytes) -> None:
        """Hold ``tokens`` at ``positions`` from a :meth:`state` blob (of the same model), decoding
        nothing; on any error the track is left as it was."""
        tokens = np.asarray(tokens, dtype=np.int32)
        positions = np.asarray(positions, dtype=np.int32)
        if len(tokens) != len(positions):
            raise ValueError("tokens and positions differ in length")
        if len(tokens) + 1 > self.cap:
            raise PromptError(f"{self.name}: the saved conversation holds {len(tokens)} tokens but the context "
                              f"holds at most {self.cap}; {self.hint}")
        new = None
        if len(tokens):
            new = self.make(self.cap if self.fixed else min(self.cap, round_ctx(len(tokens) + 1)))
            try:
                data, n = filter_blob(blob, positions, new.v_trans)
                if n != len(tokens):
                    raise PromptError(f"{self.name}: the saved state holds {n} cells, its record {len(tokens)}")
                new.state_set(data)
            except BaseException:
                new.close()
                raise
        if self.ctx is not None:
            self.ctx.close()
        self.ctx = new
        self.tokens, self.positions = tokens, positions

    def sync(self, tokens: np.ndarray, positions: np.ndarray, keep_last: int = 1) -> int:
        """Drop every held cell after the common prefix with the new sequence; return its length.

        At most ``len(tokens) - keep_last`` cells are reused, so the caller always decodes at
        least ``keep_last`` tokens (the last one must be decoded again to get its logits).
        """
        q = common_prefix(self.tokens, self.positions, tokens, positions)
        q = max(0, min(q, len(tokens) - keep_last))
        self.rewind(q)
        return q

    def rewind(self, q: int) -> None:
        """Keep only the first ``q`` held cells (and drop any cell the context holds past them)."""
        q = max(0, min(int(q), self.n))
        if self.ctx is not None:
            start = int(self.positions[q]) if q < self.n else (int(self.positions[-1]) + 1 if self.n else 0)
            self.ctx.seq_rm(start)
        self._cut(q)

    def _cut(self, q: int) -> None:
        self.tokens = self.tokens[:q]
        self.positions = self.positions[:q]

    def held(self, tokens: np.ndarray, positions: np.ndarray) -> None:
        """Record that the cells after the current ones now hold ``tokens`` at ``positions``."""
        self.tokens = np.concatenate([self.tokens, np.asarray(tokens, dtype=np.int32)])
        self.positions = np.concatenate([self.positions, np.asarray(positions, dtype=np.int32)])

    def adopt(self, src: Context, tokens: np.ndarray, positions: np.ndarray) -> None:
        """Hold exactly ``tokens`` at ``positions``, copying those cells from ``src`` (another context
        of the same model) instead of decoding them."""
        self.clear()
        ctx = self.reserve(len(tokens) + 1)
        keep_cells(src, positions, ctx)
        self.held(tokens, positions)

    def clear(self) -> None:
        if self.ctx is not None:
            self.ctx.clear()
        self._cut(0)

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None
        self._cut(0)
