"""The drafts one ``specllama bench`` run compares (``--drafts``): the rows they make and the
prompt lengths each can read.

Every method that reads a draft gets one row per draft, labelled ``<method> [<tag>]`` when the run
compares several (the tag: the manifest name the draft was given by, else its file name without
``.gguf``); dense and the other draft-free methods get one row, measured once per length. A draft
that cannot read a length's prompt whole (counted in its own tokens: a draft with another tokenizer
reads more or fewer than the target) has its rows there skipped, with a note, as long as another
draft reads it; a length that no draft reads is refused before anything is measured.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from .. import registry
from ..engine.ggufmeta import context_length
from ..errors import ConfigError
from ..ggufcheck import check_model_file
from ..methods.base import Method


@dataclass(frozen=True)
class BenchDraft:
    """One draft of the run: its GGUF ``path`` and the ``tag`` its rows are labelled with."""

    path: str
    tag: str

    @classmethod
    def of(cls, path: str) -> "BenchDraft":
        """A draft tagged with its file name (without ``.gguf``)."""
        name = os.path.basename(path)
        return cls(path, name[:-5] if name.lower().endswith(".gguf") else name)


@dataclass(frozen=True)
class Row:
    """One row of the report at every length: a method, the draft it runs with (None: the
    method reads no draft, or the run has none) and its unique label."""

    method: Method
    draft: BenchDraft | None
    label: str


def resolve_drafts(spec: str) -> tuple[BenchDraft, ...]:
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
        out.append(BenchDraft(path, name) if name in models and not os.path.exists(s) else BenchDraft.of(path))
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


def expand_rows(methods: list[Method], drafts: tuple[BenchDraft, ...]) -> list[Row]:
    """One row per method, and one per draft for a method that reads one (in method order, the
    drafts in their order within it)."""
    rows = []
    for m in methods:
        if not (m.needs_draft and drafts):
            rows.append(Row(m, None, m.describe()))
            continue
        for d in drafts:
            rows.append(Row(m, d, f"{m.describe()} [{d.tag}]" if len(drafts) > 1 else m.describe()))
    return rows


def unreadable(target: str, drafts: tuple[BenchDraft, ...], lengths, corpus: str | None) -> dict:
    """``{(draft path, length): why}`` for every benchmark prompt a draft cannot read whole: the
    prompt in the draft's own tokens is longer than the draft's training context. A draft with the
    target's tokenizer reads the target's tokens; another one reads its own rendering of the same
    request (vocabularies loaded only, no weights)."""
    try:
        limits = {d.path: context_length(d.path) for d in drafts}
    except (OSError, ValueError, struct.error) as exc:
        raise ConfigError(f"cannot read the draft's metadata: {exc}") from None
    todo = [d for d in drafts if limits[d.path]]
    if not todo:
        return {}
    from ..engine.model import Model
    from ..prompt import render_for, source_of
    from .prompts import make_prompt

    out: dict = {}
    prompts: dict = {}
    with Model(target, role="target", vocab_only=True) as t:
        for d in todo:
            limit = limits[d.path]
            with Model(d.path, role="draft", vocab_only=True) as dm:
                same = dm.vocab_fingerprint == t.vocab_fingerprint
                for n in lengths:
                    if same:
                        if n > limit:
                            out[(d.path, n)] = f"draft {d.tag} reads at most {limit} tokens"
                        continue
                    if n not in prompts:
                        prompts[n] = make_prompt(t, n, corpus).prompt
                    m = render_for(dm, source_of(t, prompts[n])).n
                    if m > limit:
                        out[(d.path, n)] = (f"draft {d.tag} reads at most {limit} tokens, and the {n}-token "
                                            f"prompt is {m} of its tokens")
    return out
