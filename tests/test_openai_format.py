"""OpenAI chat-format histories: ``messages_from_openai`` / ``messages_to_openai``."""
from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

import agentstream
from agentstream import Agent, UserError
from agentstream._openai_format import messages_from_openai, messages_to_openai
from agentstream.messages import (ModelRequest, ModelResponse, SystemPromptPart, TextPart, ThinkingPart,
                                  ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models import FunctionModel

OPENAI_HISTORY: List[Dict[str, Any]] = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "Weather in Paris and 2 + 3?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Paris: 18°C"},
    {"role": "tool", "tool_call_id": "call_2", "content": "5"},
    {"role": "assistant", "content": "18°C in Paris; 2 + 3 = 5."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome."},
]

HISTORY = [
    ModelRequest([SystemPromptPart("Be terse."), UserPromptPart("Weather in Paris and 2 + 3?")]),
    ModelResponse([TextPart("Checking."), ToolCallPart("get_weather", {"city": "Paris"}, "call_1"),
                   ToolCallPart("add", {"a": 2, "b": 3}, "call_2")]),
    ModelRequest([ToolReturnPart("get_weather", "Paris: 18°C", "call_1"), ToolReturnPart("add", "5", "call_2")]),
    ModelResponse([TextPart("18°C in Paris; 2 + 3 = 5.")]),
    ModelRequest([UserPromptPart("Thanks!")]),
    ModelResponse([TextPart("You're welcome.")]),
]


def _parts(messages: List[Any]) -> List[Any]:
    """(kind, parts) without the response metadata (timestamps differ)."""
    return [(m.kind, m.parts) for m in messages]


def test_openai_history_converts_to_agentstream_messages():
    assert _parts(messages_from_openai(OPENAI_HISTORY)) == _parts(HISTORY)


def test_openai_round_trip_keeps_every_message_and_tool_call():
    assert messages_to_openai(messages_from_openai(OPENAI_HISTORY)) == OPENAI_HISTORY


def test_agentstream_round_trip_through_openai_format():
    back = messages_from_openai(json.loads(json.dumps(messages_to_openai(HISTORY))))
    assert _parts(back) == _parts(HISTORY)


def test_tool_call_without_text_round_trips():
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": [1, "é"]}'}}]
    source = [{"role": "user", "content": "go"}, {"role": "assistant", "content": None, "tool_calls": calls},
              {"role": "tool", "tool_call_id": "c1", "content": "done"}]
    history = messages_from_openai(source)
    assert history[1].parts == [ToolCallPart("f", {"x": [1, "é"]}, "c1")]
    out = messages_to_openai(history)
    assert out[1]["tool_calls"] == calls and not out[1].get("content")
    assert out[0] == source[0] and out[2] == source[2]


def test_exported_from_the_package():
    assert agentstream.messages_from_openai is messages_from_openai
    assert agentstream.messages_to_openai is messages_to_openai
    assert {"messages_from_openai", "messages_to_openai"} <= set(agentstream.__all__)


def test_variants_developer_content_parts_dict_arguments_and_named_tool():
    history = messages_from_openai([
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}],
         "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": [{"type": "text", "text": "r"}]},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
    ])
    assert _parts(history) == [
        ("request", [SystemPromptPart("Rules."), UserPromptPart("line 1\nline 2")]),
        ("response", [TextPart("ok"), ToolCallPart("f", {"a": 1}, "c1")]),
        ("request", [ToolReturnPart("f", "r", "c1")]),
        ("response", [TextPart("I can't help with that.")]),
    ]


def test_user_message_after_tool_results_keeps_its_order():
    source = OPENAI_HISTORY[:5] + [{"role": "user", "content": "also Rome"}, {"role": "system", "content": "s"}]
    history = messages_from_openai(source)
    assert [type(p).__name__ for p in history[-1].parts] == ["ToolReturnPart", "ToolReturnPart",
                                                              "UserPromptPart", "SystemPromptPart"]
    assert messages_to_openai(history) == source
    odd = [{"role": "user", "content": "a"}, {"role": "tool", "tool_call_id": "c", "name": "f", "content": "r"}]
    back = messages_to_openai(messages_from_openai(odd))  # a tool after a user starts a new request
    assert back == [odd[0], {"role": "tool", "tool_call_id": "c", "content": "r"}]  # ("name" is not written)


