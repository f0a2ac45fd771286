"""Provider error bodies -> our errors: parse an error body, classify an error object by its
code and type (``classify_error``), build the ``ModelHTTPError`` for an HTTP error response and
the error for an error inside a stream (``in_band_error``: a 429 is a ``RateLimitError`` there too).

Shared by ``_http_model.py`` (HTTP error responses, JSON error bodies, stray error lines) and
the translators (``_anthropic_stream.py``: in-band ``event: error``). Pure: no I/O; imports
only ``exceptions``, ``_retry`` (Retry-After parsing), requests' ``CaseInsensitiveDict`` and the
standard library -- never ``_http.py``, ``_http_model.py`` or a provider module.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional, Tuple, Union

from requests.structures import CaseInsensitiveDict

from .. import _retry
from ..exceptions import AuthenticationError, ModelHTTPError, ModelStreamError, RateLimitError

__all__ = ["ERROR_CODE_STATUS", "ERROR_TYPE_STATUS", "InBandRateLimitError", "classify_error", "error_status",
           "http_error", "in_band_error", "parse_error_body", "retry_delay_in_body"]

#: provider error type -> the HTTP status it stands for (Anthropic's table; OpenAI's server_error)
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
    "api_error": 500, "server_error": 500, "timeout_error": 504, "overloaded_error": 529,
}
#: provider error code -> status. The code is more specific than the type and wins over it:
#: OpenAI sends ``{"type": "requests" | "tokens", "code": "rate_limit_exceeded"}``.
#: ``insufficient_quota`` is a 429 that is never retried (``_retry.NO_RETRY_MARKERS``).
ERROR_CODE_STATUS = {
    "rate_limit_exceeded": 429, "rate_limit_error": 429, "insufficient_quota": 429, "invalid_api_key": 401,
    "server_error": 500, "internal_error": 500, "api_error": 500, "service_unavailable": 503,
    "overloaded": 529, "overloaded_error": 529, "invalid_prompt": 400, "vector_store_timeout": 504,
}

#: a 500 whose message says the request did not validate (llama-cpp-python, FastAPI/pydantic servers)
_INVALID_REQUEST = re.compile(r"\b\d+ validation errors?\b")


class InBandRateLimitError(RateLimitError, ModelStreamError):
    """A rate limit reported inside a stream (or a 200 body): a ``RateLimitError`` with status
    429, and a ``ModelStreamError`` with the offending ``line`` and the provider's ``error_type``."""

    def __init__(self, message: str, *, line: Optional[str] = None, error_type: Optional[str] = None,
                 code: Optional[str] = None) -> None:
        RateLimitError.__init__(self, 429, line or "", message=message, code=code)
        self.status = 429                   # ModelStreamError.__init__ (next in the MRO) reset these
        self.line = line[:500] if isinstance(line, str) else line
        self.error_type = error_type
        self.message = message
        self.args = (message,)


