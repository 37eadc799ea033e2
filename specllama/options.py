"""Shared click options, with llama.cpp's flag names where they exist (configs are built in ``settings``)."""

from __future__ import annotations

import click

from .engine.sampling import DEFAULT_SEED
from .methods import method_names
from .methods.draftpass import DRAFT_ATTN
from .methods.specpc import POSITIONS


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
    click.option("--draft-attn", "draft_attn", type=click.Choice(DRAFT_ATTN), default=None,
                 help="specpc: draft queries before the window attend to sinks + a local window "
                      "(sparse) or to every key (full, the exact draft) [default: sparse]."),
    click.option("--draft-window", "draft_window", type=int, default=None,
                 help="specpc: keys each sparse draft query attends to [default: 1024]."),
    click.option("--draft-sinks", "draft_sinks", type=int, default=None,
                 help="specpc: first prompt keys every sparse draft query attends to [default: 64]."),
    click.option("--draft-layers", "draft_layers", type=int, default=None,
                 help="specpc: run only the first N draft layers (0: all) [default: all]."),
)

gen_options = _stack(
    click.option("-n", "--n-predict", "n_predict", type=int, default=256, show_default=True,
                 help="Tokens to generate (-1: until end of generation)."),
    click.option("--temp", type=float, default=0.0, show_default=True, help="Temperature; 0 is greedy."),
    click.option("--top-k", type=int, default=40, show_default=True),
    click.option("--top-p", type=float, default=0.95, show_default=True),
    click.option("-s", "--seed", type=int, default=DEFAULT_SEED, help="Sampling seed [default: random]."),
)
