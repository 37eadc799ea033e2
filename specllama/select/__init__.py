"""Pure numpy scoring and selection: attention blocks in, kept token indices out.

Nothing here imports llama.cpp; everything is testable with hand-made arrays.
"""

from .scores import Reduction, ScoreAccumulator, linear_query_weights, pool1d
from .topk import select_tokens

__all__ = ["Reduction", "ScoreAccumulator", "linear_query_weights", "pool1d", "select_tokens"]
