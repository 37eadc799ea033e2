"""Dense: the target reads the whole prompt and keeps its whole KV cache (the reference point)."""

from .base import Method


class Dense(Method):
    name = "dense"
    help = "the target reads and keeps everything"

    def __init__(self, **_):
        super().__init__()
