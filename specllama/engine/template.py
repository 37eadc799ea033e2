"""Chat templates: llama.cpp's ``llama_chat_apply_template`` first, Jinja when it cannot.

llama.cpp recognises its built-in templates by name (``chatml``, ``llama3``, ``gemma``, ...) or
detects them from the Jinja text stored in the GGUF; it does not run arbitrary Jinja. Any other
Jinja text (a GGUF's own template that llama.cpp does not recognise, or ``--chat-template`` text)
is rendered with jinja2 in a sandbox, as llama-server's ``--jinja`` does: ``messages``,
``add_generation_prompt``, ``bos_token``, ``eos_token`` and ``raise_exception`` are defined.
"""

from __future__ import annotations

import ctypes

from ..errors import ConfigError, ModelError
from .lib import C


def builtin_templates() -> list[str]:
    """Names of the templates llama.cpp knows."""
    n = C.llama_chat_builtin_templates(None, 0)
    arr = (ctypes.c_char_p * max(n, 1))()
    n = C.llama_chat_builtin_templates(arr, n)
    return sorted(a.decode() for a in arr[:n])


def is_jinja(template: str) -> bool:
    """True for Jinja text (as opposed to a built-in template's name)."""
    return "{%" in template or "{{" in template


def _llama_apply(template: str, messages: list[tuple[str, str]], add_assistant: bool) -> str | None:
    """llama.cpp's rendering, or None when it does not know the template."""
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
            return None
        if got <= size:
            return buf.raw[:got].decode("utf-8")
        size = got + 1
    raise ModelError("chat template output kept growing")  # pragma: no cover


def render_jinja(template: str, messages: list[tuple[str, str]], add_assistant: bool = True,
                 bos: str = "", eos: str = "", source: str = "--chat-template") -> str:
    """Render Jinja ``template`` in a sandbox; a syntax or template error is a ``ConfigError``
    naming ``source`` (where the template came from) and the line."""
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 comes with llama-cpp-python
        raise ConfigError(f"{source} is a Jinja template, and rendering it needs jinja2: pip install jinja2") from None

    def raise_exception(message: str):
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        tmpl = env.from_string(template)
        return tmpl.render(messages=[{"role": r, "content": c} for r, c in messages],
                           add_generation_prompt=add_assistant, bos_token=bos, eos_token=eos,
                           raise_exception=raise_exception)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{source}: Jinja syntax error on line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{source}: the Jinja template failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a template may raise anything from inside its code
        raise ConfigError(f"{source}: the Jinja template failed: {type(exc).__name__}: {exc}") from None


def apply_template(template: str, messages: list[tuple[str, str]], add_assistant: bool = True,
                   model_name: str = "model", bos: str = "", eos: str = "",
                   source: str | None = None) -> str:
    """Render ``messages`` (role, content) with ``template``: a built-in name, or Jinja text.

    ``source`` says where the template came from (``--chat-template``, or None for the GGUF of
    ``model_name``), for the error messages.
    """
    got = _llama_apply(template, messages, add_assistant)
    if got is not None:
        return got
    where = source or f"the chat template of {model_name}"
    if is_jinja(template):
        return render_jinja(template, messages, add_assistant, bos, eos, where)
    raise ConfigError(f"{where}: unknown chat template name {template!r}; use one of "
                      f"{', '.join(builtin_templates())}, or Jinja text")
