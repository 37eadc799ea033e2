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

import struct
from dataclasses import dataclass

from ..engine.ggufmeta import context_length
from ..drafts import NamedDraft, check_distinct, resolve_drafts  # noqa: F401 (re-exported)
from ..errors import ConfigError
from ..methods.base import Method


BenchDraft = NamedDraft  # the name bench's code and reports use


@dataclass(frozen=True)
class Row:
    """One row of the report at every length: a method, the draft it runs with (None: the
    method reads no draft, or the run has none) and its unique label."""

    method: Method
    draft: BenchDraft | None
    label: str


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
