"""Wire fixes of issue 10 through the public path against the loopback server: rate limits
classified by code (in-band and in a 200 JSON body) retried as ``RateLimitError``; a 500 that
says the request is invalid not retried; duplicate tool call ids and invalid arguments through
a whole tool round trip (events, execution, history); one model shared by concurrent streams
when the server refuses ``stream_options``.

The translator- and request-level checks: tests/models/test_wire_fixes.py.
"""
from __future__ import annotations

import json
import threading
from typing import Any, List

from agentstream import ModelHTTPError, RateLimitError
from agentstream.models._base import TextChunk
from tests.faultkit import ANTHROPIC, OPENAI, Reply, assert_failed, drive, openai_model
from tests.faultkit import make_fixture, server_fixture  # noqa: F401 (the "make" and "server" fixtures)
from tests.server import collect

RATE = {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}
QUOTA = {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}


def test_in_band_rate_limit_code_is_retried_as_a_rate_limit_error(server, make):
    server.enqueue(Reply.sse({"error": RATE}), OPENAI.reply("fine"))
    out = drive(make(OPENAI))
    assert out.error is None and out.stream.result().output == "fine"
    (retrying,) = out.of("retrying")
    assert isinstance(retrying.error, RateLimitError) and retrying.error.status == 429
    assert retrying.error.error_type == "rate_limit_exceeded" and len(server.requests) == 2


def test_rate_limit_code_in_a_200_json_body_is_retried_as_a_rate_limit_error(server, make):
    server.enqueue(Reply.json(200, {"error": RATE}), OPENAI.reply("fine"))
    out = drive(make(OPENAI))
    assert out.error is None and out.stream.result().output == "fine"
    (retrying,) = out.of("retrying")
    assert isinstance(retrying.error, RateLimitError) and retrying.error.status == 429
    assert retrying.error.code == "rate_limit_exceeded"


def test_rate_limit_code_on_a_stray_json_line_is_a_rate_limit_error(server, make):
    server.enqueue(Reply(chunks=[json.dumps({"error": RATE}).encode() + b"\n"],
                         headers={"Content-Type": "text/event-stream"}), OPENAI.reply("fine"))
    out = drive(make(OPENAI))
    assert out.error is None
    (retrying,) = out.of("retrying")
    assert isinstance(retrying.error, RateLimitError) and retrying.error.status == 429


def test_in_band_insufficient_quota_is_a_rate_limit_error_and_not_retried(server, make):
    server.enqueue(Reply.sse({"error": QUOTA}), OPENAI.reply("never"))
    out = drive(make(OPENAI))
    error = assert_failed(out, RateLimitError, "exceeded your current quota")
    assert error.status == 429 and len(server.requests) == 1


def test_500_validation_error_is_not_retried(server, make):
    # what llama-cpp-python answers to a request its pydantic models refuse
    body = {"error": {"message": "1 validation error:\n  {'type': 'string_type', 'loc': ('body', 'messages', 1, "
                                 "'content'), 'msg': 'Input should be a valid string'}", "type": "internal_server_error"}}
    server.enqueue(Reply.json(500, body), OPENAI.reply("never"))
    out = drive(make(OPENAI))
    error = assert_failed(out, ModelHTTPError, "HTTP 500", "validation error")
    assert error.status == 500 and len(server.requests) == 1


def _round_trip(server: Any, make: Any, wire: Any, calls: List[tuple]) -> Any:
    server.enqueue(wire.tools_reply(*calls), wire.reply("done"))
    agent = make(wire)
    ran: List[Any] = []

    @agent.tool_plain
    def f(n: int) -> str:
        ran.append(n)
        return f"r{n}"

    out = drive(agent)
    return out, ran


def test_duplicate_ids_are_unique_in_events_execution_and_history_openai(server, make):
    out, ran = _round_trip(server, make, OPENAI, [("call_1", "f", '{"n": 1}'), ("call_1", "f", '{"n": 2}')])
    assert out.error is None and sorted(ran) == [1, 2]
    ids = ["call_1", "call_1_2"]
    assert [e.tool_call_id for e in out.of("tool_call_start")] == ids
    assert [e.tool_call_id for e in out.of("tool_call_complete")] == ids
    assert sorted((e.tool_call_id, e.result) for e in out.of("tool_executed")) == [("call_1", "r1"),
                                                                                ("call_1_2", "r2")]
    sent = server.requests[1].json["messages"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ids
    assert sorted((m["tool_call_id"], m["content"]) for m in sent[2:4]) == [("call_1", "r1"), ("call_1_2", "r2")]
    assert not OPENAI.problems(server.requests[1].json)


def test_duplicate_ids_are_unique_in_the_anthropic_history(server, make):
    out, ran = _round_trip(server, make, ANTHROPIC, [("toolu_1", "f", '{"n": 1}'), ("toolu_1", "f", '{"n": 2}')])
    assert out.error is None and sorted(ran) == [1, 2]
    body = server.requests[1].json
    uses = [b["id"] for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
    results = sorted(b["tool_use_id"] for b in body["messages"][2]["content"] if b["type"] == "tool_result")
    assert uses == ["toolu_1", "toolu_1_2"] and results == sorted(uses)
    assert not ANTHROPIC.problems(body)


def test_invalid_arguments_stay_visible_and_are_resent_raw(server, make):
    raw = '{"n": 1,,}'
    out, ran = _round_trip(server, make, OPENAI, [("call_1", "f", raw)])
    assert out.error is None and ran == []
    (complete,) = out.of("tool_call_complete")
    assert (complete.args, complete.raw_args) == ({}, raw)
    assert complete.to_dict()["raw_args"] == raw
    sent = server.requests[1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == raw
    assert sent[2]["role"] == "tool" and "not valid JSON" in sent[2]["content"]   # the retry prompt
    part = out.stream.result().messages[1].parts[0]
    assert (part.args, part.raw_args) == ({}, raw)


def test_concurrent_streams_sharing_a_model_both_drop_a_rejected_stream_options(server):
    # Stream B's request goes out with stream_options; before B reads the 400, stream A gets its own
    # 400 and switches the model off stream_options. B must still retry (it once read the shared
    # flag A had just changed, and raised).
    gate = threading.Event()
    rejected = {"error": {"message": "Unknown parameter: 'stream_options'", "type": "invalid_request_error"}}
    ok = Reply.sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
                   "[DONE]")
    server.enqueue(Reply(status=400, headers={"Content-Type": "application/json"}, gates={0: gate},
                         chunks=[json.dumps(rejected).encode()], length=True),
                   Reply.json(400, rejected), ok, ok)
    model = openai_model(server, provider="vllm-compatible", max_retries=0)
    results: List[Any] = []

    def run() -> None:
        items, error = collect(model)
        results.append(error or [i.text for i in items if isinstance(i, TextChunk)])

    b = threading.Thread(target=run, name="test-stream-b")
    b.start()
    try:
        assert server.wait_for_requests(1)
        run()                                    # stream A: 400, then ok without stream_options
    finally:
        gate.set()
        b.join(10)
    model.close()
    assert not b.is_alive()
    assert results == [["ok"], ["ok"]]
    sent = [("stream_options" in r.json) for r in server.requests]
    assert sent == [True, True, False, False]
