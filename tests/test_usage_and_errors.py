"""Honest usage (estimates flagged, every executed call counted), a handler that raises keeps
what the run had, and a clear error for a RunResult passed as history (issue 10, points 3, 4, 7)."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest

from agentstream import Agent, RunCancelled, UsageLimitExceeded, UsageLimits, UserError
from agentstream.exceptions import ModelStreamError
from agentstream.messages import ModelRequest, ModelResponse, TextPart, ToolReturnPart
from agentstream.models import FunctionModel, TestModel
from tests.faultkit import drive, oa_finish, oa_reply, oa_text, oa_tool
from tests.faultkit import make_fixture, server_fixture  # noqa: F401 (the "make" and "server" fixtures)
from tests.helpers import Gate, call, scripted, stalled_after
from tests.server import Reply, sse
from tests.validators import validate_conversation


def _context_tokens(events: List[Any]) -> int:
    infos = [e for e in events if e.kind == "context_info"]
    assert infos and infos[-1].estimated_tokens > 0
    return infos[-1].estimated_tokens


# -- usage ------------------------------------------------------------------------------------

def test_cancelled_request_estimates_its_prompt(no_thread_leak):
    gate = Gate()
    events: List[Any] = []
    stream = Agent(FunctionModel(stalled_after(["Hel", "lo"], gate))).run_stream("x" * 400, on_event=events.append)
    assert gate.reached.wait(5)
    stream.cancel()
    with pytest.raises(RunCancelled) as info:
        stream.result(timeout=5)
    usage = info.value.usage
    assert usage.input_tokens == _context_tokens(events) and usage.input_tokens >= 20
    assert usage.output_tokens >= 1 and usage.estimated and usage.requests == 1


def test_cut_request_estimates_its_prompt(server, make):
    gate = threading.Event()
    server.enqueue(Reply(chunks=[oa_text("a"), oa_text("b"), oa_text("c")], reset_after=2, gates={2: gate}))
    out = drive(make(), "y" * 400, on_text=lambda t: gate.set() if t == "b" else None)
    assert isinstance(out.error, ModelStreamError)
    usage = out.error.usage
    assert usage.input_tokens == _context_tokens(out.events) and usage.estimated and usage.output_tokens >= 1


def test_response_without_usage_is_estimated_and_flagged(server, make):
    server.enqueue(oa_reply("Hello", " there", usage=None), oa_reply("Hi", usage=(11, 7)))
    agent = make()
    out = drive(agent, "z" * 400)
    assert out.error is None
    result = out.stream.result()
    usage = result.usage
    assert usage.estimated and usage.requests == 1
    assert usage.input_tokens == _context_tokens(out.events)
    assert usage.output_tokens == 3   # "Hello there": 11 characters, about 4 a token
    assert out.of("response_complete")[0].usage.estimated
    reported = agent.run("again").usage   # the server's figures are kept as they are
    assert (reported.input_tokens, reported.output_tokens, reported.estimated) == (11, 7, False)


def test_an_estimate_is_not_shown_as_the_reported_prompt_size(server, make):
    server.enqueue(Reply(chunks=[oa_tool(0, "c1", "t", "{}"), oa_finish("tool_calls"), sse("[DONE]")]),
                   oa_reply("done", usage=None))
    agent = make()
    agent.tool_plain(lambda: "ok", name="t")
    out = drive(agent)
    assert out.error is None and out.stream.result().usage.estimated
    assert [e.last_prompt_tokens for e in out.of("context_info")] == [None, None]


def test_tool_calls_counts_every_call_executed_failed_ones_too(no_thread_leak):
    agent = Agent(scripted([call("ok", call_id="1"), call("boom", call_id="2"), call("missing", call_id="3"),
                            call("ok", {"n": "not a number"}, call_id="4")], "done"))

    @agent.tool_plain
    def ok(n: int = 1) -> int:
        return n

    @agent.tool_plain
    def boom() -> None:
        raise RuntimeError("tool broke")

    events: List[Any] = []
    result = agent.run("x", on_event=events.append)
    outcomes = [(e.tool_name, e.success) for e in events if e.kind == "tool_executed"]
    assert outcomes == [("ok", True), ("boom", False), ("missing", False), ("ok", False)]
    assert result.usage.tool_calls == 4


def test_tool_calls_limit_counts_calls_that_will_fail(no_thread_leak):
    ran: List[str] = []
    agent = Agent(scripted([call("ok", call_id="1"), call("missing", call_id="2")], "done"),
                  usage_limits=UsageLimits(tool_calls_limit=1))
    agent.tool_plain(lambda: ran.append("ok") or 1, name="ok")
    with pytest.raises(UsageLimitExceeded, match="tool_calls_limit=1"):
        agent.run("x")
    assert ran == []


# -- a handler that raises -------------------------------------------------------------------

@pytest.mark.parametrize("how", ["iterate", "result"])
def test_on_text_raising_keeps_partial_text_usage_and_messages(how, no_thread_leak):
    gate = Gate()

    def on_text(text: str) -> None:
        if text == "c":
            raise ValueError("the UI broke")

    stream = Agent(FunctionModel(stalled_after(["a", "b", "c"], gate))).run_stream("x", on_text=on_text)
    with pytest.raises(ValueError, match="the UI broke") as info:
        if how == "iterate":
            for _ in stream:
                pass
        else:
            stream.result(timeout=5)
    exc = info.value
    assert exc.partial_text == "abc" and exc.run_id == stream.run_id
    assert exc.usage.requests == 1 and exc.usage.estimated and exc.usage.input_tokens > 0
    assert isinstance(exc.messages[-1], ModelResponse) and exc.messages[-1].parts == [TextPart("abc")]
    assert stream.done


def test_on_tool_call_raising_keeps_the_history_with_the_call_answered(no_thread_leak):
    ran: List[str] = []
    agent = Agent(scripted(["Let me check. ", call("record")], "never"))
    agent.tool_plain(lambda: ran.append("ran") or "ok", name="record")

    def veto(part: Any) -> None:
        raise PermissionError(f"{part.tool_name} is not allowed")

    with pytest.raises(PermissionError) as info:
        agent.run("x", on_tool_call=veto)
    exc = info.value
    assert ran == []
    assert exc.partial_text == "Let me check. " and exc.usage.requests == 1
    validate_conversation(exc.messages)
    closing = exc.messages[-1]
    assert isinstance(closing, ModelRequest) and isinstance(closing.parts[0], ToolReturnPart)
    assert closing.parts[0].is_error


def test_handler_error_keeps_its_own_attributes(no_thread_leak):
    class Mine(Exception):
        usage = "my own"

    def on_text(text: str) -> None:
        raise Mine()

    with pytest.raises(Mine) as info:
        Agent(TestModel(custom_output_text="hello")).run("x", on_text=on_text)
    assert info.value.usage == "my own"               # not replaced by the run's usage
    assert info.value.partial_text and info.value.messages


# -- a RunResult passed as history -------------------------------------------------------------

def test_run_result_as_history_says_what_to_pass(no_thread_leak):
    agent = Agent(TestModel(custom_output_text="ok"))
    result = agent.run("x")
    with pytest.raises(UserError, match=r"got a RunResult.*pass result\.messages"):
        agent.run("y", message_history=result)
    with agent.run_stream("x") as stream:
        with pytest.raises(UserError, match=r"pass stream\.result\(\)\.messages"):
            agent.run_stream("y", message_history=stream)
        assert stream.result().output == "ok"   # the stream passed by mistake was not consumed
    with pytest.raises(UserError, match="must be a list of messages"):
        agent.run("y", message_history="hello")
    assert agent.run("y", message_history=result.messages).output == "ok"


def test_cancelled_error_as_history_says_what_to_pass(no_thread_leak):
    token_gate = Gate()
    stream = Agent(FunctionModel(stalled_after(["a"], token_gate))).run_stream("x")
    assert token_gate.reached.wait(5)
    stream.cancel()
    with pytest.raises(RunCancelled) as info:
        stream.result(timeout=5)
    with pytest.raises(UserError, match=r"got a RunCancelled.*pass its \.messages"):
        Agent(TestModel()).run("y", message_history=info.value)
