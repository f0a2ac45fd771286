"""OpenAIResponsesModel: construction, the request body, and the history sent back."""
from __future__ import annotations

import pytest

from agentstream._profiles import context_limit, profile_for
from agentstream.exceptions import UserError
from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                                  ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models import OpenAIResponsesModel, infer_model
from agentstream.models._base import ModelRequestParameters, ToolDefinition
from agentstream.models._registry import PROVIDERS
from agentstream.models.openai_responses import reasoning_effort, responses_input
from agentstream.settings import ModelSettings
from agentstream.tokens import TokenCounter

KEY = "sk-test-responses-SECRET-4242"
WEATHER = ToolDefinition("get_weather", "Weather.", {"type": "object", "properties": {"city": {"type": "string"}}})
OUTPUT = ToolDefinition("final_result", "Answer.", {"type": "object", "properties": {}}, is_output=True)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def model(**kwargs):
    kwargs.setdefault("api_key", KEY)
    return OpenAIResponsesModel("gpt-5-mini", **kwargs)


def body(messages, settings=None, params=None, **kwargs):
    request = model(**kwargs).build_request(messages, ModelSettings.coerce(settings),
                                            params or ModelRequestParameters())
    return request


# --- construction ---------------------------------------------------------------------------

def test_openai_needs_a_key_local_servers_do_not():
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        OpenAIResponsesModel("gpt-5-mini")
    local = OpenAIResponsesModel("openai/gpt-oss-20b", base_url="http://127.0.0.1:1234/v1")
    request = local.build_request([ModelRequest([UserPromptPart("hi")])], ModelSettings(), ModelRequestParameters())
    assert request.url == "http://127.0.0.1:1234/v1/responses" and "Authorization" not in request.headers


