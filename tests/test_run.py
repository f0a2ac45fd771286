"""The agent loop through run_stream/run: event order, tools, retries, output, limits."""
from __future__ import annotations

import json
import threading
from typing import Any, List

import pydantic
import pytest

from agentstream import (Agent, ModelRetry, RunContext, RunResult, UnexpectedModelBehavior, Usage,
                         UsageLimitExceeded, UsageLimits, UserError, events, messages_from_json,
                         messages_to_json)
from agentstream.messages import ModelRequest, RetryPromptPart, SystemPromptPart, ToolReturnPart, UserPromptPart
from agentstream.models import FunctionModel, TestModel

from .helpers import call, kinds, scripted


def test_text_run_event_order_and_single_terminal(no_thread_leak):
    agent = Agent(scripted(["Hel", "lo"]))
    got = list(agent.run_stream("hi"))
    assert kinds(got) == ["run_start", "request_start", "context_info", "text_delta", "text_delta",
                          "response_complete", "output_ready", "run_complete"]
    assert got[-1].usage.requests == 1
    assert got[-2].output == "Hello"
    assert sum(isinstance(e, events.TERMINAL_EVENTS) for e in got) == 1


def test_tool_step_order_and_results_in_call_order(no_thread_leak):
    model = scripted([call("a", {"x": 1}, "c1"), call("b", {"x": 2}, "c2")], ["done"])
    agent = Agent(model)
    started = threading.Barrier(2, timeout=5)

    @agent.tool_plain
    def a(x: int) -> int:
        started.wait()  # both tools run at once (parallel pool), or this times out
        return x * 10

    @agent.tool_plain
    def b(x: int) -> int:
        started.wait()
        return x * 100

    got = list(agent.run_stream("go"))
    k = kinds(got)
    i = k.index("response_complete")
    assert k[i + 1:i + 5] == ["tool_call_complete", "tool_call_complete", "tool_executed", "tool_executed"]
    executed = [e for e in got if e.kind == "tool_executed"]
    assert [(e.tool_call_id, e.result) for e in executed] == [("c1", 10), ("c2", 200)]
    assert k.count("request_start") == 2 and k[-1] == "run_complete"
    assert got[-1].usage.tool_calls == 2


def test_tools_sequential_when_one_worker(no_thread_leak):
    order: List[str] = []
    agent = Agent(scripted([call("a", {}, "1"), call("b", {}, "2")], ["ok"]), max_tool_workers=1)
    agent.tool_plain(lambda: order.append("a"), name="a")
    agent.tool_plain(lambda: order.append("b"), name="b")
    agent.run("x")
    assert order == ["a", "b"]


def test_handlers_called_in_order_on_consumer_thread_never_concurrently(no_thread_leak):
    seen: List[Any] = []
    threads = set()
    busy = threading.Lock()

    def record(kind):
        def handler(value):
            assert busy.acquire(blocking=False), "handlers ran concurrently"
            try:
                threads.add(threading.get_ident())
                seen.append((kind, value))
            finally:
                busy.release()
        return handler

    agent = Agent(TestModel(custom_output_text="abcdefgh", chunk_size=2))
    agent.tool_plain(lambda city: f"sunny in {city}", name="weather")
    result = agent.run("q", on_text=record("text"), on_tool_call=record("call"),
                       on_tool_result=record("result"), on_event=lambda e: None)
    assert threads == {threading.get_ident()}
    assert [k for k, _ in seen] == ["call", "result", "text", "text", "text", "text"]
    assert "".join(v for k, v in seen if k == "text") == result.output == "abcdefgh"
    assert seen[0][1].tool_name == "weather" and seen[0][1].args == {"city": "a"}


def test_on_tool_call_runs_before_the_tool(no_thread_leak):
    log: List[str] = []
    agent = Agent(scripted([call("t", {}, "1")], ["ok"]))
    agent.tool_plain(lambda: log.append("tool"), name="t")
    agent.run("x", on_tool_call=lambda c: log.append("handler"))
    assert log == ["handler", "tool"]


def test_handler_object(no_thread_leak):
    class H:
        def __init__(self):
            self.text = ""
            self.events = 0

        def on_text(self, t):
            self.text += t

        def on_event(self, e):
            self.events += 1

    h = H()
    Agent(scripted(["a", "b"])).run("x", handler=h)
    assert h.text == "ab" and h.events == 8


def test_ctx_tool_gets_deps_run_id_call_id(no_thread_leak):
    agent = Agent(scripted([call("who", {"n": 2}, "cid")], ["ok"]))
    seen = {}

    @agent.tool
    def who(ctx: RunContext, n: int) -> str:
        seen.update(deps=ctx.deps, run_id=ctx.run_id, call=ctx.tool_call_id, retry=ctx.retry,
                    cancelled=ctx.cancelled, step=ctx.step)
        return "x"

    stream = agent.run_stream("x", deps={"db": 1})
    stream.result()
    assert seen == {"deps": {"db": 1}, "run_id": stream.run_id, "call": "cid", "retry": 0,
                    "cancelled": False, "step": 1}


