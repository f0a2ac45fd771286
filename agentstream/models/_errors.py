"""Provider error bodies -> our errors: parse an error body, map an error type to its status,
build the ``ModelHTTPError`` for an HTTP error response.

Shared by ``_http_model.py`` (HTTP error responses, JSON error bodies, stray error lines) and
the translators (``_anthropic_stream.py``: in-band ``event: error``). Pure: no I/O; imports
only ``exceptions``, ``_retry`` (Retry-After parsing), requests' ``CaseInsensitiveDict`` and the
standard library -- never ``_http.py``, ``_http_model.py`` or a provider module.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Tuple, Union

from requests.structures import CaseInsensitiveDict

from .. import _retry
from ..exceptions import AuthenticationError, ModelHTTPError, RateLimitError

__all__ = ["ERROR_TYPE_STATUS", "error_status", "http_error", "parse_error_body", "retry_delay_in_body"]

#: provider error type -> the HTTP status it stands for (Anthropic's table; OpenAI's server_error)
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
    "api_error": 500, "server_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


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


def error_status(data: Any) -> Optional[int]:
    """An HTTP-like status from a parsed error object (numeric code, or the type table)."""
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None
    for key in ("code", "status"):
        value = err.get(key)
        if isinstance(value, int) and 400 <= value < 600:
            return value
    return ERROR_TYPE_STATUS.get(str(err.get("type")))


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
    return error
