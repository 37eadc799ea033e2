"""HTTP errors with OpenAI-style bodies: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from ..errors import ConfigError, PromptError, SpecllamaError

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
          404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error", 503: "server_error"}


class ApiError(Exception):
    """A request that fails with ``status``; ``param`` names the offending field (dotted)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        message, param = _utf8(message), _utf8(param)
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def _utf8(s: str | None) -> str | None:
    """``s`` with lone surrogates (a field name such as ``"\\ud800"`` quoted back) escaped, so the
    error body can always be encoded."""
    return None if s is None else s.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class PromptTooLong(PromptError):
    """The tokenized prompt is over the server's ``--max-prompt-tokens``."""

    code = "context_length_exceeded"
    param = "messages"


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param, code)


def from_specllama(exc: SpecllamaError) -> ApiError:
    """A specllama error raised while serving: the request's fault (400) or the server's (500)."""
    if isinstance(exc, (ConfigError, PromptError)):
        return ApiError(400, str(exc), getattr(exc, "param", None), getattr(exc, "code", None))
    return ApiError(500, str(exc))