def test_messages_to_openai_drops_thinking_like_the_wire_format():
    history = [ModelRequest([UserPromptPart("hi")]),
               ModelResponse([ThinkingPart("hmm", signature="sig"), TextPart("hello")])]
    assert messages_to_openai(history) == [{"role": "user", "content": "hi"},
                                           {"role": "assistant", "content": "hello"}]


def test_openai_sdk_style_objects_are_accepted():
    class Message:  # like openai's pydantic ChatCompletionMessage
        def model_dump(self, exclude_none: bool = False) -> Dict[str, Any]:
            return {"role": "assistant", "content": "hi"}

    assert _parts(messages_from_openai([Message()])) == [("response", [TextPart("hi")])]


@pytest.mark.parametrize("source, expected", [
    ("not a list", "takes a list of message dicts, got str"),
    ({"role": "user"}, "takes a list of message dicts, got dict"),
    ([{"role": "user", "content": "a"}, 42], "messages[1]: expected a dict"),
    ([{"role": "robot", "content": "a"}], "messages[0]: unknown role 'robot'"),
    ([{"content": "a"}], "messages[0]: unknown role None"),
    ([{"role": "user"}], "messages[0] (user): 'content' must be a string or a list of text parts, got NoneType"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
     "messages[0] (user): content part 0 has type 'image_url'; only text parts are supported"),
    ([{"role": "tool", "content": "r"}], "messages[0] (tool): missing 'tool_call_id'"),
    ([{"role": "user", "content": "a"}, {"role": "tool", "tool_call_id": "call_9", "content": "r"}],
     "messages[1] (tool): tool_call_id 'call_9' answers no earlier assistant tool call"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 7}}]}],
     "messages[0] (assistant): tool_calls[0]: 'arguments' must be a JSON object or a string, got int"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}],
     "messages[0] (assistant): tool_calls[0] (f) has no 'id'"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}],
     "tool_calls[0] has type 'custom'; only 'function' tool calls are supported"),
    ([{"role": "assistant", "tool_calls": {"id": "c"}}], "messages[0] (assistant): 'tool_calls' must be a list"),
    ([{"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}],
     "legacy 'function_call' is not supported"),
    ([{"role": "function", "name": "f", "content": "r"}], "legacy 'function' messages are not supported"),
])
def test_bad_input_names_the_index_and_the_problem(source: Any, expected: str):
    with pytest.raises(UserError) as info:
        messages_from_openai(source)
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


def test_converted_history_continues_a_run():
    seen: List[Any] = []

    def model(messages: List[Any], info: Any) -> str:
        seen.extend(messages)
        return "It was 18°C."

    result = Agent(FunctionModel(model)).run("What was the weather?",
                                             message_history=messages_from_openai(OPENAI_HISTORY))
    assert _parts(seen[:len(HISTORY)]) == _parts(HISTORY)
    assert messages_to_openai(result.messages)[-2:] == [
        {"role": "user", "content": "What was the weather?"}, {"role": "assistant", "content": "It was 18°C."}]


@pytest.mark.parametrize("raw", ["{oops", "[1]"])
def test_invalid_arguments_are_kept_raw_and_round_trip_exactly(raw: str):
    source = [{"role": "user", "content": "q"},
              {"role": "assistant", "content": "",
               "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": raw}}]},
              {"role": "tool", "tool_call_id": "c", "content": "bad arguments"}]
    history = messages_from_openai(source)
    call = history[1].parts[-1]
    assert call.args == {} and call.raw_args == raw
    back = messages_to_openai(history)
    assert back[1]["tool_calls"][0]["function"]["arguments"] == raw