def test_invalid_args_go_back_as_retry_prompt_not_into_function(no_thread_leak):
    calls: List[int] = []
    model = scripted([call("sq", {"x": "not a number"}, "1")], [call("sq", {"x": 3}, "2")], ["9"])
    agent = Agent(model)
    agent.tool_plain(lambda x: calls.append(x) or x * x, name="sq")

    def sq(x: int) -> int:
        calls.append(x)
        return x * x

    agent = Agent(model, tools=[sq])
    result = agent.run("x")
    assert calls == [3]
    retry = result.messages[2].parts[0]
    assert isinstance(retry, RetryPromptPart) and retry.tool_call_id == "1" and "x" in retry.content
    assert result.output == "9"


def test_model_retry_and_budget_exceeded(no_thread_leak):
    def flaky() -> str:
        raise ModelRetry("try again later")

    model = scripted([call("flaky", {}, "1")], [call("flaky", {}, "2")], [call("flaky", {}, "3")])
    agent = Agent(model, tools=[flaky], retries=1)
    with pytest.raises(UnexpectedModelBehavior, match="flaky.*retry budget of 1") as info:
        agent.run("x")
    # the error keeps the history so far
    assert any(isinstance(p, RetryPromptPart) and p.content == "try again later"
               for m in info.value.messages if isinstance(m, ModelRequest) for p in m.parts)
    assert info.value.usage.requests == 2


def test_tool_that_raises_and_unknown_tool_become_error_results(no_thread_leak):
    def boom() -> str:
        raise RuntimeError("disk on fire")

    model = scripted([call("boom", {}, "1"), call("nope", {}, "2")], ["recovered"])
    stream = Agent(model, tools=[boom]).run_stream("x")
    got = list(stream)
    executed = [e for e in got if e.kind == "tool_executed"]
    assert [(e.success, e.tool_name) for e in executed] == [(False, "boom"), (False, "nope")]
    assert "disk on fire" in executed[0].error and "Unknown tool name" in executed[1].error
    result = stream.result()
    parts = result.messages[2].parts
    assert all(isinstance(p, ToolReturnPart) and p.is_error for p in parts)
    assert result.output == "recovered"


class City(pydantic.BaseModel):
    name: str
    population: int


def test_structured_output_via_output_tool_with_validation_retry(no_thread_leak):
    model = scripted([call("final_result", {"name": "Paris"}, "1")],
                     [call("final_result", {"name": "Paris", "population": 2100000}, "2")])
    result = Agent(model, output_type=City).run("x")
    assert result.output == City(name="Paris", population=2100000)
    assert isinstance(result.messages[2].parts[0], RetryPromptPart)


def test_structured_output_from_json_text(no_thread_leak):
    result = Agent(scripted(['{"name": "Rome", ', '"population": 3}']), output_type=City).run("x")
    assert result.output == City(name="Rome", population=3)


def test_structured_output_test_model(no_thread_leak):
    result = Agent(TestModel(), output_type=City).run("x")
    assert isinstance(result.output, City)


def test_system_prompts_static_and_dynamic(no_thread_leak):
    seen: List[Any] = []

    def fn(messages, info):
        seen.extend(messages)
        return "ok"

    agent = Agent(FunctionModel(fn), system_prompt=["A", "B"])

    @agent.system_prompt
    def dyn(ctx: RunContext) -> str:
        return f"deps={ctx.deps}"

    agent.run("hi", deps=5)
    parts = seen[0].parts
    assert [type(p) for p in parts] == [SystemPromptPart, SystemPromptPart, SystemPromptPart, UserPromptPart]
    assert [p.content for p in parts] == ["A", "B", "deps=5", "hi"]


def test_history_round_trip_and_continuation(no_thread_leak):
    agent = Agent(TestModel())
    agent.tool_plain(lambda q: "found " + q, name="search")
    first = agent.run("one")
    data = messages_to_json(first.messages)
    loaded = messages_from_json(data)
    assert loaded == first.messages
    assert json.loads(data)[0]["kind"] == "request"
    second = agent.run("two", message_history=loaded)
    assert second.messages[:len(loaded)] == loaded
    assert second.new_messages()[0].parts[0].content == "two"
    # no second system prompt when continuing
    assert sum(isinstance(p, SystemPromptPart) for m in second.messages if isinstance(m, ModelRequest)
               for p in m.parts) == 0


@pytest.mark.parametrize("limits, name", [
    (UsageLimits(request_limit=1), "request_limit"),
    (UsageLimits(tool_calls_limit=1), "tool_calls_limit"),
    (UsageLimits(input_tokens_limit=5), "input_tokens_limit"),
    (UsageLimits(output_tokens_limit=5), "output_tokens_limit"),
    (UsageLimits(total_tokens_limit=5), "total_tokens_limit"),
])
def test_usage_limits_each_kind(limits, name, no_thread_leak):
    model = scripted([call("t", {}, "1"), call("t", {}, "2"), Usage(input_tokens=10, output_tokens=10)], ["ok"])
    agent = Agent(model)
    agent.tool_plain(lambda: "x", name="t")
    stream = agent.run_stream("x", usage_limits=limits)
    got = []
    with pytest.raises(UsageLimitExceeded, match=name) as info:
        for event in stream:
            got.append(event)
    assert info.value.limit == name
    assert got[-1].kind == "error" and got[-1].error is info.value
    assert info.value.messages  # the history so far is kept


