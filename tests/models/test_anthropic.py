"""AnthropicModel: request building and the Messages stream translator (gotcha #26 and friends)."""
from __future__ import annotations

import json

import pytest

from agentstream.exceptions import ModelHTTPError, ModelStreamError, UserError
from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                                  ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models._anthropic_stream import AnthropicTranslator
from agentstream.models._base import ModelRequestParameters, ToolDefinition
from agentstream.models.anthropic import AnthropicModel
from agentstream.settings import ModelSettings

from ._sse_helpers import Replay, anthropic_sse

KEY = "sk-ant-test-SECRET-987654"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def model_cls():
    return AnthropicModel


def model(**kwargs):
    return model_cls()("claude-test", api_key=KEY, **kwargs)


def replay(text, chunk_size=0):
    return Replay(text, AnthropicTranslator(), chunk_size)


def start(input_tokens=10, **usage):
    return {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": None, "usage": dict({"input_tokens": input_tokens, "output_tokens": 1}, **usage)}}


def block(index, **content_block):
    return {"type": "content_block_start", "index": index, "content_block": content_block}


def delta(index, **d):
    return {"type": "content_block_delta", "index": index, "delta": d}


def stop(index):
    return {"type": "content_block_stop", "index": index}


def message_delta(reason, **usage):
    return {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage}


END = {"type": "message_stop"}
PING = {"type": "ping"}
WEATHER = ToolDefinition("get_weather", "Weather.", {"type": "object", "properties": {"city": {"type": "string"}}})
OUTPUT = ToolDefinition("final_result", "Answer.", {"type": "object", "properties": {}}, is_output=True)


# --- construction ------------------------------------------------------------------

def test_missing_key_names_the_variable():
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        model_cls()("claude-test")


def test_key_only_in_header_not_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    m = model_cls()("claude-test")
    assert KEY not in repr(m) and KEY not in str(m)
    request = m.build_request([ModelRequest([UserPromptPart("hi")])], ModelSettings(), ModelRequestParameters())
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "Authorization" not in request.headers and KEY not in json.dumps(request.json)


@pytest.mark.parametrize("root", ["http://127.0.0.1:9", "http://127.0.0.1:9/", "http://127.0.0.1:9/v1"])
def test_base_url_is_api_root(monkeypatch, root):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", root)
    request = model().build_request([], ModelSettings(), ModelRequestParameters())
    assert request.url == "http://127.0.0.1:9/v1/messages"


# --- request body ------------------------------------------------------------------

HISTORY = [
    ModelRequest([SystemPromptPart("Be terse."), SystemPromptPart("Use metric."), UserPromptPart("Weather?")]),
    ModelResponse([TextPart("Let me check."), ThinkingPart("I should call it", signature="sig-1"),
                   ThinkingPart("", redacted_data="opaque=="), ThinkingPart("unsigned, from elsewhere"),
                   ToolCallPart("get_weather", {"city": "Paris"}, "toolu_1"),
                   ToolCallPart("get_weather", {"city": "Rome"}, "toolu_2")]),
    ModelRequest([ToolReturnPart("get_weather", {"c": 21}, "toolu_1"),
                  ToolReturnPart("get_weather", "boom", "toolu_2", is_error=True),
                  RetryPromptPart("please answer in French")]),
    ModelRequest([UserPromptPart("and London?")]),
    ModelResponse([ToolCallPart("final_result", {"x": 1}, "toolu_3")]),
    ModelRequest([RetryPromptPart("x must be a string", "final_result", "toolu_3")]),
]


def test_messages_system_roles_and_blocks():
    body = model().build_request(HISTORY, ModelSettings(), ModelRequestParameters()).json
    assert body["system"] == "Be terse.\n\nUse metric."
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == [{"type": "text", "text": "Weather?"}]
    assistant = msgs[1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "I should call it", "signature": "sig-1"}
    assert assistant[1] == {"type": "redacted_thinking", "data": "opaque=="}
    assert assistant[2] == {"type": "text", "text": "Let me check."}
    assert assistant[3:] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]
    assert "unsigned" not in json.dumps(body)
    user = msgs[2]["content"]   # two requests merged; tool results first
    assert [b["type"] for b in user] == ["tool_result", "tool_result", "text", "text"]
    assert user[0] == {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"c": 21}'}
    assert user[1] == {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True}
    assert user[2]["text"].startswith("please answer in French") and user[3]["text"] == "and London?"
    assert msgs[4]["content"][0]["tool_use_id"] == "toolu_3" and msgs[4]["content"][0]["is_error"] is True
    assert "x must be a string" in msgs[4]["content"][0]["content"]
    assert body["max_tokens"] == 4096 and body["stream"] is True and body["model"] == "claude-test"
    assert "tools" not in body and "thinking" not in body


def test_empty_response_skipped_and_roles_still_alternate():
    history = [ModelRequest([UserPromptPart("a")]), ModelResponse([TextPart("")]), ModelRequest([UserPromptPart("b")])]
    msgs = model().build_request(history, ModelSettings(), ModelRequestParameters()).json["messages"]
    assert msgs == [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]


