"""Prompts as token arrays with a protection mask.

A request is a list of chat messages whose contents are made of parts; a part is either protected
(instructions, the question, the template's own tokens) or compressible (documents). The template is
rendered once with a sentinel in place of each compressible part, so the template's tokens, the
system prompt and the final question are never candidates for removal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
class PromptSource:
    """How a prompt was made, so another model (a draft with another tokenizer) can read the same
    request through its own chat template.

    Attributes:
        messages: the messages rendered (or, with ``raw``, whose parts were taken verbatim).
        template: the ``--chat-template`` given for the target; None: the GGUF's own.
        raw: no chat template.
        add_assistant: the generation prompt was added.
        suffix: protected text tokenized after the rendered messages (an answer prefix).
        text: the exact text the prompt's tokens were made from, suffix included.
    """

    messages: tuple[Message, ...]
    template: str | None = None
    raw: bool = False
    add_assistant: bool = True
    suffix: str = ""
    text: str = ""

    @property
    def anchors(self) -> list[tuple[str, bool]]:
        """The message parts in order, then the suffix, each with whether every rendering holds
        it verbatim (documents and the suffix do; a template may strip or move the rest)."""
        parts = [(p.text, p.compressible or self.raw) for m in self.messages for p in m.parts]
        return parts + ([(self.suffix, True)] if self.suffix else [])


@dataclass(frozen=True)
class Prompt:
    """Prompt tokens ``[n]`` int32 with ``protected[n]`` bool (True: never dropped).

    ``part[n]`` int32 gives, for each compressible token, the index of its compressible part in
    message order (-1 for protected tokens), so compressed text can be rebuilt per part.
    ``source`` says how it was rendered (None for prompts made from tokens).
    """

    tokens: np.ndarray
    protected: np.ndarray
    part: np.ndarray | None = field(default=None, compare=False)
    messages: tuple[Message, ...] = field(default=(), compare=False)
    source: PromptSource | None = field(default=None, compare=False)

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
    source = PromptSource(tuple(messages), template, raw, add_assistant, "", "".join(t for t, _ in pieces))
    return Prompt(tokens, np.concatenate(prot), np.concatenate(part), tuple(messages), source)


def with_suffix(model: Model, prompt: Prompt, suffix: str, messages: tuple[Message, ...] | None = None) -> Prompt:
    """``prompt`` followed by the protected plain text ``suffix`` (e.g. an answer prefix)."""
    extra = model.tokenize(suffix, add_special=False, parse_special=False)
    n = len(extra)
    src = prompt.source
    if src is not None:
        src = replace(src, suffix=src.suffix + suffix, text=src.text + suffix)
    return Prompt(tokens=np.concatenate([prompt.tokens, extra]).astype(np.int32),
                  protected=np.concatenate([prompt.protected, np.ones(n, dtype=bool)]),
                  part=np.concatenate([prompt.part, np.full(n, -1, dtype=np.int32)]),
                  messages=prompt.messages if messages is None else messages, source=src)


def source_of(model: Model, prompt: Prompt) -> PromptSource:
    """``prompt.source``, or, for a prompt made from tokens, its text spelled by ``model`` (control
    tokens written out) as one raw protected part."""
    if prompt.source is not None:
        return prompt.source
    text = b"".join(model.token_pieces(prompt.tokens)[0]).decode("utf-8", "replace")
    return PromptSource((Message.of("user", text),), raw=True, text=text)


def render_for(model: Model, source: PromptSource) -> Prompt:
    """The same request as ``model`` reads it: its own chat template (the target's
    ``--chat-template`` only when it has none), the same parts and suffix. A model with no chat
    template of its own (a base model, such as Gemma-3-270M) reads the target's rendered text as
    plain text."""
    if not source.raw and source.template is None and not model.chat_template():
        return build_prompt(model, [Message.of("user", source.text)], raw=True)
    template = None if source.raw or model.chat_template() else source.template
    p = build_prompt(model, list(source.messages), template, source.raw, source.add_assistant)
    return with_suffix(model, p, source.suffix) if source.suffix else p


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
