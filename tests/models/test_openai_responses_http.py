"""OpenAIResponsesModel over real HTTP (loopback server): the full tool loop through
``Agent("openai-responses:...")`` with the shape of the request that carries the tool result,
cancellation mid-stream, and which in-stream errors are retried."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest

from agentstream import Agent, CancelToken, RunCancelled
from agentstream.exceptions import ModelStreamError, RateLimitError
from agentstream.messages import ModelResponse, TextPart
from tests.faultkit import FAST, drive, wait_for
from tests.faultkit import server_fixture  # noqa: F401 (the "server" fixture)
from tests.server import FAKE_KEY, Reply, sse_event

from .test_openai_responses_stream import (added, args_delta, args_done, call_item, completed, created, ev, item_done,
                                           message_item, reasoning_item, summary_delta, text_delta)


def chunks(*events: Any) -> List[bytes]:
    """One chunk per event, framed as OpenAI does (``event: <type>`` + ``data:``)."""
    return [sse_event(e, event=e["type"]) for e in events]


def tool_call_reply() -> Reply:
    args = '{"city":"Paris"}'
    return Reply(chunks=chunks(
        created(rid="resp_A"), added(0, **reasoning_item("rs_A")),
        summary_delta(0, "rs_A", "**Looking up the weather**"),
        item_done(0, **reasoning_item("rs_A", "ENC-A", ["**Looking up the weather**"])),
        added(1, **call_item("fc_A", "call_A", "get_weather")),
        args_delta(1, "fc_A", '{"city":'), args_delta(1, "fc_A", '"Paris"}'), args_done(1, "fc_A", args),
        item_done(1, **call_item("fc_A", "call_A", "get_weather", args)),
        completed([reasoning_item("rs_A", "ENC-A2", ["**Looking up the weather**"]),
                   call_item("fc_A", "call_A", "get_weather", args)],
                  usage={"input_tokens": 40, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 20,
                         "output_tokens_details": {"reasoning_tokens": 12}})))


def text_reply(*texts: str, usage=(50, 5)) -> Reply:
    whole = "".join(texts)
    return Reply(chunks=chunks(
        created(rid="resp_B"), added(0, **message_item("msg_B")), *[text_delta(0, "msg_B", t) for t in texts],
        item_done(0, **message_item("msg_B", whole)),
        completed([message_item("msg_B", whole)], usage={"input_tokens": usage[0], "output_tokens": usage[1]})))


@pytest.fixture
def env(monkeypatch, server):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    return server


def test_tool_loop_sends_reasoning_call_and_output_back(env):
    server = env
    server.enqueue(tool_call_reply(), text_reply("Sunny ", "in Paris."))
    agent = Agent("openai-responses:gpt-5-mini", system_prompt="Be brief.")
    calls: List[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return "sunny"

    thinking: List[str] = []
    out = drive(agent, "Weather in Paris?", on_thinking=thinking.append)
    agent.model.close()
    out.check_terminal("run_complete")
    result = out.stream.result()
    assert result.output == "Sunny in Paris." and calls == ["Paris"]
    assert "".join(thinking) == "**Looking up the weather**"
    assert [r.path for r in server.requests] == ["/v1/responses"] * 2
    assert server.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    first, second = (r.json for r in server.requests)
    assert first["input"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert first["instructions"] == second["instructions"] == "Be brief."
    assert first["tools"][0]["name"] == "get_weather" and first["tools"][0]["type"] == "function"
    for sent in (first, second):
        assert sent["stream"] is True and sent["store"] is False
        assert sent["include"] == ["reasoning.encrypted_content"]
    assert second["input"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "reasoning", "id": "rs_A", "encrypted_content": "ENC-A",
         "summary": [{"type": "summary_text", "text": "**Looking up the weather**"}]},
        {"type": "function_call", "call_id": "call_A", "name": "get_weather", "arguments": '{"city": "Paris"}',
         "id": "fc_A"},
        {"type": "function_call_output", "call_id": "call_A", "output": "sunny"},
    ]
    usage = result.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (2, 90, 25, 8)
    assert usage.details.get("reasoning_tokens") == 12
    executed = out.of("tool_executed")
    assert [(e.tool_name, e.tool_call_id) for e in executed] == [("get_weather", "call_A")]


def test_cancel_mid_stream_ends_with_cancelled_and_usage(env):
    server = env
    first = threading.Event()
    reply = text_reply("Hel", "lo", " world")
    reply.stall_after = 4   # created, added, "Hel", "lo" -- then nothing until the client leaves
    server.enqueue(reply)
    agent = Agent("openai-responses:gpt-5-mini")
    agent.model.timeout = FAST
    token = CancelToken()

    def on_text(text: str) -> None:
        if text == "lo":
            token.cancel()
            first.set()

    out = drive(agent, "hi", cancel_token=token, on_text=on_text)
    agent.model.close()
    assert first.is_set()
    cancelled = out.check_terminal("cancelled")
    assert isinstance(out.error, RunCancelled)
    assert cancelled.partial_text == "Hello"
    assert cancelled.usage.requests == 1 and cancelled.usage.estimated and cancelled.usage.output_tokens >= 1
    last = cancelled.messages[-1]
    assert isinstance(last, ModelResponse) and last.parts == [TextPart("Hello", provider_id="msg_B")]
    assert wait_for(lambda: server.connections and all(c.disconnected.is_set() for c in server.connections))


def _error_reply(code: str, message: str) -> Reply:
    return Reply(chunks=chunks(created(), ev("error", code=code, message=message, param=None),
                               completed([], kind="response.failed", status="failed",
                                         error={"code": code, "message": message})))


def test_server_error_before_output_is_retried(env):
    server = env
    server.enqueue(_error_reply("server_error", "The server had an error processing your request."),
                   text_reply("ok"))
    agent = Agent("openai-responses:gpt-5-mini")
    agent.model.retry_base, agent.model.retry_max_delay = 0.01, 0.02
    out = drive(agent, "hi")
    agent.model.close()
    out.check_terminal("run_complete")
    assert out.stream.result().output == "ok" and len(server.requests) == 2
    assert [e.kind for e in out.of("retrying")] == ["retrying"]


def test_server_error_after_a_silent_reasoning_item_is_still_retried(env):
    """An encrypted reasoning item (no summary) shows the user nothing: a failure after it is
    still before any output, so it is retried."""
    server = env
    server.enqueue(Reply(chunks=chunks(created(), added(0, **reasoning_item("rs_X")),
                                       item_done(0, **reasoning_item("rs_X", "ENC-X")),
                                       ev("error", code="server_error", message="boom", param=None))),
                   text_reply("ok"))
    agent = Agent("openai-responses:gpt-5-mini")
    agent.model.retry_base, agent.model.retry_max_delay = 0.01, 0.02
    out = drive(agent, "hi")
    agent.model.close()
    out.check_terminal("run_complete")
    assert out.stream.result().output == "ok" and len(server.requests) == 2


def test_insufficient_quota_is_not_retried(env):
    server = env
    server.enqueue(_error_reply("insufficient_quota", "You exceeded your current quota."), text_reply("never"))
    agent = Agent("openai-responses:gpt-5-mini")
    agent.model.retry_base = 0.01
    out = drive(agent, "hi")
    agent.model.close()
    out.check_terminal("error")
    assert isinstance(out.error, ModelStreamError) and out.error.error_type == "insufficient_quota"
    assert len(server.requests) == 1 and FAKE_KEY not in str(out.error)


def test_http_429_quota_is_a_rate_limit_error_not_retried(env):
    server = env
    server.enqueue(Reply.json(429, {"error": {"message": "You exceeded your current quota.",
                                              "type": "insufficient_quota", "code": "insufficient_quota"}}),
                   text_reply("never"))
    agent = Agent("openai-responses:gpt-5-mini")
    out = drive(agent, "hi")
    agent.model.close()
    assert isinstance(out.error, RateLimitError) and len(server.requests) == 1
