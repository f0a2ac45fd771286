"""GeminiTranslator on hand-written streams (CRLF framing, as Gemini sends)."""
from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from agentstream.events import TextDelta, ThinkingDelta, ToolCallDelta, ToolCallStart
from agentstream.exceptions import ModelStreamError, UnexpectedModelBehavior
from agentstream.messages import TextPart, ThinkingPart, ToolCallPart
from agentstream.models._gemini_stream import (GeminiTranslator, is_local_call_id, local_call_id,
                                               map_finish_reason)

from ._sse_helpers import Replay


def gemini_sse(*events: Dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events)


def ev(*parts: Dict[str, Any], finish: Any = None, usage: Any = None, rid: str = "resp1",
       model: str = "gemini-2.5-flash") -> Dict[str, Any]:
    candidate: Dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: Dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": rid}
    if usage:
        out["usageMetadata"] = usage
    return out


def replay(*events: Dict[str, Any], chunk_size: int = 0) -> Replay:
    return Replay(gemini_sse(*events), GeminiTranslator(), chunk_size)


@pytest.mark.parametrize("size", [0, 1, 5])
def test_text_deltas_info_usage_and_crlf(size):
    r = replay(ev({"text": "Hel"}, usage={"promptTokenCount": 4, "totalTokenCount": 4}),
               ev({"text": "lo"}, finish="STOP",
                  usage={"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 7,
                         "cachedContentTokenCount": 3, "totalTokenCount": 13}), chunk_size=size)
    response = r.response
    assert [e.text for e in r.events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert response.parts == [TextPart("Hello")]
    assert response.finish_reason == "stop"
    assert (response.model_name, response.provider_response_id) == ("gemini-2.5-flash", "resp1")
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (4, 9, 3)   # thoughts count as output
    assert u.details == {"reasoning_tokens": 7}


def test_thought_parts_are_thinking_with_their_signature():
    r = replay(ev({"text": "plan ", "thought": True}),
               ev({"text": "more", "thought": True, "thoughtSignature": "sigT"}),
               ev({"text": "Answer", "thoughtSignature": "sigA"}),
               ev({"text": " done"}, finish="STOP"))
    assert "".join(e.text for e in r.events if isinstance(e, ThinkingDelta)) == "plan more"
    assert r.response.parts == [ThinkingPart("plan more", signature="sigT"),
                                TextPart("Answer done", signature="sigA")]


def test_second_signature_starts_a_new_part_and_empty_signed_text_is_kept():
    r = replay(ev({"text": "a", "thoughtSignature": "s1"}), ev({"text": "b", "thoughtSignature": "s2"}),
               ev({"functionCall": {"name": "f", "args": {}}}),
               ev({"text": "", "thoughtSignature": "s3"}, finish="STOP"))
    parts = r.response.parts
    assert [type(p).__name__ for p in parts] == ["TextPart", "TextPart", "ToolCallPart", "TextPart"]
    assert [(p.content, p.signature) for p in parts if isinstance(p, TextPart)] == \
        [("a", "s1"), ("b", "s2"), ("", "s3")]
    assert [e.text for e in r.events if isinstance(e, TextDelta)] == ["a", "b"]   # no empty delta


def test_function_calls_get_local_ids_and_keep_their_signature():
    r = replay(ev({"text": "Let me look."}),
               ev({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig1"},
                  {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                  {"functionCall": {"name": "get_time", "id": "srv-9"}}, finish="STOP"))
    response = r.response
    calls = response.tool_calls
    assert [(c.tool_name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}),
                                                      ("get_weather", {"city": "Rome"}), ("get_time", {})]
    assert [c.tool_call_id for c in calls] == [local_call_id("resp1", 0, "get_weather"),
                                               local_call_id("resp1", 1, "get_weather"), "srv-9"]
    assert [c.signature for c in calls] == ["sig1", None, None]
    assert [is_local_call_id(c.tool_call_id) for c in calls] == [True, True, False]
    assert response.finish_reason == "tool_calls"   # Gemini says STOP
    starts = [e for e in r.events if isinstance(e, ToolCallStart)]
    assert [s.tool_call_id for s in starts] == [c.tool_call_id for c in calls]
    deltas = [json.loads(e.delta) for e in r.events if isinstance(e, ToolCallDelta)]
    assert deltas == [{"city": "Paris"}, {"city": "Rome"}, {}]


def test_local_ids_are_deterministic_and_differ_between_responses():
    one = replay(ev({"functionCall": {"name": "f", "args": {}}}, finish="STOP", rid="AAA"))
    again = replay(ev({"functionCall": {"name": "f", "args": {}}}, finish="STOP", rid="AAA"))
    other = replay(ev({"functionCall": {"name": "f", "args": {}}}, finish="STOP", rid="BBB"))
    assert one.calls() == again.calls()
    assert one.calls()[0][1] != other.calls()[0][1]


def test_gemini3_streamed_partial_args_are_assembled():
    r = replay(ev({"functionCall": {"name": "get_weather", "willContinue": True}, "thoughtSignature": "sig"}),
               ev({"functionCall": {"partialArgs": [{"jsonPath": "$.location", "stringValue": "Bos",
                                                     "willContinue": True}], "willContinue": True}}),
               ev({"functionCall": {"partialArgs": [{"jsonPath": "$.location", "stringValue": "ton"}],
                                    "willContinue": True}}),
               ev({"functionCall": {"partialArgs": [{"jsonPath": "$.days", "numberValue": 3},
                                                    {"jsonPath": "$.opts.metric", "boolValue": True},
                                                    {"jsonPath": "$.tags[1]", "stringValue": "b"},
                                                    {"jsonPath": "$.tags[0]", "stringValue": "a"},
                                                    {"jsonPath": "$['odd key']", "nullValue": None}],
                                    "willContinue": True}}),
               ev({"functionCall": {}}),
               ev({"functionCall": {"name": "no_args", "willContinue": True}}),
               ev({"functionCall": {}}, finish="STOP"))
    calls = r.response.tool_calls
    assert [(c.tool_name, c.args) for c in calls] == [
        ("get_weather", {"location": "Boston", "days": 3, "opts": {"metric": True}, "tags": ["a", "b"],
                         "odd key": None}),
        ("no_args", {})]
    assert calls[0].signature == "sig"
    assert [e.tool_name for e in r.events if isinstance(e, ToolCallStart)] == ["get_weather", "no_args"]


def test_open_streamed_call_is_closed_by_finish_or_end():
    r = replay(ev({"functionCall": {"name": "f", "willContinue": True}}),
               ev({"functionCall": {"partialArgs": [{"jsonPath": "$.x", "stringValue": "1"}], "willContinue": True}},
                  finish="STOP"))
    assert r.calls()[0][2] == {"x": "1"}


@pytest.mark.parametrize("raw,mapped", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("BLOCKLIST", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "OTHER"), ("FINISH_REASON_UNSPECIFIED", None), ("", None), (None, None)])
def test_finish_reason_mapping(raw, mapped):
    assert map_finish_reason(raw) == mapped


def test_max_tokens_keeps_partial_text():
    r = replay(ev({"text": "partial"}, finish="MAX_TOKENS"))
    assert (r.response.text, r.response.finish_reason) == ("partial", "length")


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"])
def test_broken_function_call_is_a_clear_error(reason):
    translator = GeminiTranslator()
    event = ev(finish=reason)
    event["candidates"][0]["finishMessage"] = "Malformed function call: print(default_api.f(x=))"
    from agentstream._sse import ServerSentEvent

    with pytest.raises(UnexpectedModelBehavior, match=reason) as info:
        translator.translate(ServerSentEvent(data=json.dumps(event)))
    assert "default_api.f" in str(info.value)


def test_blocked_prompt_finishes_with_content_filter():
    r = replay({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}})
    assert r.response.finish_reason == "content_filter" and r.response.parts == []
    assert r.response.usage.input_tokens == 5


