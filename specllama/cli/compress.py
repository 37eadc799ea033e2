"""``specllama compress``: print the compressed prompt (the kept tokens) for any other engine.

Only methods that choose prompt tokens have a compressed prompt to print: ``specpc`` (the
default), ``truncate``, and ``dense`` (nothing dropped: the reference). The KV methods (``speckv``,
``speckvpc``, ``snapkv``, ``streaming``, ``random``) choose the target's KV cells after it has read
the whole prompt; ``--method`` refuses them with the reason.
"""

from __future__ import annotations

import json
import sys

import click

from ..api import Compressed
from ..engine import lib
from ..methods import METHODS, method_names
from ..pipeline import select_prompt
from ..preflight import prepare_runtime
from ..prompt import compressed_messages
from ..runtime import Runtime
from ..options import method_options, model_options, prompt_options
from ..settings import resolve
from .output import note
from .run import load_request

DEFAULT_METHOD = "specpc"
# the methods whose whole selection is a set of prompt tokens: no KV stage (a test checks this
# against the methods themselves; building every method here would run their config checks at import)
PROMPT_METHODS = ("dense", "specpc", "truncate")


def prompt_methods() -> list[str]:
    """The registered methods whose whole selection is a set of prompt tokens (no KV stage)."""
    return [n for n in method_names() if n in PROMPT_METHODS]


class PromptMethod(click.Choice):
    """``compress --method``: the prompt-selecting methods; a KV method is refused with the reason."""

    def __init__(self) -> None:
        super().__init__(prompt_methods())

    def convert(self, value, param, ctx):
        if value in METHODS and value not in self.choices:
            self.fail(f"{value} chooses the target's KV cells after it has read the whole prompt, so it "
                      f"has no compressed prompt to print; compress supports {', '.join(self.choices)}",
                      param, ctx)
        return super().convert(value, param, ctx)


def _prompt_method_option(f):
    """Put the prompt-selecting ``--method`` in place of the shared one (which lists every method),
    and drop ``--budget-pc``, which only the refused ``speckvpc`` reads."""
    option = click.Option(["--method"], type=PromptMethod(), default=None,
                          help=f"Compression method [default: {DEFAULT_METHOD}]; dense prints the "
                               "prompt unchanged.")
    f.__click_params__ = [option if p.name == "method" else p for p in f.__click_params__
                          if p.name != "budget_pc"]
    return f


def _as_json(res: Compressed, method: str) -> dict:
    """The ``--json`` object, laid out as ``run --json``'s (``timings`` as llama-server's)."""
    return {"text": res.text, "messages": [{"role": r, "content": c} for r, c in res.messages],
            "method": method, "n_prompt": res.n_prompt, "n_kept": res.n_kept, "kept": res.kept.tolist(),
            "notes": res.notes, "timings": res.timings.server_timings()}


def _summary(res: Compressed, method: str) -> str:
    """The stderr line: what was kept, and the draft's time when a draft ran."""
    line = f"{method}: kept {res.n_kept}/{res.n_prompt} tokens"
    if res.timings.draft_ms:
        line += f" | draft {res.timings.draft_ms / 1000:.2f} s"
    return line


@click.command()
@_prompt_method_option
@model_options
@prompt_options
@method_options
@click.option("--gap", default="", metavar="TEXT", help="Text inserted where tokens were dropped.")
@click.option("--json", "as_json", is_flag=True, help="Also print kept indices and counts, as JSON.")
def compress(gap: str, as_json: bool, **o) -> None:
    """Print the compressed user message (documents cut to the kept tokens, question intact)."""
    lib.init(o.get("verbose"))
    o["method"] = o.get("method") or DEFAULT_METHOD
    cfg, method, _ = resolve(o)
    with Runtime(prepare_runtime(cfg, note)) as rt:
        prompt = load_request(rt, o)
        kept, job = select_prompt(rt, prompt, method)
        msgs = compressed_messages(rt.target, prompt, kept, gap)
        user = next((c for r, c in reversed(msgs) if r == "user"), "")
        res = Compressed(user, msgs, kept, prompt.n, job.timings, job.notes)
    ran = method.name if res.n_kept < res.n_prompt else "dense"
    for n in res.notes:
        note(n)
    if as_json:
        sys.stdout.write(json.dumps(_as_json(res, ran), ensure_ascii=False) + "\n")  # whole or nothing
    else:
        sys.stdout.write(res.text if res.text.endswith("\n") else res.text + "\n")
    sys.stdout.flush()
    note(_summary(res, ran))
