"""GeminiModel: the request it builds, the registry, and whole runs against a loopback server."""
from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

import pytest

from agentstream import Agent, CancelToken
from agentstream._profiles import context_limit
from agentstream.exceptions import AuthenticationError, RateLimitError, UnexpectedModelBehavior, UserError
from agentstream.messages import (ModelRequest, messages_from_json, messages_to_json, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                                  ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models import GeminiModel, ModelRequestParameters, ToolDefinition, infer_model
from agentstream.models.gemini import PLACEHOLDER_SIGNATURE, gemini_contents
from agentstream.settings import ModelSettings
from agentstream.tokens import TokenCounter
from tests import server as srv

KEY = srv.FAKE_KEY


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def gemini_event(*parts: Dict[str, Any], finish: Any = None, usage: Any = None, rid: str = "r1") -> bytes:
    candidate: Dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: Dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-3-pro-preview", "responseId": rid}
    if usage:
        body["usageMetadata"] = usage
    return f"data: {json.dumps(body)}\r\n\r\n".encode("utf-8")


def build(messages: List[Any], settings: Any = None, params: Any = None, name: str = "gemini-2.5-flash") -> Any:
    model = GeminiModel(name, api_key=KEY)
    try:
        return model.build_request(messages, ModelSettings.coerce(settings), params or ModelRequestParameters())
    finally:
        model.close()


# --- construction and registry ---------------------------------------------------------------

def test_key_from_env_in_header_never_in_url_or_repr(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    model = GeminiModel("models/gemini-2.5-flash")
    request = model.build_request([ModelRequest([UserPromptPart("hi")])], ModelSettings(), ModelRequestParameters())
    assert request.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
                           ":streamGenerateContent?alt=sse")
    assert request.headers["x-goog-api-key"] == KEY
    assert KEY not in request.url and KEY not in repr(model) and KEY not in repr(request)
    model.close()


def test_gemini_api_key_wins_and_missing_key_names_both_variables(monkeypatch):
    with pytest.raises(UserError, match="GEMINI_API_KEY.*GOOGLE_API_KEY"):
        GeminiModel("gemini-2.5-flash")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-123456")
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    model = GeminiModel("gemini-2.5-flash")
    assert model.build_request([], ModelSettings(), ModelRequestParameters()).headers["x-goog-api-key"] == KEY
    model.close()


@pytest.mark.parametrize("prefix", ["google", "gemini"])
def test_prefixes_and_base_url_env(monkeypatch, prefix):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta/")
    model = infer_model(f"{prefix}:gemini-3-pro-preview")
    assert isinstance(model, GeminiModel) and model.model_name == "gemini-3-pro-preview"
    assert model.build_request([], ModelSettings(), ModelRequestParameters()).url == \
        "http://127.0.0.1:9/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    model.close()


def test_custom_base_url_needs_no_key():
    model = GeminiModel("gemini-2.5-flash", base_url="http://127.0.0.1:9")
    assert "x-goog-api-key" not in model.build_request([], ModelSettings(), ModelRequestParameters()).headers
    model.close()


@pytest.mark.parametrize("name,window", [("gemini-2.5-pro", 1_048_576), ("gemini-2.5-flash", 1_048_576),
                                         ("gemini-2.5-flash-lite", 1_048_576), ("gemini-3-pro-preview", 1_048_576),
                                         ("gemini-1.5-pro", 2_097_152)])
def test_context_windows_and_approximate_token_count(name, window):
    model = GeminiModel(name, api_key=KEY)
    assert context_limit(model) == window
    counter = TokenCounter(model)
    assert counter.method == "approx" and counter.count([ModelRequest([UserPromptPart("hello there")])]) > 0
    model.close()


# --- the request body ----------------------------------------------------------------------------

def test_history_round_trips_signatures_and_maps_results_by_name_and_order():
    history = [
        ModelRequest([SystemPromptPart("Be brief."), UserPromptPart("Weather in Paris and Rome?")]),
        ModelResponse([ThinkingPart("plan", signature="sigT"), ThinkingPart("unsigned summary"),
                       TextPart("Checking.", signature="sigX"),
                       ToolCallPart("weather", {"city": "Paris"}, "gemini_r1_0_weather", signature="sig0"),
                       ToolCallPart("weather", {"city": "Rome"}, "gemini_r1_1_weather"),
                       ToolCallPart("clock", {}, "srv-7"), TextPart("", signature="sigEnd")]),
        ModelRequest([ToolReturnPart("clock", "12:00", "srv-7"),        # out of order on purpose
                      ToolReturnPart("weather", {"t": 21}, "gemini_r1_1_weather"),
                      ToolReturnPart("weather", "boom", "gemini_r1_0_weather", is_error=True)]),
        ModelRequest([RetryPromptPart("bad args", tool_name=None, tool_call_id="srv-7"),
                      RetryPromptPart("try again")]),
    ]
    converted = gemini_contents(history)
    assert converted["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    user, model, results = converted["contents"]
    assert user == {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]}
    assert model["role"] == "model" and model["parts"] == [
        {"text": "plan", "thought": True, "thoughtSignature": "sigT"},
        {"text": "Checking.", "thoughtSignature": "sigX"},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig0"},
        {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
        {"functionCall": {"name": "clock", "args": {}, "id": "srv-7"}},
        {"text": "", "thoughtSignature": "sigEnd"}]
    assert results["role"] == "user"   # the two requests merged into one turn
    assert results["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"error": "boom"}}},
        {"functionResponse": {"name": "weather", "response": {"output": {"t": 21}}}},
        {"functionResponse": {"name": "clock", "response": {"output": "12:00"}, "id": "srv-7"}},
        {"functionResponse": {"name": "clock", "response": {"error": "bad args\n\nFix the errors and try again."},
                              "id": "srv-7"}},
        {"text": "try again\n\nFix the errors and try again."}]


def test_gemini3_call_without_signature_gets_the_placeholder():
    history = [ModelRequest([UserPromptPart("hi")]),
               ModelResponse([ToolCallPart("f", {}, "call_abc"), ToolCallPart("g", {}, "call_def")]),
               ModelRequest([ToolReturnPart("f", "1", "call_abc"), ToolReturnPart("g", "2", "call_def")])]
    gemini3 = gemini_contents(history, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in gemini3] == [PLACEHOLDER_SIGNATURE, None]
    older = gemini_contents(history, "gemini-2.5-flash")["contents"][1]["parts"]
    assert all("thoughtSignature" not in p for p in older)


def test_tools_tool_choice_and_generation_config():
    tool = ToolDefinition("lookup", "Look it up.", {"type": "object", "title": "Args", "additionalProperties": False,
                                                    "properties": {"q": {"type": "string", "title": "Q"}},
                                                    "required": ["q"]})
    out = ToolDefinition("final_result", "", {"type": "object", "properties": {}}, is_output=True)
    settings = {"max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": ["END"], "seed": 7,
                "thinking_budget": 512, "extra_body": {"generationConfig": {"responseModalities": ["TEXT"]},
                                                      "safetySettings": []}}
    body = build([ModelRequest([UserPromptPart("q")])], settings,
                 ModelRequestParameters(tools=[tool], output_tool=out, allow_text_output=False)).json
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "lookup", "description": "Look it up.",
         "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}, "required": ["q"]}},
        {"name": "final_result", "description": "", "parameters": {"type": "OBJECT", "properties": {}}}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {
        "maxOutputTokens": 100, "temperature": 0.2, "topP": 0.9, "seed": 7, "stopSequences": ["END"],
        "thinkingConfig": {"thinkingBudget": 512, "includeThoughts": True}, "responseModalities": ["TEXT"]}
    assert body["safetySettings"] == [] and "systemInstruction" not in body


@pytest.mark.parametrize("choice,sent", [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ("lookup", {"mode": "ANY", "allowedFunctionNames": ["lookup"]})])
def test_tool_choice_mapping(choice, sent):
    tool = ToolDefinition("lookup", "", {"type": "object", "properties": {}})
    body = build([], {"tool_choice": choice}, ModelRequestParameters(tools=[tool])).json
    assert body["toolConfig"] == {"functionCallingConfig": sent}


def test_thinking_budget_zero_turns_thoughts_off():
    assert build([], {"thinking_budget": 0}).json["generationConfig"] == \
        {"thinkingConfig": {"thinkingBudget": 0, "includeThoughts": False}}


# --- loopback runs ---------------------------------------------------------------------------------

def test_full_tool_loop_sends_signatures_and_results_back(monkeypatch, no_thread_leak):
    with srv.Server() as server:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GEMINI_BASE_URL", server.url)
        first = gemini_event({"text": "Let me check.", "thought": True, "thoughtSignature": "sigT"}) + gemini_event(
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sigC"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}, finish="STOP",
            usage={"promptTokenCount": 20, "candidatesTokenCount": 10, "thoughtsTokenCount": 5})
        second = gemini_event({"text": "Sunny in "}, rid="r2") + gemini_event(
            {"text": "both."}, finish="STOP", rid="r2", usage={"promptTokenCount": 50, "candidatesTokenCount": 3})
        server.enqueue(srv.Reply(chunks=[first[:17], first[17:]]), srv.Reply(chunks=[second]))
        agent = Agent("google:gemini-3-pro-preview", system_prompt="Be brief.")
        seen: List[str] = []

        @agent.tool_plain
        def get_weather(city: str) -> str:
            seen.append(city)
            return f"sunny in {city}"

        thinking: List[str] = []
        result = agent.run("Weather in Paris and Rome?", on_thinking=thinking.append)
        agent.model.close()
    assert result.output == "Sunny in both." and seen == ["Paris", "Rome"] and thinking == ["Let me check."]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (70, 18)
    assert len(server.requests) == 2 and not server.errors
    for request in server.requests:
        assert request.path == "/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
        assert request.headers["x-goog-api-key"] == KEY and KEY not in request.path
    sent = server.requests[1].json
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][1]["parts"] == [
        {"text": "Let me check.", "thought": True, "thoughtSignature": "sigT"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sigC"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]
    assert sent["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny in Paris"}}},
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny in Rome"}}}]
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


def test_429_retry_delay_in_the_body_is_honoured(no_thread_leak):
    body = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                      "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.3s"}]}}
    with srv.Server() as server:
        server.enqueue(srv.Reply.json(429, body),
                       srv.Reply(chunks=[gemini_event({"text": "ok"}, finish="STOP")]))
        model = GeminiModel("gemini-2.5-flash", base_url=server.url, api_key=KEY)
        retries: List[Any] = []
        items, error = srv.collect(model, retries=retries)
        model.close()
    assert error is None and [i.text for i in items if hasattr(i, "text") and i.text] == ["ok"]
    assert len(retries) == 1
    attempt, delay, exc = retries[0]
    assert delay == pytest.approx(0.3) and isinstance(exc, RateLimitError) and exc.retry_after == pytest.approx(0.3)
    assert "RESOURCE_EXHAUSTED" in str(exc) and KEY not in str(exc)
    assert server.requests[1].time - server.requests[0].time >= 0.29


