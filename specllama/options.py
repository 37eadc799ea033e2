"""Shared click options, with llama.cpp's flag names where they exist (configs are built in ``settings``).

The method flags are generated from the methods' setting declarations (``methods/setting.py``).
"""

from __future__ import annotations

import click

from .engine.sampling import DEFAULT_SEED
from .methods import METHODS, Setting, method_flags, taken


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

def setting_option(s: Setting):
    """The click option of a method setting: its flags, type or choices, help, and (with
    ``show_default``) the default every method taking it shares."""
    kw: dict = {"help": s.help}
    if s.type is bool:
        return click.option(*s.flags, s.key, is_flag=True, **kw)
    if s.show_default:
        defaults = {d for cls in METHODS.values() for d in taken(cls).get(s, ())}
        if len(defaults) != 1:
            raise ValueError(f"{s.flag}: show_default needs one default shared by its methods, not {defaults}")
        kw.update(default=defaults.pop(), show_default=True)
    else:
        kw["default"] = None
    return click.option(*s.flags, s.key, type=click.Choice(s.choices) if s.choices else s.type, **kw)


def method_options(f):
    """``--method`` and every registered method's settings, generated from their declarations."""
    return _stack(*(setting_option(s) for s in method_flags()))(f)


gen_options = _stack(
    click.option("-n", "--n-predict", "n_predict", type=int, default=256, show_default=True,
                 help="Tokens to generate (-1: until end of generation)."),
    click.option("--temp", type=float, default=0.0, show_default=True, help="Temperature; 0 is greedy."),
    click.option("--top-k", type=int, default=40, show_default=True),
    click.option("--top-p", type=float, default=0.95, show_default=True),
    click.option("-s", "--seed", type=int, default=DEFAULT_SEED, help="Sampling seed [default: random]."),
)
