"""Shared click options (llama.cpp's flag names where they exist) and what they build."""

from __future__ import annotations

import click

from .. import registry
from ..engine.sampling import DEFAULT_SEED, SamplingConfig
from ..errors import ModelError
from ..methods import Budget, GenConfig, Method, make_method, method_names
from ..methods.draft import AttentionConfig
from ..methods.specpc import POSITIONS, SpecPCConfig
from ..methods.speckv import SpecKVConfig
from ..runtime import RuntimeConfig


def _stack(*decorators):
    def wrap(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return wrap


model_options = _stack(
    click.option("-m", "--target", "target", metavar="GGUF",
                 help="Target model: a GGUF path or a known model name [default: the default pair]."),
    click.option("-md", "--draft", "draft", metavar="GGUF",
                 help="Draft model for draft-based methods [default: the default pair]."),
    click.option("-t", "--threads", "threads", type=int, default=None,
                 help="CPU threads [default: all cores]."),
    click.option("-c", "--ctx-size", "ctx_size", type=int, default=0, show_default=True,
                 help="Target context size; 0 sizes it to each request."),
    click.option("-b", "--batch-size", "batch_size", type=int, default=512, show_default=True,
                 help="Logical batch size for prefill."),
    click.option("-ub", "--ubatch-size", "ubatch_size", type=int, default=512, show_default=True,
                 help="Physical batch size for prefill."),
    click.option("-ngl", "--n-gpu-layers", "ngl", type=int, default=0, show_default=True,
                 help="Target layers to offload to the GPU."),
    click.option("-ngld", "--n-gpu-layers-draft", "ngld", type=int, default=0, show_default=True,
                 help="Draft layers to offload to the GPU."),
    click.option("-v", "--verbose", is_flag=True, help="Show llama.cpp's own log on stderr."),
)

prompt_options = _stack(
    click.option("-p", "--prompt", "prompt", metavar="TEXT", help="Prompt (document) text."),
    click.option("-f", "--file", "file", metavar="FILE", help="Read the prompt from FILE ('-' for stdin)."),
    click.option("--question", metavar="TEXT",
                 help="Question appended after the document; never compressed."),
    click.option("-sys", "--system", "system", metavar="TEXT", help="System prompt; never compressed."),
    click.option("--chat-template", "chat_template", metavar="NAME",
                 help="Chat template name or Jinja text [default: the target GGUF's]."),
    click.option("--raw", is_flag=True, help="Feed the text as is, without a chat template."),
)

method_options = _stack(
    click.option("--method", type=click.Choice(method_names()), default=None,
                 help="Compression method [default: specpc with a draft, else dense]."),
    click.option("--budget", type=int, default=None,
                 help="Prompt tokens the target keeps (protected tokens included) [default: 1024]."),
    click.option("--keep", type=float, default=None, help="Budget as a fraction of the prompt."),
    click.option("--budget-pc", "budget_pc", type=int, default=None,
                 help="speckvpc: tokens SpecPC keeps before SpecKV [default: 2048]."),
    click.option("--window", type=int, default=None,
                 help="Last prompt tokens whose attention scores the prompt, always kept "
                      "[specpc 64, speckv/snapkv 32]."),
    click.option("--lookahead", type=int, default=None,
                 help="Draft tokens used for scoring [specpc 1; speckv: -n, capped by this]."),
    click.option("--kernel", type=int, default=None, help="Score pooling width [specpc 64, speckv 7]."),
    click.option("--pool", type=click.Choice(["max", "avg"]), default="max", show_default=True),
    click.option("--reduction", type=click.Choice(["max", "mean"]), default="max", show_default=True,
                 help="Reduction over heads, queries, layers and steps."),
    click.option("--neighbours", type=int, default=None, help="specpc: span kept around each chosen token [default: kernel]."),
    click.option("--start-layer", type=int, default=None, help="specpc: first draft layer read [default: n_layer/3]."),
    click.option("--no-weighted-query", is_flag=True, help="specpc: weigh all window queries equally."),
    click.option("--positions", type=click.Choice(POSITIONS), default="renumber", show_default=True,
                 help="specpc: positions of the kept tokens in the target."),
)

gen_options = _stack(
    click.option("-n", "--n-predict", "n_predict", type=int, default=256, show_default=True,
                 help="Tokens to generate (-1: until end of generation)."),
    click.option("--temp", type=float, default=0.0, show_default=True, help="Temperature; 0 is greedy."),
    click.option("--top-k", type=int, default=40, show_default=True),
    click.option("--top-p", type=float, default=0.95, show_default=True),
    click.option("-s", "--seed", type=int, default=DEFAULT_SEED, help="Sampling seed [default: random]."),
)

DEFAULT_BUDGET = 1024


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
                          positions=o.get("positions", "renumber"))
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

