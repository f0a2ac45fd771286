"""Compression: truncate and summarize, as run option and history processors."""
from __future__ import annotations

from typing import Any, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentstream import Agent, CancelToken, Compression, RunCancelled, RunContext, UserError, compression
from agentstream.compression import DEFAULT_SUMMARY_PROMPT, SUMMARY_PREFIX, RunAccess, Summarize, Truncate
from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                                  ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models import FunctionModel
from agentstream.tokens import TokenCounter

from .helpers import Gate, kinds
from .validators import conversation_problems, validate_conversation


def text(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def is_summary_request(messages: List[Any]) -> bool:
    first = messages[0].parts[0]
    return isinstance(first, SystemPromptPart) and first.content == DEFAULT_SUMMARY_PROMPT


@st.composite
def conversations(draw: Any) -> List[Any]:
    """Valid histories: system + user first, turns of 0-3 tool rounds with 1-3 parallel calls
    (results in any order, some as retry prompts), text answers, user follow-ups; ends with a request."""
    size = st.integers(1, 40)
    messages: List[Any] = [ModelRequest([SystemPromptPart("sys"), UserPromptPart(text(draw(size), "u"))])]
    next_id = 0
    for turn in range(draw(st.integers(1, 7))):
        for _ in range(draw(st.integers(0, 3))):
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                next_id += 1
                calls.append(ToolCallPart("t", {"q": text(draw(size), "a")}, f"c{next_id}"))
            lead = [ThinkingPart("hmm")] if draw(st.booleans()) else []
            lead += [TextPart(text(draw(size), "x"))] if draw(st.booleans()) else []
            messages.append(ModelResponse(lead + calls))
            results = [RetryPromptPart("bad args", c.tool_name, c.tool_call_id) if draw(st.booleans()) and i == 0
                       else ToolReturnPart(c.tool_name, text(draw(size), "r"), c.tool_call_id)
                       for i, c in enumerate(calls)]
            messages.append(ModelRequest(draw(st.permutations(results))))
        if draw(st.booleans()) and turn:
            break                                   # end on tool results (the next request is pending)
        messages.append(ModelResponse([TextPart(text(draw(size), "t"))]))
        follow = UserPromptPart(text(draw(size), "f")) if draw(st.booleans()) else RetryPromptPart("again")
        messages.append(ModelRequest([follow]))
    return messages


def summarizer(reply: Any = "short summary") -> FunctionModel:
    def fn(messages: List[Any], info: Any) -> Any:
        assert is_summary_request(messages) and not info.tools and info.output_tool is None
        if isinstance(reply, Exception):
            raise reply
        return reply
    return FunctionModel(fn)


# --- properties over generated conversations ---------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.integers(1, 400), st.integers(0, 3), st.integers(0, 6))
def test_truncate_always_valid(messages: List[Any], target: int, keep_first: int, keep_last: int) -> None:
    validate_conversation(messages)                 # the generator makes valid histories
    counter = TokenCounter(None)
    outcome = Truncate(target, keep_first=keep_first, keep_last=keep_last).apply(
        list(messages), (), counter, RunAccess(), force=True)
    if outcome is None:
        return
    result = outcome.messages
    validate_conversation(result)
    assert result[-1] is messages[-1]
    assert all(r is m for r, m in zip(result[:keep_first], messages[:keep_first]))
    cut = len(messages) - len(result)              # head + a suffix of the original, same objects
    head = next(i for i in range(len(result) + 1) if i == len(result) or result[i] is not messages[i])
    assert all(r is m for r, m in zip(result[head:], messages[head + cut:]))
    assert outcome.compressed_tokens == counter.count(result) < outcome.original_tokens
    assert (outcome.messages_before, outcome.messages_after) == (len(messages), len(result))
    if outcome.compressed_tokens > target:          # over target only when nothing more can go
        assert Truncate(target, keep_first=keep_first, keep_last=keep_last).apply(
            list(result), (), counter, RunAccess(), force=True) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.integers(1, 400), st.integers(0, 3), st.integers(0, 6))
def test_summarize_always_valid(messages: List[Any], target: int, keep_first: int, keep_last: int) -> None:
    outcome = Summarize(target, keep_first=keep_first, keep_last=keep_last, model=summarizer()).apply(
        list(messages), (), TokenCounter(None), RunAccess(), force=True)
    if outcome is None:
        return
    validate_conversation(outcome.messages)
    summaries = [p for m in outcome.messages for p in m.parts
                 if isinstance(p, UserPromptPart) and p.content.startswith(SUMMARY_PREFIX)]
    expected = {"summarize": [1], "summarize->truncate": [0], "summarize+truncate": [0, 1]}[outcome.strategy]
    assert len(summaries) in expected
    assert outcome.messages[-1].parts[-len(messages[-1].parts):] == messages[-1].parts


