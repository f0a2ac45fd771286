"""The cancel contract over real HTTP (loopback server, OpenAI and Anthropic models).

A cancel at every point of a run -- before the first byte, between chunks, inside a stalled
read, while a tool runs, between two tools of one response, during a summary request --
ends the run with exactly one ``Cancelled`` within ``LATENCY`` of the cancel (a running
tool is awaited: it gets the token through ``ctx``), aborts the open socket (the server
sees the client leave), and leaves ``Cancelled.messages`` valid to send again: a follow-up
run on that history sends a request the provider accepts and completes.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any, Callable, List, Tuple

import pytest

from agentstream import CancelToken, Compression, RunCancelled
from agentstream.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart
from tests.faultkit import OPENAI, WIRES, Outcome, Wire, drive, oa_text
from tests.faultkit import server_fixture  # noqa: F401 (the "server" fixture)
from tests.server import Reply, Server
from tests.validators import validate_conversation

LATENCY = 0.1   # seconds from cancel() to the Cancelled event reaching the consumer
TRIES = 3       # latency is asserted on the median of this many runs


def cancelled_run(agent: Any, when: Callable[[], Any], prompt: str = "hi",
                  **kwargs: Any) -> Tuple[Outcome, float]:
    """Run ``agent``; a helper thread calls ``when()`` (blocks until the moment) and then
    cancels the run's token. Returns the outcome and the seconds from cancel to Cancelled."""
    token = CancelToken()
    marks = {}

    def cancel_when_ready() -> None:
        if when() is False:
            marks["missed"] = True
        marks["cancel"] = time.monotonic()
        token.cancel()

    def on_cancel(event: Any) -> None:
        marks["cancelled"] = time.monotonic()

    helper = threading.Thread(target=cancel_when_ready, name="test-canceller", daemon=True)
    helper.start()
    out = drive(agent, prompt, cancel_token=token, on_cancel=on_cancel, **kwargs)
    helper.join(5)
    assert "missed" not in marks, "the cancel point was never reached"
    out.check_terminal("cancelled")
    assert isinstance(out.error, RunCancelled)
    return out, marks["cancelled"] - marks["cancel"]


def follow_up(wire: Wire, server: Server, agent: Any, history: List[Any]) -> None:
    """A second run on the cancelled history: valid request on the wire, and it completes.
    (A history ending with a request, e.g. the closed tool calls, gets the new prompt as a
    second request; each provider's converter sends the two as one valid turn.)"""
    validate_conversation(history, require_request_last=False)
    before = len(server.requests)
    server.enqueue(wire.reply("continued"))
    result = agent.run("go on", message_history=history)
    assert result.output == "continued"
    assert len(server.requests) == before + 1
    body = server.requests[-1].json
    assert wire.problems(body) == [], body["messages"]
    assert result.messages[:len(history)] == history


def assert_prompt(latencies: List[float]) -> None:
    print("cancel latencies (ms):", [round(x * 1000, 1) for x in latencies])
    assert statistics.median(latencies) < LATENCY, latencies
    assert max(latencies) < 1.0, latencies   # never a hang, even on a loaded machine


# --- cancel points during the model request ------------------------------------------------------

