"""How the draft reads a long prompt for SpecPC: exactly, or cheaply.

The draft's only job in SpecPC is the attention of the scoring rows (the last ``--window`` prompt
queries and the lookahead queries) over every prompt key. Two levers make the rest of its pass
cheaper without touching those rows:

* **sparse attention** (``--draft-attn sparse``): every query before the scoring window attends
  only to the first ``--draft-sinks`` keys and to the ``--draft-window`` keys before it
  (``patches/0002``; with flash attention the CPU kernel skips the masked tiles), so the pass costs
  O(n x window) instead of O(n^2). The scoring rows still attend to every key.
* **fewer layers** (``--draft-layers N``, by default two thirds of them): only the first ``N``
  layers run (a prefix GGUF cached once, ``engine/prefix.py``); scoring reads layers
  ``start_layer..N-1``. It needs no lookahead token from the draft, so a lookahead above 1, and
  methods that generate with the draft (SpecKV-PC), run every layer.

``--draft-attn full --draft-layers 0`` is the exact draft of the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from .catalog import DRAFT_ATTENTION, DRAFT_ATTN, DRAFT_LAYERS, DRAFT_SINKS, DRAFT_WINDOW, MAX_WINDOW
from .setting import validate

__all__ = ["DRAFT_ATTN", "MAX_WINDOW", "DraftPass", "EXACT", "draft_pass_of"]


def _first_layers(n: int) -> dict:
    """``--draft-layers N``: the first ``N`` layers; 0: all of them."""
    return {"layers": None, "layer_share": 1.0} if n == 0 else {"layers": n}


@dataclass(frozen=True)
class DraftPass:
    """Settings of the draft's prefill (defaults measured in the README, "Making the draft cheap").

    Attributes:
        attn: ``sparse`` or ``full`` (exact) attention for the queries before the scoring window.
        local_window: keys before each such query that it attends to (itself included).
        sinks: first prompt keys every query attends to (attention sinks).
        layers: run only the first ``layers`` draft layers (``--draft-layers N``); None: decided by
            ``layer_share`` (``--draft-layers 0`` sets ``layer_share`` 1.0: every layer).
        layer_share: without ``layers``, run the first ``ceil(layer_share * n_layer)`` layers (16 of
            the 0.5B draft's 24); 1.0 runs them all. A SpecPC lookahead above 1 needs the draft to
            write tokens, so it then runs every layer.
    """

    attn: str = DRAFT_ATTENTION.field("sparse")
    local_window: int = DRAFT_WINDOW.field(512)
    sinks: int = DRAFT_SINKS.field(64)
    layers: int | None = DRAFT_LAYERS.field(None, min=1, convert=_first_layers)
    layer_share: float = 2 / 3

    def __post_init__(self):
        validate(self)
        if not 0.0 < self.layer_share <= 1.0:
            raise ConfigError(f"the draft's layer share must be in (0, 1], got {self.layer_share}")

    @property
    def sparse(self) -> bool:
        return self.attn == "sparse"

    @property
    def all_layers(self) -> bool:
        return self.layers is None and self.layer_share >= 1.0

    @property
    def exact(self) -> bool:
        return not self.sparse and self.all_layers

    def run_layers(self, n_layer: int, start_layer: int, lookahead: int = 1) -> int:
        """How many of the draft's ``n_layer`` layers to run when scoring reads from ``start_layer``.

        Refuses an explicit ``--draft-layers`` outside the model, or one that leaves no layer to
        score; the share is rounded up and never leaves fewer than one scored layer.
        """
        if self.layers is not None:
            if self.layers > n_layer:
                raise ConfigError(f"--draft-layers {self.layers}: the draft has {n_layer} layers")
            if self.layers <= start_layer:
                raise ConfigError(f"--draft-layers {self.layers} leaves no layer to score from "
                                  f"--start-layer {start_layer}; raise it above {start_layer}")
            return self.layers
        if lookahead > 1:
            return n_layer
        return min(n_layer, max(start_layer + 1, math.ceil(self.layer_share * n_layer - 1e-9)))

    def describe(self) -> str:
        if self.exact:
            return "exact draft"
        parts = [f"sparse {self.sinks}+{self.local_window}"] if self.sparse else []
        if self.layers is not None:
            parts.append(f"{self.layers} layers")
        elif self.layer_share < 1.0:
            parts.append(f"{self.layer_share:.2f} of the layers")
        return "draft " + ", ".join(parts)


EXACT = DraftPass(attn="full", layer_share=1.0)


def draft_pass_of(method) -> DraftPass | None:
    """The draft pass of ``method``'s SpecPC stage, or None when it has none."""
    dp = getattr(getattr(getattr(method, "prompt_stage", None), "cfg", None), "draft", None)
    return dp if isinstance(dp, DraftPass) else None