def test_key_from_env_only_in_header_not_repr(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    m = OpenAIResponsesModel("gpt-5-mini")
    request = m.build_request([], ModelSettings(), ModelRequestParameters())
    assert request.url == "http://127.0.0.1:9/v1/responses"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(m) and KEY not in repr(request)


def test_registry_prefix(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    m = infer_model("openai-responses:gpt-5-mini")
    assert isinstance(m, OpenAIResponsesModel) and m.model_name == "gpt-5-mini"
    assert m.base_url == "https://api.openai.com/v1"
    spec = PROVIDERS["openai-responses"]
    assert (spec.api, spec.key_env, spec.base_url_env) == ("openai-responses", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.mark.parametrize("name,window", [("gpt-5-mini", 400_000), ("gpt-5", 400_000), ("gpt-4.1", 1_047_576),
                                         ("o3", 200_000), ("o4-mini", 200_000)])
def test_profiles_and_o200k_counting(name, window):
    m = OpenAIResponsesModel(name, api_key=KEY)
    assert context_limit(m) == window
    counter = TokenCounter(m)
    assert (counter.family, counter._encoding_name) == ("openai", "o200k_base")


def test_profile_of_prefixed_name():
    assert profile_for("openai-responses:gpt-5-mini") == profile_for("gpt-5-mini")


# --- the request --------------------------------------------------------------------------------

def test_request_body_shape():
    messages = [ModelRequest([SystemPromptPart("Be terse."), UserPromptPart("Weather in Paris?")])]
    settings = {"max_tokens": 500, "temperature": 0.2, "top_p": 0.9, "parallel_tool_calls": False,
                "extra_body": {"service_tier": "flex"}}
    request = body(messages, settings, ModelRequestParameters(tools=[WEATHER]))
    sent = request.json
    assert request.url == "https://api.openai.com/v1/responses"
    assert sent == {
        "model": "gpt-5-mini", "stream": True, "store": False, "include": ["reasoning.encrypted_content"],
        "instructions": "Be terse.", "input": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather.",
                   "parameters": WEATHER.parameters_json_schema, "strict": False}],
        "parallel_tool_calls": False, "max_output_tokens": 500, "temperature": 0.2, "top_p": 0.9,
        "service_tier": "flex"}


@pytest.mark.parametrize("budget,effort", [(512, "low"), (4096, "medium"), (32000, "high")])
def test_thinking_budget_is_reasoning_effort(budget, effort):
    sent = body([], {"thinking_budget": budget}).json
    assert sent["reasoning"] == {"effort": effort, "summary": "auto"} and reasoning_effort(budget) == effort
    assert "reasoning" not in body([]).json


@pytest.mark.parametrize("choice,sent", [("auto", "auto"), ("any", "required"), ("none", "none"),
                                         ("get_weather", {"type": "function", "name": "get_weather"})])
def test_tool_choice(choice, sent):
    params = ModelRequestParameters(tools=[WEATHER])
    assert body([], {"tool_choice": choice}, params).json["tool_choice"] == sent


def test_output_tool_only_forces_a_tool_call():
    params = ModelRequestParameters(output_tool=OUTPUT, allow_text_output=False)
    sent = body([], None, params).json
    assert sent["tool_choice"] == "required" and [t["name"] for t in sent["tools"]] == ["final_result"]


# --- the history sent back ------------------------------------------------------------------------

def _tool_turn(**thinking):
    return [
        ModelRequest([UserPromptPart("Weather?")]),
        ModelResponse([ThinkingPart("**Plan**", provider_id="rs_1", **thinking),
                       ThinkingPart("**More**", provider_id="rs_1"),
                       TextPart("Checking.", provider_id="msg_1"),
                       ToolCallPart("get_weather", {"city": "Paris"}, "call_1", provider_id="fc_1")]),
        ModelRequest([ToolReturnPart("get_weather", "sunny", "call_1")]),
    ]


def test_reasoning_item_goes_back_with_encrypted_content_and_paired_ids():
    sent = responses_input(_tool_turn(signature="ENC"))
    assert sent["instructions"] is None
    assert sent["input"] == [
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "ENC",
         "summary": [{"type": "summary_text", "text": "**Plan**"}, {"type": "summary_text", "text": "**More**"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}',
         "id": "fc_1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]


def test_unsigned_reasoning_is_left_out_with_its_ids_unless_asked():
    """Reasoning without encrypted_content (cut short, or an open server's raw text) cannot be
    referenced with store: false, and fc_/msg_ ids without their reasoning are refused."""
    sent = responses_input(_tool_turn())["input"]
    assert [i.get("type", "message:" + i.get("role", "")) for i in sent] == \
        ["message:user", "message:assistant", "function_call", "function_call_output"]
    assert sent[1] == {"role": "assistant", "content": "Checking."} and "id" not in sent[2]
    raw = responses_input(_tool_turn(), send_reasoning_text=True)["input"][1]
    assert raw == {"type": "reasoning", "id": "rs_1", "summary": [],
                   "content": [{"type": "reasoning_text", "text": "**Plan**"},
                               {"type": "reasoning_text", "text": "**More**"}]}


def test_foreign_thinking_and_reasoning_with_nothing_after_are_left_out():
    history = [ModelResponse([ThinkingPart("anthropic", signature="SIG"), TextPart("a")]),
               ModelResponse([ThinkingPart("", signature="E1", provider_id="rs_a"),      # followed by rs_b:
                              ThinkingPart("", signature="E2", provider_id="rs_b"),      # its item was a
                              TextPart("b", provider_id="msg_b")]),                      # built-in tool
               ModelResponse([TextPart("c"), ThinkingPart("", signature="E3", provider_id="rs_c")])]
    sent = responses_input(history)["input"]
    assert [i.get("id") for i in sent] == [None, "rs_b", "msg_b", None]
    assert sent[0] == {"role": "assistant", "content": "a"} and sent[3] == {"role": "assistant", "content": "c"}


def test_errors_retries_and_system_prompts():
    history = [ModelRequest([SystemPromptPart("One."), UserPromptPart("q")]),
               ModelResponse([ToolCallPart("f", {}, "call_1"), ToolCallPart("g", {}, "call_2")]),
               ModelRequest([ToolReturnPart("f", "boom", "call_1", is_error=True),
                             RetryPromptPart("bad args", tool_name="g", tool_call_id="call_2"),
                             RetryPromptPart("answer in JSON"), SystemPromptPart("Two.")])]
    sent = responses_input(history)
    assert sent["instructions"] == "One.\n\nTwo."
    items = sent["input"]
    assert items[1] == {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    assert items[3] == {"type": "function_call_output", "call_id": "call_1", "output": "Error: boom"}
    assert items[4]["call_id"] == "call_2" and items[4]["output"].startswith("bad args")
    assert items[5]["role"] == "user" and items[5]["content"].startswith("answer in JSON")