@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_cancel_before_the_first_byte(server, wire):
    agent = wire.agent(server)
    latencies = []
    for i in range(TRIES):
        server.enqueue(Reply(chunks=wire.partial("never"), delay_before_headers=30))
        out, latency = cancelled_run(agent, lambda: server.wait_for_requests(i + 1, 5))
        latencies.append(latency)
        cancelled = out.terminal
        assert cancelled.partial_text == "" and out.of("text_delta") == []
        assert cancelled.usage.requests == 1 and cancelled.usage.estimated   # the server sent no usage
        assert not any(isinstance(m, ModelResponse) for m in cancelled.messages)
        assert wait_disconnects(server, i + 1)
    assert_prompt(latencies)
    follow_up(wire, server, agent, out.terminal.messages)
    agent.model.close()


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_cancel_inside_a_stalled_read(server, wire):
    agent = wire.agent(server)
    latencies = []
    for i in range(TRIES):
        first = threading.Event()
        server.enqueue(Reply(chunks=wire.partial("Hel", "lo"), stall_after=len(wire.partial("Hel", "lo"))))
        out, latency = cancelled_run(agent, lambda: first.wait(5),
                                     on_text=lambda t: first.set() if t == "lo" else None)
        latencies.append(latency)
        cancelled = out.terminal
        assert cancelled.partial_text == "Hello" == out.stream.text == out.error.partial_text
        assert cancelled.usage.estimated and cancelled.usage.output_tokens >= 1
        last = cancelled.messages[-1]
        assert isinstance(last, ModelResponse) and last.parts == [TextPart("Hello")]   # the partial is kept
        assert wait_disconnects(server, i + 1), "the stalled socket was not closed"
    assert_prompt(latencies)
    follow_up(wire, server, agent, out.terminal.messages)
    agent.model.close()


def test_cancel_between_chunks_of_a_fast_stream(server):
    agent = OPENAI.agent(server)
    latencies = []
    for i in range(TRIES):
        seen = []
        third = threading.Event()

        def on_text(text: str) -> None:
            seen.append(text)
            if len(seen) == 3:
                third.set()

        server.enqueue(Reply(chunks=[oa_text(f"t{n} ") for n in range(500)], delay_between=0.005))
        out, latency = cancelled_run(agent, lambda: third.wait(5), on_text=on_text)
        latencies.append(latency)
        assert 3 <= len(seen) < 500
        assert out.terminal.partial_text == "".join(seen) == out.stream.text
        assert wait_disconnects(server, i + 1)
    assert_prompt(latencies)
    follow_up(OPENAI, server, agent, out.terminal.messages)
    agent.model.close()


def test_cancel_during_retry_backoff(server):
    agent = OPENAI.agent(server)
    server.enqueue(Reply.json(503, {"error": {"message": "busy"}}, headers={"Retry-After": "30"}))
    retrying = threading.Event()
    out, latency = cancelled_run(agent, lambda: retrying.wait(5),
                                 on_event=lambda e: retrying.set() if e.kind == "retrying" else None)
    assert latency < 1.0 and out.elapsed < 5, "the 30 s back-off was not cut short"
    assert len(server.requests) == 1
    assert out.of("retrying")[0].delay == 30.0
    follow_up(OPENAI, server, agent, out.terminal.messages)
    agent.model.close()


# --- cancel points around tools ---------------------------------------------------------------------

@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_cancel_while_a_tool_runs_awaits_it(server, wire):
    running, saw_cancel, started = threading.Event(), [], []
    agent = wire.agent(server, max_tool_workers=1)

    @agent.tool
    def slow(ctx, n: int) -> str:
        started.append(n)
        running.set()
        saw_cancel.append(ctx.cancel_token.wait(5))   # the tool gets the token and stops early
        return f"stopped at {n}"

    server.enqueue(wire.tools_reply(("call_1", "slow", '{"n": 1}'), ("call_2", "slow", '{"n": 2}')))
    out, latency = cancelled_run(agent, lambda: running.wait(5))
    assert started == [1] and saw_cancel == [True]
    assert latency < 1.0   # the tool returned as soon as it saw the cancel; the run awaited it
    cancelled = out.terminal
    assert cancelled.pending_tools == ["slow"]
    last = cancelled.messages[-1]
    assert isinstance(last, ModelRequest)
    assert [(p.tool_call_id, p.is_error) for p in last.parts] == [("call_1", False), ("call_2", True)]
    assert "cancelled" in last.parts[1].content
    assert len(server.requests) == 1   # no model request after the cancel
    follow_up(wire, server, agent, cancelled.messages)
    agent.model.close()


