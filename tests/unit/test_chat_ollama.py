"""The chat REPL speaks Ollama's commands too: /set parameter, /set system, /show info|system|
parameters; its errors name REPL commands, not CLI flags."""

from __future__ import annotations

import io

import pytest

from specllama.chat.commands import repl_words, set_changes
from specllama.chat.repl import Repl
from specllama.chat.session import ChatSession
from specllama.errors import ConfigError


from helpers import Script  # noqa: E402


@pytest.fixture()
def session(tiny_runtime):
    s = ChatSession(tiny_runtime, {"budget": 300, "window": 16, "kernel": 8, "n_predict": 5})
    yield s
    s.close()


def run(session, *items):
    out, err = io.StringIO(), io.StringIO()
    r = Repl(session, Script(*items), out, err, interruptible=lambda fn, _stop: fn())
    return r.run(), out.getvalue(), err.getvalue()


def test_set_parameter_uses_ollamas_names():
    assert set_changes("parameter", "temperature 0.5") == {"temp": 0.5}
    assert set_changes("parameter", "num_predict 64") == {"n_predict": 64}
    assert set_changes("parameter", "TOP_K 7") == {"top_k": 7}
    assert set_changes("parameter", "top_p 0.9") == {"top_p": 0.9}
    assert set_changes("parameter", "seed 42") == {"seed": 42}
    with pytest.raises(ConfigError, match="NAME one of temperature"):
        set_changes("parameter", "mirostat 2")
    with pytest.raises(ConfigError, match="/set parameter top_k needs an integer"):
        set_changes("parameter", "top_k many")


def test_repl_changes_parameters_and_system_and_shows_them(session):
    rc, out, err = run(session, "/set parameter temperature 0.7", "/set parameter top_k 5", "/set parameter seed 3",
                       "/set system 'Answer in one word.'", "/show parameters", "/show system", "/show info", "/bye")
    assert rc == 0 and out == ""
    g = session.gen
    assert (g.sampling.temp, g.sampling.top_k, g.sampling.seed) == (0.7, 5, 3)
    assert session.conv.system == "Answer in one word."
    assert "temperature  0.7" in err and "top_k        5" in err
    assert "Answer in one word." in err and "template" in err and "method" in err


def test_repl_errors_name_repl_commands_not_flags(session):
    rc, out, err = run(session, "/set budget 0", "/set parameter top_k -1", "/show colours", "/bye")
    assert rc == 0
    assert "/set budget must be >= 1" in err and "--budget" not in err
    assert "/set parameter top_k must be >= 0" in err and "--top-k" not in err
    assert "/show takes info, system or parameters" in err


def test_repl_words_leaves_other_text_alone():
    assert repl_words("-n must be >= 1 or -1, got 0") == "/set n must be >= 1 or -1, got 0"
    assert repl_words("--budget-pc must be >= 1") == "--budget-pc must be >= 1"
    assert repl_words("a non-flag --budgetary word") == "a non-flag --budgetary word"
