"""Cancellation, every path, and handler failures: one terminal event, partial kept, worker ended."""
from __future__ import annotations

import gc
import threading
import time
from typing import Any, List

import pytest

from agentstream import Agent, CancelToken, RunCancelled, ThinkingPart
from agentstream.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart
from agentstream.models import FunctionModel, TestModel

from .conftest import wait_no_agentstream_threads
from .helpers import Gate, call, scripted, stalled_after


def stalling_agent(gate: Gate, chunks=("Hel", "lo")) -> Agent:
    return Agent(FunctionModel(stalled_after(list(chunks), gate)))


def assert_valid_history(messages: List[Any]) -> None:
    """Every tool call answered, no answer without a call."""
    open_calls: List[str] = []
    for m in messages:
        if isinstance(m, ModelResponse):
            assert not open_calls, f"unanswered tool calls {open_calls}"
            open_calls = [p.tool_call_id for p in m.parts if isinstance(p, ToolCallPart)]
        else:
            answered = [p.tool_call_id for p in m.parts if getattr(p, "tool_call_id", None)]
            assert answered == open_calls[:len(answered)] and len(answered) == len(open_calls)
            open_calls = []
    assert not open_calls


def test_cancel_from_another_thread_mid_stream(no_thread_leak):
    gate = Gate()
    stream = stalling_agent(gate).run_stream("x")
    assert gate.reached.wait(5)
    t0 = time.monotonic()
    threading.Thread(target=stream.cancel).start()
    got = []
    with pytest.raises(RunCancelled) as info:
        for event in stream:
            got.append(event)
    assert time.monotonic() - t0 < 1.0
    assert got[-1].kind == "cancelled" and sum(e.kind in ("cancelled", "error", "run_complete") for e in got) == 1
    cancelled = got[-1]
    assert cancelled.partial_text == "Hello" == stream.text == info.value.partial_text
    assert cancelled.usage.estimated and cancelled.usage.output_tokens >= 1 and cancelled.usage.requests == 1
    assert isinstance(cancelled.messages[-1], ModelResponse)
    assert cancelled.messages[-1].parts == [TextPart("Hello")]
    assert info.value.messages == cancelled.messages


@pytest.mark.parametrize("token_type", [CancelToken, threading.Event])
def test_cancel_token_and_plain_event(token_type, no_thread_leak):
    gate = Gate()
    token = token_type()
    stream = stalling_agent(gate).run_stream("x", cancel_token=token)
    assert gate.reached.wait(5)
    token.set()
    with pytest.raises(RunCancelled):
        stream.result(timeout=5)


def test_one_token_governs_several_runs(no_thread_leak):
    token = CancelToken()
    gates = [Gate(), Gate()]
    streams = [stalling_agent(g).run_stream("x", cancel_token=token) for g in gates]
    assert all(g.reached.wait(5) for g in gates)
    token.cancel()
    for s in streams:
        with pytest.raises(RunCancelled):
            s.result(timeout=5)
    assert token.cancelled


def test_cancel_before_first_byte(no_thread_leak):
    token = CancelToken()
    token.cancel()
    cancelled = []
    stream = Agent(TestModel()).run_stream("x", cancel_token=token, on_cancel=cancelled.append)
    with pytest.raises(RunCancelled):
        stream.result(timeout=5)
    assert len(cancelled) == 1 and cancelled[0].partial_text == ""
    assert not any(isinstance(m, ModelResponse) for m in cancelled[0].messages)


def test_keyboard_interrupt_while_iterating_cancels(no_thread_leak):
    gate = Gate()
    stream = stalling_agent(gate).run_stream("x")
    cancelled = []

    def interrupt(text):
        raise KeyboardInterrupt

    stream = Agent(scripted(["a", "b", "c"])).run_stream("x", on_text=interrupt, on_cancel=cancelled.append)
    with pytest.raises(KeyboardInterrupt):
        for _ in stream:
            pass
    assert stream.cancel_token.is_set()
    assert wait_no_agentstream_threads() == []


def test_leaving_with_block_early_cancels_and_joins(no_thread_leak):
    gate = Gate()
    with stalling_agent(gate).run_stream("x") as stream:
        for event in stream:
            if event.kind == "text_delta":
                break
    assert stream.done
    assert stream.text.startswith("Hel")


