"""HTTP-level faults through the public path (``Agent`` over ``OpenAIChatModel`` / ``AnthropicModel``
against the loopback fault server): error statuses then success, ``429`` with ``Retry-After`` /
``retry-after-ms``, a ``200`` carrying a JSON error instead of a stream, the wrong content type.

Checks as in ``test_faults.py``: the exception class and a message naming the cause, one
terminal event, a ``Retrying`` event per retry (with the delay the server asked for), no
retry of what cannot succeed, nothing left open.
"""
from __future__ import annotations

import time
from typing import Any, List

import pytest

from agentstream import AuthenticationError, ModelHTTPError, ModelStreamError, RateLimitError
from tests.faultkit import ANTHROPIC, FAKE_KEY, OPENAI, WIRES, Reply, assert_failed, drive
from tests.faultkit import make_fixture, server_fixture  # noqa: F401 (the "make" and "server" fixtures)


def error_body(wire: Any, etype: str, message: str) -> dict:
    if wire is ANTHROPIC:
        return {"type": "error", "error": {"type": etype, "message": message}}
    return {"error": {"message": message, "type": etype, "code": None}}


# --- 5xx then success ------------------------------------------------------------------------------

@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_500_502_503_529_then_success(server, make, wire):
    statuses = [500, 502, 503, 529]
    replies: List[Reply] = [Reply.json(s, error_body(wire, "overloaded_error" if s == 529 else "api_error",
                                                     f"upstream said {s}")) for s in statuses[:-1]]
    replies[1] = Reply(status=502, headers={"Content-Type": "text/html"}, chunks=[b"<html>Bad Gateway</html>"],
                       length=True)   # a proxy's page, not JSON
    replies.append(Reply.json(529, error_body(wire, "overloaded_error", "Overloaded")))
    server.enqueue(*replies, wire.reply("fine"))
    out = drive(make(wire, max_retries=4))
    assert out.error is None and out.stream.result().output == "fine"
    out.check_terminal("run_complete")
    retrying = out.of("retrying")
    assert [r.attempt for r in retrying] == [1, 2, 3, 4]
    assert [r.error.status for r in retrying] == statuses
    assert all(isinstance(r.error, ModelHTTPError) and f"HTTP {r.error.status}" in str(r.error) for r in retrying)
    assert "Bad Gateway" in str(retrying[1].error) and "Overloaded" in str(retrying[3].error)
    kinds = out.kinds
    assert kinds.index("retrying") > kinds.index("request_start") and "text_delta" not in kinds[:kinds.index("retrying")]
    assert len(server.requests) == 5 and out.stream.result().usage.requests == 1
    assert all(r.json == server.requests[0].json for r in server.requests)   # the same request each time


def test_retries_exhausted_raise_the_last_error(server, make):
    server.enqueue(*[Reply.json(503, {"error": {"message": f"unavailable #{i}"}}) for i in range(2)])
    out = drive(make(max_retries=1))
    error = assert_failed(out, ModelHTTPError, "HTTP 503", "unavailable #1", retries=1)
    assert error.status == 503 and len(server.requests) == 2


@pytest.mark.parametrize("status, cls", [(400, ModelHTTPError), (401, AuthenticationError),
                                         (404, ModelHTTPError)])
def test_client_errors_are_not_retried(server, make, status, cls):
    body = {"error": {"message": f"Incorrect API key provided: {FAKE_KEY}", "type": "invalid_request_error"}}
    server.enqueue(Reply.json(status, body, headers={"x-request-id": "req_42"}))
    out = drive(make(max_retries=3))
    error = assert_failed(out, cls, f"HTTP {status}", "req_42")
    assert error.status == status and error.request_id == "req_42" and len(server.requests) == 1
    for text in (str(error), repr(error), error.body, str(out.terminal.to_dict())):
        assert FAKE_KEY not in text


# --- 429 -------------------------------------------------------------------------------------------