def test_429_without_retries_is_a_rate_limit_error_with_the_delay(no_thread_leak):
    body = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]}}
    with srv.Server() as server:
        server.enqueue(srv.Reply.json(429, body))
        model = GeminiModel("gemini-2.5-flash", base_url=server.url, api_key=KEY, max_retries=0)
        items, error = srv.collect(model)
        model.close()
    assert isinstance(error, RateLimitError) and error.retry_after == 34.0 and error.status == 429


def test_cancel_mid_stream_gives_cancelled_with_usage(no_thread_leak):
    with srv.Server() as server:
        server.enqueue(srv.Reply(chunks=[gemini_event({"text": "Hel"}, usage={"promptTokenCount": 11}),
                                         gemini_event({"text": "lo"}, usage={"promptTokenCount": 11,
                                                                             "candidatesTokenCount": 2})],
                                 stall_after=2))
        model = GeminiModel("gemini-2.5-flash", base_url=server.url, api_key=KEY)
        token = CancelToken()
        got_lo = threading.Event()
        stream = Agent(model).run_stream("hi", cancel_token=token,
                                         on_text=lambda t: got_lo.set() if t == "lo" else None)
        events = []
        canceller = threading.Thread(target=lambda: got_lo.wait(5) and token.cancel(), name="test-canceller")
        canceller.start()
        try:
            for event in stream:
                events.append(event)
        except Exception:  # noqa: BLE001 - RunCancelled, checked below
            pass
        canceller.join(5)
        assert server.disconnected.wait(5), "the stalled socket was not closed"
        model.close()
    cancelled = events[-1]
    assert cancelled.kind == "cancelled" and cancelled.partial_text == "Hello"
    assert cancelled.usage.input_tokens == 11 and cancelled.usage.requests == 1


