"""Shared pieces of the fault, cancel, soak and bad-input tests (HTTP, loopback server).

* wire builders for OpenAI Chat Completions (``oa_*``) and Anthropic Messages (``an_*``)
  streams, as chunk lists for ``tests.server.Reply``;
* ``openai_agent`` / ``anthropic_agent``: an ``Agent`` over the real HTTP model classes
  pointed at a ``Server``;
* ``drive``: run a stream to its end on the calling thread (bounded), keeping every event
  and the exception; ``Outcome.check_terminal`` asserts exactly one terminal event, last;
* ``openai_wire_problems`` / ``anthropic_wire_problems``: strict checks of a request body
  the server recorded (every tool call answered right after it, roles as each API wants);
* ``fd_count`` / ``wait_for``: resource accounting with bounded waits.
"""
from __future__ import annotations

import gc
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import pytest

from agentstream import Agent, AgentStreamError, Timeout
from agentstream.messages import ModelResponse, TextPart
from agentstream.models.anthropic import AnthropicModel
from agentstream.models.openai_chat import OpenAIChatModel
from tests.conftest import wait_no_agentstream_threads
from tests.server import FAKE_KEY, Reply, Server, sse, sse_event
from tests.validators import validate_conversation

__all__ = ["ANTHROPIC", "FAKE_KEY", "OPENAI", "Outcome", "WIRES", "Wire", "Reply", "Server", "TERMINAL", "an_reply", "an_text_events", "anthropic_agent",
           "anthropic_wire_problems", "drive", "fd_count", "oa_finish", "oa_reply", "oa_text", "oa_tool",
           "oa_usage", "openai_agent", "openai_wire_problems", "sse", "wait_for"]

TERMINAL = ("run_complete", "error", "cancelled")
FAST = Timeout(connect=2, idle=3, total=10)


# --- OpenAI Chat Completions wire --------------------------------------------------------------

def oa_text(text: str) -> bytes:
    return sse({"id": "chatcmpl-1", "model": "gpt-test", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def oa_tool(index: int, call_id: str, name: str, args: str) -> bytes:
    return sse({"id": "chatcmpl-1", "model": "gpt-test", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]},
        "finish_reason": None}]})


def oa_finish(reason: str = "stop") -> bytes:
    return sse({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})


def oa_usage(prompt: int = 11, completion: int = 7) -> bytes:
    return sse({"id": "chatcmpl-1", "choices": [], "usage": {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})


def oa_reply(*texts: str, usage: Optional[tuple] = (11, 7), **kwargs: Any) -> Reply:
    """A complete text answer, one chunk per text piece."""
    chunks = [oa_text(t) for t in texts] + [oa_finish()]
    if usage:
        chunks.append(oa_usage(*usage))
    return Reply(chunks=chunks + [sse("[DONE]")], **kwargs)


def oa_tools_reply(*calls: tuple, **kwargs: Any) -> Reply:
    """A response calling tools: each call ``(call_id, name, args_json)``."""
    chunks = [oa_tool(i, cid, name, args) for i, (cid, name, args) in enumerate(calls)]
    return Reply(chunks=chunks + [oa_finish("tool_calls"), oa_usage(), sse("[DONE]")], **kwargs)


# --- Anthropic Messages wire --------------------------------------------------------------------

def _an(kind: str, **data: Any) -> bytes:
    return sse_event(dict(type=kind, **data), event=kind)


def an_start(input_tokens: int = 10) -> bytes:
    return _an("message_start", message={"id": "msg_1", "type": "message", "role": "assistant",
                                         "model": "claude-test", "content": [], "stop_reason": None,
                                         "usage": {"input_tokens": input_tokens, "output_tokens": 1}})


def an_text_events(*texts: str, index: int = 0) -> List[bytes]:
    return ([_an("content_block_start", index=index, content_block={"type": "text", "text": ""})]
            + [_an("content_block_delta", index=index, delta={"type": "text_delta", "text": t}) for t in texts]
            + [_an("content_block_stop", index=index)])


def an_tool_events(index: int, call_id: str, name: str, args: str) -> List[bytes]:
    return [_an("content_block_start", index=index,
                content_block={"type": "tool_use", "id": call_id, "name": name, "input": {}}),
            _an("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": args}),
            _an("content_block_stop", index=index)]


def an_end(stop: str = "end_turn", output_tokens: int = 5) -> List[bytes]:
    return [_an("message_delta", delta={"stop_reason": stop}, usage={"output_tokens": output_tokens}),
            _an("message_stop")]


def an_reply(*texts: str, **kwargs: Any) -> Reply:
    return Reply(chunks=[an_start()] + an_text_events(*texts) + an_end(), **kwargs)