def test_validator_catches_broken_histories() -> None:
    call = ToolCallPart("t", {}, "c1")
    ok = [ModelRequest([UserPromptPart("hi")]), ModelResponse([call]), ModelRequest([ToolReturnPart("t", 1, "c1")])]
    assert conversation_problems(ok) == []
    assert conversation_problems(ok[:2])                                        # unanswered, ends on response
    assert conversation_problems([ok[0], ok[2]])                                # result without call, 2 requests
    assert conversation_problems(ok[1:])                                        # starts with a response
    assert conversation_problems(ok[:2] + [ModelRequest([UserPromptPart("x"), ToolReturnPart("t", 1, "c1")])])


# --- truncate, by example ----------------------------------------------------------------

def tool_history(rounds: int, size: int = 30) -> List[Any]:
    messages: List[Any] = [ModelRequest([SystemPromptPart("sys"), UserPromptPart("start")])]
    for i in range(rounds):
        calls = [ToolCallPart("t", {"i": i}, f"c{i}a"), ToolCallPart("t", {"i": i}, f"c{i}b")]
        messages += [ModelResponse(calls), ModelRequest([ToolReturnPart("t", text(size), c.tool_call_id)
                                                         for c in calls])]
    return messages


def test_truncate_keeps_first_message_and_tool_pairs() -> None:
    messages = tool_history(6)
    result = compression.truncate(200, keep_last=1)(None, messages)
    validate_conversation(result)
    assert result[0] is messages[0] and result[-1] is messages[-1] and len(result) < len(messages)
    assert isinstance(result[1], ModelResponse)       # the response whose results follow it
    assert TokenCounter(None).count(result) <= 200


def test_under_target_nothing_changes() -> None:
    messages = tool_history(2)
    assert compression.truncate(10_000)(None, messages) == messages


# --- runs ------------------------------------------------------------------------------------

def long_history(turns: int, size: int = 60) -> List[Any]:
    messages: List[Any] = [ModelRequest([SystemPromptPart("sys"), UserPromptPart("first question")])]
    for i in range(turns):
        messages.append(ModelResponse([ToolCallPart("t", {"i": i}, f"h{i}")]))
        messages.append(ModelRequest([ToolReturnPart("t", text(size, f"r{i}_"), f"h{i}")]))
        messages.append(ModelResponse([TextPart(text(size, f"a{i}_"))]))
        if i < turns - 1:
            messages.append(ModelRequest([UserPromptPart(f"question {i}")]))
    return messages


STEPS = 12


def tool_agent(strategy: str, window: int = 600, summary: Any = "they looked things up", **kw: Any) -> Any:
    seen: List[List[Any]] = []
    summaries: List[Any] = []

    def fn(messages: List[Any], info: Any) -> Any:
        if is_summary_request(messages):
            summaries.append(info)
            if isinstance(summary, Exception):
                raise summary
            return summary
        validate_conversation(messages)               # every request the model gets is valid
        seen.append(messages)
        if len(seen) < STEPS:
            return ToolCallPart("lookup", {"n": len(seen)}, f"call{len(seen)}")
        return "final answer"

    agent = Agent(FunctionModel(fn, context_window=window), system_prompt="sys", model_settings={"temperature": 0.3},
                  **kw)
    agent.tool_plain(lambda n: text(15, f"res{n}_"), name="lookup")
    return agent, seen, summaries


@pytest.mark.parametrize("strategy", ["truncate", "summarize"])
def test_run_end_to_end_with_compression(strategy: str, no_thread_leak: Any) -> None:
    agent, seen, summaries = tool_agent(strategy)
    stream = agent.run_stream("go", compression=Compression(strategy))
    got = list(stream)
    result = stream.result()
    assert result.output == "final answer" and len(seen) == STEPS
    compressed = [e for e in got if e.kind == "context_compressed"]
    assert compressed and all(e.strategy == strategy for e in compressed)
    for e in compressed:
        assert e.compressed_tokens < e.original_tokens and e.messages_after < e.messages_before
    k = kinds(got)
    for i, kind in enumerate(k):
        if kind == "context_compressed":
            assert k[i - 2:i] == ["request_start", "context_info"]
            assert got[i - 1].estimated_tokens == got[i].compressed_tokens   # ContextInfo: what is sent
    validate_conversation(result.messages, require_request_last=False)
    if strategy == "summarize":
        assert len(summaries) == len(compressed) and summaries[0].settings.temperature == 0.3
        assert any(isinstance(p, UserPromptPart) and p.content.startswith(SUMMARY_PREFIX)
                   for m in result.messages for p in m.parts)
        assert result.usage.requests == STEPS + len(summaries)   # the summaries' usage counts
    else:
        assert not summaries