def parse_error_body(body: Union[bytes, str]) -> Tuple[Optional[str], Optional[str], Optional[str], Any]:
    """``(message, type, code, parsed JSON or None)`` from an error body.

    Understands ``{"error": {"message", "type", "code"}}`` (OpenAI, Gemini, llama.cpp),
    ``{"type": "error", "error": {...}}`` (Anthropic, incl. ``details.error_code``),
    ``{"error": "text"}``, ``{"message"|"detail": ...}`` and plain text.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return (text.strip()[:2000] or None), None, None, None
    if not isinstance(data, dict):
        return text.strip()[:2000] or None, None, None, data
    err = data.get("error")
    if isinstance(err, dict):
        message = err.get("message") or err.get("msg")
        etype = err.get("type") or err.get("status")
        code = err.get("code")
        details = err.get("details")
        if isinstance(details, dict) and details.get("error_code"):
            code = details["error_code"]
        return (str(message) if message is not None else None, str(etype) if etype else None,
                str(code) if code not in (None, "") else None, data)
    if isinstance(err, str) and err:
        return err, None, None, data
    message = data.get("message") or data.get("detail")
    return (str(message) if message else None), None, None, data


def classify_error(err: Any) -> Tuple[Optional[str], Optional[int]]:
    """``(error_type, status)`` for an error object ``{"type", "code", "status", ...}``.

    The status: a numeric ``code``/``status_code``/``status`` (400-599), else the code's
    (``ERROR_CODE_STATUS``), else the type's (``ERROR_TYPE_STATUS``). The error type reported:
    a known code when the type is not a known one (``"requests"`` -> ``"rate_limit_exceeded"``),
    else the type (or a textual ``status``, Gemini's), else the code."""
    if not isinstance(err, dict):
        return None, None
    etype = next((v for v in (err.get("type"), err.get("status")) if isinstance(v, str) and v), None)
    code = err.get("code") if isinstance(err.get("code"), str) and err.get("code") else None
    status = next((v for v in (err.get("code"), err.get("status_code"), err.get("status"))
                   if isinstance(v, int) and not isinstance(v, bool) and 400 <= v < 600), None)
    if status is None:
        status = ERROR_CODE_STATUS.get(code or "") or ERROR_TYPE_STATUS.get(etype or "")
    if code in ERROR_CODE_STATUS and etype not in ERROR_TYPE_STATUS:
        etype = code
    return etype or code, status


def error_status(data: Any) -> Optional[int]:
    """An HTTP-like status from a parsed error body ``{"error": {...}}`` (see ``classify_error``)."""
    err = data.get("error") if isinstance(data, dict) else None
    return classify_error(err)[1] if isinstance(err, dict) else None


def in_band_error(message: str, err: Any, line: str) -> ModelStreamError:
    """The error for an error object inside a stream: ``InBandRateLimitError`` when it stands
    for a 429, else a ``ModelStreamError`` with the error type and status (``classify_error``)."""
    etype, status = classify_error(err)
    if status == 429:
        code = err.get("code") if isinstance(err, dict) and isinstance(err.get("code"), str) else None
        return InBandRateLimitError(message, line=line, error_type=etype, code=code or etype)
    return ModelStreamError(message, line=line, error_type=etype, status=status)


def retry_delay_in_body(data: Any) -> Optional[float]:
    """Gemini's ``RetryInfo.retryDelay: "34.4s"`` in a 429 body."""
    err = data.get("error") if isinstance(data, dict) else None
    for item in (err.get("details") or []) if isinstance(err, dict) and isinstance(err.get("details"), list) else []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def http_error(status: int, headers: Mapping[str, str], body: bytes, model_name: str) -> ModelHTTPError:
    """The error for an HTTP error response: ``AuthenticationError`` for 401/403,
    ``RateLimitError`` for 429, else ``ModelHTTPError``; with the provider's message, type,
    code, request id, Retry-After (header or Gemini's ``retryDelay``) and ``x-should-retry``."""
    headers = CaseInsensitiveDict(headers)
    message, etype, code, data = parse_error_body(body)
    cls = AuthenticationError if status in (401, 403) else RateLimitError if status == 429 else ModelHTTPError
    request_id = headers.get("x-request-id") or headers.get("request-id")
    if not request_id and isinstance(data, dict) and isinstance(data.get("request_id"), str):
        request_id = data["request_id"]
    retry_after = _retry.parse_retry_after(headers)
    if retry_after is None:
        retry_after = retry_delay_in_body(data)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if etype and message and etype not in message:
        message = f"{message} ({etype})"
    error = cls(status, text.strip(), request_id=request_id, model_name=model_name,
                message=message, retry_after=retry_after, code=code or etype)
    error.error_type = etype  # type: ignore[attr-defined]
    should = headers.get("x-should-retry", "").strip().lower()
    if should in ("true", "false"):
        error.should_retry = should == "true"  # type: ignore[attr-defined]
    elif status == 500 and _INVALID_REQUEST.search(message or ""):
        error.should_retry = False  # type: ignore[attr-defined]  # the same request fails again
    return error
