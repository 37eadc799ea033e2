"""One evaluation sample and the prompt the target reads for it.

A sample is a user message made of parts (the long context is compressible; instructions, the
question and in-context examples' framing are protected) plus RULER's *answer prefix*, which RULER
appends after the model's chat template (``template + answer_prefix``): here it opens the assistant
turn, so the model continues it. The same :func:`to_prompt` measures a sample's length when it is
generated and builds the prompt when it is evaluated, so the two always agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..engine.model import Model
from ..prompt import Message, Part, Prompt, build_prompt, with_suffix


@dataclass(frozen=True)
class Sample:
    """One evaluation sample.

    Attributes:
        task: task name (``niah_single_1``, ``longbench/qasper``...).
        index: position in its generated or loaded set.
        parts: the user message as ``(text, compressible)`` pieces, in order.
        answer_prefix: text the assistant turn starts with (protected).
        outputs: reference answers.
        max_new_tokens: tokens to generate (the task's RULER/LongBench value).
        metric: name of the scoring function in :mod:`specllama.eval.metrics`.
        evidence: the inserted texts that carry the answer (needles, chain links, gold documents).
        depths: ``[len(evidence)]`` requested depth of each, as a fraction of the context part.
        context_part: index in ``parts`` of the part that holds the haystack.
        length: prompt tokens plus ``max_new_tokens`` as measured with the target's tokenizer.
        meta: task-specific extras (LongBench's ``all_classes``, truncation...).
    """

    task: str
    index: int
    parts: tuple[tuple[str, bool], ...]
    answer_prefix: str
    outputs: tuple[str, ...]
    max_new_tokens: int
    metric: str
    evidence: tuple[str, ...] = ()
    depths: tuple[float, ...] = ()
    context_part: int = 0
    length: int = 0
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def context(self) -> str:
        return self.parts[self.context_part][0]

    @property
    def text(self) -> str:
        """The user message as one string (for reading and debugging)."""
        return "".join(t for t, _ in self.parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["parts"] = [[t, c] for t, c in self.parts]
        return d

    @staticmethod
    def from_dict(d: dict) -> Sample:
        return Sample(task=d["task"], index=int(d["index"]),
                      parts=tuple((str(t), bool(c)) for t, c in d["parts"]),
                      answer_prefix=d.get("answer_prefix", ""), outputs=tuple(d["outputs"]),
                      max_new_tokens=int(d["max_new_tokens"]), metric=d["metric"],
                      evidence=tuple(d.get("evidence", ())), depths=tuple(d.get("depths", ())),
                      context_part=int(d.get("context_part", 0)), length=int(d.get("length", 0)),
                      meta=dict(d.get("meta", {})))


@dataclass(frozen=True)
class PromptStyle:
    """How samples become prompts: the target's chat template (or ``template``), or ``raw`` text."""

    template: str | None = None
    raw: bool = False

    def key(self) -> str:
        return "raw" if self.raw else f"template:{self.template or 'gguf'}"


def to_prompt(model: Model, sample: Sample, style: PromptStyle = PromptStyle()) -> Prompt:
    """The target's prompt for ``sample``: ``[n]`` tokens, answer prefix last and protected.

    A sample whose ``meta["raw"]`` is set (LongBench's few-shot and code tasks) skips the chat
    template whatever ``style`` says, as LongBench does.
    """
    raw = style.raw or bool(sample.meta.get("raw"))
    msgs = [Message("user", tuple(Part(t, c) for t, c in sample.parts))]
    base = build_prompt(model, msgs, style.template, raw)
    prefix = sample.answer_prefix if raw else sample.answer_prefix.lstrip()
    if not prefix:
        return base
    msgs.append(Message.of("assistant", prefix))
    return with_suffix(model, base, prefix, tuple(msgs))


def prompt_length(model: Model, sample: Sample, style: PromptStyle = PromptStyle()) -> int:
    """Prompt tokens plus the tokens to generate: RULER's ``max_seq_length`` accounting."""
    return to_prompt(model, sample, style).n + sample.max_new_tokens
