"""_retry: what is retried, how long we wait, and retries of HTTPModel against a loopback server."""
from __future__ import annotations

import email.utils
import logging
import threading
import time
from typing import Any, List

import pytest
from tenacity import RetryCallState

from agentstream import _retry
from agentstream._cancel import CancelToken
from agentstream.exceptions import (AuthenticationError, ModelHTTPError, ModelStreamError, RateLimitError,
                                    StreamTimeout)
from agentstream.models._base import TextChunk
from agentstream.settings import Timeout
from tests.server import FAKE_KEY, Reply, Server, TinyModel, collect

PROMPT = 0.1


def http(status: int, body: str = "", cls: Any = ModelHTTPError, **kw: Any) -> ModelHTTPError:
    return cls(status, body, **kw)


def quota_429() -> RateLimitError:
    return RateLimitError(429, '{"error": {"type": "insufficient_quota"}}', code="insufficient_quota")


def x_should_retry(status: int, value: bool) -> ModelHTTPError:
    error = http(status)
    error.should_retry = value  # type: ignore[attr-defined]
    return error


# --- decisions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("error, expected", [
    (http(500), True), (http(502), True), (http(503), True), (http(504), True), (http(529), True),
    (http(408), True), (http(409), True), (http(429, cls=RateLimitError), True),
    (http(400), False), (http(401, cls=AuthenticationError), False), (http(403, cls=AuthenticationError), False),
    (http(404), False), (http(422), False),
    (quota_429(), False),
    (http(429, "You exceeded your current quota, please check your plan and billing details.",
          cls=RateLimitError), False),
    (http(429, '{"error": {"details": {"error_code": "enforced_spend_limit_reached"}}}', cls=RateLimitError), False),
    (x_should_retry(503, False), False), (x_should_retry(400, True), True),
    (ModelStreamError("x", error_type="overloaded_error"), True),
    (ModelStreamError("x", error_type="api_error"), True),
    (ModelStreamError("x", error_type="connection_cut"), True),
    (ModelStreamError("x", error_type="connection_error"), True),
    (ModelStreamError("x", status=503), True),
    (ModelStreamError("x", error_type="invalid_request_error", status=400), False),
    (ModelStreamError("x", error_type="insufficient_quota", status=429), False),
    (ModelStreamError("malformed", line="data: {"), False),
    (StreamTimeout("t", kind="connect"), True), (StreamTimeout("t", kind="idle"), True),
    (StreamTimeout("t", kind="total"), False),
    (ValueError("bug"), False), (KeyError("bug"), False),
])
def test_is_retryable(error, expected):
    assert _retry.is_retryable(error) is expected


def test_parse_retry_after():
    # gotcha #25: retry-after-ms, retry-after seconds or HTTP date
    now = time.time()
    future = email.utils.formatdate(now + 10, usegmt=True)
    past = email.utils.formatdate(now - 10, usegmt=True)
    assert _retry.parse_retry_after({"retry-after-ms": "200"}) == 0.2
    assert _retry.parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry.parse_retry_after({"retry-after": "3"}) == 3.0
    assert _retry.parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert 8.5 <= _retry.parse_retry_after({"retry-after": future}, now=now) <= 10.5
    assert _retry.parse_retry_after({"retry-after": past}, now=now) == 0.0
    for junk in ({}, {"retry-after": "soon"}, {"retry-after": "-1"}, {"retry-after-ms": "nan"},
                 {"retry-after": ""}):
        assert _retry.parse_retry_after(junk) is None, junk