def an_tools_reply(*calls: tuple, **kwargs: Any) -> Reply:
    chunks = [an_start()]
    for i, (cid, name, args) in enumerate(calls):
        chunks += an_tool_events(i, cid, name, args)
    return Reply(chunks=chunks + an_end("tool_use"), **kwargs)


# --- agents -------------------------------------------------------------------------------------

def openai_model(server: Server, **kwargs: Any) -> OpenAIChatModel:
    kwargs.setdefault("api_key", FAKE_KEY)
    kwargs.setdefault("timeout", FAST)
    return OpenAIChatModel("gpt-test", base_url=server.url + "/v1", **kwargs)


def openai_agent(server: Server, *, model_kwargs: Optional[Dict[str, Any]] = None, **agent_kwargs: Any) -> Agent:
    return Agent(openai_model(server, **(model_kwargs or {})), **agent_kwargs)


def anthropic_agent(server: Server, *, model_kwargs: Optional[Dict[str, Any]] = None, **agent_kwargs: Any) -> Agent:
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault("api_key", FAKE_KEY)
    kwargs.setdefault("timeout", FAST)
    return Agent(AnthropicModel("claude-test", base_url=server.url, **kwargs), **agent_kwargs)


# --- running ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    stream: Any
    events: List[Any] = field(default_factory=list)
    error: Optional[BaseException] = None
    elapsed: float = 0.0

    @property
    def kinds(self) -> List[str]:
        return [e.kind for e in self.events]

    @property
    def terminal(self) -> Any:
        return self.events[-1] if self.events else None

    def of(self, kind: str) -> List[Any]:
        return [e for e in self.events if e.kind == kind]

    def check_terminal(self, kind: str) -> Any:
        """Exactly one terminal event, the last one, of ``kind``; the worker has ended."""
        found = [k for k in self.kinds if k in TERMINAL]
        assert found == [kind], f"terminal events {found}, expected [{kind!r}] (events: {self.kinds})"
        assert self.kinds[-1] == kind
        assert self.stream.wait(5), "worker still running after its terminal event"
        return self.events[-1]


def drive(agent: Any, prompt: Optional[str] = "hi", *, timeout: float = 15.0, **kwargs: Any) -> Outcome:
    """``agent.run_stream(prompt, **kwargs).result(timeout)``, keeping every event (via
    ``on_event``, chained to the caller's) and the exception ``result()`` raised."""
    events: List[Any] = []
    user_on_event = kwargs.pop("on_event", None)

    def on_event(event: Any) -> None:
        events.append(event)
        if user_on_event is not None:
            user_on_event(event)

    start = time.monotonic()
    stream = agent.run_stream(prompt, on_event=on_event, **kwargs)
    out = Outcome(stream, events)
    try:
        stream.result(timeout=timeout)
    except TimeoutError as exc:
        if not isinstance(exc, AgentStreamError):   # result() gave up: the run hangs
            stream.cancel()
            raise AssertionError(f"run did not end within {timeout} s (events: {out.kinds})") from exc
        out.error = exc
    except BaseException as exc:  # the run's exception
        out.error = exc
    out.elapsed = time.monotonic() - start
    return out


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        threading.Event().wait(poll)
    return True


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle_resources(fds_before: int, timeout: float = 5.0) -> int:
    """Wait (bounded) for agentstream threads to end and fds to drop back; the fd count."""
    assert wait_no_agentstream_threads(timeout) == []

    def settled() -> bool:
        gc.collect()
        return fd_count() <= fds_before

    wait_for(settled, timeout, 0.02)
    return fd_count()


# --- wire validators ---------------------------------------------------------------------------

def openai_wire_problems(body: Dict[str, Any]) -> List[str]:
    """What OpenAI would reject in a Chat Completions request body."""
    problems: List[str] = []
    messages = body.get("messages") or []
    if not messages:
        return ["no messages"]
    open_calls: List[str] = []
    seen: set = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "tool":
            cid = m.get("tool_call_id")
            if cid not in open_calls:
                problems.append(f"message {i}: tool result {cid!r} answers no pending call")
            else:
                open_calls.remove(cid)
            continue
        if open_calls:
            problems.append(f"message {i} ({role}) before tool calls {open_calls} were answered")
            open_calls = []
        if role == "assistant":
            calls = m.get("tool_calls") or []
            if not calls and not m.get("content"):
                problems.append(f"message {i}: empty assistant message")
            for c in calls:
                cid = c.get("id")
                if not cid or cid in seen:
                    problems.append(f"message {i}: bad or repeated tool call id {cid!r}")
                seen.add(cid)
                json.loads(c["function"]["arguments"])
                open_calls.append(cid)
        elif role in ("user", "system"):
            if not m.get("content"):
                problems.append(f"message {i}: empty {role} message")
        else:
            problems.append(f"message {i}: unknown role {role!r}")
    if open_calls:
        problems.append(f"tool calls {open_calls} never answered")
    if messages[-1].get("role") == "assistant":
        problems.append("the request ends with an assistant message")
    return problems


