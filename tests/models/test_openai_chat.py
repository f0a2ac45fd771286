"""OpenAIChatModel: construction, provider defaults, request building, model strings.

The stream translator is tested in test_openai_stream.py.
"""
from __future__ import annotations

import pytest

from agentstream.exceptions import ModelHTTPError, UserError
from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                                  ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models._base import ModelRequestParameters, ResponseInfo, StreamContext, ToolDefinition
from agentstream.models.openai_chat import OpenAIChatModel
from agentstream.settings import ModelSettings

KEY = "sk-test-SECRET-0123456789"
ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VLLM_API_KEY", "VLLM_BASE_URL", "OLLAMA_BASE_URL", "GROQ_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def model_cls():
    return OpenAIChatModel


HISTORY = [
    ModelRequest([SystemPromptPart("Be terse."), UserPromptPart("Weather in Paris and Rome?")]),
    ModelResponse([ThinkingPart("hidden", signature="sig"), TextPart("Checking."),
                   ToolCallPart("get_weather", {"city": "Paris"}, "call_1"),
                   ToolCallPart("get_weather", {"city": "Rome"}, "call_2")]),
    ModelRequest([ToolReturnPart("get_weather", {"temp": 21}, "call_1"),
                  ToolReturnPart("get_weather", "city unknown", "call_2", is_error=True),
                  RetryPromptPart("answer in French")]),
    ModelResponse([ToolCallPart("final_result", {}, "call_3")]),
    ModelRequest([RetryPromptPart("field x missing", "final_result", "call_3")]),
]
WEATHER = ToolDefinition("get_weather", "Weather for a city.",
                         {"type": "object", "properties": {"city": {"type": "string"}}})
OUTPUT = ToolDefinition("final_result", "The answer.", {"type": "object", "properties": {}}, is_output=True)


# --- construction and providers ---------------------------------------------------

def test_missing_key_names_the_variable():
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        model_cls()("gpt-4o")
    with pytest.raises(UserError, match="GROQ_API_KEY"):
        model_cls()("llama", provider="groq")


def test_key_not_in_repr_or_errors(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = model_cls()("gpt-4o")
    assert KEY not in repr(model) and KEY not in str(model)
    request = model.build_request(HISTORY, ModelSettings(), ModelRequestParameters())
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in str(request.json)
    with pytest.raises(UserError) as info:
        model_cls()("gpt-4o", provider="nope")
    assert KEY not in str(info.value)


def test_base_url_env_and_explicit(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    model = model_cls()("gpt-4o", api_key=KEY)
    assert model.build_request([], ModelSettings(), ModelRequestParameters()).url == \
        "http://127.0.0.1:9/v1/chat/completions"
    model = model_cls()("gpt-4o", base_url="http://h:1/v2", api_key=KEY)
    assert model.build_request([], ModelSettings(), ModelRequestParameters()).url == "http://h:1/v2/chat/completions"


def test_local_provider_needs_no_key_and_sends_no_auth():
    model = model_cls()("llama3.2", provider="ollama")
    request = model.build_request(HISTORY[:1], ModelSettings(max_tokens=5), ModelRequestParameters())
    assert request.url == "http://localhost:11434/v1/chat/completions"
    assert "Authorization" not in request.headers
    assert request.json["max_tokens"] == 5 and "max_completion_tokens" not in request.json


def test_optional_key_from_env(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    monkeypatch.setenv("VLLM_BASE_URL", "http://127.0.0.1:8001/v1")
    request = model_cls()("qwen", provider="vllm").build_request([], ModelSettings(), ModelRequestParameters())
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.url == "http://127.0.0.1:8001/v1/chat/completions"


def test_custom_provider_requires_base_url():
    with pytest.raises(UserError, match="base_url"):
        model_cls()("m", provider="mine")
    model = model_cls()("m", provider="mine", base_url="http://127.0.0.1:1/v1")
    assert "Authorization" not in model.build_request([], ModelSettings(), ModelRequestParameters()).headers


# --- request body -------------------------------------------------------------------

def test_messages_tool_calls_and_results():
    model = model_cls()("gpt-4o", api_key=KEY)
    body = model.build_request(HISTORY, ModelSettings(), ModelRequestParameters()).json
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "Be terse."}
    assert msgs[1] == {"role": "user", "content": "Weather in Paris and Rome?"}
    assistant = msgs[2]
    assert assistant["role"] == "assistant" and assistant["content"] == "Checking."
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        ("call_1", "get_weather", '{"city": "Paris"}'), ("call_2", "get_weather", '{"city": "Rome"}')]
    assert all(c["type"] == "function" for c in assistant["tool_calls"])
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
    assert msgs[4]["tool_call_id"] == "call_2" and msgs[4]["content"].startswith("Error")
    assert "city unknown" in msgs[4]["content"]
    assert msgs[5]["role"] == "user" and msgs[5]["content"].startswith("answer in French")
    assert msgs[6] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_3", "type": "function", "function": {"name": "final_result", "arguments": "{}"}}]}
    assert msgs[7]["role"] == "tool" and msgs[7]["tool_call_id"] == "call_3"
    assert "field x missing" in msgs[7]["content"]
    assert "hidden" not in str(msgs)   # thinking is not sent back over chat completions
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-4o" and "tools" not in body and "tool_choice" not in body


def test_tool_results_precede_user_text_in_one_request():
    model = model_cls()("gpt-4o", api_key=KEY)
    request = ModelRequest([RetryPromptPart("plain retry"), ToolReturnPart("t", "ok", "c1")])
    msgs = model.build_request([request], ModelSettings(), ModelRequestParameters()).json["messages"]
    assert [m["role"] for m in msgs] == ["tool", "user"]


def test_empty_response_is_not_sent():
    model = model_cls()("gpt-4o", api_key=KEY)
    history = [ModelRequest([UserPromptPart("hi")]), ModelResponse([ThinkingPart("...")]),
               ModelRequest([UserPromptPart("again")])]
    msgs = model.build_request(history, ModelSettings(), ModelRequestParameters()).json["messages"]
    assert [m["role"] for m in msgs] == ["user", "user"]


def test_tools_and_settings():
    model = model_cls()("gpt-4o", api_key=KEY)
    settings = ModelSettings(max_tokens=100, temperature=0.2, top_p=0.9, stop=["END"], seed=7,
                             presence_penalty=0.1, frequency_penalty=-0.1, parallel_tool_calls=False,
                             extra_body={"user": "u1", "temperature": 0.3}, extra_headers={"X-Trace": "1"})
    params = ModelRequestParameters(tools=[WEATHER], output_tool=OUTPUT, allow_text_output=False)
    request = model.build_request([], settings, params)
    body = request.json
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "final_result"]
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city.",
        "parameters": WEATHER.parameters_json_schema}}
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert (body["top_p"], body["stop"], body["seed"]) == (0.9, ["END"], 7)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.1, -0.1)
    assert body["temperature"] == 0.3 and body["user"] == "u1"   # extra_body wins
    assert request.headers["X-Trace"] == "1"


