"""agentstream against llmock, a third-party chaos server for LLM clients.

Each test scripts llmock's next behaviours over its admin API (``/_llmock/scenario``), runs
agentstream's public API against it, and checks both agentstream's events and what llmock saw
(its request journal, and its verdict on how the client coped). llmock cannot put an error
event inside a stream; in-band errors are covered by the recorded provider streams
(tests/test_conformance.py).
"""
from __future__ import annotations

from typing import Any

import pytest

from agentstream import (Agent, AuthenticationError, ModelHTTPError, ModelStreamError, RateLimitError,
                         StreamTimeout, Timeout)
from tests.faultkit import drive
from tests.real.helpers import anthropic_model, cancel_after_deltas, fast_backoff, openai_model

pytestmark = pytest.mark.real

MODELS = {"openai": lambda root, **kw: openai_model(root, **kw),
          "anthropic": lambda root, **kw: anthropic_model(root + "/anthropic", **kw)}
both = pytest.mark.parametrize("api", sorted(MODELS))
LONG = "word " * 60   # a scripted answer of many chunks


@pytest.fixture
def agent_for(llmock: Any, close_later: Any) -> Any:
    """``agent_for(api, agent_kwargs=None, **model_kwargs)``: an Agent on llmock, closed afterwards."""
    def make(api: str, agent_kwargs: Any = None, **model_kwargs: Any) -> Agent:
        model = fast_backoff(MODELS[api](llmock.server.root, **model_kwargs))
        return close_later(Agent(model, **(agent_kwargs or {})))
    return make


def findings(llmock: Any, severity: str = "") -> list:
    """The codes of llmock's verdict findings (all, or of one severity: "error", "warning")."""
    return [f["code"] for f in llmock.verdict()["findings"] if severity in ("", f["severity"])]


@both
def test_streamed_text(llmock: Any, api: str, agent_for: Any) -> None:
    llmock.script({"type": "reply", "text": "Scripted answer from llmock."})
    agent = agent_for(api)
    out = drive(agent, "hello")
    out.check_terminal("run_complete")
    assert out.stream.text == "Scripted answer from llmock."
    assert len(out.of("text_delta")) > 1
    assert out.of("response_complete")[0].finish_reason in ("stop", "end_turn")
    assert out.stream.result().usage.output_tokens > 0


@both
def test_tool_round_trip(llmock: Any, api: str, agent_for: Any) -> None:
    """llmock's auto tool mode: it calls the offered tool with schema-valid arguments, the tool
    runs, and once the result is back it answers in text."""
    calls = []

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"21C in {city}"

    agent = agent_for(api, agent_kwargs={"tools": [get_weather]})
    out = drive(agent, "What is the weather in Paris?")
    out.check_terminal("run_complete")
    assert len(calls) == 1 and isinstance(calls[0], str)
    (executed,) = out.of("tool_executed")
    assert executed.success and executed.tool_name == "get_weather"
    result = out.stream.result()
    assert result.output and result.usage.requests == 2
    sent = llmock.requests()[-1]["body"]
    tool_results = str(sent)
    assert f"21C in {calls[0]}" in tool_results   # the tool's result reached the server


@both
def test_429_retried_after_retry_after(llmock: Any, api: str, agent_for: Any) -> None:
    llmock.script({"type": "fail", "status": 429, "retry_after": 0.3, "times": 1},
                  {"type": "reply", "text": "after the rate limit"})
    agent = agent_for(api)
    out = drive(agent, "hello")
    out.check_terminal("run_complete")
    assert out.stream.text == "after the rate limit"
    (retrying,) = out.of("retrying")
    assert isinstance(retrying.error, RateLimitError) and retrying.delay >= 0.3
    journal = llmock.requests()
    assert [r["status"] for r in journal] == [429, 200]
    assert journal[1]["started_at"] - journal[0]["ended_at"] >= 0.3
    assert "retry_after_ignored" not in findings(llmock)


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_retried_then_answer(llmock: Any, status: int, agent_for: Any) -> None:
    llmock.script({"type": "fail", "status": status, "times": 2}, {"type": "reply", "text": "recovered"})
    agent = agent_for("openai")
    out = drive(agent, "hello")
    out.check_terminal("run_complete")
    assert out.stream.text == "recovered" and len(out.of("retrying")) == 2
    assert [r["status"] for r in llmock.requests()] == [status, status, 200]


