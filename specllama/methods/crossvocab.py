"""A draft whose tokenizer is not the target's: the same request, read as the draft's own tokens.

The draft renders the prompt's messages through its own chat template (``prompt.render_for``), so
it reads what it was trained to read. Its per-token scores are carried over to the target's tokens
through the text (``select.align``: a target token takes the max over the draft tokens whose
characters overlap its own), and selection then runs on the target's tokens exactly as with a
same-family draft: pooling, neighbours, window, and the protected tokens, which are the target's.
A draft's answer (SpecKV's lookahead) goes over as text, tokenized again by the target.

A tokenizer that does not spell the prompt text back (it drops or changes characters) cannot be
aligned: that is refused in one line rather than selecting from misplaced scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, PromptError
from ..prompt import Prompt, PromptSource, render_for, source_of
from ..select.align import AlignmentError, TextAlignment, align, anchor_chunks, token_spans


@dataclass
class DraftView:
    """The target's ``prompt`` as the draft reads it.

    Attributes:
        prompt: the target's prompt (``[n]`` tokens, its protection mask).
        source: how it was rendered (the text the target's tokens spell).
        draft: the draft's prompt of the same request, ``[m]`` tokens.
    """

    prompt: Prompt
    source: PromptSource
    draft: Prompt
    _alignment: TextAlignment | None = field(default=None, repr=False)

    @property
    def tokens(self) -> np.ndarray:
        """The draft's tokens ``[m]``."""
        return self.draft.tokens

    def alignment(self, rt) -> TextAlignment:
        """Which draft tokens overlap each target token (computed once; ``ModelError`` when a
        tokenizer does not spell the text back)."""
        if self._alignment is None:
            self._alignment = _align(rt, self)
        return self._alignment

    def carry(self, rt, scores: np.ndarray) -> np.ndarray:
        """Draft scores ``[m]`` to target scores ``[n]`` (the max over overlapping draft tokens)."""
        return self.alignment(rt).carry(scores)


def draft_view(rt, prompt: Prompt) -> DraftView | None:
    """The draft's reading of ``prompt``, or None when it shares the target's tokenizer (then the
    token path runs, as it always did). Notes the cross-tokenizer path once per runtime."""
    if rt.note_tokenizers():
        return None
    t, d = rt.target, rt.draft
    source = source_of(t, prompt)
    dprompt = render_for(d, source)
    limit = d.info.n_ctx_train
    if limit and dprompt.n > limit:
        raise PromptError(f"the prompt is {dprompt.n} tokens for draft {d.name}, which reads at most {limit}")
    return DraftView(prompt, source, dprompt)


def to_target(rt, tokens: np.ndarray) -> np.ndarray:
    """Draft tokens ``[L]`` to the target's tokens of the same text ``[L']`` (plain text: control
    token text in it stays text)."""
    return rt.target.tokenize(rt.draft.detokenize(tokens), add_special=False, parse_special=False)


def _spans(model, role: str, text: bytes, tokens: np.ndarray) -> np.ndarray:
    pieces, kinds = model.token_pieces(tokens)
    try:
        return token_spans(text, pieces, kinds)
    except AlignmentError as exc:
        raise ModelError(f"{role} {model.name}'s tokenizer ({model.tokenizer_name}) does not spell the prompt "
                         f"text back ({exc}), so its tokens cannot be aligned with the other model's; "
                         "use a draft from the target's model family") from None


def _align(rt, view: DraftView) -> TextAlignment:
    t_text = view.source.text.encode("utf-8")
    d_text = view.draft.source.text.encode("utf-8")
    t_spans = _spans(rt.target, "target", t_text, view.prompt.tokens)
    d_spans = _spans(rt.draft, "draft", d_text, view.draft.tokens)
    anchors = view.source.anchors
    chunks = anchor_chunks(t_text, d_text, [a.encode("utf-8") for a, _ in anchors], [r for _, r in anchors])
    return align(t_text, t_spans, d_text, d_spans, chunks)
