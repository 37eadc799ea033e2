"""Reading prompts from flags, files and stdin, with strict UTF-8."""

from __future__ import annotations

import sys

from .errors import PromptError


def decode_utf8(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{source} is not valid UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None


def check_text(text, source: str) -> str:
    """``text`` if it is a ``str`` that UTF-8 can encode; else ``PromptError`` naming ``source``.

    Invalid UTF-8 on the command line arrives as lone surrogates (``\\udcff`` for the byte 0xff),
    which would otherwise fail deep inside tokenization.
    """
    if not isinstance(text, str):
        raise PromptError(f"{source} must be text (str), got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        ch = text[exc.start]
        try:
            what = f"byte {ch.encode('utf-8', 'surrogateescape')!r}"
        except UnicodeEncodeError:
            what = f"a lone surrogate U+{ord(ch):04X}"
        raise PromptError(f"{source} is not valid UTF-8 (character {exc.start}: {what})") from None
    return text


def read_file(path: str) -> str:
    if path == "-":
        return decode_utf8(sys.stdin.buffer.read(), "stdin")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise PromptError(f"prompt file is a directory: {path}") from None
    except OSError as exc:
        raise PromptError(f"cannot read prompt file {path}: {exc.strerror}") from None
    return decode_utf8(data, path)


def read_prompt(prompt: str | None, file: str | None, stdin_ok: bool = True) -> str:
    """The document text: ``-p``, else ``-f`` (``-`` is stdin), else stdin when it is not a TTY."""
    if prompt is not None and file is not None:
        raise PromptError("give the prompt with -p or -f, not both")
    if prompt is not None:
        return prompt
    if file is not None:
        return read_file(file)
    if stdin_ok and not sys.stdin.isatty():
        return decode_utf8(sys.stdin.buffer.read(), "stdin")
    raise PromptError("no prompt: use -p TEXT, -f FILE, or pipe text on stdin")


# options whose text is sent to a model, a template or a client: invalid UTF-8 is refused up front
TEXT_FLAGS = (("prompt", "-p"), ("question", "--question"), ("system", "-sys"), ("chat_template", "--chat-template"),
              ("gap", "--gap"), ("alias", "--alias"), ("api_key", "--api-key"), ("host", "--host"),
              ("upstream", "--upstream"), ("upstream_model", "--upstream-model"),
              ("upstream_api_key", "--upstream-api-key"))


def check_text_options(o) -> None:
    """Raise ``PromptError`` naming the flag whose text is not valid UTF-8 (lone surrogates)."""
    for key, flag in TEXT_FLAGS:
        if o.get(key) is not None:
            check_text(o[key], flag)