def test_dropped_stream_stops_worker(no_thread_leak):
    gate = Gate()
    stream = stalling_agent(gate).run_stream("x")
    assert gate.reached.wait(5)
    del stream
    gc.collect()
    assert wait_no_agentstream_threads() == []


def test_dropped_stream_with_full_queue_stops_worker(no_thread_leak):
    def endless(messages, info):
        while not info.cancel.is_set():
            yield "x"

    stream = Agent(FunctionModel(endless)).run_stream("x")
    deadline = time.monotonic() + 5
    while stream._shared.channel.qsize() < stream._shared.channel.maxsize and time.monotonic() < deadline:
        stream._shared.done.wait(0.01)
    assert stream._shared.channel.full()
    del stream
    gc.collect()
    assert wait_no_agentstream_threads() == []


def test_cancel_while_tool_runs_awaits_it_and_starts_no_other(no_thread_leak):
    started: List[str] = []
    tool_running = threading.Event()
    model = scripted([call("slow", {}, "1"), call("other", {}, "2")])
    agent = Agent(model, max_tool_workers=1)

    @agent.tool
    def slow(ctx) -> str:
        started.append("slow")
        tool_running.set()
        ctx.cancel_token.wait(5)
        return "stopped early"

    @agent.tool_plain
    def other() -> str:
        started.append("other")
        return "x"

    stream = agent.run_stream("x")
    collected = []
    stream_thread = threading.Thread(target=lambda: collected.extend(_drain(stream)))
    stream_thread.start()
    assert tool_running.wait(5)
    stream.cancel()
    stream_thread.join(5)
    assert started == ["slow"]
    cancelled = collected[-1]
    assert cancelled.kind == "cancelled" and cancelled.pending_tools == ["other"]
    last = cancelled.messages[-1]
    assert isinstance(last, ModelRequest)
    assert [(p.tool_call_id, p.is_error) for p in last.parts] == [("1", False), ("2", True)]
    assert "cancelled" in last.parts[1].content
    assert_valid_history(cancelled.messages)


def _drain(stream) -> List[Any]:
    got = []
    try:
        for e in stream:
            got.append(e)
    except RunCancelled:
        pass
    return got


def test_cancel_between_parallel_tools_starts_no_more(no_thread_leak):
    started: List[str] = []
    both = threading.Barrier(2, timeout=5)
    model = scripted([call("a", {}, "1"), call("b", {}, "2"), call("c", {}, "3")])
    agent = Agent(model, max_tool_workers=2)

    @agent.tool
    def a(ctx) -> str:
        started.append("a")
        both.wait()
        ctx.cancel_token.set()
        return "a"

    @agent.tool
    def b(ctx) -> str:
        started.append("b")
        both.wait()
        ctx.cancel_token.wait(5)  # finish only after the cancel, so c could only start after it
        return "b"

    @agent.tool_plain
    def c() -> str:
        started.append("c")
        return "c"

    stream = agent.run_stream("x")
    with pytest.raises(RunCancelled) as info:
        stream.result(timeout=5)
    assert sorted(started) == ["a", "b"]
    assert "c" in info.value.pending_tools
    assert_valid_history(info.value.messages)


def test_cancelled_history_is_reusable(no_thread_leak):
    gate = Gate()
    stream = Agent(FunctionModel(lambda m, i: _thinking_then_stall(i, gate))).run_stream("x")
    assert gate.reached.wait(5)
    stream.cancel()
    with pytest.raises(RunCancelled) as info:
        stream.result(timeout=5)
    assert info.value.partial_thinking == "hmm" and info.value.partial_text == "ans"
    history = info.value.messages
    result = Agent(TestModel(custom_output_text="continued")).run("go on", message_history=history)
    assert result.output == "continued"
    assert result.messages[:len(history)] == history


def _thinking_then_stall(info, gate):
    yield ThinkingPart("hmm")
    yield "ans"
    gate.reached.set()
    info.cancel.wait(5)


def test_handler_that_raises_cancels_and_reraises(no_thread_leak):
    def bad(text):
        raise ValueError("handler broke")

    gate = Gate()
    stream = stalling_agent(gate).run_stream("x", on_text=bad)
    with pytest.raises(ValueError, match="handler broke"):
        for _ in stream:
            pass
    assert stream.cancel_token.is_set()
    with pytest.raises(ValueError, match="handler broke"):
        stream.result(timeout=5)
    assert wait_no_agentstream_threads() == []


