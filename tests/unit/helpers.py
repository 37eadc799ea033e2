"""Small helpers shared by several test modules (imported as ``helpers``)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner


class Script:
    """A scripted REPL input: each call returns the next line, then EOF."""

    def __init__(self, *items):
        self.items = list(items)

    def __call__(self, _prompt):
        if not self.items:
            raise EOFError
        return self.items.pop(0)


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fail the test if any model file is loaded."""
    from specllama.engine import model

    def refuse(self, *a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(model.Model, "__init__", refuse)


def invoke_eval(args):
    """``specllama eval ARGS`` in-process."""
    from specllama.cli.main import cli

    return CliRunner().invoke(cli, ["eval", *args])


def wait_for(cond, timeout: float = 10.0) -> bool:
    """Poll ``cond()`` until it is true or ``timeout`` seconds pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()