def _state(attempt: int, error: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_wait_honours_retry_after_with_a_cap():
    wait = _retry.RetryAfterWait(base=0.5, max_delay=8, cap=60)
    assert wait(_state(1, http(429, retry_after=2.5, cls=RateLimitError))) == 2.5
    assert wait(_state(1, http(503, retry_after=3600))) == 60


def test_wait_backs_off_exponentially_with_jitter():
    low = _retry.RetryAfterWait(base=0.5, max_delay=8, rand=lambda: 1.0)
    high = _retry.RetryAfterWait(base=0.5, max_delay=8, rand=lambda: 0.0)
    assert [high(_state(n, http(500))) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 8, 8]
    assert [low(_state(n, http(500))) for n in (1, 2)] == [0.375, 0.75]


def test_retrying_loop_with_injected_sleep():
    sleeps: List[float] = []
    retries: List[Any] = []
    calls = iter([http(503), ModelStreamError("x", error_type="overloaded_error"), "ok"])

    def attempt() -> str:
        outcome = next(calls)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    result = _retry.call_with_retries(attempt, max_retries=2, on_retry=lambda *a: retries.append(a),
                                      sleep=sleeps.append, wait=_retry.RetryAfterWait(rand=lambda: 0.0))
    assert result == "ok"
    assert sleeps == [0.5, 1.0]
    assert [(a, d, type(e)) for a, d, e in retries] == [(1, 0.5, ModelHTTPError), (2, 1.0, ModelStreamError)]


def test_retrying_gives_up_and_reraises_the_last_error():
    errors = iter([http(503), http(502), http(500)])

    def attempt() -> None:
        raise next(errors)

    with pytest.raises(ModelHTTPError) as info:
        _retry.call_with_retries(attempt, max_retries=2, sleep=lambda s: None)
    assert info.value.status == 500


# --- against the server ------------------------------------------------------------------------

@pytest.fixture
def server():
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked


@pytest.fixture
def model(server):
    m = TinyModel("tiny-1", base_url=server.url, api_key=FAKE_KEY, timeout=Timeout(connect=2, idle=2, total=10))
    yield m
    m.close()


def texts(items: List[Any]) -> List[str]:
    return [i.text for i in items if isinstance(i, TextChunk)]


OK = Reply.sse({"t": "ok"}, "[DONE]")


def test_429_retry_after_ms_is_honoured(server, model):
    server.enqueue(Reply.json(429, {"error": {"message": "slow down", "type": "rate_limit_exceeded"}},
                              headers={"retry-after-ms": "200"}), OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert error is None and texts(items) == ["ok"]
    assert len(retries) == 1
    attempt, delay, err = retries[0]
    assert attempt == 1 and delay == pytest.approx(0.2) and isinstance(err, RateLimitError)
    assert server.requests[1].time - server.requests[0].time >= 0.2


@pytest.mark.parametrize("status", [500, 502, 503, 529, 408])
def test_server_error_then_success(server, model, status):
    server.enqueue(Reply.json(status, {"error": {"message": "boom"}}), OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert error is None and texts(items) == ["ok"]
    assert [(a, e.status) for a, _d, e in retries] == [(1, status)]
    assert len(server.requests) == 2


def test_retries_exhausted(server, model):
    server.enqueue(*[Reply.json(503, {"error": {"message": f"down {i}"}}) for i in range(3)])
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert isinstance(error, ModelHTTPError) and error.status == 503 and "down 2" in str(error)
    assert len(retries) == 2 and len(server.requests) == 3


def test_max_retries_zero(server, model):
    model.max_retries = 0
    server.enqueue(Reply.json(503, {"error": {"message": "down"}}), OK)
    items, error = collect(model)
    assert isinstance(error, ModelHTTPError) and len(server.requests) == 1


def test_overloaded_in_stream_before_any_delta_is_retried(server, model):
    server.enqueue(Reply.sse({"finish": None}, {"error": {"type": "overloaded_error", "message": "Overloaded"}}), OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert error is None and texts(items) == ["ok"]
    assert len(retries) == 1 and retries[0][2].error_type == "overloaded_error"


def test_error_after_first_delta_is_not_retried(server, model):
    server.enqueue(Reply.sse({"t": "partial"}, {"error": {"type": "overloaded_error", "message": "Overloaded"}}), OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert texts(items) == ["partial"]
    assert isinstance(error, ModelStreamError) and error.error_type == "overloaded_error"
    assert retries == [] and len(server.requests) == 1


@pytest.mark.parametrize("reply", [
    Reply.sse({"t": "a"}, drop_mid_chunk=0),                     # connection cut before any delta
    Reply.sse({"finish": None}, chunked=False, drop_mid_chunk=0),  # EOF before any delta
])
def test_broken_stream_before_any_delta_is_retried(server, model, reply):
    server.enqueue(reply, OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert error is None and texts(items) == ["ok"] and len(retries) == 1


def test_idle_timeout_before_any_delta_is_retried(server, model):
    model.timeout = Timeout(connect=2, idle=0.2)
    server.enqueue(Reply(stall_after=0), OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert error is None and texts(items) == ["ok"]
    assert isinstance(retries[0][2], StreamTimeout)


@pytest.mark.parametrize("reply", [
    Reply.json(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                               "code": "insufficient_quota"}}),
    Reply.json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "spend limit",
                                                "details": {"error_code": "enforced_spend_limit_reached"}}}),
    Reply.json(400, {"error": {"message": "bad"}}),
    Reply.json(401, {"error": {"message": "who"}}),
    Reply.json(404, {"error": {"message": "where"}}),
    Reply.json(503, {"error": {"message": "no"}}, headers={"x-should-retry": "false"}),
], ids=["insufficient_quota", "spend_limit", "400", "401", "404", "x-should-retry"])
def test_not_retried(server, model, reply):
    server.enqueue(reply, OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert isinstance(error, ModelHTTPError) and error.status == reply.status
    assert retries == [] and len(server.requests) == 1


def test_key_never_reaches_retry_callbacks_or_logs(server, model, caplog):
    caplog.set_level(logging.DEBUG, logger="agentstream")
    server.enqueue(Reply.json(503, {"error": {"message": f"upstream rejected key {FAKE_KEY}"}}), OK)
    retries: List[Any] = []
    items, error = collect(model, retries=retries)
    assert error is None and len(retries) == 1
    seen = retries[0][2]
    assert "upstream rejected key ***" in str(seen)
    for text in (str(seen), repr(seen), seen.body, caplog.text):
        assert FAKE_KEY not in text
    assert "retry 1/2" in caplog.text


def test_quota_error_keeps_code(server, model):
    server.enqueue(Reply.json(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                              "code": "insufficient_quota"}}))
    items, error = collect(model)
    assert isinstance(error, RateLimitError) and error.code == "insufficient_quota"


def test_cancel_during_backoff_wakes_at_once(server, model):
    server.enqueue(Reply.json(503, {"error": {"message": "busy"}}, headers={"retry-after": "30"}), OK)
    cancel = CancelToken()
    sleeping = threading.Event()
    done = threading.Event()
    result: dict = {}

    def run() -> None:
        result["out"] = collect(model, cancel=cancel, retries=_Signal(sleeping))
        result["end"] = time.monotonic()
        done.set()

    thread = threading.Thread(target=run, name="test-consumer", daemon=True)
    thread.start()
    assert sleeping.wait(3)  # on_retry runs just before the 30 s back-off
    start = time.monotonic()
    cancel.cancel()
    assert done.wait(3)
    assert result["end"] - start < PROMPT
    assert result["out"] == ([], None)  # a cancel, not an error
    assert len(server.requests) == 1
    thread.join(2)


class _Signal(list):
    """A retries list that also sets an Event when appended to."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def append(self, item: Any) -> None:
        super().append(item)
        self.event.set()


def test_a_cancel_during_the_back_off_ends_the_loop_without_another_attempt():
    cancel = CancelToken()
    calls: List[int] = []

    def attempt() -> None:
        calls.append(1)
        raise http(503)

    result = _retry.call_with_retries(attempt, max_retries=5, cancel=cancel, sleep=lambda s: cancel.cancel())
    assert result is None and len(calls) == 1
