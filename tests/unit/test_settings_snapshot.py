"""What users see of the method settings, pinned: the flags of every command that takes them (names,
types, defaults, help), ``specllama run --help`` itself, the server's ``specllama`` fields and their
400s, and the configs (or the one-line errors) that the flags, a request and API keywords produce.

``settings_snapshot.json`` was written from the code before the settings were declared once
(``python tests/unit/test_settings_snapshot.py --write``); a change that alters anything users see
fails here. One change was made on purpose since: ``--budget-pc 0`` given straight to the builder
(as a server request does) names ``--budget-pc``, not ``--budget`` (the ``*/29/cli`` entries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from specllama.errors import ConfigError
from specllama.methods import method_names

SNAPSHOT = Path(__file__).with_name("settings_snapshot.json")
ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("run", "compress", "chat", "serve", "bench")
METHODS = (None, "dense", "specpc", "speckv", "speckvpc", "snapkv", "streaming", "truncate", "random")
CASES = [
    {}, {"budget": 300}, {"keep": 0.3}, {"budget_pc": 900},
    {"window": 16, "kernel": 5, "lookahead": 3, "pool": "avg", "reduction": "mean", "neighbours": 2,
     "start_layer": 1, "no_weighted_query": True, "positions": "original", "budget_pc": 900},
    {"window": 16}, {"kernel": 5}, {"lookahead": 3}, {"lookahead": 0}, {"lookahead": -1},
    {"lookahead": 4, "draft_layers": 2}, {"lookahead": 5, "n_predict": 3}, {"n_predict": 17},
    {"n_predict": -1}, {"draft_attn": "full"}, {"draft_window": 128, "draft_sinks": 8},
    {"draft_layers": 0}, {"draft_layers": 3}, {"draft_layers": -1}, {"draft_window": 0},
    {"draft_sinks": -1}, {"draft_attn": "full", "draft_layers": 0}, {"kernel": 0}, {"window": 0},
    {"neighbours": 0}, {"start_layer": -1}, {"budget": 0}, {"keep": 1.5}, {"budget": 10, "keep": 0.5},
    {"budget_pc": 0}, {"reduction": "mean"}, {"pool": "avg"}, {"no_weighted_query": True},
    {"positions": "original"},
]
RAW_CASES = (0, 4, 12, 13)  # also without the CLI's defaults (as API users and bench pass them)
SERVED_CASES = (0, 1, 2, 3, 4, 8, 9, 10, 12, 14, 18, 26, 28)
API_CASES = [
    {}, {"budget": 50}, {"keep": 0.5}, {"budget": 5, "keep": 0.5},
]


def _type(t) -> str:
    if isinstance(t, click.Choice):
        return "choice:" + ",".join(map(str, t.choices))
    return type(t).__name__


def option_table(cmd: click.Command) -> list[dict]:
    return [{"name": p.name, "opts": p.opts, "secondary": p.secondary_opts, "type": _type(p.type),
             "default": _plain(p.default), "flag": getattr(p, "is_flag", False),
             "show_default": getattr(p, "show_default", None), "help": getattr(p, "help", None),
             "metavar": p.metavar, "envvar": getattr(p, "envvar", None)}
            for p in cmd.params]


def _plain(v):
    return repr(v) if not isinstance(v, (int, float, str, bool, type(None))) else v


def _stage(s) -> str | None:
    """A stage as one line: its class and what it was built with (its config, or its attributes)."""
    if s is None:
        return None
    if hasattr(s, "cfg"):
        return f"{type(s).__name__}({s.cfg!r})"
    return f"{type(s).__name__}{sorted((k, _plain(v)) for k, v in vars(s).items())}"


def describe(m) -> str:
    return (f"{type(m).__name__} {m.name!r} {m.budget!r} pc={m.budget_pc!r} draft={m.needs_draft} "
            f"{m.describe()!r} | {_stage(m.prompt_stage)} | {_stage(m.kv_stage)}")


def outcome(fn, *args):
    try:
        return describe(fn(*args))
    except ConfigError as exc:
        return "error: " + str(exc)


def cli_defaults() -> dict:
    from specllama.cli.run import run

    return {p.name: p.default for p in run.params}


def build_from_options(o: dict, has_draft: bool):
    from specllama.settings import method_from

    return method_from(o, has_draft)


def build_from_request(opts: dict, defaults: dict, has_draft: bool, n_predict: int):
    from specllama.serve.errors import ApiError
    from specllama.serve.schema import build_method, parse_chat

    req = parse_chat({"messages": [{"role": "user", "content": "hi"}], "specllama": opts})
    try:
        return build_method(req, defaults, has_draft, n_predict)
    except ApiError as exc:
        raise ConfigError(f"{exc.status} {exc.param}: {exc.message}") from None


def build_from_api(method: str, kw: dict):
    from types import SimpleNamespace

    from specllama.api import Session
    from specllama.runtime import RuntimeConfig

    s = object.__new__(Session)  # the keyword handling only: no models
    s.rt = SimpleNamespace(cfg=RuntimeConfig(target="t.gguf", draft="d.gguf"))
    return s.configs(method, None, **kw)[0]


def run_help() -> str:
    """``specllama run --help`` as a fresh process renders it (click caches a command's help option
    on first use, so a test that ran ``run`` on its own would change ``-h, --help`` here)."""
    code = ("from click.testing import CliRunner; from specllama.cli.main import cli; "
            "print(CliRunner().invoke(cli, ['run', '--help'], terminal_width=100).output, end='')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True, timeout=120).stdout


def snapshot() -> dict:
    from specllama import registry
    from specllama.cli.main import cli
    from specllama.serve.errors import ApiError
    from specllama.serve.schema import method_fields, parse_method_opts
    from specllama.settings import gen_config, runtime_config, wants_draft

    out: dict = {"methods": method_names()}
    out["options"] = {c: option_table(cli.commands[c]) for c in COMMANDS}
    out["run_help"] = run_help()
    fields = sorted(method_fields())
    out["server_fields"] = fields
    bad = {}
    for f in fields + ["bogus"]:
        for v in ([], "x", 1.5, True):
            try:
                parse_method_opts({f: v})
                bad[f"{f}={v!r}"] = "ok"
            except ApiError as exc:
                bad[f"{f}={v!r}"] = f"{exc.param}: {exc.message}"
    out["server_errors"] = bad
    defaults = cli_defaults()
    built, served = {}, {}
    for name in METHODS:
        for i, case in enumerate(CASES):
            o = {**case, "method": name}
            if i in RAW_CASES:
                built[f"{name}/{i}/raw"] = outcome(build_from_options, o, True)
            built[f"{name}/{i}/cli"] = outcome(build_from_options, {**defaults, **o}, True)
            if name is not None and i in SERVED_CASES:
                opts = {k: v for k, v in o.items() if k != "n_predict"}
                served[f"{name}/{i}"] = outcome(build_from_request, opts, {k: defaults.get(k) for k in fields},
                                                True, case.get("n_predict", 256))
        built[f"{name}/nodraft"] = outcome(build_from_options, {"method": name}, False)
        out[f"wants_draft/{name}"] = wants_draft({"method": name})
    out["built"], out["served"] = built, served
    out["served/nodraft"] = outcome(build_from_request, {"method": "specpc"}, {}, False, 256)
    out["api"] = {f"{m}/{i}": outcome(build_from_api, m, kw) for m in METHODS[1:] for i, kw in enumerate(API_CASES)}
    out["gen"] = [repr(gen_config(o)) for o in ({}, defaults, {"n_predict": 5, "temp": 0.5, "top_k": 3,
                                                               "top_p": 0.5, "seed": 9})]
    resolve = registry.resolve
    registry.resolve = lambda spec, role: spec  # paths only: no model cache needed
    try:
        out["runtime"] = [repr(runtime_config({**defaults, "target": "/x/t.gguf", "draft": d}, need))
                          for d, need in (("/x/d.gguf", True), (None, False), (None, None))]
    finally:
        registry.resolve = resolve
    return out


def test_settings_users_see_are_unchanged():
    want = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(snapshot()))
    for key in want:
        assert got.get(key) == want[key], key
    assert set(got) == set(want)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    SNAPSHOT.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n")
