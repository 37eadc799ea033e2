"""Jinja chat templates that llama.cpp's built-in list does not know are rendered (as llama-server's
``--jinja`` does), from ``--chat-template`` text or from the GGUF itself; their errors say so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from models.synth import TinySpec, write_tiny
from specllama.engine import Model
from specllama.engine.template import apply_template
from specllama.errors import ConfigError
from specllama.prompt import Message, Part, build_prompt

CUSTOM = ("{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}{{ eos_token }}\n{% endfor %}"
          "{% if add_generation_prompt %}[ASSISTANT] {% endif %}")


def test_jinja_template_unknown_to_llama_cpp_renders():
    text = apply_template(CUSTOM, [("system", "be brief"), ("user", "hi")], eos="</s>")
    assert text == "[SYSTEM] be brief</s>\n[USER] hi</s>\n[ASSISTANT] "


def test_protected_segments_with_a_jinja_template(tiny_path):
    with Model(tiny_path) as m:
        msgs = [Message("system", (Part("be brief", False),)),
                Message("user", (Part("the green sky " * 5, True), Part("what colour?", False)))]
        p = build_prompt(m, msgs, template=CUSTOM)
        text = m.detokenize(p.tokens)
        assert text.startswith("[SYSTEM] be brief") and text.endswith("[ASSISTANT] ")
        doc = m.detokenize(p.tokens[~p.protected])
        assert doc.strip() == ("the green sky " * 5).strip()  # only the document is compressible


def test_gguf_with_its_own_unknown_jinja_template(tmp_path):
    path = write_tiny(tmp_path / "custom.gguf", TinySpec(chat_template=CUSTOM))
    with Model(path) as m:
        p = build_prompt(m, [Message("user", (Part("hello there", True),))])
        assert m.detokenize(p.tokens).startswith("[USER] hello there")


@pytest.mark.parametrize("template,match", [
    ("{% for m in messages %}{{ m.content }", "Jinja syntax error on line 1"),
    ("{{ raise_exception('only user messages') }}", "only user messages"),
    ("{{ messages[5].content }}", "the Jinja template failed"),
    ("zephyr-nope", "unknown chat template name 'zephyr-nope'"),
])
def test_template_errors_name_what_is_wrong(template, match):
    with pytest.raises(ConfigError, match=match):
        apply_template(template, [("user", "hi")])


def test_cli_chat_template_jinja_and_syntax_error(tiny_path, tmp_path):
    env = dict(os.environ, SPECLLAMA_CACHE=str(tmp_path))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "specllama", "run", "-m", tiny_path, "-p", "the green sky",
                               "-n", "2", *args], capture_output=True, env=env, timeout=120)

    ok = run("--chat-template", CUSTOM)
    assert ok.returncode == 0, ok.stderr.decode()
    bad = run("--chat-template", "{% if %}")
    err = bad.stderr.decode()
    assert bad.returncode == 2 and err.count("\n") == 1
    assert "--chat-template: Jinja syntax error" in err and "Traceback" not in err
