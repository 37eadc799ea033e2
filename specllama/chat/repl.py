"""The interactive loop: line editing and history (readline), multiline input, Ctrl-C, streaming.

A turn runs in a worker thread while the main thread waits, because Python runs signal handlers
only in the main thread and only between bytecodes: a Ctrl-C during a long ``llama_decode`` would
otherwise wait for the decode to end. The handler calls :meth:`ChatSession.interrupt`, which sets
llama.cpp's abort flag, so a prefill or an answer stops within one graph node.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, TextIO

from ..errors import SpecllamaError
from .commands import COMMANDS, Commands, parse
from .session import ChatSession, TurnStats

PROMPT = ">>> "
MORE = "... "
FENCE = '"""'


def run_interruptible(fn: Callable[[], TurnStats], on_interrupt: Callable[[], None]) -> TurnStats:
    """Run ``fn`` in a worker thread; each SIGINT meanwhile calls ``on_interrupt`` instead of raising.

    Off the main thread (where signals cannot be handled) ``fn`` simply runs inline.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    box: dict = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="specllama-turn", daemon=True)
    old = signal.signal(signal.SIGINT, lambda *_: on_interrupt())
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
    finally:
        signal.signal(signal.SIGINT, old)
    if "error" in box:
        raise box["error"]
    return box["value"]


def setup_readline() -> Callable[[], str]:
    """Enable line editing, history and command completion when readline exists.

    Returns a function giving the line being edited (for Ctrl-C: was the prompt empty?).
    """
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return lambda: ""

    def complete(text: str, state: int):
        line = readline.get_line_buffer()
        if line.startswith("/read "):
            import glob

            hits = glob.glob(os.path.expanduser(text) + "*")
            hits = [h + ("/" if os.path.isdir(h) else "") for h in hits]
        elif line.startswith("/load "):
            from .saved import saved_names

            hits = [n for n in saved_names() if n.startswith(text)]
        else:
            hits = [c + " " for c in COMMANDS if c.startswith(text)]
        return hits[state] if state < len(hits) else None

    readline.set_completer_delims(" \t\n")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    readline.set_history_length(1000)
    return readline.get_line_buffer


def terminal_input(err: TextIO) -> Callable[[str], str]:
    """``input`` with the prompt on the terminal: stdout when it is one, else stderr."""
    if sys.stdout.isatty():
        return input

    def read(prompt: str) -> str:
        err.write(prompt)
        err.flush()
        return input()

    return read


class Repl:
    """One interactive chat.

    Args:
        session: the conversation and models.
        read_line: ``read_line(prompt) -> str``; raises EOFError (Ctrl-D) or KeyboardInterrupt.
        out, err: where answers and everything else go.
        stats: print a stats line after each answer.
        line_buffer: the text being edited when Ctrl-C was pressed ("" if unknown).
        interruptible: runs a turn so that Ctrl-C interrupts it (see :func:`run_interruptible`).
    """

    def __init__(self, session: ChatSession, read_line: Callable[[str], str], out: TextIO, err: TextIO,
                 stats: bool = False, line_buffer: Callable[[], str] = lambda: "",
                 interruptible=run_interruptible):
        self.session = session
        self.read_line = read_line
        self.out = out
        self.err = err
        self.commands = Commands(session, self.say, stats)
        self.line_buffer = line_buffer
        self.interruptible = interruptible
        self.armed = False  # the last thing the user did was a Ctrl-C

    def say(self, line: str) -> None:
        self.err.write(line + "\n")
        self.err.flush()

    # -- input --------------------------------------------------------------------------------
    def read_message(self) -> tuple[str, bool]:
        """The next message and whether it was fenced with \"\"\" (never a command then)."""
        line = self.read_line(PROMPT)
        head = line.lstrip()
        if not head.startswith(FENCE):
            return line, False
        body = head[len(FENCE):]
        if body.rstrip().endswith(FENCE):
            return body.rstrip()[:-len(FENCE)], True
        lines = [body] if body else []
        while True:
            more = self.read_line(MORE)
            if more.rstrip().endswith(FENCE):
                lines.append(more.rstrip()[:-len(FENCE)])
                return "\n".join(lines).strip("\n"), True
            lines.append(more)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, first: str | None = None) -> int:
        """Chat until /bye, Ctrl-D or a second Ctrl-C; return the exit code."""
        if first:
            self.handle(first, fenced=False)
        while True:
            try:
                text, fenced = self.read_message()
            except EOFError:
                self.err.write("\n")
                return 0
            except KeyboardInterrupt:
                typed = self.line_buffer()
                self.err.write("\n")
                if typed.strip():
                    self.armed = False
                    continue
                if self.armed:
                    return 130
                self.armed = True
                self.say("(Ctrl-C again to leave, or /bye)")
                continue
            self.armed = False
            if not text.strip():
                continue
            code = self.handle(text, fenced)
            if code is not None:
                return code

    def handle(self, text: str, fenced: bool) -> int | None:
        """Run a message or a command; return an exit code when the chat should end."""
        cmd = None if fenced else parse(text)
        try:
            if cmd is None:
                self.turn(lambda emit: self.session.ask(text, emit))
                return None
            outcome = self.commands.run(cmd)
            if outcome.exit is not None:
                return outcome.exit
            if outcome.regen:
                self.turn(lambda emit: self.session.regen(emit))
        except SpecllamaError as exc:
            msg = str(exc).strip()
            self.say(f"specllama: error: {msg.splitlines()[0] if msg else type(exc).__name__}")
        except KeyboardInterrupt:  # e.g. while /read loads a large file
            self.err.write("\n")
            self.say("(interrupted)")
            self.armed = True
        return None

    def turn(self, fn: Callable[[Callable[[str], None]], TurnStats]) -> TurnStats:
        """Run one answer, streaming it to ``out``, then report how it ended."""
        wrote = {"last": "\n"}

        def emit(piece: str) -> None:
            self.out.write(piece)
            self.out.flush()
            wrote["last"] = piece

        stats = self.interruptible(lambda: fn(emit), self.session.interrupt)
        if not wrote["last"].endswith("\n"):
            self.out.write("\n")
            self.out.flush()
        if stats.stop == "interrupted":
            self.armed = True
            self.say("(interrupted; the conversation is kept)" if stats.answered
                     else "(interrupted before the answer; that message was not kept)")
        elif stats.stop == "length":
            self.say(f"(stopped at -n {self.session.gen.n_predict} tokens; /set n -1 for no limit)")
        elif stats.stop == "context":
            self.say("(the target's context is full; /clear or raise -c)")
        if self.commands.stats and stats.answered:
            self.say(f"specllama: {stats.summary()}")
        return stats
