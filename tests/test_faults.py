"""Broken streams through the public path: ``Agent(OpenAIChatModel/AnthropicModel(base_url=<loopback
fault server>)).run_stream(...)``.

Each test checks what a user sees: the exception class and a message naming the cause,
exactly one terminal event (the last), the partial text/thinking and usage on the exception
and ``stream.text``, no retry once a delta was emitted (a ``Retrying`` event for each retry
before that), the worker ended, the socket closed (the server saw the client leave, and no
file descriptor is left once the model is closed), and the history on the exception valid
to send again (``validate_conversation``). HTTP-level faults (statuses, retries, content
types) are in ``test_faults_http.py``.
"""
from __future__ import annotations

import threading
import time
from typing import List

import pytest

from agentstream import ModelStreamError, StreamTimeout, Timeout
from agentstream.messages import ThinkingPart
from tests.faultkit import (ANTHROPIC, OPENAI, WIRES, Reply, an_start, an_text_events, assert_failed, drive, oa_finish,
                            oa_text, oa_usage, sse, sse_event, wait_for)
from tests.faultkit import make_fixture, server_fixture  # noqa: F401 (the "make" and "server" fixtures)
from tests.validators import validate_conversation


# --- a normal run: the baseline every fault is compared with ---------------------------------------

@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_normal_run_with_a_tool(server, make, wire):
    agent = make(wire)
    agent.tool_plain(lambda city: f"sunny in {city}", name="weather")
    server.enqueue(wire.tools_reply(("call_1", "weather", '{"city": "Paris"}')), wire.reply("Sunny", "."))
    out = drive(agent, "Weather in Paris?")
    assert out.error is None
    out.check_terminal("run_complete")
    result = out.stream.result()
    assert result.output == "Sunny." == out.stream.text
    assert [(e.tool_name, e.success, e.result) for e in out.of("tool_executed")] == [("weather", True, "sunny in Paris")]
    assert result.usage.requests == 2 and result.usage.tool_calls == 1 and not result.usage.estimated
    assert server.connection_count == 1   # the connection was reused
    validate_conversation(result.messages, require_request_last=False)
    assert wire.problems(server.requests[1].json) == []


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_paced_chunks_reach_the_user_one_by_one(server, make, chunked):
    """The server sends chunk i+1 only after the user's handler saw chunk i."""
    pieces = ["Hel", "lo", " wor", "ld"]
    gates = {i: threading.Event() for i in range(1, len(pieces) + 1)}
    seen: List[str] = []

    def on_text(text: str) -> None:
        seen.append(text)
        gates[len(seen)].set()

    chunks = [oa_text(p) for p in pieces] + [oa_finish(), oa_usage(), sse("[DONE]")]
    server.enqueue(Reply(chunks=chunks, chunked=chunked, gates=gates, gate_timeout=3))
    out = drive(make(), on_text=on_text)
    assert out.error is None and out.stream.result().output == "Hello world"
    assert seen == pieces and server.gate_timeouts == 0, "a token was held back until more data arrived"


# --- stalls and timeouts -------------------------------------------------------------------------

def test_stall_before_headers_is_a_connect_timeout_retried(server, make):
    server.enqueue(*[Reply(chunks=[oa_text("late")], delay_before_headers=30) for _ in range(2)])
    out = drive(make(timeout=Timeout(connect=0.3, idle=5), max_retries=1))
    error = assert_failed(out, StreamTimeout, "no response headers", "0.3 s", "Timeout.connect", retries=1)
    assert error.kind == "connect" and error.seconds == 0.3
    assert isinstance(out.of("retrying")[0].error, StreamTimeout)
    assert len(server.requests) == 2 and 0.5 < out.elapsed < 3
    assert wait_for(lambda: all(c.disconnected.is_set() for c in server.connections), 2)