@pytest.mark.parametrize("env", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
def test_cli_demo_detects_a_gemini_key(monkeypatch, env):
    from agentstream._cli_models import detect_model
    from agentstream.models._registry import KNOWN_PREFIXES
    from agentstream.models.test import TestModel

    for info in KNOWN_PREFIXES.values():
        if info.key_env:
            monkeypatch.delenv(info.key_env, raising=False)
    monkeypatch.delenv("AGENTSTREAM_MODEL", raising=False)
    monkeypatch.setenv(env, KEY)
    spec, why = detect_model(TestModel)
    assert spec == "google:gemini-2.5-flash" and env in why and KEY not in why


def test_signatures_survive_a_json_round_trip_of_the_history():
    history = [ModelResponse([TextPart("", signature="s1"), ToolCallPart("f", {"a": 1}, "gemini_r_0_f", signature="s2"),
                              ThinkingPart("t", signature="s3")])]
    again = messages_from_json(messages_to_json(history))
    assert again == history
    assert gemini_contents(again)["contents"][0]["parts"] == [
        {"text": "", "thoughtSignature": "s1"},
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s2"},
        {"text": "t", "thought": True, "thoughtSignature": "s3"}]


def test_malformed_function_call_is_a_clear_error_and_not_retried(no_thread_leak):
    event = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
                             "finishMessage": "Malformed function call: call:f{x:}"}],
             "usageMetadata": {"promptTokenCount": 9}, "responseId": "r1"}
    with srv.Server() as server:
        server.enqueue(srv.Reply(chunks=[f"data: {json.dumps(event)}\r\n\r\n".encode()]))
        model = GeminiModel("gemini-2.5-flash", base_url=server.url, api_key=KEY)
        with pytest.raises(UnexpectedModelBehavior, match="malformed function call.*call:f"):
            Agent(model).run("hi")
        model.close()
    assert len(server.requests) == 1


def test_invalid_key_400_is_an_authentication_error_without_the_key(no_thread_leak):
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                      "status": "INVALID_ARGUMENT",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    with srv.Server() as server:
        server.enqueue(srv.Reply.json(400, body))
        model = GeminiModel("gemini-2.5-flash", base_url=server.url, api_key=KEY)
        items, error = srv.collect(model)
        model.close()
    assert isinstance(error, AuthenticationError) and error.status == 400 and "API key not valid" in str(error)
    assert KEY not in str(error) and len(server.requests) == 1


def test_models_listing_shows_both_prefixes(monkeypatch):
    from agentstream._cli_models import provider_rows

    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    rows = {r["prefix"]: r for r in provider_rows()}
    for prefix in ("google:", "gemini:"):
        row = rows[prefix]
        assert (row["key_env"], row["key_set"], row["base_url"]) == \
            ("GEMINI_API_KEY", True, "https://generativelanguage.googleapis.com")
        assert KEY not in json.dumps(row)
