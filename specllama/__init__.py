"""specllama: a small draft model decides what a big llama.cpp target reads or keeps.

Public API::

    import specllama
    out = specllama.generate(document, question="...", target="big.gguf", draft="small.gguf",
                             method="specpc", keep=0.25)
    c = specllama.compress(document, question="...", target="big.gguf", draft="small.gguf", keep=0.25)
    with specllama.Session("big.gguf", "small.gguf") as s: ...
"""

from .api import Compressed, Session, compress, generate
from .errors import ConfigError, ModelError, PromptError, SpecllamaError
from .methods import Budget, GenConfig, SpecKVConfig, SpecPCConfig, method_names
from .pipeline import Result
from .timings import Timings

from .version import __version__  # noqa: E402

__all__ = ["Session", "generate", "compress", "Compressed", "Result", "Timings", "Budget", "GenConfig",
           "SpecPCConfig", "SpecKVConfig", "method_names", "SpecllamaError", "ConfigError", "ModelError",
           "PromptError", "__version__"]