def test_handler_that_blocks_does_not_deadlock_worker(no_thread_leak):
    release = threading.Event()
    in_handler = threading.Event()

    def endless(messages, info):
        while not info.cancel.is_set():
            yield "x"

    def blocking(text):
        in_handler.set()
        release.wait(10)

    stream = Agent(FunctionModel(endless)).run_stream("x", on_text=blocking)
    consumer = threading.Thread(target=lambda: _drain(stream))
    consumer.start()
    assert in_handler.wait(5)
    stream.cancel()
    assert stream.wait(2), "worker did not stop while the handler was blocked"
    release.set()
    consumer.join(5)
    assert not consumer.is_alive()


def test_handler_that_cancels_itself(no_thread_leak):
    holder = {}

    def on_text(text):
        holder["stream"].cancel()

    def endless(messages, info):
        while not info.cancel.is_set():
            yield "a"

    stream = Agent(FunctionModel(endless)).run_stream("x", on_text=on_text)
    holder["stream"] = stream
    got = _drain(stream)
    assert got[-1].kind == "cancelled"
    assert got[-1].partial_text.startswith("a")
    assert [e.kind for e in got].count("cancelled") == 1


def test_handler_that_starts_another_run(no_thread_leak):
    inner_outputs = []
    inner = Agent(TestModel(custom_output_text="inner"))

    def on_text(text):
        if not inner_outputs:
            inner_outputs.append(inner.run("nested").output)

    result = Agent(scripted(["a", "b"])).run("x", on_text=on_text)
    assert result.output == "ab" and inner_outputs == ["inner"]


def test_start_dispatches_on_background_thread(no_thread_leak):
    threads = set()
    stream = Agent(TestModel(custom_output_text="hello")).run_stream(
        "x", on_text=lambda t: threads.add(threading.current_thread().name))
    assert stream.start() is stream
    assert stream.result(timeout=5).output == "hello"
    assert len(threads) == 1 and threads.pop().startswith("agentstream-dispatch")


def test_consumed_once():
    stream = Agent(TestModel()).run_stream("x")
    iter(stream)
    with pytest.raises(RuntimeError, match="consumed only once"):
        iter(stream)
    stream.close()


def test_result_timeout_then_cancel(no_thread_leak):
    gate = Gate()
    stream = stalling_agent(gate).run_stream("x")
    with pytest.raises(TimeoutError):
        stream.result(timeout=0.2)
    stream.cancel()
    with pytest.raises(RunCancelled):
        stream.result(timeout=5)


def test_cancelled_event_to_dict_is_json_safe():
    import json

    gate = Gate()
    stream = stalling_agent(gate).run_stream("x")
    assert gate.reached.wait(5)
    stream.cancel()
    got = _drain(stream)
    data = json.loads(json.dumps(got[-1].to_dict()))
    assert data["kind"] == "cancelled" and data["partial_text"] == "Hello"
    assert data["messages"][-1]["kind"] == "response"


def test_iter_sse_frames_and_close_cancels(no_thread_leak):
    gate = Gate()
    stream = stalling_agent(gate).run_stream("x")
    frames = stream.iter_sse(heartbeat=0.05)
    seen = b""
    while b"text_delta" not in seen:
        seen += next(frames)
    assert seen.startswith(b"event: run_start\ndata: {")
    more = next(frames)
    while not more.startswith(b": heartbeat") and b"text_delta" in more:
        more = next(frames)
    assert more == b": heartbeat\n\n"
    frames.close()
    assert stream.cancel_token.is_set() and stream.wait(2)


def test_ctrl_c_while_result_waits_on_background_dispatch_cancels(no_thread_leak):
    import os
    import signal

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("needs the main thread with Python's default SIGINT handler")
    gate = Gate()
    stream = stalling_agent(gate).run_stream("x").start()
    assert gate.reached.wait(5)
    main_id = threading.main_thread().ident

    def interrupt_once_main_waits_in_join():
        import sys

        for _ in range(5000):  # bounded: until the main thread is blocked inside Thread.join
            frame = sys._current_frames().get(main_id)
            names = set()
            while frame is not None:
                names.add(frame.f_code.co_name)
                frame = frame.f_back
            if "join" in names and "result" in names:
                os.kill(os.getpid(), signal.SIGINT)
                return
            gate.release.wait(0.001)

    timer = threading.Thread(target=interrupt_once_main_waits_in_join)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        stream.result(timeout=5)
    timer.join()
    assert stream.cancel_token.is_set() and stream.wait(2)
