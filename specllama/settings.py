"""Settings as the front ends receive them (flag names as keys) turned into typed configs.

The CLI, the chat REPL and the server all describe a request with the same option names (those of
``options.py``, e.g. ``method``, ``budget``, ``keep``, ``window``, ``n_predict``, ``temp``);
this module is the one place that turns such a dict into a ``RuntimeConfig``, a ``Method`` and a
``GenConfig``, applying each method's own defaults to the options left unset.
"""

from __future__ import annotations

from . import registry
from .engine.sampling import DEFAULT_SEED, SamplingConfig
from .errors import ModelError
from .methods import Budget, GenConfig, Method, make_method
from .errors import ConfigError
from .methods.draft import AttentionConfig
from .methods.draftpass import DraftPass
from .methods.speckv import SpecKVConfig
from .methods.specpc import SpecPCConfig
from .runtime import RuntimeConfig

DEFAULT_BUDGET = 1024
DRAFT_FLAGS = ("draft_attn", "draft_window", "draft_sinks", "draft_layers")


def draft_pass(o: dict, name: str) -> DraftPass:
    """SpecPC's draft pass from ``--draft-attn/-window/-sinks/-layers`` (``--draft-layers 0``: all).

    They apply to specpc only: speckvpc's draft writes the lookahead answer, so it runs exactly.
    """
    given = [k for k in DRAFT_FLAGS if o.get(k) is not None]
    if given and name != "specpc":
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} applies to --method specpc only (not {name})")
    d = DraftPass()
    layers = o.get("draft_layers")
    if layers is not None and layers < 0:
        raise ConfigError(f"--draft-layers must be >= 0, got {layers}")
    share = 1.0 if layers == 0 else d.layer_share
    return DraftPass(attn=_given(o, "draft_attn", d.attn), local_window=_given(o, "draft_window", d.local_window),
                     sinks=_given(o, "draft_sinks", d.sinks), layers=layers or None, layer_share=share)


def runtime_config(o: dict, need_draft: bool | None = None) -> RuntimeConfig:
    """Resolve ``-m``/``-md`` (paths or known names) and build the runtime config.

    Without ``-md`` the default pair's draft is used only when the target is the default one too,
    and only if the method can use a draft (``need_draft`` True or None).
    """
    t_spec, d_spec = o.get("target"), o.get("draft")
    target = registry.resolve(t_spec, "target")
    if target is None:
        raise ModelError("no target model: pass -m FILE.gguf, or run `specllama models pull` "
                         "for the default pair")
    if d_spec:
        draft = registry.resolve(d_spec, "draft")
    elif need_draft is not False and t_spec in (None, "default"):
        draft = registry.resolve(None, "draft")
    else:
        draft = None
    if draft is None and need_draft:
        raise ModelError("this method needs a draft model: pass -md FILE.gguf")
    return RuntimeConfig(target=target, draft=draft, n_threads=o.get("threads"),
                         n_ctx=o.get("ctx_size") or 0, n_batch=o.get("batch_size", 512),
                         n_ubatch=o.get("ubatch_size", 512), n_gpu_layers=o.get("ngl", 0),
                         n_gpu_layers_draft=o.get("ngld", 0))


def _given(o: dict, key: str, default):
    v = o.get(key)
    return default if v is None else v


def method_from(o: dict, has_draft: bool) -> Method:
    """Build the method and its configs from CLI options (unset flags take each method's default)."""
    name = o.get("method") or ("specpc" if has_draft else "dense")
    if o.get("budget") is None and o.get("keep") is None:
        budget = Budget(tokens=DEFAULT_BUDGET)
    else:
        budget = Budget(tokens=o.get("budget"), keep=o.get("keep"))
    reduction, pool = o.get("reduction", "max"), o.get("pool", "max")
    pc_attn = AttentionConfig(window=_given(o, "window", 64), reduction=reduction,
                              weighted_query=not o.get("no_weighted_query", False),
                              start_layer=o.get("start_layer"))
    specpc = SpecPCConfig(attention=pc_attn, lookahead=_given(o, "lookahead", 1) if name == "specpc" else 1,
                          pool=pool, kernel=_given(o, "kernel", 64), neighbours=o.get("neighbours"),
                          positions=o.get("positions", "renumber"), draft=draft_pass(o, name))
    kv_attn = AttentionConfig(window=_given(o, "window", 32), reduction=reduction, weighted_query=False,
                              start_layer=0)
    speckv = SpecKVConfig(attention=kv_attn, lookahead=o.get("lookahead") if name != "specpc" else None,
                          pool=pool, kernel=_given(o, "kernel", 7) if name != "speckvpc" else 7)
    budget_pc = Budget(tokens=_given(o, "budget_pc", 2048))
    return make_method(name, budget=budget, budget_pc=budget_pc, cfg=specpc, speckv=speckv,
                       n_predict=o.get("n_predict", 256), seed=0)


def gen_config(o: dict) -> GenConfig:
    return GenConfig(n_predict=o.get("n_predict", 256),
                     sampling=SamplingConfig(temp=o.get("temp", 0.0), top_k=o.get("top_k", 40),
                                             top_p=o.get("top_p", 0.95), seed=o.get("seed", DEFAULT_SEED)))


def wants_draft(o: dict) -> bool | None:
    """True if the chosen method needs a draft, None if it is chosen by draft availability."""
    if o.get("method") is None:
        return None
    return make_method(o["method"]).needs_draft

