"""``specllama chat``: an interactive long-context chat; a single turn when stdin is not a terminal."""

from __future__ import annotations

import os
import sys

import click

from ..engine import lib
from ..errors import ConfigError, Interrupted, PromptError
from ..preflight import prepare_runtime
from ..runtime import Runtime
from ..inputs import read_prompt
from ..settings import resolve
from ..options import gen_options, method_options, model_options, prompt_options
from .output import note


def _document(o: dict, stdin_ok: bool) -> tuple[str, str] | None:
    """``(text, name)`` of the document given with -p / -f (or piped on stdin when ``stdin_ok``)."""
    if o.get("prompt") is None and o.get("file") is None and not stdin_ok:
        return None
    text = read_prompt(o.get("prompt"), o.get("file"), stdin_ok=stdin_ok)
    if o.get("file") not in (None, "-"):
        name = os.path.basename(o["file"])
    else:
        name = "-p" if o.get("prompt") is not None else "stdin"
    if not text.strip():
        if o.get("question"):
            return None
        raise PromptError(f"the prompt is empty ({name})")
    return text, name


@click.command()
@model_options
@prompt_options
@method_options
@gen_options
@click.option("--stats", "show_stats", is_flag=True, help="Print a stats line after each answer.")
def chat(show_stats: bool, **o) -> int:
    """Chat with the target about long documents (/read FILE); earlier turns stay in the KV cache.

    -p/-f attach a document to the first message and --question asks it. When stdin is not a
    terminal, one turn is answered (stdin is the document, as with `run`) and chat exits.
    Type /help inside for the commands.
    """
    from ..chat.progress import terminal_progress
    from ..chat.repl import Repl, run_interruptible, setup_readline, terminal_input
    from ..chat.session import ChatSession

    lib.init(o.get("verbose"))
    if o.get("raw"):
        raise ConfigError("--raw has no chat template to hold a conversation; use `specllama run --raw`")
    tty = sys.stdin.isatty()
    cfg = prepare_runtime(resolve(o)[0], note)  # the settings are checked before any model loads
    with Runtime(cfg) as rt:
        session = ChatSession(rt, o, template=o.get("chat_template"), system=o.get("system"),
                              progress=terminal_progress(sys.stderr), note=note)
        try:
            doc = _document(o, stdin_ok=not tty)
            if doc is not None:
                session.attach(*doc)
            if not tty:
                return _single_turn(session, o.get("question") or "", show_stats, run_interruptible)
            line_buffer = setup_readline()
            note(f"chat with {rt.target.name}"
                 + (f" (draft {rt.draft.name})" if rt.has_draft else "")
                 + f", {session.method.describe()}; /help for commands, /bye to leave")
            if doc is not None:
                note(f"attached {doc[1]} to your first message")
            repl = Repl(session, terminal_input(sys.stderr), sys.stdout, sys.stderr, stats=show_stats,
                        line_buffer=line_buffer)
            return repl.run(first=o.get("question"))
        finally:
            session.close()


def _single_turn(session, question: str, show_stats: bool, interruptible) -> int:
    out = sys.stdout

    def emit(piece: str) -> None:
        out.write(piece)
        out.flush()

    stats = interruptible(lambda: session.ask(question, emit), session.interrupt)
    if stats.text and not stats.text.endswith("\n"):
        out.write("\n")
    out.flush()
    if stats.stop == "interrupted":
        raise Interrupted("interrupted")
    if show_stats:
        note(stats.summary())
    return 0
