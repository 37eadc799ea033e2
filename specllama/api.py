"""The public Python API.

>>> import specllama
>>> with specllama.Session(target="big.gguf", draft="small.gguf") as s:
...     out = s.generate(document, question="Who wrote it?", method="specpc", keep=0.25)
...     print(out.text, out.timings.ttft_ms)

``specllama.generate(...)`` and ``specllama.compress(...)`` do the same for one call. Every method
setting of ``specllama run`` is a keyword, named as in a server request's ``specllama`` object
(``window=16``, ``kernel=5``, ``draft_attn="full"``...); unset ones take the method's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.sampling import DEFAULT_SEED
from .inputs import check_text
from .errors import ConfigError
from .methods import METHODS, GenConfig, Method, all_settings
from .methods.specpc import SpecPCConfig
from .pipeline import Result, TextFn, generate as _generate, select_prompt
from .preflight import prepare_runtime
from .prompt import Message, Prompt, build_prompt, compressed_messages, document_request
from .runtime import Runtime, RuntimeConfig
from .settings import gen_config, resolve
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


def options(settings: dict) -> dict:
    """The API's method-setting keywords, checked against the declared settings (``TypeError`` for
    an unknown one, as for any unexpected keyword)."""
    known = {s.key for s in all_settings()}
    for key in settings:
        if key not in known:
            raise TypeError(f"unexpected keyword argument {key!r}; the method settings are "
                            f"{', '.join(sorted(known))}")
    return settings


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

    def configs(self, method: str | Method | None = "specpc", specpc: SpecPCConfig | None = None,
                **settings) -> tuple[Method, GenConfig]:
        """The method and generation settings of keywords as :meth:`generate` takes them (a
        :class:`Method` is used as is); ``specpc`` replaces SpecPC's default config."""
        if not isinstance(method, Method) and (not isinstance(method, str) or method not in METHODS):
            raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        o = {"method": None if isinstance(method, Method) else method, **settings}
        if isinstance(method, Method):
            return method, gen_config(o)
        _, m, gen = resolve(o, self.rt.cfg, {"cfg": specpc} if specpc is not None else None)
        return m, gen

    def generate(self, document: str = "", question: str | None = None, *, system: str | None = None,
                 messages: list[Message] | None = None, method: str | Method = "specpc",
                 budget: int | None = None, keep: float | None = None, n_predict: int = 256,
                 temp: float = 0.0, top_k: int = 40, top_p: float = 0.95, seed: int = DEFAULT_SEED,
                 specpc: SpecPCConfig | None = None, on_text: TextFn | None = None, **settings) -> Result:
        """Answer a request with ``method``; see :class:`specllama.pipeline.Result`. ``settings``:
        any other method setting by key (``window=16``, ``lookahead=4``...)."""
        prompt = self.prompt(document, question, system, messages)
        m, gen = self.configs(method, specpc, budget=budget, keep=keep, n_predict=n_predict, temp=temp,
                              top_k=top_k, top_p=top_p, seed=seed, **options(settings))
        return _generate(self.rt, prompt, m, gen, on_text)

    def compress(self, document: str = "", question: str | None = None, *, system: str | None = None,
                 messages: list[Message] | None = None, budget: int | None = None,
                 keep: float | None = None, specpc: SpecPCConfig | None = None, gap: str = "",
                 **settings) -> Compressed:
        """Compress a request with SpecPC without running the target's generation; ``settings`` as
        for :meth:`generate`."""
        check_text(gap, "gap")
        prompt = self.prompt(document, question, system, messages)
        method, _ = self.configs("specpc", specpc, budget=budget, keep=keep, **options(settings))
        kept, job = select_prompt(self.rt, prompt, method)
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
