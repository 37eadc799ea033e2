"""Method settings are declared once (``methods/setting.py``): a method registered with one new
setting gets its flag, its server field and its API keyword with nothing else written."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from specllama.api import Session
from specllama.errors import ConfigError
from specllama.methods import METHODS, Budget, Method, all_settings
from specllama.methods.setting import Configured, Setting, validate
from specllama.options import method_options
from specllama.runtime import RuntimeConfig
from specllama.serve.errors import ApiError
from specllama.serve.schema import build_method, method_fields, parse_chat, parse_method_opts
from specllama.settings import resolve

HEAD = Setting("head_width", ("--head-width",), int, min=1, show_default=True, strict=True,
               help="headonly: tokens kept from the head of the prompt.")


@dataclass(frozen=True)
class HeadConfig:
    width: int = HEAD.field(8)

    def __post_init__(self):
        validate(self)


class HeadOnly(Method):
    name = "headonly"
    help = "test method: the head of the prompt"
    settings = {"cfg": Configured(HeadConfig)}

    def __init__(self, budget: Budget = Budget(), cfg: HeadConfig = HeadConfig(), **_):
        super().__init__(budget=budget)
        self.cfg = cfg


@pytest.fixture
def headonly(monkeypatch):
    monkeypatch.setitem(METHODS, HeadOnly.name, HeadOnly)  # the one registry entry


def command() -> click.Command:
    @click.command()
    @method_options
    def probe(**o):
        click.echo(repr(o))

    return probe


def options(*args: str) -> dict:
    return command().make_context("probe", list(args)).params


def test_a_registered_method_gets_its_flag(headonly):
    out = CliRunner().invoke(command(), ["--help"], terminal_width=100).output
    line = next(ln for ln in out.splitlines() if "--head-width" in ln)
    assert "headonly: tokens kept from the head of the prompt." in line and "[default: 8]" in line
    assert "headonly" in next(ln for ln in out.splitlines() if "--method" in ln)
    _, m, _ = resolve(options("--method", "headonly", "--head-width", "3"), RuntimeConfig(target="t.gguf"))
    assert isinstance(m, HeadOnly) and m.cfg.width == 3
    _, m, _ = resolve(options("--method", "headonly"), RuntimeConfig(target="t.gguf"))
    assert m.cfg.width == 8  # the default declared in HeadConfig
    with pytest.raises(ConfigError, match="--head-width must be >= 1, got 0"):
        resolve(options("--method", "headonly", "--head-width", "0"), RuntimeConfig(target="t.gguf"))
    with pytest.raises(ConfigError, match=r"^--head-width applies to --method headonly only \(not dense\)$"):
        resolve(options("--method", "dense", "--head-width", "3"), RuntimeConfig(target="t.gguf"))


def test_a_registered_method_gets_its_server_field(headonly):
    assert isinstance(method_fields()["head_width"], Setting)
    assert parse_method_opts({"head_width": 3}) == {"head_width": 3}
    with pytest.raises(ApiError, match="specllama.head_width must be an integer"):
        parse_method_opts({"head_width": "3"})
    req = parse_chat({"messages": [{"role": "user", "content": "hi"}],
                      "specllama": {"method": "headonly", "head_width": 5}})
    assert build_method(req, {}, has_draft=False).cfg.width == 5
    bad = parse_chat({"messages": [{"role": "user", "content": "hi"}],
                      "specllama": {"method": "headonly", "head_width": 0}})
    with pytest.raises(ApiError, match="--head-width must be >= 1") as ei:
        build_method(bad, {}, has_draft=False)
    assert ei.value.status == 400 and ei.value.param == "specllama"


def api_session(draft: bool = True) -> Session:
    s = object.__new__(Session)  # the keyword handling only: no models
    s.rt = SimpleNamespace(cfg=RuntimeConfig(target="t.gguf", draft="d.gguf" if draft else None))
    return s


def test_a_registered_method_gets_its_api_keyword(headonly):
    m, _ = api_session().configs("headonly", head_width=4)
    assert m.cfg.width == 4


def test_unregistered_methods_leave_no_trace():
    assert "head_width" not in method_fields()
    assert "--head-width" not in CliRunner().invoke(command(), ["--help"]).output


def test_api_keywords_are_the_declared_settings():
    from specllama.api import options as api_options

    m, gen = api_session().configs("specpc", window=16, draft_attn="full", n_predict=7)
    assert m.prompt_stage.cfg.attention.window == 16 and m.prompt_stage.cfg.draft.attn == "full"
    assert gen.n_predict == 7
    with pytest.raises(TypeError, match="'windw'"):
        api_options({"windw": 16})
    with pytest.raises(ConfigError, match="--draft-attn applies to --method specpc only"):
        api_session().configs("speckv", draft_attn="full")


def test_api_speckvpc_lookahead_follows_n_predict():
    # the CLI and the server always gave the SpecKV-PC draft -n lookahead tokens; the API now does too
    m, _ = api_session().configs("speckvpc", n_predict=17)
    assert m.prompt_stage.cfg.lookahead == 17


def test_server_budget_pc_below_one_names_budget_pc():
    req = parse_chat({"messages": [{"role": "user", "content": "hi"}],
                      "specllama": {"method": "speckvpc", "budget_pc": 0}})
    with pytest.raises(ApiError, match=r"--budget-pc must be >= 1, got 0"):
        build_method(req, {}, has_draft=True)


def test_each_setting_is_declared_once():
    keys = [s.key for s in all_settings()]
    flags = [f for s in all_settings() for f in s.flags]
    assert len(keys) == len(set(keys)) and len(flags) == len(set(flags))
    assert set(method_fields()) == {"method", *keys}