def test_429_honours_retry_after_and_retry_after_ms(server, make):
    server.enqueue(
        Reply.json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
                   headers={"Retry-After": "1"}),
        Reply.json(429, {"error": {"message": "slow down"}}, headers={"retry-after-ms": "150", "Retry-After": "30"}),
        OPENAI.reply("done"))
    agent = make(max_retries=2)
    agent.model.retry_base = 5.0   # would be visible if the server's delays were ignored
    out = drive(agent)
    assert out.error is None and out.stream.result().output == "done"
    retrying = out.of("retrying")
    assert [(r.attempt, r.delay) for r in retrying] == [(1, 1.0), (2, 0.15)]   # ms wins over seconds
    assert all(isinstance(r.error, RateLimitError) for r in retrying)
    assert "Rate limit reached" in str(retrying[0].error)
    gaps = [b.time - a.time for a, b in zip(server.requests, server.requests[1:])]
    assert gaps[0] >= 0.95 and 0.14 <= gaps[1] < 1.0, gaps
    assert out.elapsed < 5


def test_429_exhausted_carries_retry_after(server, make):
    server.enqueue(Reply.json(429, {"error": {"message": "Rate limit reached"}}, headers={"retry-after-ms": "20"}),
                   Reply.json(429, {"error": {"message": "Rate limit reached"}}, headers={"retry-after-ms": "20"}))
    out = drive(make(max_retries=1))
    error = assert_failed(out, RateLimitError, "HTTP 429", "Rate limit reached", retries=1)
    assert error.retry_after == 0.02


def test_429_out_of_quota_is_not_retried(server, make):
    server.enqueue(Reply.json(429, {"error": {"message": "You exceeded your current quota",
                                              "type": "insufficient_quota", "code": "insufficient_quota"}},
                              headers={"Retry-After": "1"}))
    out = drive(make(max_retries=3))
    error = assert_failed(out, RateLimitError, "exceeded your current quota")
    assert error.code == "insufficient_quota" and len(server.requests) == 1


# --- a 200 that is not a stream ----------------------------------------------------------------------

@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_200_with_a_json_error_body(server, make, wire):
    server.enqueue(Reply.json(200, error_body(wire, "invalid_request_error", "prompt is too long")))
    out = drive(make(wire, max_retries=2))
    error = assert_failed(out, ModelHTTPError, "prompt is too long", "HTTP 400")
    assert error.status == 400 and len(server.requests) == 1   # a client error: not retried


def test_200_with_a_retryable_json_error_body_is_retried(server, make):
    server.enqueue(Reply.json(200, error_body(ANTHROPIC, "overloaded_error", "Overloaded")), ANTHROPIC.reply("ok"))
    out = drive(make(ANTHROPIC, max_retries=1))
    assert out.error is None and out.stream.result().output == "ok"
    [retry] = out.of("retrying")
    assert retry.error.status == 529 and "Overloaded" in str(retry.error)


def test_200_with_json_that_is_not_an_error(server, make):
    server.enqueue(Reply.json(200, {"id": "chatcmpl-1", "choices": [{"message": {"content": "hi"}}]}))
    out = drive(make())
    error = assert_failed(out, ModelStreamError, "application/json", "did not stream")
    assert '"choices"' in error.line


@pytest.mark.parametrize("ctype", ["text/html", "application/octet-stream"])
def test_wrong_content_type(server, make, ctype):
    server.enqueue(Reply(headers={"Content-Type": ctype}, chunks=[b"<html>maintenance</html>"], length=True))
    out = drive(make(max_retries=2))
    error = assert_failed(out, ModelStreamError, ctype, "did not stream")
    assert "maintenance" in error.line and len(server.requests) == 1


def test_error_bodies_leave_the_connection_reusable(server, make):
    """A complete error body is read, so the next request goes over the same connection."""
    server.enqueue(Reply.json(503, {"error": {"message": "busy"}}), OPENAI.reply("a"), OPENAI.reply("b"))
    agent = make(max_retries=1)
    assert agent.run("1").output == "a" and agent.run("2").output == "b"
    assert server.connection_count == 1 and len(server.requests) == 3
    start = time.monotonic()
    agent.model.close()
    assert server.disconnected.wait(2) and time.monotonic() - start < 2
