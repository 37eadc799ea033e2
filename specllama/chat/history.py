"""The conversation as text units with keep masks, rendered to tokens through the chat template.

Every turn the whole conversation is rendered again with :func:`specllama.prompt.build_prompt`, so
the template decides the layout, and the result is compared with what the models' contexts hold
(templates are append-only in practice, so the common prefix is everything but the new turn).

Documents, questions and answers are *units*: compressible parts of the rendering, each tokenized
on its own (so a unit's tokens are the same every turn) and each carrying an optional keep mask
over those tokens, set when a method compressed it. The template's own tokens and the system
prompt are never units; the current question is a unit that is never a candidate for compression.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.model import Model
from ..prompt import Message, Part, Prompt, build_prompt

DOC_SEP = "\n\n"
KINDS = ("document", "question", "answer")


@dataclass(eq=False)
class Unit:
    """A compressible piece of the conversation.

    Attributes:
        text: the full text.
        kind: ``document``, ``question`` or ``answer``.
        name: where a document came from (a file name), for messages.
        turn: the turn (from 1) the unit belongs to.
        keep: ``[n_tokens]`` bool over the unit's own tokens, or None when it is whole.
    """

    text: str
    kind: str
    name: str = ""
    turn: int = 0
    keep: np.ndarray | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unit kind must be one of {KINDS}, got {self.kind!r}")

    def label(self) -> str:
        return f"{self.kind} {self.name}".strip()


@dataclass(eq=False)
class Turn:
    """One user message (documents + question) and the answer, None until it exists."""

    docs: list[Unit]
    question: Unit
    answer: Unit | None = None

    def units(self) -> list[Unit]:
        out = list(self.docs) + [self.question]
        if self.answer is not None:
            out.append(self.answer)
        return out


def turn_messages(turn: Turn) -> list[Message]:
    parts: list[Part] = []
    for i, d in enumerate(turn.docs):
        if i:
            parts.append(Part(DOC_SEP))
        parts.append(Part(d.text, compressible=True))
    if turn.docs and turn.question.text:
        parts.append(Part(DOC_SEP))
    parts.append(Part(turn.question.text, compressible=True))
    msgs = [Message("user", tuple(parts))]
    if turn.answer is not None:
        msgs.append(Message("assistant", (Part(turn.answer.text, compressible=True),)))
    return msgs


@dataclass(frozen=True)
class View:
    """A rendering of the conversation.

    Attributes:
        prompt: the uncompressed prompt, ``[n]`` tokens; ``prompt.part[n]`` is the unit index of
            each token (-1 for template and system-prompt tokens).
        units: the units in rendering order (``prompt.part`` indexes this list).
        current: indices of the units of the turn being asked (never compressed by overflow of
            older material; its question is never compressed at all).
        question: index of the current question's unit.
        masks: unit index -> ``[n_unit_tokens]`` bool, overriding ``units[i].keep``.
    """

    prompt: Prompt
    units: tuple[Unit, ...]
    current: tuple[int, ...]
    question: int
    masks: dict = field(default_factory=dict)

    # -- masks --------------------------------------------------------------------------------
    def unit_mask(self, i: int) -> np.ndarray | None:
        return self.masks.get(i, self.units[i].keep)

    def keep(self) -> np.ndarray:
        """``[n]`` bool: the uncompressed tokens that remain after every unit's mask."""
        keep = np.ones(self.prompt.n, dtype=bool)
        part = self.prompt.part
        for i in range(len(self.units)):
            m = self.unit_mask(i)
            if m is None:
                continue
            sel = part == i
            if int(sel.sum()) != len(m):
                raise RuntimeError(f"unit {i} has {int(sel.sum())} tokens but its mask {len(m)}")
            keep[sel] = m
        return keep

    def with_masks(self, masks: dict) -> View:
        merged = dict(self.masks)
        merged.update(masks)
        return View(self.prompt, self.units, self.current, self.question, merged)

    # -- the sequence the models read -------------------------------------------------------
    def sequence(self, renumber: bool = True) -> Sequence:
        keep = self.keep()
        idx = np.flatnonzero(keep)
        pos = np.arange(len(idx)) if renumber else idx
        return Sequence(self.prompt.tokens[idx].astype(np.int32), pos.astype(np.int32),
                        self.prompt.part[idx].astype(np.int32), idx.astype(np.int64))

    def n_unit_tokens(self, i: int) -> int:
        return int((self.prompt.part == i).sum())


@dataclass(frozen=True)
class Sequence:
    """What a context reads: ``tokens[m]`` at ``positions[m]``, ``unit[m]`` (-1: never dropped) and
    ``index[m]``, each token's index in the uncompressed prompt."""

    tokens: np.ndarray
    positions: np.ndarray
    unit: np.ndarray
    index: np.ndarray

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])


class Conversation:
    """System prompt, finished turns, and documents waiting for the next question."""

    def __init__(self, system: str | None = None):
        self.system = system or None
        self.turns: list[Turn] = []
        self.pending: list[Unit] = []

    def attach(self, text: str, name: str = "") -> Unit:
        unit = Unit(text, "document", name)
        self.pending.append(unit)
        return unit

    def clear(self) -> None:
        self.turns.clear()
        self.pending.clear()

    def new_turn(self, question: str) -> Turn:
        """A turn holding the pending documents and ``question`` (not yet part of the history)."""
        n = len(self.turns) + 1
        for d in self.pending:
            d.turn = n
        return Turn(list(self.pending), Unit(question, "question", turn=n))

    def commit(self, turn: Turn, masks: dict, view: View) -> None:
        """Record ``turn`` with the masks chosen while answering it; pending documents are sent."""
        for i, m in masks.items():
            view.units[i].keep = np.asarray(m, dtype=bool)
        self.turns.append(turn)
        sent = {id(u) for u in turn.docs}
        self.pending = [u for u in self.pending if id(u) not in sent]

    def messages(self, current: Turn | None = None) -> list[Message]:
        msgs: list[Message] = []
        if self.system:
            msgs.append(Message.of("system", self.system))
        for t in self.turns + ([current] if current is not None else []):
            msgs += turn_messages(t)
        return msgs

    def render(self, model: Model, template: str | None, current: Turn) -> View:
        """Tokenize the whole conversation plus ``current`` (whose answer is still to come)."""
        prompt = build_prompt(model, self.messages(current), template, add_assistant=True)
        units: list[Unit] = []
        for t in self.turns:
            units += t.units()
        first = len(units)
        units += current.units()
        cur = tuple(range(first, len(units)))
        return View(prompt, tuple(units), cur, first + len(current.docs))
