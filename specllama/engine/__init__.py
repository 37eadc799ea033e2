"""llama.cpp plumbing: models, contexts, batches, sampling, attention capture and KV state.

Nothing in this package knows about compression methods. It exposes llama.cpp's low-level API
(through llama-cpp-python's ctypes bindings) as a few small, deterministic-lifetime objects.
"""

from .model import Model
from .context import Context, ContextConfig
from .sampling import SamplingConfig, Sampler

__all__ = ["Model", "Context", "ContextConfig", "SamplingConfig", "Sampler"]