def test_stall_after_headers_is_an_idle_timeout_retried(server, make):
    server.enqueue(*[Reply(chunks=[oa_text("never")], stall_after=0) for _ in range(2)])
    out = drive(make(timeout=Timeout(connect=2, idle=0.3), max_retries=1))
    error = assert_failed(out, StreamTimeout, "no content from the server for 0.3 s", "Timeout.idle", retries=1)
    assert error.kind == "idle"
    assert len(server.requests) == 2 and 0.5 < out.elapsed < 3
    assert wait_for(lambda: all(c.disconnected.is_set() for c in server.connections), 2)


@pytest.mark.parametrize("wire, ping", [
    (OPENAI, b": ping\n\n"),
    (ANTHROPIC, sse_event({"type": "ping"}, event="ping")),
    (ANTHROPIC, sse({"type": "ping"})),   # a proxy that drops `event:` lines
], ids=["openai-comment", "anthropic-ping-event", "anthropic-ping-data-only"])
def test_keepalives_do_not_keep_an_idle_timeout_from_firing(server, make, wire, ping):
    """Mid-stream stall with a keep-alive every 100 ms (``: ping`` comments; Anthropic's
    ``ping`` events): the idle timeout still fires, the partial is kept, no retry."""
    chunks = wire.partial("Hel")
    server.enqueue(Reply(chunks=chunks, stall_after=len(chunks), keepalive_every=0.1, keepalive=ping))
    marks: List[float] = []
    out = drive(make(wire, timeout=Timeout(connect=2, idle=0.5), max_retries=2),
                on_text=lambda t: marks.append(time.monotonic()), on_error=lambda e: marks.append(time.monotonic()))
    error = assert_failed(out, StreamTimeout, "no content from the server for 0.5 s", partial="Hel")
    assert error.kind == "idle"
    assert 0.3 <= marks[-1] - marks[0] < 2.0, "the idle timeout fired too early, or pings reset it"
    assert len(server.requests) == 1   # a delta was emitted: no retry
    assert server.disconnected.wait(2), "the stalled socket was not closed"


def test_anthropic_pings_between_content_do_not_break_the_stream(server, make):
    """Pings are ignored, not errors: content around them arrives and the run completes."""
    ping = sse_event({"type": "ping"}, event="ping")
    reply = ANTHROPIC.reply("Hel", "lo")
    reply.chunks = [reply.chunks[0], ping] + reply.chunks[1:3] + [ping] + reply.chunks[3:]
    server.enqueue(reply)
    out = drive(make(ANTHROPIC, timeout=Timeout(connect=2, idle=0.5)))
    assert out.error is None and out.stream.result().output == "Hello"


def test_endless_stream_hits_the_total_deadline(server, make):
    server.enqueue(Reply(chunks=[oa_text("a")], repeat_forever=oa_text("x"), delay_between=0.01))
    out = drive(make(timeout=Timeout(connect=2, idle=5, total=0.5), max_retries=2))
    partial = out.stream.text
    assert partial.startswith("axxxx")
    error = assert_failed(out, StreamTimeout, "longer than 0.5 s", "Timeout.total", partial=partial)
    assert error.kind == "total" and 0.45 <= out.elapsed < 2.0, out.elapsed
    assert len(server.requests) == 1
    assert server.disconnected.wait(2), "the endless response was not closed"


# --- cut connections ---------------------------------------------------------------------------------

