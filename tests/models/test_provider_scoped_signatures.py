"""Signatures, encrypted reasoning and provider item ids go back only to the kind of model
that produced them: another provider would refuse them (or worse, misread them)."""
from agentstream import Agent
from agentstream.messages import (ModelRequest, ModelResponse, TextPart, ThinkingPart, ToolCallPart,
                                  ToolReturnPart, UserPromptPart, messages_from_json, messages_to_json)
from agentstream.models.anthropic import anthropic_messages
from agentstream.models.gemini import gemini_contents
from agentstream.models.openai_responses import responses_input


def _history(provider):
    return [
        ModelRequest([UserPromptPart("weather?")]),
        ModelResponse([ThinkingPart("hmm", signature="SIG-T", provider_id="rs_1"),
                       TextPart("let me look", signature="SIG-X", provider_id="msg_1"),
                       ToolCallPart("get_weather", {"city": "Paris"}, "call_1", signature="SIG-C",
                                    provider_id="fc_1")],
                      provider_name=provider),
        ModelRequest([ToolReturnPart("get_weather", "sunny", "call_1")]),
    ]


def test_anthropic_sends_back_only_its_own_signatures():
    own = anthropic_messages(_history("anthropic"))["messages"][1]["content"]
    assert own[0] == {"type": "thinking", "thinking": "hmm", "signature": "SIG-T"}
    foreign = anthropic_messages(_history("openai"))["messages"][1]["content"]
    assert [b["type"] for b in foreign] == ["text", "tool_use"]
    assert "SIG" not in repr(foreign)


def test_gemini_sends_back_only_its_own_signatures():
    own = gemini_contents(_history("google"), "gemini-2.5-flash")
    assert "SIG-C" in repr(own) and "SIG-T" in repr(own)
    foreign = gemini_contents(_history("anthropic"), "gemini-2.5-flash")
    assert "SIG" not in repr(foreign)
    # Gemini 3 needs a signature on the call: the documented placeholder, not a foreign one
    assert "skip_thought_signature_validator" in repr(gemini_contents(_history("anthropic"), "gemini-3-pro-preview"))


def test_responses_sends_back_only_its_own_reasoning_items_and_ids():
    own = responses_input(_history("openai"))["input"]
    assert any(i.get("type") == "reasoning" and i.get("encrypted_content") == "SIG-T" for i in own)
    foreign = responses_input(_history("google"))["input"]
    assert not any(i.get("type") == "reasoning" for i in foreign)
    assert "SIG" not in repr(foreign) and "fc_1" not in repr(foreign)
    assert any(i.get("type") == "function_call" and i["call_id"] == "call_1" for i in foreign)


def test_unknown_producer_is_trusted_as_before():
    assert "SIG-T" in repr(anthropic_messages(_history(None)))


def test_runs_stamp_the_producer_and_json_keeps_it():
    result = Agent("test").run("hi")
    responses = [m for m in result.messages if isinstance(m, ModelResponse)]
    assert responses and all(r.provider_name == "test" for r in responses)
    again = messages_from_json(messages_to_json(result.messages))
    assert [m.provider_name for m in again if isinstance(m, ModelResponse)] == ["test"] * len(responses)
