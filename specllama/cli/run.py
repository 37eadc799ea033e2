"""``specllama run``: one prompt, one answer on stdout, one summary line on stderr."""

from __future__ import annotations

import json
import sys

import click

from ..engine import lib
from ..preflight import prepare_runtime
from ..prompt import build_prompt, document_request
from ..runtime import Runtime
from ..settings import gen_config, method_from, runtime_config, wants_draft
from .flags import check_method_flags
from ..inputs import read_prompt
from .serve import upstream_from, upstream_options, upstream_runtime
from ..options import gen_options, method_options, model_options, prompt_options
from .output import note


def load_request(rt: Runtime, o: dict):
    """Read and tokenize the request described by the prompt options."""
    text = read_prompt(o.get("prompt"), o.get("file"))
    return build_prompt(rt.target, document_request(text, o.get("question"), o.get("system")),
                        o.get("chat_template"), o.get("raw", False))


def local_runtime(o: dict) -> Runtime:
    """The target (and draft) runtime the model options describe, both files checked up front."""
    return Runtime(prepare_runtime(runtime_config(o, wants_draft(o)), note))


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
    check_method_flags(o)
    up = upstream_from(o)
    with (upstream_runtime(o) if up else local_runtime(o)) as rt:
        method = method_from(o, rt.has_draft)
        gen = gen_config(o)
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