def _cut(how: str, gate: threading.Event, n: int) -> dict:
    # a reset can discard data the client has not read yet: cut only once "b" was handled
    return {"drop_mid_chunk": n} if how == "drop" else {"reset_after": n, "gates": {n: gate}}


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
@pytest.mark.parametrize("how", ["drop", "reset"])
def test_connection_cut_after_output_keeps_the_partial(server, make, wire, how):
    gate = threading.Event()
    chunks = wire.partial("a", "b") + [oa_text("c") if wire is OPENAI else wire.partial("c")[-1]]
    if wire is OPENAI:   # thinking first, to check it is kept too
        chunks.insert(0, sse({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}))
    server.enqueue(Reply(chunks=chunks, **_cut(how, gate, len(chunks) - 1)))
    agent = make(wire)
    out = drive(agent, on_text=lambda t: gate.set() if t == "b" else None)
    error = assert_failed(out, ModelStreamError, "connection cut after", "bytes", partial="ab")
    assert error.error_type == "connection_cut"
    if wire is OPENAI:
        assert error.partial_thinking == "hmm" == out.stream.thinking
        assert ThinkingPart("hmm") in error.messages[-1].parts
    assert len(server.requests) == 1
    server.enqueue(wire.reply("again"))   # the history on the error is reusable
    assert agent.run("go on", message_history=error.messages).output == "again"
    assert wire.problems(server.requests[-1].json) == []


@pytest.mark.parametrize("how", ["drop", "reset"])
def test_connection_cut_before_any_output_is_retried(server, make, how):
    first = Reply(chunks=[sse({"id": "c1", "choices": []}), oa_text("lost")], **_cut(how, threading.Event(), 1))
    if how == "reset":
        first.gates[1].set()
    server.enqueue(first, OPENAI.reply("ok"))
    out = drive(make())
    assert out.error is None and out.stream.result().output == "ok"
    out.check_terminal("run_complete")
    [retry] = out.of("retrying")
    assert isinstance(retry.error, ModelStreamError) and retry.attempt == 1
    assert len(server.requests) == 2


# --- malformed bodies ----------------------------------------------------------------------------------

def test_invalid_utf8_after_output(server, make):
    server.enqueue(Reply(chunks=[oa_text("a"), b'data: {"x": "\xff\xfe"}\n\n']))
    out = drive(make())
    error = assert_failed(out, ModelStreamError, "invalid UTF-8", partial="a")
    assert "\ufffd" in error.line
    assert len(server.requests) == 1


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_a_10_mb_single_event(server, make, wire):
    big = "x" * 10_000_000
    server.enqueue(wire.reply(big))
    out = drive(make(wire))
    assert out.error is None and out.stream.result().output == big
    assert [len(e.text) for e in out.of("text_delta")] == [len(big)]


@pytest.mark.parametrize("line, needles", [
    (b"upstream failed badly\n\n", ("not Server-Sent Events", "upstream failed badly")),
    (b'{"error": {"message": "context size exceeded", "type": "exceed_context_size_error", "code": 400}}\n',
     ("context size exceeded",)),
], ids=["text", "raw-json-error"])
def test_line_without_data_field(server, make, line, needles):
    server.enqueue(Reply(chunks=[oa_text("a"), line]))
    out = drive(make())
    error = assert_failed(out, ModelStreamError, *needles, partial="a")
    assert error.line and error.line.strip() == line.decode().strip()


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_in_band_error_before_output_is_retried_after_is_not(server, make, wire):
    if wire is OPENAI:
        error_event = sse({"error": {"message": "overloaded", "type": "server_error"}})
        head: List[bytes] = []
    else:
        error_event = sse_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                                event="error")
        head = [an_start()]
    server.enqueue(Reply(chunks=head + [error_event]), wire.reply("ok"))
    out = drive(make(wire))
    assert out.error is None and out.stream.result().output == "ok" and len(out.of("retrying")) == 1
    server.enqueue(Reply(chunks=wire.partial("part") + [error_event]))
    out = drive(make(wire))
    assert_failed(out, ModelStreamError, "verloaded", partial="part")
    assert len(server.requests) == 3   # nothing was retried after "part" reached the user


def test_anthropic_stream_cut_before_message_stop(server, make):
    server.enqueue(Reply(chunks=[an_start()] + an_text_events("Hel")))   # no message_delta / message_stop
    out = drive(make(ANTHROPIC))
    assert_failed(out, ModelStreamError, "before message_stop", partial="Hel")