def test_blocking_run_emits_the_same_events(no_thread_leak: Any) -> None:
    agent, _, _ = tool_agent("truncate")
    events: List[Any] = []
    agent.run("go", compression=Compression("truncate"), on_event=events.append)
    assert "context_compressed" in kinds(events)


@pytest.mark.parametrize("summary,reason", [(RuntimeError("summary failed"), "exception"), ("", "empty")])
def test_summarize_falls_back_to_truncate(summary: Any, reason: str, no_thread_leak: Any) -> None:
    agent, seen, summaries = tool_agent("summarize", summary=summary)
    got = list(agent.run_stream("go", compression=Compression("summarize")))
    strategies = [e.strategy for e in got if e.kind == "context_compressed"]
    assert strategies and set(strategies) == {"summarize->truncate"} and summaries
    assert got[-1].kind == "run_complete" and len(seen) == STEPS


def test_too_little_to_summarize_truncates_without_asking(no_thread_leak: Any) -> None:
    agent, seen, summaries = tool_agent("summarize")
    got = list(agent.run_stream("go", compression=Compression("summarize", keep_last=30)))
    assert not summaries
    assert got[-1].kind == "run_complete"
    assert all(e.strategy == "summarize->truncate" for e in got if e.kind == "context_compressed")


def test_cancel_during_summary_request(no_thread_leak: Any) -> None:
    gate, calls = Gate(), []

    def waiting(info: Any) -> Any:
        gate.reached.set()
        info.cancel.wait(5)
        yield "never used"

    def fn(messages: List[Any], info: Any) -> Any:
        calls.append(messages)
        return waiting(info) if is_summary_request(messages) else "answer"

    history = long_history(6)
    agent = Agent(FunctionModel(fn, context_window=500))
    token = CancelToken()
    stream = agent.run_stream("next?", message_history=history, compression=Compression("summarize"),
                              cancel_token=token)
    assert gate.reached.wait(5)
    token.cancel()
    got: List[Any] = []
    with pytest.raises(RunCancelled) as info:
        for event in stream:
            got.append(event)
    assert kinds(got) == ["run_start", "request_start", "cancelled"]
    assert len(calls) == 1                             # no model request after the summary
    validate_conversation(info.value.messages)
    assert info.value.messages[:len(history)] == history


def test_new_messages_survive_compression(no_thread_leak: Any) -> None:
    history = long_history(6)
    agent = Agent(FunctionModel(lambda m, i: "short", context_window=500))
    result = agent.run("next?", message_history=history, compression=Compression("truncate"))
    assert len(result.messages) < len(history) + 2
    new = result.new_messages()
    assert [type(m) for m in new] == [ModelRequest, ModelResponse]
    assert new[0].parts == [UserPromptPart("next?")] and new[1].text == "short"


# --- history processors --------------------------------------------------------------------------

def test_compressors_as_history_processors(no_thread_leak: Any) -> None:
    agent, seen, _ = tool_agent("truncate", window=100_000,
                                history_processors=[compression.truncate(target_tokens=300)])
    got = list(agent.run_stream("go"))
    assert got[-1].kind == "run_complete"
    assert [e.strategy for e in got if e.kind == "context_compressed"]
    assert all(e.context_limit == 100_000 for e in got if e.kind == "context_info")

    agent, seen, summaries = tool_agent("summarize", window=100_000,
                                        history_processors=[compression.summarize(target_tokens=300)])
    got = list(agent.run_stream("go"))
    assert {e.strategy for e in got if e.kind == "context_compressed"} <= {"summarize", "summarize+truncate"}
    assert summaries and got[-1].kind == "run_complete"


def test_plain_callable_history_processor(no_thread_leak: Any) -> None:
    received: List[Any] = []

    def redact(ctx: RunContext, messages: List[Any]) -> List[Any]:
        received.append(ctx)
        return [ModelRequest([UserPromptPart(p.content.replace("secret", "***"))]) if isinstance(m, ModelRequest)
                else m for m in messages for p in m.parts[:1]]

    agent = Agent(FunctionModel(lambda m, i: m[0].parts[0].content), history_processors=[redact])
    assert agent.run("my secret plan").output == "my *** plan"
    assert isinstance(received[0], RunContext) and received[0].step == 1

    bad = Agent(FunctionModel(lambda m, i: "x"), history_processors=[lambda ctx, m: None])
    with pytest.raises(UserError, match="returned None"):
        bad.run("hi")


def test_standalone_processors() -> None:
    messages = tool_history(5)
    with pytest.raises(UserError, match="model"):
        compression.summarize(100)(None, messages)
    result = compression.summarize(100, model=summarizer("all about t"))(None, messages)
    validate_conversation(result)
    assert any(isinstance(p, UserPromptPart) and p.content == SUMMARY_PREFIX + "all about t"
               for m in result for p in m.parts)
    with pytest.raises(UserError):
        compression.truncate(0)
