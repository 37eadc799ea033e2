"""The models and contexts one process works with, created lazily and freed deterministically.

A :class:`Runtime` owns the target model, the optional draft model and their contexts. Contexts are
reused between requests when they are large enough, so ``eval``, ``serve`` and ``chat`` pay for
allocation once. Methods ask for contexts through it, and so do front ends that keep contexts of
their own (:meth:`Runtime.owned_ctx`: the chat's, the bench's probes); nothing else creates
llama.cpp objects.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

from .engine.capture import ATTN_PROBS, TensorTap, qk_route
from .engine.context import Context, ContextConfig
from .engine.model import Model, check_gguf_path
from .engine.prefix import has_q5_0, is_current, layer_prefix, prefix_path
from .errors import ConfigError, ModelError, PromptError, require_int
from .scoring.cache import ScoreCache
from .scoring.prefill_cache import PrefillCache

CTX_ALIGN = 256
_NOTED: set[tuple] = set()  # (key, target, draft) already noted on stderr by this process
ATTN_ROUTES = ("qk", "kq")


def round_ctx(n: int) -> int:
    """Round a token count up to llama.cpp's KV padding granularity."""
    return max(CTX_ALIGN, -(-int(n) // CTX_ALIGN) * CTX_ALIGN)


@dataclass(frozen=True)
class RuntimeConfig:
    """Which models to load and how to run them (llama.cpp flag names in comments).

    Attributes:
        target: target GGUF path (``-m``).
        draft: draft GGUF path (``-md``); needed by draft-based methods only.
        n_threads: CPU threads (``-t``); None means all cores.
        n_ctx: target context size (``-c``); 0 sizes it to each request.
        n_batch: logical batch (``-b``).
        n_ubatch: physical batch (``-ub``).
        n_gpu_layers: target layers on the GPU (``-ngl``).
        n_gpu_layers_draft: draft layers on the GPU (``-ngld``).
        flash_attn: flash attention for the target's prefill and decode contexts (``-fa``); the
            contexts whose attention is read always run without it.
    """

    target: str
    draft: str | None = None
    n_threads: int | None = None
    n_ctx: int = 0
    n_batch: int = 512
    n_ubatch: int = 512
    n_gpu_layers: int = 0
    n_gpu_layers_draft: int = 0
    flash_attn: bool = True

    def __post_init__(self):
        for value, flag in ((self.n_ctx, "-c"), (self.n_batch, "-b"), (self.n_ubatch, "-ub"),
                            (self.n_gpu_layers, "-ngl"), (self.n_gpu_layers_draft, "-ngld")):
            require_int(value, flag)
        if self.n_threads is not None:
            require_int(self.n_threads, "-t")
        if self.n_ctx < 0:
            raise ConfigError(f"-c must be >= 0, got {self.n_ctx}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ConfigError(f"-t must be >= 1, got {self.n_threads}")
        if self.n_batch < 1 or self.n_ubatch < 1:
            raise ConfigError("-b and -ub must be >= 1")
        if self.n_gpu_layers < 0 or self.n_gpu_layers_draft < 0:
            raise ConfigError("-ngl and -ngld must be >= 0")


def _memo(cache, cls: type, name: str):
    """``cache`` if it is None or a ``cls``; else a TypeError naming the attribute ``name``."""
    if cache is not None and not isinstance(cache, cls):
        raise TypeError(f"{name} must be a {cls.__name__} or None, not {type(cache).__name__}")
    return cache


class Runtime:
    """Models and contexts for one process. Use as a context manager or call :meth:`close`."""

    def __init__(self, cfg: RuntimeConfig):
        self.cfg = cfg
        check_gguf_path(cfg.target, "target")
        if cfg.draft:
            check_gguf_path(cfg.draft, "draft")
        self._target: Model | None = None
        self._owns_target = True  # False in a runtime made by with_draft: the target is borrowed
        self._draft: Model | None = None
        self._prefixes: dict[int, Model] = {}
        self._ctx: dict[str, Context] = {}
        self._taps: dict[str, TensorTap] = {}
        self.score_cache = None
        self.prefill_cache = None
        self.attn_route = "qk"

    @property
    def score_cache(self) -> ScoreCache | None:
        """Optional memo of draft attention scores per prompt (eval turns it on to score one prompt
        at several budgets with one draft pass; timing runs leave it off)."""
        return self._score_cache

    @score_cache.setter
    def score_cache(self, cache: ScoreCache | None) -> None:
        self._score_cache = _memo(cache, ScoreCache, "score_cache")

    @property
    def prefill_cache(self) -> PrefillCache | None:
        """Optional memo of the target's prefill for KV methods per prompt (eval turns it on to run
        one prompt at several budgets with one target prefill; timing runs leave it off)."""
        return self._prefill_cache

    @prefill_cache.setter
    def prefill_cache(self, cache: PrefillCache | None) -> None:
        self._prefill_cache = _memo(cache, PrefillCache, "prefill_cache")

    @property
    def attn_route(self) -> str:
        """``qk`` (default): read attention with flash attention on where possible; ``kq``: always
        read llama.cpp's kq_soft_max with flash attention off (the reference route)."""
        return self._attn_route

    @attn_route.setter
    def attn_route(self, route: str) -> None:
        if route not in ATTN_ROUTES:
            raise ConfigError(f"attention route must be one of {', '.join(ATTN_ROUTES)}, got {route!r}")
        self._attn_route = route

    # -- models -------------------------------------------------------------------------------
    @property
    def target(self) -> Model:
        if self._target is None:
            self._target = Model(self.cfg.target, self.cfg.n_gpu_layers, role="target")
        return self._target

    def with_draft(self, draft: str) -> "Runtime":
        """A runtime with the same settings and the same loaded target (shared, not reloaded) but
        another draft GGUF (``eval --drafts``). It owns its draft and its contexts; close it
        before this runtime, which owns the target."""
        other = Runtime(replace(self.cfg, draft=draft))
        other._target, other._owns_target = self.target, False
        other.attn_route = self.attn_route
        return other

    @property
    def has_draft(self) -> bool:
        return bool(self.cfg.draft)

    @property
    def draft(self) -> Model:
        if not self.cfg.draft:
            raise ConfigError("this method needs a draft model: pass -md/--draft")
        if self._draft is None:
            try:
                path = self._derived_draft(None)
            except ModelError as exc:  # only a speed-up: the draft itself still loads
                self.note_once("requant", f"{exc}; the draft runs from its own file")
                path = self.cfg.draft
            self._draft = Model(path, self.cfg.n_gpu_layers_draft, role="draft",
                                name=os.path.basename(self.cfg.draft))
        return self._draft

    def _derived_draft(self, n_layers: int | None) -> str:
        """The draft's file for ``n_layers`` layers (None: all): on the CPU (``-ngld 0``) a copy
        with its Q5_0 tensors as Q8_0 (``engine/requant.py``: the same values, a faster kernel),
        cut to ``n_layers`` if asked, written once into the model cache's ``derived/`` folder."""
        from .registry import cache_dir

        requant = self.cfg.n_gpu_layers_draft == 0
        dst = prefix_path(self.cfg.draft, n_layers, cache_dir() / "derived", requant)
        if requant and not is_current(self.cfg.draft, dst, True) and has_q5_0(self.cfg.draft):
            self.note_once(f"derive-{n_layers}", f"writing {dst.name} into {dst.parent} once: the draft's "
                           "Q5_0 tensors as Q8_0, the same values in a format this CPU runs faster")
        return str(layer_prefix(self.cfg.draft, n_layers, cache_dir() / "derived", requant))

    def draft_prefix(self, n_layers: int | None) -> Model:
        """The draft, or a model of its first ``n_layers`` layers (``--draft-layers``), written
        once into the model cache's ``derived/`` folder and loaded once per process."""
        if n_layers is None or n_layers == self.draft.info.n_layer:
            return self.draft
        model = self._prefixes.get(n_layers)
        if model is None:
            model = Model(self._derived_draft(n_layers), self.cfg.n_gpu_layers_draft, role="draft")
            self._prefixes[n_layers] = model
        return model

    @property
    def same_tokenizer(self) -> bool:
        """True when the draft's vocabulary is identical to the target's (the token path); else
        the draft's scores and answers are carried over through the text (``methods.crossvocab``)."""
        return self.target.vocab_fingerprint == self.draft.vocab_fingerprint

    def check_same_tokenizer(self, what: str = "this method") -> None:
        """Raise unless the draft's vocabulary is identical to the target's (for ``what``, which
        has no text-aligned path)."""
        if not self.same_tokenizer:
            t, d = self.target, self.draft
            raise ModelError(
                f"draft {d.name} ({d.tokenizer_name}) and target {t.name} ({t.tokenizer_name}) use "
                f"different tokenizers; {what} needs a draft from the target's model family")

    def note_tokenizers(self) -> bool:
        """True when the draft shares the target's tokenizer; else note once on stderr that both
        tokenizers differ and the draft is aligned through the text, and return False."""
        if self.same_tokenizer:
            return True
        t, d = self.target, self.draft
        self.note_once("cross-tokenizer", f"draft {d.name} ({d.tokenizer_name}) and target {t.name} "
                       f"({t.tokenizer_name}) use different tokenizers: the draft reads the request through "
                       "its own chat template and its scores are aligned to the target's tokens through the text")
        return False

    def note_once(self, key: str, msg: str) -> None:
        """Write ``specllama: msg`` to stderr the first time ``key`` is noted for this pair of
        models in this process (e.g. that the draft's tokenizer is not the target's)."""
        k = (key, self.cfg.target, self.cfg.draft)
        if k in _NOTED:
            return
        _NOTED.add(k)
        sys.stderr.write(f"specllama: {msg}\n")
        sys.stderr.flush()

    # -- contexts -----------------------------------------------------------------------------
    def _config(self, n_ctx: int, flash_attn: bool | None) -> ContextConfig:
        return ContextConfig(n_ctx=n_ctx, n_batch=self.cfg.n_batch, n_ubatch=min(self.cfg.n_ubatch, self.cfg.n_batch),
                             n_threads=self.cfg.n_threads, flash_attn=flash_attn)

    def _context(self, key: str, model: Model, n_ctx: int, flash_attn: bool | None,
                 tap: TensorTap | None = None) -> Context:
        n_ctx = round_ctx(n_ctx)
        ctx = self._ctx.get(key)
        # reuse only a context of the same model and size (so KV memory always matches the
        # request) and the same flash-attention setting (it decides how attention can be read)
        if ctx is not None and ctx.model is model and ctx.n_ctx == n_ctx and ctx.cfg.flash_attn == flash_attn:
            ctx.clear()
            return ctx
        if ctx is not None:
            ctx.close()
        ctx = Context(model, self._config(n_ctx, flash_attn), cb_eval=tap.callback if tap else None)
        self._ctx[key] = ctx
        return ctx

    def target_ctx(self, n_ctx: int) -> Context:
        """The target's prefill/decode context."""
        if self.cfg.n_ctx:
            if n_ctx > self.cfg.n_ctx:
                raise PromptError(f"the request needs {n_ctx} tokens but -c is {self.cfg.n_ctx}")
            n_ctx = self.cfg.n_ctx
        return self._context("target", self.target, n_ctx, self.cfg.flash_attn)

    def attn_flash(self, model: Model) -> bool:
        """Flash attention for a context whose attention is read: on where the queries-and-keys
        route can recompute it (``engine.capture.qk_route``), off otherwise (``kq_soft_max``)."""
        return self.attn_route != "kq" and qk_route(model)

    def target_attn_ctx(self, n_ctx: int) -> tuple[Context, TensorTap]:
        """A target context whose attention can be read (see :meth:`attn_flash`)."""
        tap = self._taps.setdefault("target", self.attn_tap())
        return self._context("target_attn", self.target, n_ctx, self.attn_flash(self.target), tap), tap

    def draft_ctx(self, n_ctx: int, model: Model | None = None) -> tuple[Context, TensorTap]:
        """The draft's context with an attention tap (see :meth:`attn_flash`); ``model`` is the
        draft or one of its :meth:`draft_prefix` models."""
        model = model or self.draft
        tap = self._taps.setdefault("draft", self.attn_tap())
        return self._context("draft", model, n_ctx, self.attn_flash(model), tap), tap

    @staticmethod
    def attn_tap() -> TensorTap:
        """A fresh attention tap, for contexts of :meth:`owned_ctx` whose attention is read."""
        return TensorTap({ATTN_PROBS}, None, lambda *a: None)

    def owned_ctx(self, model: Model, n_ctx: int, *, tap: TensorTap | None = None,
                  flash_attn: bool | None = None, abortable: bool = False) -> Context:
        """A context of ``model`` with ``n_ctx`` cells (not rounded) that the caller owns and closes
        (the runtime neither reuses nor frees it): the chat's long-lived contexts, the bench's probes.

        Flash attention is ``flash_attn`` when given; otherwise, with a ``tap`` (attention read), the
        attention route's choice (:meth:`attn_flash`), as for :meth:`draft_ctx`; without one, the
        runtime's ``-fa``. ``abortable`` lets ``Context.request_abort`` stop a decode.
        """
        if flash_attn is None:
            flash_attn = self.attn_flash(model) if tap is not None else self.cfg.flash_attn
        return Context(model, self._config(n_ctx, flash_attn),
                       cb_eval=tap.callback if tap else None, abortable=abortable)

    def decode_ctx(self, n_ctx: int) -> Context:
        """A small target context that receives a packed KV cache (SpecKV and KV baselines)."""
        ctx = self._ctx.pop("decode", None)
        if ctx is not None:
            ctx.close()
        return self._context("decode", self.target, n_ctx, self.cfg.flash_attn)

    def close(self) -> None:
        for ctx in self._ctx.values():
            ctx.close()
        self._ctx.clear()
        for m in (*self._prefixes.values(), self._draft, self._target if self._owns_target else None):
            if m is not None:
                m.close()
        self._prefixes.clear()
        self._draft = self._target = None

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