def test_anthropic_529_overloaded_retried(llmock: Any, agent_for: Any) -> None:
    llmock.script({"type": "fail", "status": 529, "times": 1}, {"type": "reply", "text": "back"})
    agent = agent_for("anthropic")
    out = drive(agent, "hello")
    out.check_terminal("run_complete")
    assert out.stream.text == "back" and len(out.of("retrying")) == 1


def test_outage_gives_up_after_max_retries(llmock: Any, agent_for: Any) -> None:
    llmock.script({"type": "fail", "status": 503, "times": None})
    agent = agent_for("openai")
    out = drive(agent, "hello")
    out.check_terminal("error")
    assert isinstance(out.error, ModelHTTPError) and out.error.status == 503
    assert len(llmock.requests()) == 3   # max_retries=2


@both
@pytest.mark.parametrize("status, cls", [(400, ModelHTTPError), (401, AuthenticationError),
                                         (404, ModelHTTPError)])
def test_4xx_not_retried(llmock: Any, api: str, status: int, cls: type, agent_for: Any) -> None:
    llmock.script({"type": "fail", "status": status, "message": "scripted client error"})
    agent = agent_for(api)
    out = drive(agent, "hello")
    out.check_terminal("error")
    assert isinstance(out.error, cls) and out.error.status == status, repr(out.error)
    assert out.of("retrying") == [] and len(llmock.requests()) == 1
    assert "retried_non_retryable" not in findings(llmock)


@both
@pytest.mark.parametrize("kind", ["disconnect", "truncate", "malformed"])
def test_stream_fault_after_output(llmock: Any, api: str, kind: str, agent_for: Any) -> None:
    """A stream broken after text arrived: an error (never a silent short answer), the partial
    kept, and no retry (output was already shown)."""
    llmock.script({"type": "reply", "text": LONG}, {"type": "stream_fault", "kind": kind, "after_chunks": 5})
    agent = agent_for(api)
    out = drive(agent, "hello")
    out.check_terminal("error")
    assert isinstance(out.error, ModelStreamError), repr(out.error)
    assert out.stream.text and LONG.startswith(out.stream.text)
    assert out.error.partial_text == out.stream.text
    assert out.of("retrying") == [] and len(llmock.requests()) == 1
    # llmock's verdict wants a retry after every stream fault ("truncated_stream_accepted",
    # "gave_up", "malformed_chunk_ignored" when none comes). agentstream raises instead: after
    # output a retry is opt-in, so those findings are expected; no other finding is.
    expected = {"truncated_stream_accepted", "gave_up", "malformed_chunk_ignored"}
    assert set(findings(llmock)) <= expected, findings(llmock)


def test_stall_ends_with_stream_timeout(llmock: Any, agent_for: Any) -> None:
    llmock.script({"type": "reply", "text": LONG},
                  {"type": "stream_fault", "kind": "stall", "after_chunks": 5, "stall_seconds": 30})
    agent = agent_for("openai", timeout=Timeout(connect=5, idle=0.5, total=20))
    out = drive(agent, "hello")
    out.check_terminal("error")
    assert isinstance(out.error, StreamTimeout), repr(out.error)
    assert out.elapsed < 5, out.elapsed
    assert out.error.partial_text == out.stream.text != ""


@both
def test_cancel_inside_a_stalled_stream(llmock: Any, api: str, agent_for: Any) -> None:
    """Text arrives, then the server stalls for 30 s: a cancel still ends the run within 1 s."""
    llmock.script({"type": "reply", "text": LONG},
                  {"type": "stream_fault", "kind": "stall", "after_chunks": 6, "stall_seconds": 30})
    agent = agent_for(api)
    run = cancel_after_deltas(agent, "hello", deltas=2)
    assert run["latency"] < 1.0, run["latency"]
    assert run["event"].partial_text == "".join(run["texts"]) and LONG.startswith(run["event"].partial_text)
    assert run["out"].elapsed < 5, run["out"].elapsed


@pytest.mark.parametrize("kind", ["malformed_arguments", "unknown_tool"])
def test_broken_tool_call_goes_back_to_the_model(llmock: Any, kind: str, agent_for: Any) -> None:
    """Arguments that are not JSON never reach the function; a tool that does not exist fails as
    an error result; either way the model is told and the run completes."""
    ran = []

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        ran.append(city)
        return "21C"

    llmock.script({"type": "tool_fault", "kind": kind})
    agent = agent_for("openai", agent_kwargs={"tools": [get_weather]})
    out = drive(agent, "What is the weather in Paris?")
    out.check_terminal("run_complete")
    assert ran == []
    assert out.stream.result().usage.requests == 2
