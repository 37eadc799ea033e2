"""Settings as the front ends receive them (flag names as keys) turned into typed configs.

The CLI, the chat REPL, the server and the Python API all describe a request with the same option
names (the keys of the method settings, e.g. ``method``, ``budget``, ``keep``, ``window``, and
``n_predict``, ``temp``, ``-m``'s ``target``...). :func:`resolve` is the one way from such a dict to
a ``RuntimeConfig``, a ``Method`` and a ``GenConfig``; each method's own defaults fill the settings
left unset, as its config declares them (``methods/setting.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

from . import registry
from .engine.sampling import DEFAULT_SEED, SamplingConfig
from .errors import ConfigError, ModelError
from .methods import Budget, GenConfig, Method, all_settings, make_method, method_class, owners, taken
from .runtime import RuntimeConfig
from .inputs import check_text_options

DEFAULT_BUDGET = 1024
DEFAULT_PREDICT = 256
DRAFT_FLAGS = tuple(s.key for s in all_settings() if s.strict)  # refused for the methods without them


def resolve(o: Mapping[str, Any], runtime: RuntimeConfig | None = None,
            base: Mapping[str, Any] | None = None) -> tuple[RuntimeConfig, Method, GenConfig]:
    """The configs a request's options describe: the CLI's parsed flags, a server request's fields
    over the server's defaults, or the API's keywords.

    ``runtime`` is the config of a runtime already loaded (chat, serve, a ``Session``), returned as
    is; without it the models come from ``-m``/``-md`` (see :func:`runtime_config`). ``base`` gives
    constructor arguments to start from instead of the method's defaults (the API's ``specpc=``).
    """
    check_text_options(o)
    cfg = runtime if runtime is not None else runtime_config(o, wants_draft(o))
    return cfg, method_from(o, bool(cfg.draft), base), gen_config(o)


def runtime_config(o: Mapping[str, Any], need_draft: bool | None = None) -> RuntimeConfig:
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


def method_from(o: Mapping[str, Any], has_draft: bool, base: Mapping[str, Any] | None = None) -> Method:
    """The method ``o`` names (default: specpc with a draft, else dense), its settings from ``o``
    and its own defaults for the rest.

    A strict setting given to a method without it is refused; the other settings a method does not
    take are ignored, but still checked against their range.
    """
    name = o.get("method") or ("specpc" if has_draft else "dense")
    cls = method_class(name)
    mine = taken(cls)
    for s in all_settings():
        if s.strict and s not in mine and o.get(s.key) is not None:
            raise ConfigError(f"{s.flag} applies to --method {', '.join(owners(s))} only (not {name})")
    if o.get("budget") is None and o.get("keep") is None:
        budget = Budget(tokens=DEFAULT_BUDGET)
    else:
        budget = Budget(tokens=o.get("budget"), keep=o.get("keep"))
    base = base or {}
    args = {key: part.build(o, base.get(key)) for key, part in cls.settings.items()}
    for s in all_settings():
        if s not in mine:
            s.check(o.get(s.key))
    return make_method(name, budget=budget, n_predict=o.get("n_predict", DEFAULT_PREDICT), seed=0, **args)


def gen_config(o: Mapping[str, Any]) -> GenConfig:
    return GenConfig(n_predict=o.get("n_predict", DEFAULT_PREDICT),
                     sampling=SamplingConfig(temp=o.get("temp", 0.0), top_k=o.get("top_k", 40),
                                             top_p=o.get("top_p", 0.95), seed=o.get("seed", DEFAULT_SEED)))


def wants_draft(o: Mapping[str, Any]) -> bool | None:
    """True if the chosen method needs a draft, None if it is chosen by draft availability."""
    if o.get("method") is None:
        return None
    return make_method(o["method"]).needs_draft
