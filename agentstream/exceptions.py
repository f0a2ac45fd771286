"""Exceptions raised by agentstream.

Our exception hierarchy::

    AgentStreamError
    ├── UserError (also ValueError)          bad configuration or input, raised before any request
    ├── ModelHTTPError                       the API answered with an error status
    │   ├── AuthenticationError              401 / 403
    │   └── RateLimitError                   429
    ├── ModelStreamError                     malformed, cut-off or in-band error stream
    ├── StreamTimeout (also TimeoutError)    connect / idle / total timeout
    ├── UsageLimitExceeded                   a UsageLimits bound would be crossed
    ├── RunCancelled                         the run was cancelled
    └── UnexpectedModelBehavior              the model broke the protocol (retries exhausted, ...)

    ModelRetry (outside the tree)            raised by a tool to ask the model to try again

Every error that ends a run carries what the run had when it ended:
``partial_text``, ``partial_thinking``, ``messages`` (history, reusable) and
``usage``. No message, repr or attribute ever holds an API key.

Leaf module: imports nothing from the rest of the package.
"""
from __future__ import annotations

from typing import Any, List, Optional

__all__ = [
    "AgentStreamError", "AuthenticationError", "ModelHTTPError", "ModelRetry",
    "ModelStreamError", "RateLimitError", "RunCancelled", "StreamTimeout",
    "UnexpectedModelBehavior", "UsageLimitExceeded", "UserError",
]


class AgentStreamError(Exception):
    """Base of every agentstream error.

    Attributes set when the error ends a run (else their empty defaults):
    ``partial_text``, ``partial_thinking``, ``messages``, ``usage``, ``run_id``.
    """

    partial_text: str = ""
    partial_thinking: str = ""
    messages: List[Any] = []
    usage: Any = None
    run_id: Optional[str] = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UserError(AgentStreamError, ValueError):
    """Invalid configuration or input from the caller (raised before any request)."""


class ModelHTTPError(AgentStreamError):
    """The model API answered with an HTTP error status.

    Attributes: ``status``, ``body`` (the provider's error message or text,
    at most 2,000 characters), ``request_id`` (the provider's, if sent),
    ``model_name``, ``retry_after`` (seconds, if the server said), ``url`` (the
    request's, without credentials or query string; set by the HTTP layer).
    """

    url: Optional[str] = None

    def __init__(self, status: int, body: str = "", *, request_id: Optional[str] = None,
                 model_name: Optional[str] = None, message: Optional[str] = None,
                 retry_after: Optional[float] = None, code: Optional[str] = None) -> None:
        self.status = status
        self.body = (body or "")[:2000]
        self.request_id = request_id
        self.model_name = model_name
        self.retry_after = retry_after
        self.code = code
        text = message or self.body or "no body"
        where = f" from {model_name}" if model_name else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status}{where}: {text}{rid}")


class AuthenticationError(ModelHTTPError):
    """401 / 403: the key is missing, wrong or not allowed."""


class RateLimitError(ModelHTTPError):
    """429: rate limited (or out of quota; see ``code``)."""


class ModelStreamError(AgentStreamError):
    """The response stream was malformed, cut off, or carried an error event.

    ``line`` is the offending wire line (if any), ``error_type`` the
    provider's error type for in-band errors (e.g. ``overloaded_error``),
    ``status`` an HTTP-like status the provider attached, if any.
    """

    def __init__(self, message: str, *, line: Optional[str] = None,
                 error_type: Optional[str] = None, status: Optional[int] = None) -> None:
        self.line = line[:500] if isinstance(line, str) else line
        self.error_type = error_type
        self.status = status
        super().__init__(message)


class StreamTimeout(AgentStreamError, TimeoutError):
    """A connect, idle or total timeout fired. ``kind`` is which, ``seconds`` its value."""

    def __init__(self, message: str, *, kind: str = "idle", seconds: Optional[float] = None) -> None:
        self.kind = kind
        self.seconds = seconds
        super().__init__(message)


class UsageLimitExceeded(AgentStreamError):
    """A usage limit would be exceeded. ``limit`` names it, ``value`` the figure reached."""

    def __init__(self, message: str, *, limit: str = "", value: Optional[int] = None) -> None:
        self.limit = limit
        self.value = value
        super().__init__(message)


class RunCancelled(AgentStreamError):
    """The run was cancelled. Carries ``partial_text``, ``partial_thinking``,
    ``pending_tools`` (names of tools that did not run), ``messages`` and ``usage``."""

    def __init__(self, message: str = "run cancelled", *, partial_text: str = "",
                 partial_thinking: str = "", pending_tools: Optional[List[str]] = None,
                 messages: Optional[List[Any]] = None, usage: Any = None,
                 run_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.partial_text = partial_text
        self.partial_thinking = partial_thinking
        self.pending_tools = list(pending_tools or [])
        self.messages = list(messages or [])
        self.usage = usage
        self.run_id = run_id


class UnexpectedModelBehavior(AgentStreamError):
    """The model did not follow the protocol (e.g. tool retries exhausted)."""


class ModelRetry(Exception):
    """Raise inside a tool to send ``message`` back to the model as a retry prompt."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
