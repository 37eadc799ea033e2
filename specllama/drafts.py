"""The drafts one run compares (``--drafts`` of ``specllama bench`` and ``specllama eval``): each a
GGUF path and the tag its rows or columns are labelled with.

A tag is the manifest name the draft was given by, else its file name without ``.gguf``. Every
entry is checked as ``-md`` checks its draft; a draft listed twice, or two drafts that could not be
told apart in a report, are refused with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import registry
from .errors import ConfigError
from .ggufcheck import check_model_file


@dataclass(frozen=True)
class NamedDraft:
    """One draft of the run: its GGUF ``path`` and the ``tag`` its rows are labelled with."""

    path: str
    tag: str

    @classmethod
    def of(cls, path: str) -> "NamedDraft":
        """A draft tagged with its file name (without ``.gguf``)."""
        name = os.path.basename(path)
        return cls(path, name[:-5] if name.lower().endswith(".gguf") else name)


def resolve_drafts(spec: str) -> tuple[NamedDraft, ...]:
    """``--drafts a,b,...`` (GGUF paths or manifest names, as ``-md`` takes) to checked drafts;
    ``ConfigError``/``ModelError`` naming the first entry that is not a usable GGUF."""
    items = [s.strip() for s in spec.split(",")]
    if not any(items):
        raise ConfigError("--drafts needs at least one GGUF path or model name")
    if not all(items):
        raise ConfigError(f"--drafts {spec!r} has an empty entry")
    models, pairs = registry.manifest()
    out = []
    for s in items:
        path = registry.resolve(s, "draft")
        if not os.path.exists(path):
            known = ", ".join(n for n, e in models.items() if e.role == "draft")
            raise ConfigError(f"--drafts: {s!r} is neither a file nor a known model (known drafts: {known})")
        check_model_file(path, "draft")
        name = pairs.get("default", {}).get("draft") if s == "default" else s
        out.append(NamedDraft(path, name) if name in models and not os.path.exists(s) else NamedDraft.of(path))
    check_distinct(out)
    return tuple(out)


def check_distinct(drafts) -> None:
    """Refuse a draft listed twice (the same file, however named) and two drafts whose rows or
    records could not be told apart (the same tag, or the same file name)."""
    for what, key in (("is listed twice", lambda d: os.path.realpath(d.path)),
                      ("and another draft have the same tag", lambda d: d.tag),
                      ("and another draft have the same file name", lambda d: os.path.basename(d.path))):
        seen = set()
        for d in drafts:
            k = key(d)
            if k in seen:
                raise ConfigError(f"--drafts: {d.tag} ({d.path}) {what}; give each draft once")
            seen.add(k)
