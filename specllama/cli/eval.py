"""``specllama eval``: RULER (generated offline) and LongBench (local files), method x budget grid.

The markdown table goes to stdout; progress, ETA and notes to stderr; predictions, summary, table
and plot to ``--out``. Every input is checked before any model loads.
"""

from __future__ import annotations

import sys

import click

from ..engine import lib
from ..errors import ConfigError
from ..methods import method_names
from ..preflight import prepare_runtime
from ..runtime import Runtime
from ..settings import runtime_config
from ..options import model_options
from .output import note


def split_list(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise ConfigError(f"{flag} has an empty item: {value!r}")
    return items


def parse_ints(value: str | None, flag: str) -> list[int] | None:
    items = split_list(value, flag)
    if items is None:
        return None
    out = []
    for v in items:
        try:
            out.append(int(v))
        except ValueError:
            raise ConfigError(f"{flag}: {v!r} is not an integer") from None
    return out


def build_config(o: dict):
    """The :class:`EvalConfig` from the options and the preset (flags win over the preset)."""
    from ..eval import presets
    from ..eval.ruler import task_names
    from ..eval.runner import EvalConfig
    from ..eval.sample import PromptStyle

    p = presets.get(o.get("preset") or "quick")
    tasks = split_list(o.get("tasks"), "--tasks") or list(p.tasks)
    if tasks == ["all"] or tasks == ["ruler"]:
        tasks = task_names()
    methods = split_list(o.get("methods"), "--methods")
    if methods is None:
        methods = list(p.methods) if p.methods is not None else method_names()
    elif methods == ["all"]:
        methods = method_names()
    budgets = parse_ints(o.get("budgets"), "--budgets")
    if budgets is None:
        budgets = list(p.budgets)
    length = p.length if o.get("length") is None else o["length"]
    limit = p.limit if o.get("limit") is None else o["limit"]
    scope = o.get("budget_scope") or p.budget_scope
    drafts = ()
    if o.get("drafts") is not None:
        from ..drafts import resolve_drafts

        if o.get("draft"):
            raise ConfigError("give either -md or --drafts, not both (list -md's draft in --drafts)")
        drafts = resolve_drafts(o["drafts"])
        o["draft"] = drafts[0].path  # the runtime's draft; the others share its target
    return EvalConfig(tasks=tuple(tasks), length=length, methods=tuple(methods), budgets=tuple(budgets),
                      limit=limit, seed=o.get("data_seed", 42), out=o.get("out") or "specllama-eval",
                      longbench=o.get("longbench"),
                      style=PromptStyle(o.get("chat_template"), o.get("raw", False)),
                      plot=not o.get("no_plot", False), exact_draft=o.get("exact_draft", False),
                      budget_scope=scope, dense=not o.get("no_dense", False), drafts=drafts)


@click.command("eval")
@model_options
@click.option("--preset", type=click.Choice(["quick", "cpu", "cpu-long", "full"]), default=None,
              help="Defaults for tasks, length, methods, budgets and limit [default: quick].")
@click.option("--tasks", metavar="LIST",
              help="Comma-separated RULER tasks (or 'all'), longbench/<dataset>, or longbench.")
@click.option("--length", type=int, default=None, help="RULER length in target tokens, prompt + answer.")
@click.option("--methods", metavar="LIST", help="Comma-separated methods (or 'all'); dense is always run.")
@click.option("--budgets", metavar="LIST", help="Comma-separated token budgets, e.g. 256,512,1024.")
@click.option("--budget-scope", "budget_scope", type=click.Choice(["prompt", "context"]), default=None,
              help="What a budget counts: every prompt token kept, or only the context tokens kept, "
                   "the protected instructions and question on top [default: the preset's].")
@click.option("--limit", type=int, default=None, help="Samples per task.")
@click.option("--data-seed", "data_seed", type=int, default=42, show_default=True,
              help="Seed of the generated RULER samples.")
@click.option("--out", metavar="DIR", default=None,
              help="Output directory; rerunning into it resumes [default: specllama-eval].")
@click.option("--longbench", metavar="PATH", help="LongBench's official JSONL: a directory or one file.")
@click.option("--chat-template", "chat_template", metavar="NAME",
              help="Chat template name or Jinja text [default: the target GGUF's].")
@click.option("--raw", is_flag=True, help="Prompts without a chat template.")
@click.option("--no-plot", "no_plot", is_flag=True, help="Do not write plot.png.")
@click.option("--compare", nargs=2, metavar="A B", default=None,
              help="Report mode: pair two saved columns (LABEL in --out, or DIR:LABEL), e.g. specpc@512 dense.")
@click.option("--per-sample", "per_sample", is_flag=True, help="With --compare: also list every sample.")
@click.option("--no-dense", "no_dense", is_flag=True,
              help="Skip the dense reference column (at long lengths it costs more than the rest).")
@click.option("--drafts", metavar="LIST",
              help="Compare several drafts on the same samples in one run: comma-separated GGUF paths or "
                   "model names (as -md takes); each draft-based column comes once per draft, labelled "
                   "method~NAME@B, dense once.")
@click.option("--exact-draft", "exact_draft", is_flag=True,
              help="Add specpc~exact columns: specpc with the exact draft (--draft-attn full, all layers).")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="Print the plan (jobs, target and draft passes, estimated time) and exit; loads no model.")
