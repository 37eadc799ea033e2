"""Prompts as token arrays with a protection mask.

A request is a list of chat messages whose contents are made of parts; a part is either protected
(instructions, the question, the template's own tokens) or compressible (documents). The template is
rendered once with a sentinel in place of each compressible part, so the template's tokens, the
system prompt and the final question are never candidates for removal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.model import Model
from .engine.template import apply_template
from .errors import ModelError, PromptError
from .inputs import check_text

_SENTINEL = "\ue000SPECLLAMA{}\ue001"


@dataclass(frozen=True)
class Part:
    """A piece of message content; ``compressible`` parts may be dropped by a method."""

    text: str
    compressible: bool = False


@dataclass(frozen=True)
class Message:
    role: str
    parts: tuple[Part, ...]

    @staticmethod
    def of(role: str, text: str, compressible: bool = False) -> "Message":
        return Message(role, (Part(text, compressible),))


@dataclass(frozen=True)
class Prompt:
    """Prompt tokens ``[n]`` int32 with ``protected[n]`` bool (True: never dropped).

    ``part[n]`` int32 gives, for each compressible token, the index of its compressible part in
    message order (-1 for protected tokens), so compressed text can be rebuilt per part.
    """

    tokens: np.ndarray
    protected: np.ndarray
    part: np.ndarray | None = field(default=None, compare=False)
    messages: tuple[Message, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.tokens.shape != self.protected.shape:
            raise ValueError("tokens and protected differ in shape")
        if self.part is None:
            object.__setattr__(self, "part", np.where(self.protected, -1, 0).astype(np.int32))

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_protected(self) -> int:
        return int(self.protected.sum())


def document_request(document: str, question: str | None = None, system: str | None = None) -> list[Message]:
    """The common case: one user turn holding a document (compressible) and a question (protected)."""
    for text, what in ((document, "the document"), (question, "the question"), (system, "the system prompt")):
        if text is not None:
            check_text(text, what)
    msgs: list[Message] = []
    if system:
        msgs.append(Message.of("system", system))
    parts = []
    if document:
        parts.append(Part(document, compressible=True))
    if question:
        parts.append(Part(("\n\n" if document else "") + question))
    msgs.append(Message("user", tuple(parts)))
    return msgs


def resolve_template(model: Model, override: str | None) -> str:
    """The chat template to use: ``override`` (name or Jinja), else the GGUF's, else an error."""
    if override:
        return override
    tmpl = model.chat_template()
    if not tmpl:
        raise ModelError(f"{model.name} has no chat template in its GGUF metadata; pass "
                         "--chat-template NAME (e.g. chatml) or --raw")
    return tmpl


def build_prompt(model: Model, messages: list[Message], template: str | None = None,
                 raw: bool = False, add_assistant: bool = True) -> Prompt:
    """Tokenize ``messages`` with the chat template (or, with ``raw``, their parts verbatim)."""
    for i, m in enumerate(messages):
        if not isinstance(m, Message):
            raise PromptError(f"message {i} must be a specllama Message, got {type(m).__name__}")
        for p in m.parts:
            check_text(p.text, f"the {m.role} message")
    if template is not None:
        check_text(template, "the chat template")
    pieces: list[tuple[str, bool]] = []
    if raw:
        pieces = [(p.text, p.compressible) for m in messages for p in m.parts]
    else:
        docs: list[str] = []
        rendered = []
        for m in messages:
            content = ""
            for p in m.parts:
                if p.compressible:
                    content += _SENTINEL.format(len(docs))
                    docs.append(p.text)
                else:
                    content += p.text
            rendered.append((m.role, content))
        text = apply_template(resolve_template(model, template), rendered, add_assistant, model.name,
                              bos=model.special_text(model.bos), eos=model.special_text(model.eos),
                              source="--chat-template" if template else None)
        for i, doc in enumerate(docs):
            mark = _SENTINEL.format(i)
            head, sep, text = text.partition(mark)
            if not sep:
                raise ModelError(f"the chat template of {model.name} dropped a message part")
            pieces += [(head, False), (doc, True)]
        pieces.append((text, False))
    toks, prot, part = [], [], []
    first = True
    n_part = 0
    for text, comp in pieces:
        if comp:
            n_part += 1
        if not text:
            continue
        # Documents are tokenized as plain text: control-token text inside them stays text.
        t = model.tokenize(text, add_special=first, parse_special=not comp)
        first = False
        toks.append(t)
        prot.append(np.full(len(t), not comp, dtype=bool))
        part.append(np.full(len(t), n_part - 1 if comp else -1, dtype=np.int32))
    if not toks or sum(len(t) for t in toks) == 0:
        raise PromptError("the prompt is empty")
    tokens = np.concatenate(toks).astype(np.int32)
    if not any(p.text.strip() for m in messages for p in m.parts):
        raise PromptError("the prompt is empty")
    return Prompt(tokens, np.concatenate(prot), np.concatenate(part), tuple(messages))


def compressed_messages(model: Model, prompt: Prompt, kept: np.ndarray, gap: str = "") -> list[tuple[str, str]]:
    """Messages ``(role, content)`` with each compressible part cut down to its kept tokens.

    Protected parts keep their original text; ``gap`` is inserted where tokens were dropped.
    """
    check_text(gap, "the gap text")
    keep = np.zeros(prompt.n, dtype=bool)
    keep[np.asarray(kept, dtype=np.int64)] = True
    out = []
    idx = 0
    for m in prompt.messages:
        content = ""
        for p in m.parts:
            if not p.compressible:
                content += p.text
                continue
            sel = np.flatnonzero(prompt.part == idx)
            idx += 1
            if len(sel) == 0:
                continue
            runs: list[list[int]] = []
            prev = None
            for i in sel:
                if not keep[i]:
                    prev = None
                    continue
                if prev is None:
                    runs.append([])
                runs[-1].append(int(prompt.tokens[i]))
                prev = i
            texts = [model.detokenize(r) for r in runs]
            if gap:
                content += gap.join(texts)
            else:
                content += "".join(texts)
        out.append((m.role, content))
    return out
