"""Regression tests for defects found in review (each names what it guards)."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest

from agentstream import (Agent, CancelToken, Compression, ModelRequest, ModelResponse, ModelSettings, RunCancelled,
                         TextPart, ToolReturnPart, UnexpectedModelBehavior, Usage, UsageLimitExceeded, UsageLimits,
                         UserPromptPart, messages_to_json)
from agentstream.models import FunctionModel

from .helpers import Gate, call, scripted, stalled_after
from .validators import validate_conversation


class Opaque:
    def __str__(self) -> str:
        return "opaque-object"


def test_tool_returning_any_object_keeps_history_serialisable(no_thread_leak):
    agent = Agent(scripted([call("obj", {}, "1")], ["ok"]))
    agent.tool_plain(lambda: Opaque(), name="obj")
    seen = []
    result = agent.run("x", on_tool_result=seen.append)
    assert isinstance(seen[0].result, Opaque)  # the event keeps the object itself
    assert result.messages[2].parts[0].content == "opaque-object"
    messages_to_json(result.messages)  # does not raise


def test_token_limit_after_a_tool_call_response_leaves_a_valid_history(no_thread_leak):
    model = scripted([call("t", {}, "1"), Usage(input_tokens=50, output_tokens=50)])
    agent = Agent(model)
    agent.tool_plain(lambda: "x", name="t")
    with pytest.raises(UsageLimitExceeded) as info:
        agent.run("x", usage_limits=UsageLimits(total_tokens_limit=10))
    last = info.value.messages[-1]
    assert isinstance(last, ModelRequest) and isinstance(last.parts[0], ToolReturnPart)
    validate_conversation(info.value.messages)


def test_breaking_out_of_a_for_loop_cancels_and_ends_the_worker(no_thread_leak):
    gate = Gate()
    stream = Agent(FunctionModel(stalled_after(["a", "b"], gate))).run_stream("x")
    for event in stream:
        if event.kind == "text_delta":
            break
    assert stream.cancel_token.is_set() and stream.wait(2)
    with pytest.raises(RunCancelled):
        stream.result(timeout=5)


def test_exception_in_loop_body_cancels(no_thread_leak):
    gate = Gate()
    stream = Agent(FunctionModel(stalled_after(["a"], gate))).run_stream("x")
    with pytest.raises(ZeroDivisionError):
        for event in stream:
            if event.kind == "text_delta":
                1 / 0
    assert stream.cancel_token.is_set() and stream.wait(2)


def test_output_tool_response_reports_tool_executed_for_every_call(no_thread_leak):
    import pydantic

    class Out(pydantic.BaseModel):
        n: int

    model = scripted([call("side", {}, "1"), call("final_result", {"n": 1}, "2")])
    agent = Agent(model, output_type=Out)
    agent.tool_plain(lambda: "x", name="side")
    events = list(agent.run_stream("x"))
    executed = [(e.tool_call_id, e.success) for e in events if e.kind == "tool_executed"]
    assert executed == [("1", False), ("2", True)]
    kinds = [e.kind for e in events]
    assert kinds.index("tool_executed") > kinds.index("tool_call_complete")


def test_two_invalid_calls_of_one_tool_in_one_response_use_one_retry(no_thread_leak):
    def sq(x: int) -> int:
        return x * x

    model = scripted([call("sq", {"x": "a"}, "1"), call("sq", {"x": "b"}, "2")], [call("sq", {"x": 2}, "3")], ["4"])
    result = Agent(model, tools=[sq], retries=1).run("x")
    assert result.output == "4"


def test_retry_budget_still_ends_a_model_that_keeps_failing(no_thread_leak):
    def sq(x: int) -> int:
        return x * x

    model = scripted([call("sq", {"x": "a"}, "1")], [call("sq", {"x": "b"}, "2")])
    with pytest.raises(UnexpectedModelBehavior, match="retry budget"):
        Agent(model, tools=[sq], retries=1).run("x")


def test_new_messages_keep_this_runs_prompt_after_summarize(no_thread_leak):
    def fn(messages, info):
        if not info.tools and "summar" in str(messages).lower():
            return "a short summary"
        return "answer " * 5

    history: List[Any] = []
    for i in range(6):
        history += [ModelRequest([UserPromptPart(f"question {i} " + "blah " * 40)]),
                    ModelResponse([TextPart("reply " * 40)])]
    agent = Agent(FunctionModel(fn, context_window=600))
    result = agent.run("NEW PROMPT", message_history=history,
                       compression=Compression("summarize", target_tokens=300, keep_last=1, keep_first=2))
    assert any("NEW PROMPT" in str(getattr(p, "content", "")) for m in result.new_messages() for p in m.parts)


def test_model_settings_repr_hides_extra_headers():
    settings = ModelSettings(extra_headers={"Authorization": "Bearer sk-proxy-SECRET"})
    assert "SECRET" not in repr(settings)


def test_for_loop_over_failed_runs_unlinks_shared_token(no_thread_leak):
    token = CancelToken()

    def boom(messages, info):
        raise RuntimeError("model broke")

    agent = Agent(FunctionModel(boom))
    for _ in range(20):
        stream = agent.run_stream("x", cancel_token=token)
        with pytest.raises(RuntimeError):
            for _event in stream:
                pass
        assert stream.done
    assert token._callbacks == []


def test_partial_response_of_a_failed_run_is_marked_error(no_thread_leak):
    def fn(messages, info):
        yield "partial"
        raise RuntimeError("cut")

    with pytest.raises(RuntimeError) as info:
        Agent(FunctionModel(fn)).run("x")
    assert info.value.partial_text == "partial"
    assert info.value.messages[-1].finish_reason == "error"


def test_second_consumer_thread_is_refused(no_thread_leak):
    gate = Gate()
    stream = Agent(FunctionModel(stalled_after(["a"], gate))).run_stream("x")
    iterator = iter(stream)
    next(iterator)
    errors = []

    def other():
        try:
            stream.result(timeout=1)
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert isinstance(errors[0], RuntimeError)
    stream.close()