def test_tools_settings_and_thinking_budget():
    settings = ModelSettings(max_tokens=500, temperature=0.5, top_p=0.8, stop=["END"], seed=3,
                             extra_body={"metadata": {"user_id": "u"}}, extra_headers={"anthropic-beta": "x"})
    params = ModelRequestParameters(tools=[WEATHER], output_tool=OUTPUT)
    request = model().build_request([], settings, params)
    body = request.json
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather.", "input_schema": WEATHER.parameters_json_schema},
        {"name": "final_result", "description": "Answer.", "input_schema": OUTPUT.parameters_json_schema}]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (500, 0.5, 0.8)
    assert body["stop_sequences"] == ["END"] and "seed" not in body and "tool_choice" not in body
    assert body["metadata"] == {"user_id": "u"} and request.headers["anthropic-beta"] == "x"
    thinking = model().build_request([], ModelSettings(thinking_budget=2048), params).json
    assert thinking["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert thinking["max_tokens"] > 2048


@pytest.mark.parametrize("choice,parallel,sent", [
    ("auto", None, {"type": "auto"}), ("none", None, {"type": "none"}), ("required", None, {"type": "any"}),
    ("get_weather", None, {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True})])
def test_tool_choice_mapping(choice, parallel, sent):
    settings = ModelSettings(tool_choice=choice, parallel_tool_calls=parallel)
    body = model().build_request([], settings, ModelRequestParameters(tools=[WEATHER])).json
    assert body["tool_choice"] == sent


def test_output_tool_forced_unless_thinking():
    params = ModelRequestParameters(tools=[WEATHER], output_tool=OUTPUT, allow_text_output=False)
    assert model().build_request([], ModelSettings(), params).json["tool_choice"] == {"type": "any"}
    assert "tool_choice" not in model().build_request([], ModelSettings(thinking_budget=1024), params).json


def test_error_from_reads_anthropic_shape():
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                       "request_id": "req_1"}).encode()
    error = model().error_from(529, {}, body)
    assert isinstance(error, ModelHTTPError) and error.status == 529
    assert "Overloaded" in str(error) and error.code == "overloaded_error" and KEY not in str(error)
    spend = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": "limit",
                                                   "details": {"error_code": "enforced_spend_limit_reached"}}})
    assert model().error_from(429, {}, spend.encode()).code == "enforced_spend_limit_reached"
    assert model().error_from(502, {}, b"<html>bad gateway</html>").status == 502


# --- translator ----------------------------------------------------------------------

def test_text_usage_and_info():
    r = replay(anthropic_sse(start(46, cache_read_input_tokens=100, cache_creation_input_tokens=4), PING,
                             block(0, type="text", text=""), delta(0, type="text_delta", text="Hi"),
                             delta(0, type="text_delta", text=" there"), stop(0),
                             message_delta("end_turn", output_tokens=12), END), chunk_size=9)
    response = r.response
    assert response.text == "Hi there" and response.finish_reason == "stop"
    assert (response.model_name, response.provider_response_id) == ("claude-x", "msg_1")
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (150, 12, 100, 4)
    assert u.details["uncached_input_tokens"] == 46 and r.translator.done


def test_gotcha_26_tool_input_placeholder_ignored():
    r = replay(anthropic_sse(start(), block(0, type="text", text=""), delta(0, type="text_delta", text="Let me"),
                             stop(0), block(1, type="tool_use", id="toolu_1", name="get_weather", input={}),
                             delta(1, type="input_json_delta", partial_json=""),
                             delta(1, type="input_json_delta", partial_json='{"city": "Pa'),
                             delta(1, type="input_json_delta", partial_json='ris"}'), stop(1),
                             message_delta("tool_use", output_tokens=20), END))
    assert r.calls() == [("get_weather", "toolu_1", {"city": "Paris"})]
    assert r.response.finish_reason == "tool_calls" and r.response.text == "Let me"


def test_gotcha_26_no_argument_tool_and_whole_input_from_proxy():
    r = replay(anthropic_sse(start(), block(0, type="tool_use", id="t0", name="now", input={}),
                             delta(0, type="input_json_delta", partial_json=""), stop(0),
                             block(1, type="tool_use", id="t1", name="echo", input={"x": 1}), stop(1),
                             message_delta("tool_use"), END))
    assert r.calls() == [("now", "t0", {}), ("echo", "t1", {"x": 1})]


def test_gotcha_26_truncated_tool_input_at_max_tokens():
    r = replay(anthropic_sse(start(), block(0, type="tool_use", id="t", name="f", input={}),
                             delta(0, type="input_json_delta", partial_json='{"text": "abc'), stop(0),
                             message_delta("max_tokens", output_tokens=4096), END))
    response = r.response
    assert response.finish_reason == "length" and "t" in r.builder.invalid_args


