"""Chat Completions reasoning sent back: DeepSeek's ``reasoning_content`` on tool-call turns and
OpenRouter's ``reasoning_details``, checked on the requests a loopback server receives.

``thinking_budget`` -> ``reasoning_effort`` / ``reasoning`` is in test_openai_chat_thinking.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import pytest

from agentstream import Agent
from agentstream.messages import ModelRequest, ModelResponse, TextPart, ThinkingPart, ToolCallPart, UserPromptPart
from agentstream.models._base import ModelRequestParameters
from agentstream.models.openai_chat import OpenAIChatModel, openai_messages
from agentstream.settings import ModelSettings
from tests import server as srv

WIRE = Path(__file__).resolve().parents[3] / "shared" / "wire" / "pydantic-ai"
RECORDED = WIRE / "other" / "openrouter_claude_reasoning_details.sse"


def chunk(delta: Any, finish: Any = None, **extra: Any) -> dict:
    body = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    body.update(extra)
    return body


def call(call_id: str, city: str) -> dict:
    return {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}]}


def reply(*chunks: Any) -> srv.Reply:
    return srv.Reply.sse(*chunks, "[DONE]")


def weather_agent(model: OpenAIChatModel) -> Agent:
    agent = Agent(model)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    return agent


def assistant_messages(request: Any) -> List[dict]:
    messages = request["messages"] if isinstance(request, dict) else request.json["messages"]
    return [m for m in messages if m["role"] == "assistant"]


# --- DeepSeek: reasoning_content on every tool-call turn --------------------------------------

def test_deepseek_sends_reasoning_content_back_on_tool_call_turns(no_thread_leak):
    with srv.Server() as server:
        server.enqueue(
            reply(chunk({"role": "assistant", "reasoning_content": "Paris "}), chunk({"reasoning_content": "first."}),
                  chunk(call("call_1", "Paris")), chunk({}, "tool_calls")),
            reply(chunk(call("call_2", "Rome")), chunk({}, "tool_calls")),     # no thinking this time
            reply(chunk({"content": "Both sunny."}), chunk({}, "stop")))
        model = OpenAIChatModel("deepseek-v4-flash", base_url=server.url, api_key=srv.FAKE_KEY, provider="deepseek")
        result = weather_agent(model).run("Paris, then Rome?")
        model.close()
    assert result.output == "Both sunny."
    first, second, third = server.requests
    assert not assistant_messages(first)
    assert [m["reasoning_content"] for m in assistant_messages(second)] == ["Paris first."]
    assert assistant_messages(second)[0]["tool_calls"][0]["id"] == "call_1"
    # every later request carries it, "" for the turn that did not think
    assert [m["reasoning_content"] for m in assistant_messages(third)] == ["Paris first.", ""]
    assert all("reasoning_details" not in m for m in assistant_messages(third))


def _thought_call(provider_name: Any) -> ModelResponse:
    return ModelResponse([ThinkingPart("mine"), ToolCallPart("get_weather", {"city": "Paris"}, "call_1")],
                         provider_name=provider_name)


def _sent(model: OpenAIChatModel, *responses: ModelResponse) -> List[dict]:
    history: List[Any] = [ModelRequest([UserPromptPart("hi")])]
    for response in responses:
        history += [response, ModelRequest([UserPromptPart("next")])]
    return assistant_messages(model.build_request(history, ModelSettings(), ModelRequestParameters()).json)


def test_reasoning_content_only_for_own_tool_call_turns_and_where_set():
    deepseek = OpenAIChatModel("deepseek-chat", api_key="k", provider="deepseek")
    text_turn = ModelResponse([ThinkingPart("t"), TextPart("plain answer")], provider_name="deepseek")
    sent = _sent(deepseek, _thought_call("deepseek"), _thought_call("anthropic"), text_turn, _thought_call(None))
    # another model's thinking stays out, but the field is there ("" ) or DeepSeek answers 400;
    # a response of unknown origin (provider_name None) counts as its own
    assert [m.get("reasoning_content") for m in sent] == ["mine", "", None, "mine"]
    vllm = OpenAIChatModel("deepseek-r1", provider="vllm")
    assert "reasoning_content" not in _sent(vllm, _thought_call("vllm"))[0]             # off by default there
    vllm_on = OpenAIChatModel("deepseek-r1", provider="vllm", send_reasoning=True)
    assert vllm_on.send_reasoning and _sent(vllm_on, _thought_call("vllm"))[0]["reasoning_content"] == "mine"
    off = OpenAIChatModel("deepseek-chat", api_key="k", provider="deepseek", send_reasoning=False)
    assert "reasoning_content" not in _sent(off, _thought_call("deepseek"))[0]
    assert "reasoning_content" not in openai_messages([_thought_call(None)])[0]   # the export keeps no thinking


# --- OpenRouter: reasoning_details back as they came ------------------------------------------

def _detail_parts(response: ModelResponse) -> List[ThinkingPart]:
    return [p for p in response.parts if isinstance(p, ThinkingPart) and p.provider_details]


def test_recorded_openrouter_reasoning_details_kept_and_sent_back(no_thread_leak):
    if not RECORDED.is_file():
        pytest.skip(f"recorded transcript not found at {RECORDED}")
    raw = RECORDED.read_bytes()
    signature = next(d["signature"] for line in raw.decode().splitlines() if line.startswith("data: {")
                     for c in json.loads(line[6:])["choices"] for d in c["delta"].get("reasoning_details") or []
                     if d.get("signature"))
    with srv.Server() as server:
        server.enqueue(srv.Reply(chunks=[raw[i:i + 7] for i in range(0, len(raw), 7)]),
                       reply(chunk({"content": "Yes."}), chunk({}, "stop")))
        model = OpenAIChatModel("anthropic/claude-sonnet-4.5", base_url=server.url, api_key=srv.FAKE_KEY,
                                provider="openrouter")
        agent = Agent(model)
        first = agent.run("What is 2+2?")
        agent.run("Sure?", message_history=first.messages)
        model.close()
    response = first.messages[1]
    (part,) = _detail_parts(response)
    assert part.content == "This is a simple arithmetic question. 2+2 equals 4." and part.signature == signature
    assert part.provider_details == {"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0}
    assert response.provider_name == "openrouter"
    (sent,) = assistant_messages(server.requests[1])
    assert sent == {"role": "assistant", "content": response.text, "reasoning_details": [
        {"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0, "text": part.content,
         "signature": signature}]}


def test_openrouter_tool_run_sends_every_detail_entry_back(no_thread_leak):
    details = [
        [{"type": "reasoning.summary", "summary": "Look ", "format": "openai-responses-v1", "index": 0, "id": "rs_1"}],
        [{"type": "reasoning.summary", "summary": "it up.", "format": "openai-responses-v1", "index": 0}],
        [{"type": "reasoning.encrypted", "data": "ENC==", "format": "openai-responses-v1", "index": 1, "id": "rs_1"}],
    ]
    with srv.Server() as server:
        server.enqueue(
            reply(*[chunk({"reasoning": d[0].get("summary"), "reasoning_details": d}) for d in details],
                  chunk(call("call_1", "Paris")), chunk({}, "tool_calls")),
            reply(chunk({"content": "Sunny."}), chunk({}, "stop")))
        model = OpenAIChatModel("openai/gpt-5", base_url=server.url, api_key=srv.FAKE_KEY, provider="openrouter")
        result = weather_agent(model).run("Paris?", model_settings={"thinking_budget": 2048})
        model.close()
    assert result.output == "Sunny."
    assert server.requests[0].json["reasoning"] == {"max_tokens": 2048}
    (sent,) = assistant_messages(server.requests[1])
    assert sent["tool_calls"][0]["id"] == "call_1" and "reasoning_content" not in sent
    assert sent["reasoning_details"] == [
        {"type": "reasoning.summary", "format": "openai-responses-v1", "index": 0, "summary": "Look it up.",
         "id": "rs_1"},
        {"type": "reasoning.encrypted", "format": "openai-responses-v1", "index": 1, "data": "ENC==", "id": "rs_1"}]


def test_reasoning_details_only_to_the_model_that_made_them():
    part = ThinkingPart("t", signature="s", provider_details={"type": "reasoning.text", "index": 0})
    mine = ModelResponse([part, TextPart("a")], provider_name="openrouter")
    theirs = ModelResponse([part, TextPart("a")], provider_name="anthropic")
    model = OpenAIChatModel("x/y", api_key="k", provider="openrouter")
    assert [("reasoning_details" in m) for m in _sent(model, mine, theirs)] == [True, False]
    quiet = OpenAIChatModel("x/y", api_key="k", provider="openrouter", send_reasoning=False)
    assert "reasoning_details" not in _sent(quiet, mine)[0]
