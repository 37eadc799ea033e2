"""``/save NAME`` and ``/load NAME``: a chat written to disk with its KV state, so that a later
session resumes it without reading its documents again.

A saved chat is the directory ``cache_dir()/chats/NAME``:

* ``manifest.json``: the format, the models it was computed with (file name and size), the chat
  template, the method and sampling options, the conversation (system prompt, turns with their
  keep masks, documents not sent yet), and per file its SHA-256;
* ``cells.npz``: the tokens and positions each context holds (``target_tokens[h]`` ...);
* ``target.kv``, ``draft.kv``: llama.cpp's sequence state of the target's and the draft's context.

It is written into a temporary directory beside it and renamed into place, so a chat is either
saved whole or not at all. Loading refuses other models with one line, restores the target's cells
(on any error nothing changes) and the draft's (an error there only empties the draft, which reads
again when it next scores).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import registry
from ..errors import ConfigError, SpecllamaError
from .history import Conversation, Turn, Unit
from .session import ChatSession

FORMAT = 1
MANIFEST = "manifest.json"
MAX_NAME_BYTES = 200
# options about models and prompts, not the conversation: never saved or restored
NOT_SAVED = frozenset({"target", "draft", "threads", "ctx_size", "batch_size", "ubatch_size", "ngl", "ngld",
                       "verbose", "prompt", "file", "question", "system", "chat_template", "raw"})


def chats_dir() -> Path:
    return registry.cache_dir() / "chats"


def check_name(name: str, command: str) -> str:
    """``name`` if it can name a saved chat (one word, no path separator, not hidden), else raise."""
    name = name.strip()
    if not name:
        raise ConfigError(f"usage: {command} NAME")
    bad = next((c for c in name if c in "/\\" or c.isspace() or not c.isprintable()), None)
    if bad is not None:
        what = "a path separator" if bad in "/\\" else "a space" if bad.isspace() else "a control character"
        raise ConfigError(f"{command} NAME: a chat name is one word without {what}, got {name!r}")
    if name.startswith("."):
        raise ConfigError(f"{command} NAME: a chat name must not start with '.', got {name!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigError(f"{command} NAME: {name!r} is not valid text") from None
    if size > MAX_NAME_BYTES:
        raise ConfigError(f"{command} NAME: a chat name has at most {MAX_NAME_BYTES} bytes, got {size}")
    return name


def saved_names(root: Path | None = None) -> list[str]:
    root = chats_dir() if root is None else root
    try:
        return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file())
    except OSError:
        return []


# -- what is saved ----------------------------------------------------------------------------
def _file_id(path: str) -> dict:
    return {"file": os.path.basename(path), "size": os.path.getsize(path)}


def models_of(session: ChatSession) -> dict:
    cfg = session.rt.cfg
    return {"target": _file_id(cfg.target), "draft": _file_id(cfg.draft) if cfg.draft else None}


def _unit(u: Unit) -> dict:
    keep = None
    if u.keep is not None:
        keep = {"n": int(len(u.keep)), "bits": base64.b64encode(np.packbits(u.keep).tobytes()).decode()}
    return {"text": u.text, "kind": u.kind, "name": u.name, "turn": u.turn, "keep": keep}


def _unit_from(d: dict) -> Unit:
    keep = d.get("keep")
    mask = None
    if keep is not None:
        bits = np.frombuffer(base64.b64decode(keep["bits"]), dtype=np.uint8)
        mask = np.unpackbits(bits)[: int(keep["n"])].astype(bool)
        if len(mask) != int(keep["n"]):
            raise ValueError("a keep mask is short")
    return Unit(str(d["text"]), str(d["kind"]), str(d.get("name", "")), int(d.get("turn", 0)), mask)


def _conversation(conv: Conversation) -> dict:
    return {"system": conv.system, "pending": [_unit(u) for u in conv.pending],
            "turns": [{"docs": [_unit(u) for u in t.docs], "question": _unit(t.question),
                       "answer": None if t.answer is None else _unit(t.answer)} for t in conv.turns]}


def _conversation_from(d: dict) -> Conversation:
    conv = Conversation(d.get("system"))
    for t in d["turns"]:
        conv.turns.append(Turn([_unit_from(u) for u in t["docs"]], _unit_from(t["question"]),
                               None if t.get("answer") is None else _unit_from(t["answer"])))
    conv.pending = [_unit_from(u) for u in d.get("pending", [])]
    return conv


def _tracks(session: ChatSession) -> dict:
    return {"target": session.target, "draft": session.draft} if session.draft is not None \
        else {"target": session.target}


# -- save -------------------------------------------------------------------------------------
def save(session: ChatSession, name: str, root: Path | None = None) -> str:
    """Write the chat as ``root/name`` (default: the cache's ``chats``); return a line saying so."""
    name = check_name(name, "/save")
    root = chats_dir() if root is None else root
    arrays, files, cells = {}, {}, {}
    for role, track in _tracks(session).items():
        tokens, positions, blob = track.state()
        arrays[f"{role}_tokens"], arrays[f"{role}_positions"] = tokens, positions
        files[f"{role}.kv"] = blob
        cells[role] = int(len(tokens))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files["cells.npz"] = buf.getvalue()
    manifest = {"format": FORMAT, "models": models_of(session), "template": session.template_override,
                "options": {k: v for k, v in session.options.items()
                            if k not in NOT_SAVED and (v is None or isinstance(v, (str, int, float, bool)))},
                "conversation": _conversation(session.conv), "cells": cells,
                "sha256": {f: hashlib.sha256(b).hexdigest() for f, b in files.items()}}
    files[MANIFEST] = json.dumps(manifest, indent=1).encode()
    dst = root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_dir(root, dst, files)
    except OSError as exc:
        raise ConfigError(f"/save {name}: cannot write {dst}: {exc.strerror or exc}") from None
    size = sum(len(b) for b in files.values())
    held = ", ".join(f"{role} {n}" for role, n in cells.items())
    return (f"saved chat {name} ({len(session.conv.turns)} turns; KV cells: {held}; "
            f"{size / 1e6:.1f} MB) to {dst}")


def _write_dir(root: Path, dst: Path, files: dict[str, bytes]) -> None:
    """``dst`` holding ``files``, replacing any earlier one only once the new one is complete."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=root))
    old = None
    try:
        for fname, data in files.items():
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if dst.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=root))
            os.replace(dst, old / "chat")
        os.replace(tmp, dst)
    except BaseException:
        if old is not None and not dst.exists():
            os.replace(old / "chat", dst)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# -- load -------------------------------------------------------------------------------------
def _describe(models: dict) -> str:
    def one(m):
        return "none" if not m else f"{m['file']} ({m['size']} bytes)"

    return f"target {one(models.get('target'))} and draft {one(models.get('draft'))}"


def _read(name: str, root: Path) -> tuple[dict, dict[str, bytes]]:
    d = root / name
    if not (d / MANIFEST).is_file():
        names = saved_names(root)
        listed = f"saved chats: {', '.join(names)}" if names else "no chat is saved yet (/save NAME saves one)"
        raise ConfigError(f"/load {name}: no saved chat of that name; {listed}")
    try:
        manifest = json.loads((d / MANIFEST).read_bytes())
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format') if isinstance(manifest, dict) else '?'}, "
                             f"expected {FORMAT}")
        files = {}
        for fname, digest in manifest["sha256"].items():
            if os.path.basename(fname) != fname:
                raise ValueError(f"bad file name {fname!r}")
            data = (d / fname).read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"{fname} does not match its checksum")
            files[fname] = data
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"/load {name}: the saved chat in {d} is damaged ({exc}); /save it again") from None
    return manifest, files


def load(session: ChatSession, name: str, root: Path | None = None) -> str:
    """Replace the session's conversation, settings and KV cells with the saved chat ``name``."""
    name = check_name(name, "/load")
    root = chats_dir() if root is None else root
    manifest, files = _read(name, root)
    if manifest.get("models") != models_of(session):
        raise ConfigError(f"/load {name}: it was saved with {_describe(manifest.get('models') or {})}, this chat "
                          f"runs {_describe(models_of(session))}; start chat with those models to load it")
    try:
        conv = _conversation_from(manifest["conversation"])
        cells = np.load(io.BytesIO(files["cells.npz"]))
        state = {role: (cells[f"{role}_tokens"], cells[f"{role}_positions"], files[f"{role}.kv"])
                 for role in manifest["cells"]}
        options = dict(manifest["options"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigError(f"/load {name}: the saved chat in {root / name} is damaged ({exc}); "
                          "/save it again") from None
    before = (session.options, session.method, session.gen, session.template_override)
    try:
        session.configure(**options)
        session.set_template(manifest.get("template"))
        session.target.restore(*state["target"])
    except (SpecllamaError, ValueError, TypeError, KeyError) as exc:
        session.options, session.method, session.gen = before[:3]
        session.set_template(before[3])
        what = str(exc) if isinstance(exc, SpecllamaError) else f"its settings are damaged ({exc})"
        raise ConfigError(f"/load {name}: {what}") from None
    note = ""
    if session.draft is not None:
        try:
            session.draft.restore(*state.get("draft", ((), (), b"")))
        except SpecllamaError as exc:
            session.draft.clear()
            note = f" (the draft's cells were not restored: {exc}; it reads them again when it next scores)"
    session.conv = conv
    session.last = None
    return (f"loaded chat {name}: {len(conv.turns)} turns, the target holds {session.target.n} tokens"
            + (f", the draft {session.draft.n}" if session.draft is not None and not note else "") + note)
