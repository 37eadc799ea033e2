"""OpenAI response bodies and server-sent-event chunks built from a pipeline :class:`Result`.

Besides OpenAI's fields every final answer carries llama-server's ``timings`` object
(:meth:`Timings.server_timings`, with ``prompt_total_n``/``prompt_kept_n``) and a ``specllama``
object: the method that ran, the prompt's total and kept token counts, and notes (fallbacks).
"""

from __future__ import annotations

import json
import time
import uuid

from ..pipeline import Result

FINISH = {"eog": "stop", "length": "length"}


class Answer:
    """The identity of one response: its id, creation time, model and kind (``chat``/``completion``)."""

    def __init__(self, kind: str, model: str):
        self.kind = kind
        self.model = model
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    # -- whole answers ------------------------------------------------------------------------
    def full(self, result: Result) -> dict:
        """The non-streaming body."""
        finish = FINISH.get(result.stop, "stop")
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": result.text},
                      "logprobs": None, "finish_reason": finish}
            body = self._head("chat.completion")
        else:
            choice = {"index": 0, "text": result.text, "logprobs": None, "finish_reason": finish}
            body = self._head("text_completion")
        body["choices"] = [choice]
        body["usage"] = usage(result)
        body.update(extras(result))
        return body

    # -- stream chunks ------------------------------------------------------------------------
    def first(self) -> dict | None:
        """The opening chunk (chat: the assistant role), or None."""
        if self.kind != "chat":
            return None
        return self._chunk({"role": "assistant", "content": ""}, None)

    def piece(self, text: str) -> dict:
        return self._chunk({"content": text} if self.kind == "chat" else text, None)

    def last(self, result: Result) -> dict:
        """The chunk with ``finish_reason``, ``timings`` and the ``specllama`` object."""
        body = self._chunk({} if self.kind == "chat" else "", FINISH.get(result.stop, "stop"))
        body.update(extras(result))
        return body

    def usage_chunk(self, result: Result) -> dict:
        """The ``stream_options.include_usage`` chunk: no choices, only ``usage``."""
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage(result)}

    def _chunk(self, delta, finish: str | None) -> dict:
        if self.kind == "chat":
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head("text_completion"), "choices": [choice]}


def usage(result: Result) -> dict:
    """``prompt_tokens`` is the whole prompt as the client sent it; the kept count is in
    ``specllama.n_kept``."""
    n_prompt, n_out = result.timings.n_prompt, result.n_generated
    return {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}


def extras(result: Result) -> dict:
    t = result.timings
    return {"timings": t.server_timings(result.n_generated),
            "specllama": {"method": result.method, "n_prompt": t.n_prompt, "n_kept": t.n_kept,
                          "notes": list(result.notes)}}


def sse(data: dict | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode("utf-8")


DONE = sse("[DONE]")
