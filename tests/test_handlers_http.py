"""Handler failures over real HTTP (loopback server streaming through ``OpenAIChatModel``).

A handler that raises, one that blocks while the server streams as fast as it can, one that
cancels from inside itself, one that starts another run: the worker never deadlocks, the
bounded queue holds it back, a cancel still ends it and closes the socket, and the run ends
with one terminal event. (The offline versions are in ``test_cancel.py``.)
"""
from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest

from agentstream import RunCancelled
from tests.faultkit import OPENAI, Reply, drive, oa_text
from tests.faultkit import make_fixture, server_fixture  # noqa: F401 (the "make" and "server" fixtures)


def endless() -> Reply:
    """A text chunk as fast as the server can write, until the client leaves."""
    return Reply(chunks=[oa_text("a")], repeat_forever=oa_text("x"), delay_between=0)


def test_handler_that_raises_cancels_the_run_and_closes_the_socket(server, make):
    server.enqueue(endless())
    calls: List[str] = []

    def bad(text: str) -> None:
        calls.append(text)
        raise ValueError("handler broke")

    stream = make().run_stream("hi", on_text=bad)
    got: List[Any] = []
    with pytest.raises(ValueError, match="handler broke"):
        for event in stream:
            got.append(event)
    assert calls == ["a"]   # no handler is called after the failing one
    assert stream.cancel_token.is_set() and stream.wait(2)
    assert server.disconnected.wait(2), "the socket stayed open after the handler failed"
    with pytest.raises(ValueError, match="handler broke"):   # result() re-raises it too
        stream.result(timeout=5)
    assert len(server.requests) == 1


def test_blocked_handler_fills_the_queue_and_cancel_still_ends_the_worker(server, make):
    server.enqueue(endless())
    in_handler, release = threading.Event(), threading.Event()

    def blocking(text: str) -> None:
        in_handler.set()
        release.wait(10)

    stream = make().run_stream("hi", on_text=blocking)
    outcome: List[Any] = []

    def consume() -> None:
        try:
            for _ in stream:
                pass
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    consumer = threading.Thread(target=consume, name="test-consumer", daemon=True)
    consumer.start()
    assert in_handler.wait(5)
    queue = stream._shared.channel   # the bound holds the worker back (no unbounded buffering)
    deadline = time.monotonic() + 10
    while not queue.full() and time.monotonic() < deadline:
        stream._shared.done.wait(0.01)
    assert queue.full() and not stream.done
    start = time.monotonic()
    stream.cancel()
    assert stream.wait(2), "the worker deadlocked on the full queue"
    assert time.monotonic() - start < 1.0   # it re-checks the cancel every 0.1 s while the queue is full
    assert server.disconnected.wait(2), "the socket stayed open"
    release.set()
    consumer.join(10)
    assert not consumer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RunCancelled)
    assert outcome[0].partial_text.startswith("ax")


def test_handler_that_cancels_from_inside_itself(server, make):
    server.enqueue(endless())
    holder: dict = {}
    seen: List[str] = []

    def on_text(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            holder["stream"].cancel()

    stream = holder["stream"] = make().run_stream("hi", on_text=on_text)
    got: List[Any] = []
    with pytest.raises(RunCancelled) as info:
        for event in stream:
            got.append(event)
    kinds = [e.kind for e in got]
    assert kinds[-1] == "cancelled" and sum(k in ("cancelled", "error", "run_complete") for k in kinds) == 1
    assert len(seen) >= 3 and info.value.partial_text.startswith("axx") and got[-1].usage.estimated
    assert stream.wait(2) and server.disconnected.wait(2)


def test_handler_that_starts_another_run(server, make):
    """A handler may run another agent (same model, same server) to completion."""
    agent = make()
    gate = threading.Event()   # the outer answer goes on only once the inner run is over
    server.enqueue(Reply(chunks=OPENAI.reply("out", "er").chunks, gates={1: gate}))
    inner: List[str] = []

    def on_text(text: str) -> None:
        if not inner:
            server.enqueue(OPENAI.reply("inner"))
            inner.append(agent.run("nested").output)
            gate.set()

    out = drive(agent, on_text=on_text)
    assert out.error is None, out.error
    out.check_terminal("run_complete")
    assert out.stream.result().output == "outer" and inner == ["inner"]
    assert [r.json["messages"][-1]["content"] for r in server.requests] == ["hi", "nested"]
    assert server.gate_timeouts == 0 and server.connection_count == 2   # two connections at once