def test_agent_level_and_run_level_limits_both_apply(no_thread_leak):
    agent = Agent(scripted([call("t", {}, "1")], ["ok"]), usage_limits=UsageLimits(request_limit=1))
    agent.tool_plain(lambda: "x", name="t")
    with pytest.raises(UsageLimitExceeded):
        agent.run("x", usage_limits=UsageLimits(request_limit=10))


def test_real_finish_reason_and_usage_reported(no_thread_leak):
    model = scripted(["partial", Usage(input_tokens=7, output_tokens=3)])
    got = list(Agent(model).run_stream("x"))
    done = next(e for e in got if e.kind == "response_complete")
    assert done.usage.input_tokens == 7 and done.usage.output_tokens == 3 and done.finish_reason == "stop"


def test_run_result_fields(no_thread_leak):
    result = Agent(scripted(["x"])).run("q")
    assert isinstance(result, RunResult) and result.run_id and result.usage.requests == 1
    assert result.new_messages() == result.messages


@pytest.mark.parametrize("kwargs, match", [
    ({"model_settings": {"temprature": 1}}, "unknown model setting"),
    ({"model_settings": {"temperature": 9}}, "temperature"),
    ({"retries": -1}, "retries"),
    ({"usage_limits": 3}, "usage_limits"),
    ({"system_prompt": [1]}, "system_prompt"),
])
def test_bad_agent_config_is_a_clear_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        Agent(TestModel(), **kwargs)


def test_duplicate_tool_names_rejected():
    def t() -> None: ...

    agent = Agent(TestModel(), tools=[t])
    with pytest.raises(UserError, match="duplicate tool name 't'"):
        agent.tool_plain(t)
    with pytest.raises(UserError, match="duplicate"):
        Agent(TestModel(), tools=[t, t])


def test_unsupported_tool_signature_rejected():
    def bad(*args: int) -> None: ...

    with pytest.raises(UserError, match="bad"):
        Agent(TestModel(), tools=[bad])


def test_unknown_model_prefix_rejected():
    with pytest.raises(UserError, match="unknown model provider 'nope'"):
        Agent("nope:model")


def test_run_stream_bad_input():
    agent = Agent(TestModel())
    with pytest.raises(UserError):
        agent.run_stream(42)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="prompt"):
        agent.run_stream()
    with pytest.raises(UserError, match="cancel_token"):
        agent.run_stream("x", cancel_token=object())


def test_no_thread_left_after_100_runs():
    from .conftest import wait_no_agentstream_threads

    before = threading.active_count()
    agent = Agent(TestModel(custom_output_text="ok"))
    agent.tool_plain(lambda: 1, name="a")
    agent.tool_plain(lambda: 2, name="b")
    for _ in range(100):
        assert agent.run("x").output == "ok"
    assert wait_no_agentstream_threads() == []
    assert threading.active_count() <= before


def test_batched_items_from_one_read_are_delivered_in_order(no_thread_leak):
    from agentstream.models import Batch, TextChunk

    def fn(messages, info):
        yield "d"

    class Batching(FunctionModel):
        def stream(self, messages, settings, params, ctx):
            yield Batch([TextChunk("a"), TextChunk("b"), TextChunk("c")])
            yield TextChunk("d")

    seen = []
    stream = Agent(Batching(fn)).run_stream("x", on_text=seen.append)
    got = list(stream)
    assert seen == ["a", "b", "c", "d"]
    assert [e.text for e in got if e.kind == "text_delta"] == ["a", "b", "c", "d"]
    assert stream.result().output == "abcd"


def test_pause_turn_is_continued_with_another_request(no_thread_leak):
    from agentstream.models import FinishReport

    seen = []

    def second(messages, info):
        seen.append(messages[-1])
        return " and done"

    result = Agent(scripted(["searching", FinishReport("pause_turn")], second)).run("x")
    assert result.output == " and done" and result.usage.requests == 2
    assert seen[0].text == "searching"  # the paused response was sent back


def test_tool_decorator_rejects_a_non_context_first_parameter():
    agent = Agent(TestModel())
    with pytest.raises(UserError, match="tool_plain"):
        @agent.tool
        def add(a: int, b: int) -> int:
            return a + b


def test_message_history_must_hold_messages():
    with pytest.raises(UserError, match=r"message_history\[0\] is a dict"):
        Agent(TestModel()).run_stream("x", message_history=[{"kind": "request"}])


def test_usage_limits_reject_negative_values():
    with pytest.raises(UserError, match="request_limit"):
        UsageLimits(request_limit=-1)


def test_long_answers_are_folded_without_losing_text(no_thread_leak):
    pieces = [f"{i}," for i in range(10_000)]
    stream = Agent(scripted(pieces)).run_stream("x")
    result = stream.result()
    assert result.output == "".join(pieces) == stream.text
    assert len(stream._shared.state.text_chunks) < 4100  # folded, not 10,000 small strings
