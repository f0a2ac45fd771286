"""Wire fixes of issue 10 at the translator / builder / request level: tool-only assistant
messages, in-band errors classified by code, Anthropic blocks keyed by id, raw invalid
arguments kept and re-sent, duplicate tool call ids made unique.

The same behaviours over a loopback HTTP server: tests/test_wire_fixes_http.py.
"""
from __future__ import annotations

import json

import pytest

from agentstream import _retry
from agentstream.events import ToolCallDelta, ToolCallStart
from agentstream.exceptions import ModelHTTPError, ModelStreamError, RateLimitError
from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, ToolCallPart, UserPromptPart,
                                  messages_from_json, messages_to_json)
from agentstream.models._anthropic_stream import AnthropicTranslator
from agentstream.models._base import ModelRequestParameters
from agentstream.models._errors import InBandRateLimitError, classify_error, http_error
from agentstream.models._openai_stream import OpenAIChatTranslator
from agentstream.models.anthropic import RAW_ARGS_KEY, AnthropicModel
from agentstream.models.openai_chat import OpenAIChatModel
from agentstream.settings import ModelSettings

from ._sse_helpers import Replay, anthropic_sse, sse

KEY = "sk-test-SECRET-wirefix-0123"


def openai(text, chunk_size=0):
    return Replay(text, OpenAIChatTranslator(), chunk_size)


def anthropic(text, chunk_size=0):
    return Replay(text, AnthropicTranslator(), chunk_size)


def chunk(delta=None, finish=None):
    return {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def call(index, id=None, name=None, args=None):
    item = {"index": index, "function": {}}
    if id:
        item.update(id=id, type="function")
    if name:
        item["function"]["name"] = name
    if args is not None:
        item["function"]["arguments"] = args
    return item


def a_start():
    return {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3}}}


