"""Slash commands of the chat REPL: parsing, ``/set`` values, and what each one does.

Commands write to the REPL's stderr (only model text goes to stdout) and return what the REPL
should do next; a user mistake raises a ``SpecllamaError`` whose one line the REPL prints.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..inputs import read_file
from ..errors import ConfigError, PromptError
from . import saved
from .session import ChatSession

HELP = """\
Commands:
  /read FILE        attach a document to your next message (repeat for several)
  /set KEY VALUE    change a setting: method NAME, budget N, keep F, temp T, n N, stats on|off
  /set parameter NAME VALUE   Ollama's names: temperature, num_predict, top_k, top_p, seed
  /set system TEXT  the system prompt (never compressed) from the next message on
  /show [info]      settings, models, template, context use; /show system, /show parameters
  /stats            what the last turn did: kept tokens, reuse, draft and target time, TTFT, t/s
  /save NAME        save the conversation, its settings and its KV cache (in the cache's chats/)
  /load NAME        resume a saved chat without reading its documents again (same models)
  /clear            forget the conversation (the system prompt stays)
  /regen            answer the last message again
  /help             this help
  /bye, /exit       leave (Ctrl-D too)
Input:
  \"\"\" starts and ends a multiline message; Ctrl-C stops an answer or a prefill and keeps the
  conversation; Ctrl-C twice at an empty prompt leaves with code 130."""

COMMANDS = ("/read", "/set", "/show", "/stats", "/save", "/load", "/clear", "/regen", "/help", "/bye", "/exit")
SET_KEYS = ("method", "budget", "keep", "temp", "n", "stats", "parameter", "system")
# Ollama's /set parameter names -> the session's option names
PARAMETERS = {"temperature": ("temp", float), "num_predict": ("n_predict", int), "top_k": ("top_k", int),
              "top_p": ("top_p", float), "seed": ("seed", int)}
# CLI flags in config errors -> the REPL command that sets the same thing
_FLAG_NAMES = {"--budget": "/set budget", "--keep": "/set keep", "--temp": "/set temp", "-n": "/set n",
               "--method": "/set method", "--top-k": "/set parameter top_k", "--top-p": "/set parameter top_p",
               "--seed": "/set parameter seed"}
_FLAG_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(f) for f in sorted(_FLAG_NAMES, key=len, reverse=True))
                      + r")(?![\w-])")


def repl_words(message: str) -> str:
    """A config error's message with CLI flags named as the REPL commands that set them."""
    return _FLAG_RE.sub(lambda m: _FLAG_NAMES[m.group(1)], message)


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def parse(line: str) -> Command | None:
    """``/name arg...`` -> Command; None when the line is a message, not a command."""
    s = line.strip()
    if not s.startswith("/") or s.startswith("//"):
        return None
    name, _, arg = s.partition(" ")
    return Command(name.lower(), arg.strip())


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _number(kind: type, key: str, value: str):
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"/set {key} needs {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def set_changes(key: str, value: str) -> dict:
    """The option changes ``/set KEY VALUE`` asks for (``stats`` is the REPL's, handled apart)."""
    if key == "method":
        return {"method": value}
    if key == "budget":
        return {"budget": _number(int, key, value), "keep": None}
    if key == "keep":
        return {"keep": _number(float, key, value), "budget": None}
    if key == "temp":
        return {"temp": _number(float, key, value)}
    if key == "n":
        return {"n_predict": _number(int, key, value)}
    if key == "parameter":
        name, _, raw = value.partition(" ")
        if name.lower() not in PARAMETERS or not raw.strip():
            raise ConfigError(f"usage: /set parameter NAME VALUE with NAME one of {', '.join(PARAMETERS)}")
        opt, kind = PARAMETERS[name.lower()]
        return {opt: _number(kind, f"parameter {name.lower()}", raw.strip())}
    raise ConfigError(f"/set knows {', '.join(SET_KEYS)}; got {key!r}")


@dataclass
class Outcome:
    """What the REPL does after a command: ``exit`` with a code, or run ``turn`` (``/regen``)."""

    exit: int | None = None
    regen: bool = False


class Commands:
    """Runs commands against a session; ``say`` writes one line to stderr; ``chats`` is where
    /save and /load keep chats (None: the cache's ``chats/``)."""

    def __init__(self, session: ChatSession, say: Callable[[str], None], stats: bool = False,
                 chats: Path | None = None):
        self.session = session
        self.say = say
        self.stats = stats
        self.chats = chats

    def run(self, cmd: Command) -> Outcome:
        handler = getattr(self, "do_" + cmd.name[1:], None)
        if cmd.name not in COMMANDS or handler is None:
            raise ConfigError(f"unknown command {cmd.name}; /help lists the commands")
        return handler(cmd.arg) or Outcome()

    def do_help(self, _arg: str) -> None:
        for line in HELP.splitlines():
            self.say(line)

    def do_bye(self, _arg: str) -> Outcome:
        return Outcome(exit=0)

    do_exit = do_bye

    def do_read(self, arg: str) -> None:
        if not arg:
            raise PromptError("usage: /read FILE")
        path = os.path.expanduser(_unquote(arg))
        n = self.session.attach(read_file(path), os.path.basename(path))
        k = len(self.session.conv.pending)
        self.say(f"attached {os.path.basename(path)} ({n} tokens) to your next message"
                 + (f" ({k} documents attached)" if k > 1 else ""))

    def do_set(self, arg: str) -> None:
        key, _, value = arg.partition(" ")
        key, value = key.strip().lower(), value.strip()
        if not key or not value:
            raise ConfigError(f"usage: /set KEY VALUE with KEY one of {', '.join(SET_KEYS)}")
        if key == "stats":
            if value.lower() not in ("on", "off"):
                raise ConfigError(f"/set stats takes on or off, got {value!r}")
            self.stats = value.lower() == "on"
            self.say(f"stats {'on' if self.stats else 'off'}")
            return
        if key == "system":
            self.session.conv.system = _unquote(value) or None
            self.say("system prompt set; it applies from your next message")
            return
        try:
            self.session.configure(**set_changes(key, value))
        except ConfigError as exc:
            raise ConfigError(repl_words(str(exc))) from None
        m = self.session.method
        if key in ("method", "budget", "keep"):
            self.say(f"method: {m.describe()}")
        else:
            self.say(f"{key} = {value}")

    def do_show(self, arg: str) -> None:
        what = arg.strip().lower()
        if what == "system":
            self.say(self.session.conv.system or "(no system prompt)")
            return
        if what == "parameters":
            o = self.session.gen
            s = o.sampling
            for name, v in (("temperature", s.temp), ("num_predict", o.n_predict), ("top_k", s.top_k),
                            ("top_p", s.top_p), ("seed", s.seed)):
                self.say(f"{name:<12} {v}")
            return
        if what not in ("", "info"):
            raise ConfigError(f"/show takes info, system or parameters, got {arg.strip()!r}")
        for k, v in self.session.facts():
            self.say(f"{k:<9} {v}")
        self.say(f"{'stats':<9} {'on' if self.stats else 'off'}")

    def do_stats(self, _arg: str) -> None:
        last = self.session.last
        if last is None:
            self.say("no turn yet")
            return
        for line in last.lines():
            self.say(line)

    def do_save(self, arg: str) -> None:
        self.say(saved.save(self.session, _unquote(arg.strip()), self.chats))

    def do_load(self, arg: str) -> None:
        self.say(saved.load(self.session, _unquote(arg.strip()), self.chats))

    def do_clear(self, _arg: str) -> None:
        self.session.clear()
        self.say("conversation cleared")

    def do_regen(self, _arg: str) -> Outcome:
        return Outcome(regen=True)
