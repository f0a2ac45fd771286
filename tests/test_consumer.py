"""One consumer per stream: close() from another thread, tool calls seen before tools however
late iteration starts, and a finalizer that cannot deadlock (issue 10, point 2)."""
from __future__ import annotations

import gc
import threading
from typing import Any, Dict, List

import pytest

from agentstream import Agent, RunCancelled
from agentstream import _channel
from agentstream.models import FunctionModel

from .helpers import Gate, call, scripted, stalled_after


class _BarrierSpy:
    """Says when the worker starts waiting at a Barrier (``Barrier.wait`` wrapped)."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.count = 0


@pytest.fixture
def seen_barrier(monkeypatch):
    seen = _BarrierSpy()
    original = _channel.Barrier.wait

    def wait(barrier: Any, stop: Any) -> bool:
        seen.count += 1
        seen.waiting.set()
        return original(barrier, stop)

    monkeypatch.setattr(_channel.Barrier, "wait", wait)
    return seen


def tool_agent(ran: List[str]) -> Agent:
    agent = Agent(scripted([call("record")], "done"))

    @agent.tool_plain
    def record() -> str:
        ran.append("ran")
        return "ok"

    return agent


# -- close() from another thread ----------------------------------------------------------

def test_close_from_another_thread_cancels_and_never_consumes(no_thread_leak):
    gate = Gate()
    first_text, closed = threading.Event(), threading.Event()
    handler_threads: List[int] = []

    def on_text(text: str) -> None:
        handler_threads.append(threading.get_ident())
        if text == "a":
            first_text.set()
            assert closed.wait(5)   # the consumer is busy while the other thread closes

    def on_cancel(event: Any) -> None:
        handler_threads.append(threading.get_ident())

    stream = Agent(FunctionModel(stalled_after(["a", "b"], gate))).run_stream(
        "x", on_text=on_text, on_cancel=on_cancel)
    outcome: Dict[str, Any] = {}

    def consume() -> None:
        outcome["ident"] = threading.get_ident()
        events: List[Any] = []
        try:
            for event in stream:
                events.append(event)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome["error"] = exc
        outcome["events"] = events

    consumer = threading.Thread(target=consume, name="test-consumer")
    consumer.start()
    assert first_text.wait(5)
    stream.close()                      # from this thread, while the consumer is in a handler
    assert stream.done                  # close() waited for the worker
    closed.set()
    consumer.join(10)
    assert not consumer.is_alive(), "the consumer never got its terminal event"
    kinds = [e.kind for e in outcome["events"]]
    assert kinds[-1] == "cancelled"
    assert sum(k in ("cancelled", "error", "run_complete") for k in kinds) == 1
    assert isinstance(outcome.get("error"), RunCancelled)
    assert set(handler_threads) == {outcome["ident"]}   # every handler ran on the consumer
    assert len(handler_threads) == 3                     # "a", "b", on_cancel


def test_close_from_another_thread_before_anyone_consumes_ends_the_worker(no_thread_leak):
    gate = Gate()
    cancelled: List[Any] = []
    stream = Agent(FunctionModel(stalled_after(["a"], gate))).run_stream("x", on_cancel=cancelled.append)
    assert gate.reached.wait(5)
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join(5)
    assert not closer.is_alive() and stream.done
    assert len(cancelled) == 1           # closing first claimed the stream: handlers ran there
    with pytest.raises(RuntimeError, match="consumed only once"):
        iter(stream)


def test_background_consumer_and_close_from_the_main_thread(no_thread_leak):
    gate = Gate()
    threads: List[str] = []
    stream = Agent(FunctionModel(stalled_after(["a"], gate))).run_stream(
        "x", on_cancel=lambda e: threads.append(threading.current_thread().name))
    stream.start()
    assert gate.reached.wait(5)
    stream.close()
    with pytest.raises(RunCancelled):
        stream.result(timeout=5)
    assert threads and threads[0].startswith("agentstream-dispatch")


# -- tool calls are seen before the tool runs, however late iteration starts ---------------

def test_late_iteration_sees_tool_call_before_the_tool_runs(seen_barrier, no_thread_leak):
    ran: List[str] = []
    stream = tool_agent(ran).run_stream("x")     # no handlers at all
    assert seen_barrier.waiting.wait(5), "the worker did not wait for the consumer at the tool call"
    assert ran == []                             # it waits: the tool has not run
    seen: List[Any] = []
    for event in stream:                         # iteration starts only now
        seen.append((event.kind, list(ran)))
    kinds = [k for k, _ in seen]
    assert kinds.index("tool_call_complete") < kinds.index("tool_executed")
    assert dict(seen)["tool_call_complete"] == []   # the tool had not run when the call was seen
    assert ran == ["ran"] and stream.result().output == "done"


def test_result_without_tool_call_handlers_does_not_wait(seen_barrier, no_thread_leak):
    ran: List[str] = []
    go = threading.Event()

    def model(messages: Any, info: Any) -> Any:
        if len(messages) == 1:
            yield "t"
            assert go.wait(5)                     # result() has claimed the stream by now
            yield call("record")
        else:
            yield "done"

    agent = Agent(FunctionModel(model))
    agent.tool_plain(lambda: ran.append("ran") or "ok", name="record")
    result = agent.run_stream("x", on_text=lambda t: go.set()).result(timeout=5)
    assert result.output == "done" and ran == ["ran"]
    assert seen_barrier.count == 0


@pytest.mark.parametrize("how", ["cancel", "close", "drop"])
def test_unconsumed_stream_waiting_at_a_tool_call_still_ends(how, seen_barrier, no_thread_leak):
    ran: List[str] = []
    stream = tool_agent(ran).run_stream("x")
    shared = stream._shared
    assert seen_barrier.waiting.wait(5)
    if how == "cancel":
        stream.cancel()
    elif how == "close":
        stream.close()
    else:
        del stream
        gc.collect()
    assert shared.done.wait(5), "the worker stayed at the barrier"
    assert ran == []


# -- the finalizer takes no lock its thread may hold -----------------------------------------

@pytest.fixture
def no_auto_gc():
    gc.disable()   # the test decides where the collection runs
    try:
        yield
    finally:
        gc.enable()


def test_finalizer_on_the_worker_thread_inside_the_token_lock(no_auto_gc, no_thread_leak):
    dropped, collected = threading.Event(), threading.Event()

    def model(messages: Any, info: Any) -> Any:
        yield "a"
        assert dropped.wait(5)
        with info.cancel._cb_lock:   # as inside CancelToken.add_callback, on the worker thread
            gc.collect()             # ... the dropped stream's finalizer runs here
        collected.set()
        yield "b"

    stream = Agent(FunctionModel(model)).run_stream("x")
    shared = stream._shared
    stream.cycle = stream            # only a cyclic GC frees it
    del stream
    dropped.set()
    assert collected.wait(5), "the finalizer deadlocked on the worker thread"
    assert shared.done.wait(5) and shared.abandoned and shared.cancel.is_set()


def test_finalizer_on_another_thread_inside_the_token_lock(no_auto_gc, no_thread_leak):
    gate = Gate()
    stream = Agent(FunctionModel(stalled_after(["a"], gate))).run_stream("x")
    shared, token = stream._shared, stream.cancel_token
    assert gate.reached.wait(5)
    stream.cycle = stream
    del stream

    def collect_holding_the_lock() -> None:
        with token._cb_lock:
            gc.collect()

    collector = threading.Thread(target=collect_holding_the_lock, daemon=True)
    collector.start()
    collector.join(5)
    assert not collector.is_alive(), "the finalizer deadlocked on the token's lock"
    assert shared.done.wait(5) and token.is_set()