def eval_cmd(**o) -> None:
    """Score methods and budgets on RULER (generated offline) or local LongBench files.

    Each sample runs through the same pipeline as `specllama run`, greedy, with the task's answer
    length. Prints a markdown table (task x method@budget, average, % of dense); writes
    predictions.jsonl, summary.json, table.md and plot.png under --out. With --compare A B it loads
    no model: it pairs two saved columns on the same samples and prints their differences.
    """
    if o.get("compare"):
        compare_cmd(o)
        return
    if o.get("per_sample"):
        raise ConfigError("--per-sample needs --compare A B")
    from ..eval import presets
    from ..eval.runner import check_models, run
    from ..scoring import ScoreCache

    cfg = build_config(o)
    if o.get("dry_run"):
        from ..eval.plan import describe, estimate

        sys.stdout.write(describe(cfg, estimate(cfg), o.get("preset")))
        sys.stdout.flush()
        return
    rt_cfg = prepare_runtime(runtime_config(o, cfg.needs_draft), note)
    check_models(cfg, rt_cfg)
    if o.get("preset"):
        note(f"preset {o['preset']}: {presets.get(o['preset']).about}")
    lib.init(o.get("verbose"))
    with Runtime(rt_cfg) as rt:
        rt.score_cache = ScoreCache()  # one draft pass per sample serves every SpecPC budget
        res = run(cfg, rt, log=note)
    from ..eval.report import markdown

    sys.stdout.write(markdown(res.summary))
    sys.stdout.flush()
    note(f"{res.ran} job(s) run, {res.reused} reused; results in {cfg.out}/ "
         "(predictions.jsonl, summary.json, table.md" + (", plot.png)" if cfg.plot else ")"))


def compare_cmd(o: dict) -> None:
    """``--compare A B``: the paired table of two saved columns on stdout, notes on stderr; no model
    loads. Only --out, --tasks and --per-sample are read."""
    from ..eval.compare import compare, parse_ref
    from ..eval.paired_report import markdown as paired_markdown

    out = o.get("out") or "specllama-eval"
    a, b = (parse_ref(x, out) for x in o["compare"])
    c = compare(a, b, tasks=split_list(o.get("tasks"), "--tasks"), log=note)
    for name, n in c.fallbacks.items():
        if n:
            note(f"{name}: {n} sample(s) ran dense (the budget covered the prompt)")
    sys.stdout.write(paired_markdown(c, samples=o.get("per_sample", False)))
    sys.stdout.flush()
