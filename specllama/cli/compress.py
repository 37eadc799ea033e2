"""``specllama compress``: print the SpecPC-compressed prompt for any other engine."""

from __future__ import annotations

import json
import sys

import click

from ..api import Compressed
from ..engine import lib
from ..pipeline import select_prompt
from ..prompt import compressed_messages
from ..runtime import Runtime
from .options import method_options, model_options, prompt_options
from ..settings import method_from, runtime_config
from .output import note
from .run import load_request


@click.command()
@model_options
@prompt_options
@method_options
@click.option("--gap", default="", metavar="TEXT", help="Text inserted where tokens were dropped.")
@click.option("--json", "as_json", is_flag=True, help="Also print kept indices and counts, as JSON.")
def compress(gap: str, as_json: bool, **o) -> None:
    """Print the compressed user message (documents cut to the kept tokens, question intact)."""
    lib.init(o.get("verbose"))
    o["method"] = "specpc"
    cfg = runtime_config(o, need_draft=True)
    with Runtime(cfg) as rt:
        method = method_from(o, True)
        prompt = load_request(rt, o)
        kept, job = select_prompt(rt, prompt, method)
        msgs = compressed_messages(rt.target, prompt, kept, gap)
        user = next((c for r, c in reversed(msgs) if r == "user"), "")
        res = Compressed(user, msgs, kept, prompt.n, job.timings, job.notes)
    for n in res.notes:
        note(n)
    if as_json:
        json.dump({"text": res.text, "messages": [{"role": r, "content": c} for r, c in res.messages],
                   "kept": res.kept.tolist(), "n_prompt": res.n_prompt, "n_kept": res.n_kept,
                   "timings": res.timings.as_dict()}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(res.text if res.text.endswith("\n") else res.text + "\n")
    sys.stdout.flush()
    note(f"specpc: kept {res.n_kept}/{res.n_prompt} tokens | draft {res.timings.draft_ms / 1000:.2f} s")
