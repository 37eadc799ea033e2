"""The public Python API.

>>> import specllama
>>> with specllama.Session(target="big.gguf", draft="small.gguf") as s:
...     out = s.generate(document, question="Who wrote it?", method="specpc", keep=0.25)
...     print(out.text, out.timings.ttft_ms)

``specllama.generate(...)`` and ``specllama.compress(...)`` do the same for one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.sampling import DEFAULT_SEED, SamplingConfig
from .inputs import check_text
from .methods import Budget, GenConfig, Method, make_method
from .methods.specpc import SpecPCConfig
from .pipeline import Result, TextFn, generate as _generate, select_prompt
from .preflight import prepare_runtime
from .prompt import Message, Prompt, build_prompt, compressed_messages, document_request
from .runtime import Runtime, RuntimeConfig
from .timings import Timings


@dataclass
class Compressed:
    """A compressed request, ready for any engine.

    Attributes:
        text: the last user message's content with its documents cut to the kept tokens.
        messages: every message as ``(role, content)``, compressed the same way.
        kept: ``[k]`` indices of the kept prompt tokens (chat template included).
        n_prompt: prompt tokens before compression.
        timings: draft time and selection time.
    """

    text: str
    messages: list[tuple[str, str]]
    kept: np.ndarray
    n_prompt: int
    timings: Timings
    notes: list[str] = field(default_factory=list)

    @property
    def n_kept(self) -> int:
        return int(len(self.kept))


def _method(method: str | Method, budget: int | None, keep: float | None, specpc: SpecPCConfig | None,
            **kw) -> Method:
    if isinstance(method, Method):
        return method
    b = Budget(tokens=budget, keep=keep) if (budget is not None or keep is not None) else Budget(tokens=1024)
    return make_method(method, budget=b, cfg=specpc or SpecPCConfig(), **kw)


class Session:
    """A target (and optional draft) loaded once for many requests.

    Args:
        target: target GGUF path.
        draft: draft GGUF path (needed by draft-based methods).
        threads, n_ctx, n_gpu_layers, n_gpu_layers_draft: as ``-t``, ``-c``, ``-ngl``, ``-ngld``.
        chat_template: template name or Jinja text overriding the target GGUF's.
    """

    def __init__(self, target: str, draft: str | None = None, *, threads: int | None = None,
                 n_ctx: int = 0, n_gpu_layers: int = 0, n_gpu_layers_draft: int = 0,
                 chat_template: str | None = None, raw: bool = False):
        cfg = RuntimeConfig(target=target, draft=draft, n_threads=threads, n_ctx=n_ctx,
                            n_gpu_layers=n_gpu_layers, n_gpu_layers_draft=n_gpu_layers_draft)
        self.rt = Runtime(prepare_runtime(cfg))  # both GGUF headers checked now; threads capped
        self.chat_template = chat_template
        self.raw = raw

    def prompt(self, document: str = "", question: str | None = None, system: str | None = None,
               messages: list[Message] | None = None) -> Prompt:
        """Tokenize a request with the target's chat template."""
        msgs = messages if messages is not None else document_request(document, question, system)
        return build_prompt(self.rt.target, msgs, self.chat_template, self.raw)

    def generate(self, document: str = "", question: str | None = None, *, system: str | None = None,
                 messages: list[Message] | None = None, method: str | Method = "specpc",
                 budget: int | None = None, keep: float | None = None, n_predict: int = 256,
                 temp: float = 0.0, top_k: int = 40, top_p: float = 0.95, seed: int = DEFAULT_SEED,
                 specpc: SpecPCConfig | None = None, on_text: TextFn | None = None) -> Result:
        """Answer a request with ``method``; see :class:`specllama.pipeline.Result`."""
        prompt = self.prompt(document, question, system, messages)
        gen = GenConfig(n_predict=n_predict, sampling=SamplingConfig(temp, top_k, top_p, seed))
        return _generate(self.rt, prompt, _method(method, budget, keep, specpc), gen, on_text)

    def compress(self, document: str = "", question: str | None = None, *, system: str | None = None,
                 messages: list[Message] | None = None, budget: int | None = None,
                 keep: float | None = None, specpc: SpecPCConfig | None = None, gap: str = "") -> Compressed:
        """Compress a request with SpecPC without running the target's generation."""
        check_text(gap, "gap")
        prompt = self.prompt(document, question, system, messages)
        kept, job = select_prompt(self.rt, prompt, _method("specpc", budget, keep, specpc))
        msgs = compressed_messages(self.rt.target, prompt, kept, gap)
        user = next((c for r, c in reversed(msgs) if r == "user"), msgs[-1][1] if msgs else "")
        return Compressed(text=user, messages=msgs, kept=kept, n_prompt=prompt.n, timings=job.timings,
                          notes=job.notes)

    def close(self) -> None:
        self.rt.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def generate(document: str = "", question: str | None = None, *, target: str, draft: str | None = None,
             threads: int | None = None, **kwargs) -> Result:
    """One-shot :meth:`Session.generate`."""
    with Session(target, draft, threads=threads) as s:
        return s.generate(document, question, **kwargs)


def compress(document: str = "", question: str | None = None, *, target: str, draft: str,
             threads: int | None = None, **kwargs) -> Compressed:
    """One-shot :meth:`Session.compress`."""
    with Session(target, draft, threads=threads) as s:
        return s.compress(document, question, **kwargs)