def test_cancel_between_two_tools_of_one_response(server):
    agent = OPENAI.agent(server, max_tool_workers=1)
    started: List[str] = []
    first_done = threading.Event()

    @agent.tool
    def first(ctx) -> str:
        started.append("first")
        first_done.set()
        ctx.cancel_token.wait(5)   # return only once cancelled: the next tool would start after it
        return "one"

    @agent.tool_plain
    def second() -> str:
        started.append("second")
        return "two"

    server.enqueue(OPENAI.tools_reply(("call_a", "first", "{}"), ("call_b", "second", "{}")))
    out, latency = cancelled_run(agent, lambda: first_done.wait(5))
    assert started == ["first"] and latency < 1.0
    assert out.terminal.pending_tools == ["second"]
    executed = out.of("tool_executed")
    assert [(e.tool_call_id, e.success) for e in executed] in ([], [("call_a", True)])
    results = {p.tool_call_id: p for p in out.terminal.messages[-1].parts}
    assert results["call_b"].is_error and "cancelled" in results["call_b"].content
    follow_up(OPENAI, server, agent, out.terminal.messages)
    agent.model.close()


def test_cancel_between_parallel_tools_starts_no_more(server):
    agent = OPENAI.agent(server, max_tool_workers=2)
    both = threading.Barrier(2, timeout=5)
    started: List[str] = []

    def make(name: str) -> Callable[..., str]:
        def tool(ctx) -> str:
            started.append(name)
            both.wait()
            ctx.cancel_token.wait(5)
            return name
        tool.__name__ = name
        return tool

    agent.tool(make("a"))
    agent.tool(make("b"))
    agent.tool_plain(lambda: started.append("c") or "c", name="c")
    server.enqueue(OPENAI.tools_reply(("id_a", "a", "{}"), ("id_b", "b", "{}"), ("id_c", "c", "{}")))
    out, latency = cancelled_run(agent, lambda: wait_until(lambda: len(started) == 2))
    assert sorted(started) == ["a", "b"] and latency < 1.0
    assert "c" in out.terminal.pending_tools
    follow_up(OPENAI, server, agent, out.terminal.messages)
    agent.model.close()


# --- cancel during a summary request -----------------------------------------------------------------

def long_history(turns: int = 6) -> List[Any]:
    messages: List[Any] = [ModelRequest([UserPromptPart("first question")])]
    for i in range(turns):
        messages.append(ModelResponse([ToolCallPart("lookup", {"i": i}, f"h{i}")]))
        messages.append(ModelRequest([ToolReturnPart("lookup", "result " * 40, f"h{i}")]))
        messages.append(ModelResponse([TextPart(f"answer {i} " * 30)]))
        messages.append(ModelRequest([UserPromptPart(f"question {i}")]))
    messages.pop()
    return messages


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_cancel_during_a_summary_request(server, wire):
    agent = wire.agent(server, model_kwargs={"context_window": 600})
    history = long_history()
    latencies = []
    for i in range(TRIES):
        server.enqueue(Reply(chunks=wire.partial("summ"), stall_after=0))   # the summary request stalls
        out, latency = cancelled_run(agent, lambda: server.wait_for_requests(i + 1, 5), prompt="next?",
                                     message_history=history, compression=Compression("summarize"))
        latencies.append(latency)
        assert "You compress conversations" in json.dumps(server.requests[i].json)   # it was the summary
        assert out.kinds == ["run_start", "request_start", "cancelled"]
        assert len(server.requests) == i + 1   # no model request after the summary
        assert wait_disconnects(server, i + 1)
        assert out.terminal.messages[:len(history)] == history
    assert_prompt(latencies)
    follow_up(wire, server, agent, out.terminal.messages)
    agent.model.close()


# --- helpers ------------------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.005)
    return True


def wait_disconnects(server: Server, count: int, timeout: float = 2.0) -> bool:
    """The server saw ``count`` connections closed by the client."""
    return wait_until(lambda: sum(c.disconnected.is_set() for c in server.connections) >= count, timeout)
