"""``specllama run``: one prompt, one answer on stdout, one summary line on stderr."""

from __future__ import annotations

import json
import sys

import click

from ..engine import lib
from ..prompt import build_prompt, document_request
from ..runtime import Runtime
from ..inputs import read_prompt
from .serve import configs, open_runtime, upstream_from, upstream_options
from ..options import gen_options, method_options, model_options, prompt_options
from .output import note


def load_request(rt: Runtime, o: dict):
    """Read and tokenize the request described by the prompt options."""
    text = read_prompt(o.get("prompt"), o.get("file"))
    return build_prompt(rt.target, document_request(text, o.get("question"), o.get("system")),
                        o.get("chat_template"), o.get("raw", False))


@click.command()
@model_options
@prompt_options
@method_options
@gen_options
@upstream_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@click.option("--quiet", is_flag=True, help="No summary line on stderr.")
def run(as_json: bool, quiet: bool, **o) -> None:
    """Answer one prompt (from -p, -f or stdin) with the chosen method."""
    from ..pipeline import generate
    from ..serve.upstream import generate_upstream

    lib.init(o.get("verbose"))
    up = upstream_from(o)
    cfg, method, gen = configs(o, up is not None)
    with open_runtime(cfg, up is not None) as rt:
        prompt = load_request(rt, o)
        out = sys.stdout

        def emit(piece: str) -> None:
            out.write(piece)
            out.flush()

        on_text = None if as_json else emit
        result = (generate_upstream(rt, prompt, method, gen, up, on_text, raw=o.get("raw", False)) if up
                  else generate(rt, prompt, method, gen, on_text=on_text))
    for n in result.notes:
        note(n)
    if as_json:
        out.write(json.dumps({"text": result.text, "method": result.method, "stop": result.stop,
                              "n_prompt": result.timings.n_prompt, "n_kept": result.timings.n_kept,
                              "kept": result.kept.tolist(), "notes": result.notes,
                              "timings": result.timings.server_timings(result.n_generated)},
                             ensure_ascii=False) + "\n")  # whole or nothing: never a broken object
    else:
        if not result.text.endswith("\n"):
            out.write("\n")
    out.flush()
    if not quiet:
        note(f"{result.method}: {result.timings.summary()}")
