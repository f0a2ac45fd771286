"""Retrying the opening of a response (R12): what to retry, how long to wait, and the loop.

Only the opening of a response is retried: the HTTP model calls ``call_with_retries`` on a
function that sends the request and reads up to the first output item, so nothing of a
retried attempt has reached the user. The contract is ours -- ``is_retryable``, the waits,
``on_retry(attempt, delay, error)``, the last error re-raised as is, None once cancelled --
and tenacity is how it is built, from named pieces:
``retry_if_exception(is_retryable)``, ``stop_after_attempt(n) | stop_when_event_set(cancel)``,
``RetryAfterWait`` (the server's ``retry-after-ms`` / ``retry-after``, capped, else exponential
backoff with jitter), ``sleep_using_event(cancel)`` (a cancel wakes the back-off at once) and
``before_sleep`` -> ``on_retry(attempt, delay, error)``. Decisions are logged at debug level;
headers and keys never are.

Imports no requests; leaf apart from ``exceptions``.
"""
from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any, Callable, Mapping, Optional, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_when_event_set
from tenacity.nap import sleep_using_event
from tenacity.wait import wait_base

from .exceptions import ModelHTTPError, ModelStreamError, StreamTimeout

__all__ = ["NO_RETRY_MARKERS", "RETRYABLE_ERROR_TYPES", "RETRYABLE_STATUSES", "RetryAfterWait",
           "build_retrying", "call_with_retries", "is_retryable", "parse_retry_after"]

log = logging.getLogger("agentstream")
T = TypeVar("T")

#: HTTP statuses worth another attempt (as the OpenAI and Anthropic SDKs do, plus 529).
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
#: ``ModelStreamError.error_type`` values worth another attempt.
RETRYABLE_ERROR_TYPES = frozenset({
    "overloaded_error", "api_error", "server_error", "rate_limit_error", "rate_limit_exceeded",
    "timeout", "connection_error", "connection_cut", "incomplete_stream",
})
#: A 429 / error whose body mentions one of these is out of money, not busy: never retried.
NO_RETRY_MARKERS = ("insufficient_quota", "enforced_spend_limit_reached", "billing_hard_limit",
                    "billing")


def _no_money(*texts: Any) -> bool:
    text = " ".join(str(t) for t in texts if t).lower()
    return any(marker in text for marker in NO_RETRY_MARKERS)


def is_retryable(error: BaseException) -> bool:
    """Whether a failed opening attempt may be retried (see the module docstring)."""
    if isinstance(error, StreamTimeout):
        return error.kind in ("connect", "idle")
    if isinstance(error, ModelHTTPError):
        if _no_money(error.code, getattr(error, "error_type", None), error.body, error.message):
            return False
        should = getattr(error, "should_retry", None)  # x-should-retry: true|false
        if should is not None:
            return bool(should)
        return error.status in RETRYABLE_STATUSES
    if isinstance(error, ModelStreamError):
        if _no_money(error.error_type, error.message, error.line):
            return False
        return error.error_type in RETRYABLE_ERROR_TYPES or error.status in RETRYABLE_STATUSES
    return False


def parse_retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds or
    an HTTP date). None if absent or unparseable; never negative."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            seconds = float(value) / 1000.0
            if seconds == seconds and seconds >= 0:  # not NaN
                return seconds
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if seconds == seconds and seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryAfterWait(wait_base):
    """The server's ``retry_after`` (capped at ``cap``) if the error has one, else exponential
    backoff ``base * 2**(n-1)`` (at most ``max_delay``) less up to 25 % random jitter."""

    def __init__(self, base: float = 0.5, max_delay: float = 8.0, cap: float = 60.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.base = base
        self.max_delay = max_delay
        self.cap = cap
        self.rand = rand

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        return self.delay_for(error, retry_state.attempt_number)

    def delay_for(self, error: Optional[BaseException], attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``error``."""
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, (int, float)) and asked >= 0:
            return float(min(asked, self.cap))
        delay = min(self.max_delay, self.base * 2 ** (attempt - 1))
        return delay * (1.0 - 0.25 * self.rand())


def build_retrying(*, max_retries: int, cancel: Any = None,
                   on_retry: Optional[Callable[[int, float, BaseException], None]] = None,
                   retryable: Callable[[BaseException], bool] = is_retryable,
                   wait: Optional[wait_base] = None,
                   sleep: Optional[Callable[[float], None]] = None) -> Retrying:
    """A tenacity ``Retrying`` for at most ``max_retries`` retries, stopped and woken by ``cancel``.

    ``sleep`` replaces the cancel-aware sleep (tests); ``wait`` the back-off policy.
    """
    stop = stop_after_attempt(max_retries + 1)
    if cancel is not None:
        stop = stop | stop_when_event_set(cancel)
    if sleep is None:
        sleep = sleep_using_event(cancel) if cancel is not None else time.sleep

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.debug("retry %d/%d in %.2f s after: %s", state.attempt_number, max_retries, delay, error)
        if on_retry is not None and error is not None:
            on_retry(state.attempt_number, delay, error)

    def should_retry(error: BaseException) -> bool:
        ok = retryable(error)
        if not ok:
            log.debug("not retrying %s: %s", type(error).__name__, error)
        return ok

    return Retrying(stop=stop, wait=wait or RetryAfterWait(), retry=retry_if_exception(should_retry),
                    sleep=sleep, before_sleep=before_sleep, reraise=True)


def call_with_retries(fn: Callable[[], T], *, cancel: Any = None, **kwargs: Any) -> Optional[T]:
    """``fn()`` under ``build_retrying(cancel=cancel, **kwargs)``; the last error is re-raised as is.

    Returns None, without calling ``fn`` again, once ``cancel`` is set: a cancel during the
    back-off ends the loop at once (tenacity itself would make one more attempt).
    """
    def attempt() -> Optional[T]:
        if cancel is not None and cancel.is_set():
            return None
        return fn()

    return build_retrying(cancel=cancel, **kwargs)(attempt)
