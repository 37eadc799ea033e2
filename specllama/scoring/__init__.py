"""Attention scoring, shared by the draft (SpecPC) and the target (SpecKV, SnapKV) paths.

* ``readers``: the two routes that read attention out of a running graph (llama.cpp's
  ``kq_soft_max`` with flash attention off, or captured queries against the cached keys with it on);
* ``attention``: running a model over a prompt and reducing the attention of its scoring rows into
  one score per prompt token;
* ``cache``: the optional memo of draft scores per prompt;
* ``prefill_cache``: the optional memo of the target's prefill for KV methods, per prompt.

It sits below ``methods/``: it takes a model, a context and :class:`~specllama.timings.Timings`,
never a method's job, and any settings object with the fields of :class:`AttentionSpec`.
"""

from .attention import AttentionScores, AttentionSpec, greedy_continuation, score_with_attention
from .cache import ScoreCache
from .prefill_cache import Prefill, PrefillCache

__all__ = ["AttentionScores", "AttentionSpec", "Prefill", "PrefillCache", "ScoreCache", "greedy_continuation",
           "score_with_attention"]