@pytest.mark.parametrize("given,sent", [("auto", "auto"), ("none", "none"), ("any", "required"),
                                        ("get_weather", {"type": "function", "function": {"name": "get_weather"}})])
def test_tool_choice_mapping(given, sent):
    model = model_cls()("gpt-4o", api_key=KEY)
    body = model.build_request([], ModelSettings(tool_choice=given), ModelRequestParameters(tools=[WEATHER])).json
    assert body["tool_choice"] == sent


def test_parallel_and_tool_choice_only_with_tools():
    model = model_cls()("gpt-4o", api_key=KEY)
    body = model.build_request([], ModelSettings(tool_choice="auto", parallel_tool_calls=True),
                               ModelRequestParameters()).json
    assert "tool_choice" not in body and "parallel_tool_calls" not in body


def test_stream_usage_flag():
    body = model_cls()("m", provider="ollama", stream_usage=False).build_request(
        [], ModelSettings(), ModelRequestParameters()).json
    assert "stream_options" not in body


def test_gotcha_18_stream_options_rejected_retried_once_without(monkeypatch):
    from agentstream.models import _http_model

    model = model_cls()("m", provider="llamacpp")
    sent = []

    def fake_stream(self, messages, settings, params, ctx):
        body = self.build_request(messages, settings, params).json
        sent.append(body)
        if "stream_options" in body:
            raise ModelHTTPError(400, "Unknown parameter: 'stream_options'")
        yield ResponseInfo("m", "r1")

    monkeypatch.setattr(_http_model.HTTPModel, "stream", fake_stream)
    ctx = StreamContext(cancel=None)
    items = list(model.stream([], ModelSettings(), ModelRequestParameters(), ctx))
    assert items == [ResponseInfo("m", "r1")]
    assert ["stream_options" in b for b in sent] == [True, False]
    assert "stream_options" not in model.build_request([], ModelSettings(), ModelRequestParameters()).json
    assert model.stream_usage is True   # the configuration is not rewritten by a worker thread
    monkeypatch.setattr(_http_model.HTTPModel, "stream", lambda *a: (_ for _ in ()).throw(ModelHTTPError(400, "bad")))
    with pytest.raises(ModelHTTPError):
        list(model.stream([], ModelSettings(), ModelRequestParameters(), ctx))


# --- model strings (models/_registry.py) ------------------------------------------------

def test_registry_table_and_model_strings(monkeypatch):
    from agentstream.models import infer_model
    from agentstream.models._infer import model_from_string
    from agentstream.models._registry import KNOWN_PREFIXES

    model_cls()   # skips when the HTTP base class is missing
    assert set(KNOWN_PREFIXES) == {"openai", "anthropic", "ollama", "vllm", "lmstudio", "llamacpp", "openrouter",
                                   "groq", "deepseek", "xai", "together", "openai-responses", "google", "gemini",
                                   "test"}
    assert KNOWN_PREFIXES["groq"].base_url == "https://api.groq.com/openai/v1"
    assert KNOWN_PREFIXES["groq"].key_env == "GROQ_API_KEY" and KNOWN_PREFIXES["groq"].to_dict()["description"]
    for prefix, info in KNOWN_PREFIXES.items():
        if info.key_env:
            monkeypatch.setenv(info.key_env, KEY)
        if info.base_url_env:
            monkeypatch.delenv(info.base_url_env, raising=False)
    for prefix, info in KNOWN_PREFIXES.items():
        m = infer_model(f"{prefix}:some-model")
        if prefix == "test":
            assert type(m).__name__ == "TestModel"
            continue
        assert m.model_name == "some-model" and KEY not in repr(m)
        request = m.build_request([], ModelSettings(), ModelRequestParameters())
        assert request.url.startswith(info.base_url)
    assert type(infer_model("test")).__name__ == "TestModel"
    assert model_from_string("ollama:llama3.2:3b").model_name == "llama3.2:3b"   # tags keep their colon


def test_unknown_prefix_lists_known_ones():
    from agentstream.models import infer_model

    with pytest.raises(UserError) as info:
        infer_model("nosuchprovider:pro")
    for prefix in ("openai:", "anthropic:", "ollama:", "groq:"):
        assert prefix in str(info.value)
    with pytest.raises(UserError, match="known prefixes"):
        infer_model("gpt-4o")
    with pytest.raises(UserError, match="no model name"):
        infer_model("openai:")