def a_tool(index, id, name="f"):
    return {"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}


def a_args(index, fragment):
    return {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": fragment}}


def a_stop(index):
    return {"type": "content_block_stop", "index": index}


def a_end():
    return [{"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
            {"type": "message_stop"}]


def history(call_part):
    return [ModelRequest([UserPromptPart("go")]), ModelResponse([call_part]),
            ModelRequest([RetryPromptPart("bad arguments", call_part.tool_name, call_part.tool_call_id)])]


# --- 1. tool-only assistant messages -------------------------------------------------------------

@pytest.mark.parametrize("provider", ["openai", "llamacpp", "ollama"])
def test_tool_only_assistant_message_has_empty_string_content(provider):
    # llama-cpp-python answers 500 to "content": null and its chatml-function-calling template
    # fails without the key; "" is accepted by it and by OpenAI.
    model = OpenAIChatModel("m", provider=provider, api_key=KEY)
    body = model.build_request(history(ToolCallPart("f", {"x": 1}, "c1")), ModelSettings(),
                               ModelRequestParameters()).json
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"] == ""
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1"]
    model.close()


# --- 2. in-band errors classified by code as well as type -----------------------------------------

@pytest.mark.parametrize("err, expected", [
    ({"type": "requests", "code": "rate_limit_exceeded"}, ("rate_limit_exceeded", 429)),
    ({"type": "tokens", "code": "rate_limit_exceeded"}, ("rate_limit_exceeded", 429)),
    ({"type": "insufficient_quota", "code": "insufficient_quota"}, ("insufficient_quota", 429)),
    ({"type": "invalid_request_error", "code": "rate_limit_exceeded"}, ("invalid_request_error", 429)),
    ({"type": "weird", "code": "server_error"}, ("server_error", 500)),
    ({"type": "overloaded_error"}, ("overloaded_error", 529)),
    ({"code": 503, "status": "UNAVAILABLE"}, ("UNAVAILABLE", 503)),
    ({"type": "invalid_request_error", "code": "context_length_exceeded"}, ("invalid_request_error", 400)),
    ({"message": "no type"}, (None, None)),
])
def test_classify_error_code_wins_over_type(err, expected):
    assert classify_error(err) == expected


def test_in_band_rate_limit_by_code_is_a_retryable_rate_limit_error():
    error = {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}
    r = openai(sse({"error": error}, done=False))
    assert isinstance(r.error, RateLimitError) and isinstance(r.error, ModelStreamError)
    assert (r.error.status, r.error.error_type, r.error.code) == (429, "rate_limit_exceeded", "rate_limit_exceeded")
    assert "Rate limit reached" in str(r.error) and not str(r.error).startswith("HTTP")
    assert "rate_limit_exceeded" in r.error.line
    assert _retry.is_retryable(r.error)


def test_in_band_insufficient_quota_is_a_rate_limit_error_never_retried():
    error = {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    r = openai(sse({"error": error}, done=False))
    assert isinstance(r.error, RateLimitError) and r.error.status == 429
    assert not _retry.is_retryable(r.error)


def test_in_band_server_error_code_is_retried_other_errors_keep_their_class():
    r = openai(sse({"error": {"message": "boom", "type": "", "code": "server_error"}}, done=False))
    assert type(r.error) is ModelStreamError and r.error.status == 500 and _retry.is_retryable(r.error)
    r = openai(sse({"error": {"message": "bad", "type": "invalid_request_error"}}, done=False))
    assert type(r.error) is ModelStreamError and r.error.status == 400 and not _retry.is_retryable(r.error)


def test_anthropic_in_band_rate_limit_error_is_a_rate_limit_error():
    r = anthropic("event: error\ndata: " + json.dumps(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}}) + "\n\n")
    assert isinstance(r.error, RateLimitError) and isinstance(r.error, ModelStreamError)
    assert (r.error.status, r.error.error_type) == (429, "rate_limit_error") and _retry.is_retryable(r.error)


def test_in_band_rate_limit_error_attributes_and_repr():
    error = InBandRateLimitError("error inside the model stream: slow", line="data: {}", error_type="x", code="y")
    assert repr(error) == "InBandRateLimitError('error inside the model stream: slow')"
    assert (error.status, error.line, error.error_type, error.code, error.body) == (429, "data: {}", "x", "y",
                                                                                   "data: {}")


def test_500_saying_the_request_is_invalid_is_not_retried():
    body = json.dumps({"error": {"message": "7 validation errors:\n  {'type': 'string_type', ...}",
                                 "type": "internal_server_error"}}).encode()
    error = http_error(500, {}, body, "m")
    assert error.status == 500 and not _retry.is_retryable(error)
    assert _retry.is_retryable(http_error(500, {}, b'{"error": {"message": "boom"}}', "m"))
    forced = http_error(500, {"x-should-retry": "true"}, body, "m")   # the server's word wins
    assert _retry.is_retryable(forced)


# --- 3. Anthropic blocks keyed by id as well as index ------------------------------------------

def test_anthropic_two_tool_use_blocks_at_one_index_stay_two_calls():
    r = anthropic(anthropic_sse(a_start(), a_tool(0, "toolu_a", "f"), a_args(0, '{"x": 1}'), a_stop(0),
                                a_tool(0, "toolu_b", "g"), a_args(0, '{"y": 2}'), a_stop(0), *a_end()))
    assert r.calls() == [("f", "toolu_a", {"x": 1}), ("g", "toolu_b", {"y": 2})]
    assert [e.tool_call_id for e in r.events if isinstance(e, ToolCallDelta)] == ["toolu_a", "toolu_b"]


def test_anthropic_restated_start_with_the_same_id_is_one_call():
    r = anthropic(anthropic_sse(a_start(), a_tool(0, "toolu_a"), a_args(0, '{"x": '), a_tool(0, "toolu_a"),
                                a_args(0, '1}'), a_stop(0), *a_end()))
    assert r.calls() == [("f", "toolu_a", {"x": 1})]


def test_anthropic_text_then_tool_at_a_reused_index():
    text = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    r = anthropic(anthropic_sse(a_start(), text,
                                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
                                a_stop(0), a_tool(0, "toolu_a"), a_args(0, '{"x": 1}'), a_stop(0), *a_end()))
    assert r.response.text == "Hi" and r.calls() == [("f", "toolu_a", {"x": 1})]


# --- 4. raw invalid arguments kept visible and re-sent --------------------------------------------

def test_openai_invalid_arguments_are_kept_raw_on_the_part():
    raw = '{"city": "Par'
    r = openai(sse(chunk({"tool_calls": [call(0, "c1", "weather", raw)]}), chunk(finish="tool_calls")))
    (part,) = r.response.tool_calls
    assert (part.args, part.raw_args) == ({}, raw)
    assert "not valid JSON" in r.builder.invalid_args["c1"]


def test_valid_arguments_have_no_raw_copy_and_partial_builds_drop_invalid_calls():
    r = openai(sse(chunk({"tool_calls": [call(0, "c1", "f", '{"a": 1}'), call(1, "c2", "g", "[1, 2]")]}),
                   chunk(finish="tool_calls")))
    ok, bad = r.response.tool_calls
    assert (ok.args, ok.raw_args) == ({"a": 1}, None) and (bad.args, bad.raw_args) == ({}, "[1, 2]")
    assert [c.tool_call_id for c in r.partial.tool_calls] == ["c1"]


def test_openai_history_resends_the_raw_arguments_exactly():
    raw = '{"city": "Par'
    model = OpenAIChatModel("m", api_key=KEY)
    body = model.build_request(history(ToolCallPart("weather", {}, "c1", raw_args=raw)), ModelSettings(),
                               ModelRequestParameters()).json
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == raw
    assert body["messages"][2]["role"] == "tool" and body["messages"][2]["tool_call_id"] == "c1"
    model.close()


def test_anthropic_history_resends_the_raw_arguments_inside_an_object():
    raw = '{"city": "Par'
    model = AnthropicModel("claude-x", api_key=KEY)
    body = model.build_request(history(ToolCallPart("weather", {}, "toolu_1", raw_args=raw)), ModelSettings(),
                               ModelRequestParameters()).json
    (tool_use,) = body["messages"][1]["content"]
    assert tool_use == {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {RAW_ARGS_KEY: raw}}
    model.close()


def test_anthropic_invalid_arguments_are_kept_raw():
    r = anthropic(anthropic_sse(a_start(), a_tool(0, "toolu_a"), a_args(0, '{"x": tru'), a_stop(0), *a_end()))
    (part,) = r.response.tool_calls
    assert (part.args, part.raw_args) == ({}, '{"x": tru')


def test_raw_args_survive_the_json_history_round_trip():
    messages = history(ToolCallPart("f", {}, "c1", raw_args="not json"))
    back = messages_from_json(messages_to_json(messages))
    assert back[1].parts[0].raw_args == "not json" and back == messages


# --- 5. duplicate tool call ids made unique -----------------------------------------------------

def test_openai_duplicate_ids_in_one_response_are_made_unique_in_events_and_parts():
    r = openai(sse(chunk({"tool_calls": [call(0, "call_1", "f", '{"n": 1}'), call(1, "call_1", "f", '{"n": 2}'),
                                         call(2, "call_1", "f", '{"n": 3}')]}), chunk(finish="tool_calls")))
    ids = ["call_1", "call_1_2", "call_1_3"]
    assert [c.tool_call_id for c in r.response.tool_calls] == ids
    assert [e.tool_call_id for e in r.events if isinstance(e, ToolCallStart)] == ids
    assert [(e.tool_call_id, e.delta) for e in r.events if isinstance(e, ToolCallDelta)] == [
        ("call_1", '{"n": 1}'), ("call_1_2", '{"n": 2}'), ("call_1_3", '{"n": 3}')]
    assert [c.args for c in r.response.tool_calls] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_openai_same_id_at_the_same_index_is_still_one_call():
    r = openai(sse(chunk({"tool_calls": [call(0, "call_1", "f", '{"n": ')]}),
                   chunk({"tool_calls": [call(0, "call_1", None, "1}")]}), chunk(finish="tool_calls")))
    assert r.calls() == [("f", "call_1", {"n": 1})]


def test_anthropic_duplicate_ids_at_two_indexes_are_made_unique():
    r = anthropic(anthropic_sse(a_start(), a_tool(0, "toolu_a"), a_args(0, '{"n": 1}'), a_stop(0),
                                a_tool(1, "toolu_a"), a_args(1, '{"n": 2}'), a_stop(1), *a_end()))
    assert r.calls() == [("f", "toolu_a", {"n": 1}), ("f", "toolu_a_2", {"n": 2})]
    model = AnthropicModel("claude-x", api_key=KEY)
    body = model.build_request([ModelRequest([UserPromptPart("go")]), r.response], ModelSettings(),
                               ModelRequestParameters()).json
    assert [b["id"] for b in body["messages"][1]["content"]] == ["toolu_a", "toolu_a_2"]
    model.close()


def test_a_suffixed_id_that_is_taken_gets_the_next_number():
    r = openai(sse(chunk({"tool_calls": [call(0, "c", "f", "{}"), call(1, "c_2", "f", "{}"), call(2, "c", "f", "{}")]}),
                   chunk(finish="tool_calls")))
    assert [c.tool_call_id for c in r.response.tool_calls] == ["c", "c_2", "c_3"]


def test_http_error_for_a_200_body_with_a_rate_limit_code():
    from agentstream.models._errors import error_status

    data = {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}}
    assert error_status(data) == 429
    error = http_error(error_status(data), {}, json.dumps(data).encode(), "m")
    assert isinstance(error, RateLimitError) and isinstance(error, ModelHTTPError) and _retry.is_retryable(error)


# --- one place reads API keys from the environment -------------------------------------------

def test_env_api_key(monkeypatch):
    from agentstream.models._registry import env_api_key

    monkeypatch.setenv("AGENTSTREAM_TEST_KEY", "k-1")
    monkeypatch.setenv("AGENTSTREAM_TEST_EMPTY", "")
    monkeypatch.delenv("AGENTSTREAM_TEST_UNSET", raising=False)
    assert env_api_key("AGENTSTREAM_TEST_KEY") == "k-1"
    assert env_api_key("AGENTSTREAM_TEST_EMPTY") is None and env_api_key("AGENTSTREAM_TEST_UNSET") is None
    assert env_api_key(None) is None and env_api_key("") is None


def test_api_keys_are_read_from_the_environment_only_by_env_api_key():
    """Every read of ``os.environ`` / ``os.getenv`` outside ``_registry.env_api_key`` names a
    literal variable or a base URL variable: no other code looks a key up by its name."""
    import ast
    from pathlib import Path

    import agentstream

    root = Path(agentstream.__file__).parent
    offenders = []

    class Finder(ast.NodeVisitor):
        def __init__(self, path: Path) -> None:
            self.path, self.function = path, "<module>"

        def visit_FunctionDef(self, node: ast.AST) -> None:
            outer, self.function = self.function, node.name  # type: ignore[attr-defined]
            self.generic_visit(node)
            self.function = outer

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Call(self, node: ast.Call) -> None:
            self.generic_visit(node)
            target = ast.unparse(node.func)
            if target not in ("os.environ.get", "os.getenv", "environ.get", "getenv") or not node.args:
                return
            arg = ast.unparse(node.args[0])
            if isinstance(node.args[0], ast.Constant) or "base_url" in (arg + self.function).lower() \
                    or (self.path.name, self.function) == ("_registry.py", "env_api_key"):
                return
            offenders.append(f"{self.path.relative_to(root)}:{node.lineno} {self.function}: {target}({arg})")

    for path in sorted(root.rglob("*.py")):
        Finder(path).visit(ast.parse(path.read_text()))
    assert not offenders, offenders