def test_cut_off_stream_is_an_error_and_keeps_partial():
    r = replay(ev({"text": "Hel"}))
    assert isinstance(r.error, ModelStreamError) and "cut off" in str(r.error)
    assert r.partial.text == "Hel"


def test_error_object_in_the_stream():
    r = replay({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    assert isinstance(r.error, ModelStreamError)
    assert (r.error.error_type, r.error.status) == ("UNAVAILABLE", 503)
    assert "overloaded" in str(r.error)


def test_other_parts_and_candidates_are_passed_over():
    event = ev({"executableCode": {"language": "PYTHON", "code": "1+1"}}, {"text": "two"}, finish="STOP")
    event["candidates"].append({"content": {"parts": [{"text": "other candidate"}]}, "index": 1})
    r = replay(event)
    assert r.response.parts == [TextPart("two")]


def test_usage_last_report_wins_even_when_smaller():
    r = replay(ev({"text": "a"}, usage={"promptTokenCount": 169}),
               ev({"text": "b"}, finish="STOP", usage={"promptTokenCount": 79, "candidatesTokenCount": 12,
                                                       "toolUsePromptTokenCount": 2}))
    u = r.response.usage
    assert (u.input_tokens, u.output_tokens, u.details) == (81, 12, {"tool_use_prompt_tokens": 2})


def test_items_of_one_event_come_in_part_order():
    r = replay(ev({"text": "x", "thought": True}, {"text": "y"}, {"functionCall": {"name": "f", "args": {"a": 1}}},
                  {"text": "z"}, finish="STOP"))
    kinds: List[str] = [type(p).__name__ for p in r.response.parts]
    assert kinds == ["ThinkingPart", "TextPart", "ToolCallPart", "TextPart"]
    assert isinstance(r.response.parts[2], ToolCallPart)