def test_gotcha_26_thinking_signature_and_redacted():
    r = replay(anthropic_sse(start(), block(0, type="thinking", thinking="", signature=""),
                             delta(0, type="thinking_delta", thinking="Let me "),
                             delta(0, type="thinking_delta", thinking="think."),
                             delta(0, type="signature_delta", signature="EqQB"), stop(0),
                             block(1, type="redacted_thinking", data="EmwKAhgB"), stop(1),
                             block(2, type="text", text=""), delta(2, type="text_delta", text="Done."), stop(2),
                             message_delta("end_turn", output_tokens=30), END))
    parts = r.response.parts
    assert [type(p).__name__ for p in parts] == ["ThinkingPart", "ThinkingPart", "TextPart"]
    assert (parts[0].content, parts[0].signature) == ("Let me think.", "EqQB")
    assert parts[1].redacted_data == "EmwKAhgB" and parts[1].content == ""


def test_gotcha_26_adaptive_text_before_thinking_keeps_order():
    r = replay(anthropic_sse(start(), block(0, type="text", text=""), delta(0, type="text_delta", text="\n\n"),
                             stop(0), block(1, type="thinking", thinking=""),
                             delta(1, type="thinking_delta", thinking="hm"),
                             delta(1, type="signature_delta", signature="s"),
                             stop(1), block(2, type="text", text=""), delta(2, type="text_delta", text="Answer"),
                             stop(2), message_delta("end_turn"), END))
    assert [type(p).__name__ for p in r.response.parts] == ["TextPart", "ThinkingPart", "TextPart"]


def test_gotcha_26_server_tools_and_unknown_types_ignored():
    r = replay(anthropic_sse(start(), block(0, type="server_tool_use", id="srvtoolu_1", name="web_search", input={}),
                             delta(0, type="input_json_delta", partial_json='{"query": "x"}'), stop(0),
                             block(1, type="web_search_tool_result", tool_use_id="srvtoolu_1", content=[]), stop(1),
                             block(2, type="text", text=""), delta(2, type="citations_delta", citation={"url": "u"}),
                             delta(2, type="text_delta", text="Cited."), delta(2, type="brand_new_delta", x=1), stop(2),
                             block(3, type="compaction", content=""), delta(3, type="compaction_delta", content="..."),
                             stop(3), {"type": "some_future_event", "x": 1},
                             message_delta("end_turn", output_tokens=5), END))
    assert r.response.text == "Cited." and r.response.tool_calls == []


def test_dispatch_on_data_type_without_event_lines():
    r = replay(anthropic_sse(start(), block(0, type="text", text="A"), delta(0, type="text_delta", text="B"), stop(0),
                             message_delta("end_turn"), END, event_lines=False))
    assert r.response.text == "AB"


def test_gotcha_17_usage_cumulative_and_restated():
    r = replay(anthropic_sse(start(10), block(0, type="text", text="x"), stop(0),
                             message_delta(None, output_tokens=5), message_delta("end_turn", input_tokens=12,
                                                                                 output_tokens=9), END))
    assert (r.response.usage.input_tokens, r.response.usage.output_tokens) == (12, 9)


@pytest.mark.parametrize("reason,mapped", [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                                           ("tool_use", "tool_calls"), ("pause_turn", "pause_turn"),
                                           ("refusal", "refusal")])
def test_stop_reason_mapping(reason, mapped):
    r = replay(anthropic_sse(start(), block(0, type="text", text="x"), stop(0), message_delta(reason), END))
    assert r.response.finish_reason == mapped


def test_gotcha_20_error_event_overloaded():
    text = anthropic_sse(start(), block(0, type="text", text=""), delta(0, type="text_delta", text="par")) + \
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    r = replay(text)
    assert isinstance(r.error, ModelStreamError) and "Overloaded" in str(r.error)
    assert (r.error.error_type, r.error.status) == ("overloaded_error", 529) and "overloaded_error" in r.error.line
    assert r.partial.text == "par"


@pytest.mark.parametrize("etype,status", [("api_error", 500), ("rate_limit_error", 429),
                                          ("invalid_request_error", 400), ("mystery_error", None)])
def test_error_event_status_mapping(etype, status):
    r = replay(anthropic_sse({"type": "error", "error": {"type": etype, "message": "m"}}))
    assert (r.error.error_type, r.error.status) == (etype, status)


def test_gotcha_23_cut_off_without_message_stop():
    r = replay(anthropic_sse(start(), block(0, type="text", text=""), delta(0, type="text_delta", text="half")))
    assert isinstance(r.error, ModelStreamError) and "cut off" in str(r.error) and r.partial.text == "half"


def test_stop_reason_without_message_stop_is_accepted():
    r = replay(anthropic_sse(start(), block(0, type="text", text="ok"), stop(0), message_delta("end_turn")))
    assert r.response.text == "ok" and not r.translator.done


def test_gotcha_9_unterminated_last_event_flushed():
    text = anthropic_sse(start(), block(0, type="text", text="ok"), stop(0), message_delta("end_turn"))
    r = replay(text + 'event: message_stop\ndata: {"type":"message_stop"}')
    assert r.translator.done and r.response.text == "ok"


def test_malformed_json_is_a_stream_error():
    r = replay("event: message_start\ndata: {not json\n\n")
    assert isinstance(r.error, ModelStreamError) and r.error.line == "{not json"