def anthropic_wire_problems(body: Dict[str, Any]) -> List[str]:
    """What the Messages API would reject in a request body."""
    problems: List[str] = []
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        problems.append("must start with a user message")
    for i, m in enumerate(messages):
        if i and m.get("role") == messages[i - 1].get("role"):
            problems.append(f"messages {i - 1} and {i} are both {m.get('role')}")
        blocks = m.get("content") or []
        if not blocks:
            problems.append(f"message {i} is empty")
        if m.get("role") == "assistant":
            uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            nxt = messages[i + 1]["content"] if i + 1 < len(messages) else []
            results = [b.get("tool_use_id") for b in nxt if b.get("type") == "tool_result"]
            if sorted(uses) != sorted(results):
                problems.append(f"message {i}: tool_use {uses} answered by {results}")
        else:
            kinds = [b.get("type") for b in blocks]
            if "tool_result" in kinds and "text" in kinds and \
                    kinds.index("text") < len(kinds) - kinds[::-1].index("tool_result") - 1:
                problems.append(f"message {i}: text before a tool_result")
    if messages and messages[-1].get("role") != "user":
        problems.append("the request ends with an assistant message")
    return problems


# --- one interface over both wire formats ----------------------------------------------------------

@dataclass(frozen=True)
class Wire:
    """How to script and check one provider: ``agent(server, ...)``; ``reply(*texts)`` a whole
    answer; ``partial(*texts)`` the chunks of an answer cut after those texts (the server
    then stalls, drops, ...); ``tools_reply((id, name, args_json), ...)``; ``problems(body)``."""

    name: str
    agent: Callable[..., Agent]
    reply: Callable[..., Reply]
    partial: Callable[..., List[bytes]]
    tools_reply: Callable[..., Reply]
    problems: Callable[[Dict[str, Any]], List[str]]
    path: str


OPENAI = Wire("openai", openai_agent, oa_reply, lambda *texts: [oa_text(t) for t in texts], oa_tools_reply,
              openai_wire_problems, "/v1/chat/completions")
ANTHROPIC = Wire("anthropic", anthropic_agent, an_reply,
                 lambda *texts: [an_start()] + an_text_events(*texts)[:-1], an_tools_reply,
                 anthropic_wire_problems, "/v1/messages")
WIRES = [OPENAI, ANTHROPIC]


# --- fixtures and checks shared by the fault tests -----------------------------------------------

@pytest.fixture(name="server")
def server_fixture(no_thread_leak: Any) -> Any:
    """A fault ``Server``; afterwards no server thread is left and no fd more than before."""
    gc.collect()
    fds = fd_count()
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked
    assert settle_resources(fds) <= fds, "a socket or file was left open"


@pytest.fixture(name="make")
def make_fixture(server: Any) -> Any:
    """``make(wire=OPENAI, **model_kwargs)`` -> Agent; fast back-off; models closed at the end."""
    made: List[Any] = []

    def make_agent(wire=OPENAI, agent_kwargs=None, **model_kwargs: Any) -> Any:
        agent = wire.agent(server, model_kwargs=model_kwargs, **(agent_kwargs or {}))
        agent.model.retry_base, agent.model.retry_max_delay = 0.01, 0.02
        made.append(agent)
        return agent

    yield make_agent
    for agent in made:
        agent.model.close()


def assert_failed(out: Outcome, cls: type, *needles: str, partial: str = "", retries: int = 0) -> Any:
    """The run ended with one Error event carrying ``cls``, its message naming the cause,
    the partial text on the exception and the stream, a valid history and usage."""
    error = out.error
    assert isinstance(error, cls), repr(error)
    assert out.check_terminal("error").error is error
    for needle in needles:
        assert needle in str(error), (needle, str(error))
    assert error.partial_text == partial == out.stream.text
    assert error.usage is not None and error.usage.requests == 1
    validate_conversation(error.messages, require_request_last=False)
    assert len(out.of("retrying")) == retries, out.of("retrying")
    if partial:
        last = error.messages[-1]
        assert isinstance(last, ModelResponse) and TextPart(partial) in last.parts   # the partial is kept
        assert error.usage.estimated and error.usage.output_tokens >= 1           # the server sent no usage
    return error
