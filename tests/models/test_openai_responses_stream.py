"""The OpenAI Responses stream translator on hand-written events (``_responses_stream.py``).

The event builders here (``created``, ``added``, ``completed``, ``responses_sse``, ...) are also
used by the HTTP tests of the model (``test_openai_responses_http.py``).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from agentstream import _retry
from agentstream._sse import ServerSentEvent
from agentstream.exceptions import ModelStreamError
from agentstream.messages import TextPart, ThinkingPart, ToolCallPart, messages_from_json, messages_to_json
from agentstream.models._base import ThinkingChunk, ToolCallChunk
from agentstream.models._responses_stream import ResponsesTranslator, usage_from_responses

from ._sse_helpers import Replay

USAGE = {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 12}, "output_tokens": 50,
         "output_tokens_details": {"reasoning_tokens": 40}, "total_tokens": 80}


# --- event builders --------------------------------------------------------------------------

def ev(kind: str, **data: Any) -> Dict[str, Any]:
    return dict({"type": kind}, **data)


def created(model: str = "gpt-5-mini-2025-08-07", rid: str = "resp_1") -> Dict[str, Any]:
    return ev("response.created", response={"id": rid, "model": model, "status": "in_progress", "output": []})


def added(index: int, **item: Any) -> Dict[str, Any]:
    return ev("response.output_item.added", output_index=index, item=item)


def item_done(index: int, **item: Any) -> Dict[str, Any]:
    return ev("response.output_item.done", output_index=index, item=item)


def text_delta(index: int, item_id: str, delta: str, content_index: int = 0) -> Dict[str, Any]:
    return ev("response.output_text.delta", output_index=index, item_id=item_id, content_index=content_index,
              delta=delta)


def summary_delta(index: int, item_id: str, delta: str, summary_index: int = 0) -> Dict[str, Any]:
    return ev("response.reasoning_summary_text.delta", output_index=index, item_id=item_id,
              summary_index=summary_index, delta=delta)


def args_delta(index: int, item_id: str, delta: str) -> Dict[str, Any]:
    return ev("response.function_call_arguments.delta", output_index=index, item_id=item_id, delta=delta)


def args_done(index: int, item_id: str, arguments: str, **extra: Any) -> Dict[str, Any]:
    return ev("response.function_call_arguments.done", output_index=index, item_id=item_id, arguments=arguments,
              **extra)


def completed(output: Optional[List[Any]] = None, usage: Optional[Dict[str, Any]] = None,
              kind: str = "response.completed", **response: Any) -> Dict[str, Any]:
    body = dict({"id": "resp_1", "model": "gpt-5-mini-2025-08-07", "status": "completed",
                 "output": output or [], "usage": usage or USAGE}, **response)
    return ev(kind, response=body)


def call_item(item_id: str, call_id: str, name: str, arguments: str = "", **extra: Any) -> Dict[str, Any]:
    return dict({"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
                 "arguments": arguments}, **extra)


def reasoning_item(item_id: str, encrypted: Optional[str] = None, summary: Any = (), **extra: Any) -> Dict[str, Any]:
    item = {"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text", "text": t} for t in summary]}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    item.update(extra)
    return item


def message_item(item_id: str, text: str = "") -> Dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
    return {"type": "message", "id": item_id, "role": "assistant", "status": "completed", "content": content}


def responses_sse(*events: Dict[str, Any], event_lines: bool = True) -> str:
    """``event: <type>`` + ``data: <json>`` per event (OpenAI's framing; OpenRouter drops ``event:``)."""
    return "".join((f"event: {e['type']}\n" if event_lines else "") + f"data: {json.dumps(e)}\n\n" for e in events)


def replay(*events: Dict[str, Any], chunk_size: int = 0, event_lines: bool = True) -> Replay:
    return Replay(responses_sse(*events, event_lines=event_lines), ResponsesTranslator(), chunk_size)


def text_stream(*texts: str, end: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    return ([created(), added(0, **message_item("msg_1"))] + [text_delta(0, "msg_1", t) for t in texts]
            + [item_done(0, **message_item("msg_1", "".join(texts))),
               end or completed([message_item("msg_1", "".join(texts))])])


# --- text, usage, info -------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [0, 1, 9])
def test_text_usage_and_info(chunk_size):
    r = replay(*text_stream("Hel", "lo ", "wörld"), chunk_size=chunk_size)
    response = r.response
    assert response.parts == [TextPart("Hello wörld", provider_id="msg_1")]
    assert response.finish_reason == "stop"
    assert (response.model_name, response.provider_response_id) == ("gpt-5-mini-2025-08-07", "resp_1")
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (30, 50, 12)
    assert usage.details == {"reasoning_tokens": 40}
    assert [e.text for e in r.events] == ["Hel", "lo ", "wörld"]   # the done events add nothing
    assert r.translator.done


def test_usage_details_cache_write_and_zeroes():
    usage = usage_from_responses({"input_tokens": 9, "output_tokens": 2, "input_tokens_details": {
        "cached_tokens": 0, "cache_write_tokens": 4}, "output_tokens_details": {"reasoning_tokens": 0}})
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (9, 2, 0, 4)
    assert usage.details == {}


def test_dispatch_on_data_type_without_event_lines_and_done_marker():
    text = responses_sse(*text_stream("4"), event_lines=False) + "data: [DONE]\n\n"   # OpenRouter
    r = Replay(text, ResponsesTranslator())
    assert r.response.text == "4" and r.translator.done


def test_text_only_in_done_events_is_taken_once():
    r = replay(created(), added(0, **message_item("msg_1")),
               ev("response.output_text.done", output_index=0, item_id="msg_1", content_index=0, text="whole"),
               item_done(0, **message_item("msg_1", "whole")), completed([message_item("msg_1", "whole")]))
    assert r.response.text == "whole" and [e.text for e in r.events] == ["whole"]


def test_item_only_in_the_final_response_is_taken():
    r = replay(created(), completed([message_item("msg_9", "late")]))
    assert r.response.parts == [TextPart("late", provider_id="msg_9")]


def test_refusal_is_text():
    r = replay(created(), added(0, **message_item("msg_1")),
               ev("response.refusal.delta", output_index=0, item_id="msg_1", content_index=0, delta="I can't."),
               completed([{"type": "message", "id": "msg_1", "content": [{"type": "refusal", "refusal": "I can't."}]}]))
    assert r.response.text == "I can't."


# --- reasoning --------------------------------------------------------------------------------------

def test_reasoning_summaries_are_thinking_parts_with_id_and_signature():
    r = replay(created(), added(0, **reasoning_item("rs_1")),
               summary_delta(0, "rs_1", "**Plan**"), summary_delta(0, "rs_1", " first"),
               summary_delta(0, "rs_1", "**Then**", summary_index=1),
               item_done(0, **reasoning_item("rs_1", "ENC-1", ["**Plan** first", "**Then**"])),
               added(1, **message_item("msg_1")), text_delta(1, "msg_1", "Done."),
               completed([reasoning_item("rs_1", "ENC-final", ["**Plan** first", "**Then**"]),
                          message_item("msg_1", "Done.")]))
    parts = r.response.parts
    assert parts == [ThinkingPart("**Plan** first", signature="ENC-1", provider_id="rs_1"),
                     ThinkingPart("**Then**", provider_id="rs_1"), TextPart("Done.", provider_id="msg_1")]
    assert r.builder.thinking == "**Plan** first**Then**"   # each part once, deltas only


def test_reasoning_text_of_open_servers_is_thinking_without_signature():
    r = replay(created(), added(0, type="reasoning", id="rs_tmp", summary=[]),
               ev("response.reasoning_text.delta", output_index=0, item_id="rs_tmp", content_index=0, delta="Think"),
               ev("response.reasoning_text.delta", output_index=0, item_id="rs_tmp", content_index=0, delta="ing"),
               ev("response.reasoning_text.done", output_index=0, item_id="rs_tmp", content_index=0, text="Thinking"),
               *text_stream("4")[1:-1],
               completed([{"type": "reasoning", "id": "rs_renamed", "summary": [],
                           "content": [{"type": "reasoning_text", "text": "Thinking"}]}, message_item("msg_1", "4")]))
    assert r.response.parts[0] == ThinkingPart("Thinking", provider_id="rs_tmp")
    assert r.builder.thinking == "Thinking" and r.response.text == "4"


def test_signature_before_any_output_is_held_until_the_next_output():
    """An encrypted reasoning item with no summary must not end the retry window by itself."""
    translator = ResponsesTranslator()

    def feed(event: Dict[str, Any]) -> List[Any]:
        return translator.translate(ServerSentEvent(data=json.dumps(event), event=event["type"]))

    assert len(feed(created())) == 1
    assert feed(added(0, **reasoning_item("rs_1"))) == []
    assert feed(item_done(0, **reasoning_item("rs_1", "ENC"))) == []    # held back
    items = feed(added(1, **call_item("fc_1", "call_1", "lookup")))
    assert [type(i) for i in items] == [ThinkingChunk, ToolCallChunk]
    assert items[0].signature == "ENC" and items[0].provider_id == "rs_1"
    assert items[1] == ToolCallChunk(1, "lookup", "call_1", None, provider_id="fc_1")


def test_signature_only_in_the_final_response_and_nothing_else():
    r = replay(created(), added(0, **reasoning_item("rs_1")), item_done(0, **reasoning_item("rs_1")),
               completed([reasoning_item("rs_1", "ENC-late")]))
    assert r.response.parts == [ThinkingPart("", signature="ENC-late", provider_id="rs_1")]


# --- function calls -------------------------------------------------------------------------------------

def test_function_call_arguments_from_deltas_keyed_by_item():
    r = replay(created(), added(0, **call_item("fc_1", "call_a", "get_weather")),
               added(1, **call_item("fc_2", "call_b", "get_time")),
               args_delta(0, "fc_1", '{"city":'), args_delta(1, "fc_2", '{"tz":"UTC"}'),
               args_delta(0, "fc_1", '"Paris"}'), args_done(0, "fc_1", '{"city":"Paris"}'),
               args_done(1, "fc_2", '{"tz":"UTC"}'),
               item_done(0, **call_item("fc_1", "call_a", "get_weather", '{"city":"Paris"}')),
               completed([call_item("fc_1", "call_a", "get_weather", '{"city":"Paris"}'),
                          call_item("fc_2", "call_b", "get_time", '{"tz":"UTC"}')]))
    assert r.calls() == [("get_weather", "call_a", {"city": "Paris"}), ("get_time", "call_b", {"tz": "UTC"})]
    assert [p.provider_id for p in r.response.tool_calls] == ["fc_1", "fc_2"]
    assert r.response.finish_reason == "tool_calls"
    assert [(e.kind, e.tool_call_id) for e in r.events if e.kind == "tool_call_start"] == \
        [("tool_call_start", "call_a"), ("tool_call_start", "call_b")]


@pytest.mark.parametrize("where", ["args_done", "item_done", "completed"])
def test_function_call_arguments_without_deltas(where):
    """LM Studio sends no ``.delta``, only ``.done``; others only the finished item."""
    events = [created(), added(0, **call_item("fc_1", "call_1", "add"))]
    if where == "args_done":
        events.append(args_done(0, "fc_1", '{"a": 1, "b": 2}'))
    if where in ("args_done", "item_done"):
        events.append(item_done(0, **call_item("fc_1", "call_1", "add", '{"a": 1, "b": 2}')))
    events.append(completed([call_item("fc_1", "call_1", "add", '{"a": 1, "b": 2}')]))
    r = replay(*events)
    assert r.calls() == [("add", "call_1", {"a": 1, "b": 2})]
    deltas = [e.delta for e in r.events if e.kind == "tool_call_delta"]
    assert deltas == ['{"a": 1, "b": 2}']   # once


def test_no_argument_call_and_name_only_in_done():
    r = replay(created(), added(0, type="function_call", id="fc_1", call_id="call_1", arguments=""),
               args_done(0, "fc_1", "", name="ping"), completed([call_item("fc_1", "call_1", "ping", "")]))
    assert r.calls() == [("ping", "call_1", {})]


# --- endings and errors --------------------------------------------------------------------------------

def test_incomplete_is_length_and_keeps_the_text():
    end = completed([message_item("msg_1", "Trunc")], kind="response.incomplete", status="incomplete",
                    incomplete_details={"reason": "max_output_tokens"})
    r = replay(*text_stream("Trunc", end=end))
    assert r.response.finish_reason == "length" and r.response.text == "Trunc"
    assert r.response.usage.output_tokens == 50


def test_incomplete_content_filter():
    end = completed([], kind="response.incomplete", incomplete_details={"reason": "content_filter"})
    assert replay(created(), end).response.finish_reason == "content_filter"


@pytest.mark.parametrize("payload,code,status,retryable", [
    ({"code": "server_error", "message": "The server had an error"}, "server_error", 500, True),
    ({"code": "insufficient_quota", "message": "You exceeded your current quota"}, "insufficient_quota", 429, False),
    ({"code": "rate_limit_exceeded", "message": "Slow down"}, "rate_limit_exceeded", 429, True),
    ({"error": {"type": "invalid_request_error", "code": None, "message": "bad"}}, "invalid_request_error", 400,
     False),
])
def test_error_event_is_typed(payload, code, status, retryable):
    r = replay(created(), ev("error", **payload), completed([], kind="response.failed", status="failed",
                                                            error={"code": code, "message": "x"}))
    assert isinstance(r.error, ModelStreamError)
    assert (r.error.error_type, r.error.status) == (code, status)
    assert r.error.line and _retry.is_retryable(r.error) is retryable


def test_bare_error_object_without_type_or_event_line():
    r = Replay(responses_sse(created(), event_lines=False) + 'data: {"error": {"code": "server_error", '
               '"message": "Upstream failed"}}\n\n', ResponsesTranslator())
    assert r.error.error_type == "server_error" and r.error.status == 500 and "Upstream failed" in str(r.error)


def test_response_failed_without_error_event():
    r = replay(*text_stream("par")[:-2],
               completed([], kind="response.failed", status="failed",
                         error={"code": "server_error", "message": "Something broke"}))
    assert r.error.error_type == "server_error" and "Something broke" in str(r.error)
    assert r.partial.text == "par"


def test_cut_off_before_completed_is_an_error():
    r = replay(*text_stream("Hel", "lo")[:-1])
    assert isinstance(r.error, ModelStreamError) and "cut off" in str(r.error)
    assert r.partial.text == "Hello"


def test_malformed_json_is_a_stream_error():
    r = Replay("event: response.created\ndata: {nope\n\n", ResponsesTranslator())
    assert isinstance(r.error, ModelStreamError) and "malformed" in str(r.error)


def test_builtin_tools_and_unknown_events_are_passed_over():
    ws = {"type": "web_search_call", "id": "ws_1", "status": "in_progress"}
    r = replay(created(), ev("response.in_progress", response={"id": "resp_1"}), added(0, **ws),
               ev("response.web_search_call.in_progress", output_index=0, item_id="ws_1"),
               ev("response.web_search_call.searching", output_index=0, item_id="ws_1"),
               ev("response.web_search_call.completed", output_index=0, item_id="ws_1"),
               item_done(0, **dict(ws, status="completed", action={"type": "search", "query": "q"})),
               ev("response.image_generation_call.partial_image", output_index=0, item_id="ig_1"),
               added(1, **message_item("msg_1")),
               ev("response.content_part.added", output_index=1, item_id="msg_1", content_index=0,
                  part={"type": "output_text", "text": ""}),
               text_delta(1, "msg_1", "Sunny."),
               ev("response.output_text.annotation.added", output_index=1, item_id="msg_1", annotation={}),
               ev("response.something_new", foo=1),
               completed([dict(ws, status="completed"), message_item("msg_1", "Sunny.")]))
    assert r.response.parts == [TextPart("Sunny.", provider_id="msg_1")]


def test_provider_ids_survive_json_round_trip():
    r = replay(created(), added(0, **reasoning_item("rs_1")), item_done(0, **reasoning_item("rs_1", "ENC")),
               added(1, **call_item("fc_1", "call_1", "f")), args_delta(1, "fc_1", "{}"),
               completed([reasoning_item("rs_1", "ENC"), call_item("fc_1", "call_1", "f", "{}")]))
    response = r.response
    assert response.parts == [ThinkingPart("", signature="ENC", provider_id="rs_1"),
                              ToolCallPart("f", {}, "call_1", provider_id="fc_1")]
    assert messages_from_json(messages_to_json([response]))[0].parts == response.parts


@pytest.mark.parametrize("event", [
    {"type": "error", "code": "rate_limit_exceeded", "message": "slow down"},
    {"type": "response.failed", "response": {"id": "r", "status": "failed",
                                             "error": {"code": "rate_limit_exceeded", "message": "slow down"}}},
])
def test_an_in_band_rate_limit_is_a_retryable_rate_limit_error(event):
    from agentstream.exceptions import RateLimitError

    with pytest.raises(RateLimitError) as caught:
        ResponsesTranslator().translate(ServerSentEvent(data=json.dumps(event), event=event["type"]))
    error = caught.value
    assert isinstance(error, ModelStreamError) and error.status == 429
    assert error.error_type == "rate_limit_exceeded" and _retry.is_retryable(error)
