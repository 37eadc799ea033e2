"""Chat templates through llama.cpp's ``llama_chat_apply_template``.

llama.cpp recognises its built-in templates by name (``chatml``, ``llama3``, ``gemma``, ...) or
detects them from the Jinja text stored in the GGUF; it does not run arbitrary Jinja.
"""

from __future__ import annotations

import ctypes

from ..errors import ModelError
from .lib import C


def builtin_templates() -> list[str]:
    """Names of the templates llama.cpp knows."""
    n = C.llama_chat_builtin_templates(None, 0)
    arr = (ctypes.c_char_p * max(n, 1))()
    n = C.llama_chat_builtin_templates(arr, n)
    return sorted(a.decode() for a in arr[:n])


def apply_template(template: str, messages: list[tuple[str, str]], add_assistant: bool = True,
                   model_name: str = "model") -> str:
    """Render ``messages`` (role, content) with ``template`` (a built-in name or Jinja text)."""
    n = len(messages)
    keep = [(r.encode("utf-8"), c.encode("utf-8")) for r, c in messages]
    arr = (C.llama_chat_message * max(n, 1))()
    for i, (r, c) in enumerate(keep):
        arr[i].role = r
        arr[i].content = c
    tmpl = template.encode("utf-8")
    size = sum(len(r) + len(c) for r, c in keep) * 2 + 256
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        got = C.llama_chat_apply_template(tmpl, arr, n, add_assistant, buf, size)
        if got < 0:
            raise ModelError(f"llama.cpp does not support the chat template of {model_name}; "
                             f"pass --chat-template NAME (one of: {', '.join(builtin_templates())})")
        if got <= size:
            return buf.raw[:got].decode("utf-8")
        size = got + 1
    raise ModelError("chat template output kept growing")  # pragma: no cover
