"""OpenAIChatTranslator fed hand-written SSE (SSEDecoder -> translator -> ResponseBuilder).

Each test names the gotcha it covers (notes/streaming-gotchas.md).
"""
from __future__ import annotations

import pytest

from agentstream.events import TextDelta, ThinkingDelta, ToolCallDelta, ToolCallStart
from agentstream.exceptions import ModelStreamError
from agentstream.models._openai_stream import OpenAIChatTranslator

from ._sse_helpers import Replay, sse


def replay(text, chunk_size=0):
    return Replay(text, OpenAIChatTranslator(), chunk_size)


def chunk(delta=None, finish=None, **extra):
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    body.update(extra)
    return body


def call(index=None, id=None, name=None, args=None):
    item = {"function": {}}
    if index is not None:
        item["index"] = index
    if id is not None:
        item["id"] = id
        item["type"] = "function"
    if name is not None:
        item["function"]["name"] = name
    if args is not None:
        item["function"]["arguments"] = args
    return item


# --- translator -----------------------------------------------------------------

def test_text_usage_and_response_info():
    r = replay(sse(chunk({"role": "assistant", "content": "", "refusal": None}), chunk({"content": "Hel"}),
                   chunk({"content": "lo"}), chunk({}, "stop"),
                   {"id": "chatcmpl-1", "choices": [], "model": "gpt-test",
                    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                              "prompt_tokens_details": {"cached_tokens": 4},
                              "completion_tokens_details": {"reasoning_tokens": 1}}}), chunk_size=5)
    response = r.response
    assert response.text == "Hello" and response.finish_reason == "stop"
    assert (response.model_name, response.provider_response_id) == ("gpt-test", "chatcmpl-1")
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.details) == (9, 2, 4, {"reasoning_tokens": 1})
    assert [e.text for e in r.events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert r.translator.done


def test_gotcha_10_empty_and_missing_choices():
    """Azure prompt-filter chunk (choices [], id/model ""), llama.cpp progress chunk, usage chunk."""
    r = replay(sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
                   {"prompt_progress": {"total": 10, "processed": 5}},
                   {"choices": None, "id": "x"},
                   chunk({"content": "ok"}, content_filter_results={"hate": {"filtered": False}}),
                   chunk({}, "stop"),
                   {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}))
    assert r.response.text == "ok" and r.response.usage.output_tokens == 1
    assert r.response.provider_response_id == "x" and r.response.model_name == "gpt-test"


def test_gotcha_10_other_choices_ignored():
    other = {"id": "c", "choices": [{"index": 1, "delta": {"content": "B"}, "finish_reason": "length"}]}
    r = replay(sse(chunk({"content": "A"}), other, chunk({}, "stop")))
    assert r.response.text == "A" and r.response.finish_reason == "stop"


def test_gotcha_11_id_and_name_repeated_or_blanked():
    """Novita repeats id "0" + name; Mistral sends name ""; DashScope sends id ""."""
    r = replay(sse(chunk({"tool_calls": [call(0, "0", "get_weather", "")]}),
                   chunk({"tool_calls": [call(0, "0", "get_weather", '{"city":')]}),
                   chunk({"tool_calls": [{"index": 0, "id": "", "type": "function",
                                          "function": {"name": "", "arguments": '"Paris"}'}}]}),
                   chunk({}, "tool_calls")))
    assert r.calls() == [("get_weather", "0", {"city": "Paris"})]
    assert [type(e) for e in r.events].count(ToolCallStart) == 1


def test_gotcha_12_missing_index_parallel_calls():
    """Gemini-compat: no index, two whole calls in one delta list -> two calls, not '{}{}'."""
    r = replay(sse(chunk({"tool_calls": [call(None, "a", "get_weather", '{"city":"Paris"}'),
                                         call(None, "b", "get_time", '{"tz":"UTC"}')]}),
                   chunk({}, "stop")))
    assert r.calls() == [("get_weather", "a", {"city": "Paris"}), ("get_time", "b", {"tz": "UTC"})]
    assert r.response.finish_reason == "tool_calls"   # gotcha #16: stop with calls


def test_gotcha_12_missing_index_with_continuations():
    r = replay(sse(chunk({"tool_calls": [call(None, "a", "f", "")]}),
                   chunk({"tool_calls": [call(None, None, None, '{"x":')]}),
                   chunk({"tool_calls": [call(None, None, None, "1}")]}), chunk({}, "tool_calls")))
    assert r.calls() == [("f", "a", {"x": 1})]


def test_gotcha_13_parallel_calls_all_at_index_0():
    r = replay(sse(chunk({"tool_calls": [call(0, "id1", "f", '{"a":')]}),
                   chunk({"tool_calls": [call(0, None, None, "1}")]}),
                   chunk({"tool_calls": [call(0, "id2", "g", '{"b":2}')]}), chunk({}, "tool_calls")))
    assert r.calls() == [("f", "id1", {"a": 1}), ("g", "id2", {"b": 2})]


@pytest.mark.parametrize("args", ["", None, "{}", "null", "MISSING"])
def test_gotcha_14_no_argument_tools(args):
    item = call(0, "c1", "now") if args == "MISSING" else {"index": 0, "id": "c1", "type": "function",
                                                            "function": {"name": "now", "arguments": args}}
    r = replay(sse(chunk({"tool_calls": [item]}),
                   chunk({"tool_calls": [{"index": 0, "function": {"arguments": None}}]}),
                   chunk({}, "tool_calls")))
    assert r.calls() == [("now", "c1", {})] and not r.builder.invalid_args


def test_gotcha_14_arguments_as_object():
    r = replay(sse(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": {"q": 1}}}]}),
                   chunk({}, "tool_calls")))
    assert r.calls() == [("f", "c", {"q": 1})]


def test_gotcha_15_whole_call_and_args_in_finish_chunk():
    """Ollama/Groq send whole calls; Together puts the args in the finish_reason chunk."""
    r = replay(sse(chunk({"tool_calls": [call(0, "t1", "f", "")]}),
                   chunk({"tool_calls": [call(0, None, None, '{"k":"v"}')]}, "tool_calls",
                         usage={"prompt_tokens": 5, "completion_tokens": 3})))
    assert r.calls() == [("f", "t1", {"k": "v"})] and r.response.finish_reason == "tool_calls"
    kinds = [type(i).__name__ for i in r.items]
    assert kinds.index("FinishReport") > max(i for i, k in enumerate(kinds) if k == "ToolCallChunk")


def test_gotcha_16_finish_reason_variants():
    twice = replay(sse(chunk({"content": "x"}, "length"), chunk({}, "stop", usage={"prompt_tokens": 1})))
    assert twice.response.finish_reason == "stop"   # last non-empty wins
    blank = replay(sse(chunk({"content": "x"}, ""), chunk({"content": "y"}, "")))
    assert blank.response.text == "xy" and blank.response.finish_reason is None   # [DONE] still ends it
    raw = replay(sse(chunk({}, "function_call_filter: MALFORMED_FUNCTION_CALL")))
    assert raw.response.finish_reason == "function_call_filter: MALFORMED_FUNCTION_CALL"
    legacy = replay(sse(chunk({"function_call": {"name": "f", "arguments": "{}"}}), chunk({}, "function_call")))
    assert legacy.response.finish_reason == "tool_calls" and legacy.calls()[0][0] == "f"
    content_filter = replay(sse(chunk({}, "content_filter")))
    assert content_filter.response.finish_reason == "content_filter"


def test_gotcha_17_groq_usage_counted_once():
    usage = {"prompt_tokens": 304, "completion_tokens": 49, "total_tokens": 353,
             "completion_tokens_details": {"reasoning_tokens": 23}}
    r = replay(sse(chunk({"content": "a"}), chunk({}, "stop", x_groq={"id": "req", "usage": usage}, usage=usage),
                   {"id": "c", "choices": [], "usage": usage, "x_groq": {"usage": usage}}))
    u = r.response.usage
    assert (u.input_tokens, u.output_tokens, u.details["reasoning_tokens"]) == (304, 49, 23)


def test_gotcha_17_continuous_usage_keeps_last_and_null_usage_ignored():
    r = replay(sse(chunk({"content": "a"}, usage={"prompt_tokens": 5, "completion_tokens": 1}),
                   chunk({"content": "b"}, usage={"prompt_tokens": 5, "completion_tokens": 2}),
                   chunk({}, "stop", usage=None), {"choices": [], "usage": None}))
    assert (r.response.usage.input_tokens, r.response.usage.output_tokens) == (5, 2)


def test_gotcha_17_deepseek_cache_fields():
    r = replay(sse(chunk({}, "stop", usage={"prompt_tokens": 10, "completion_tokens": 2,
                                            "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4})))
    assert r.response.usage.cache_read_tokens == 6
    assert r.response.usage.details["prompt_cache_miss_tokens"] == 4


def test_gotcha_19_reasoning_field_names():
    r = replay(sse(chunk({"role": "assistant", "content": None, "reasoning_content": "a"}),
                   chunk({"reasoning": "b"}),
                   chunk({"reasoning": "c", "reasoning_content": "c"}),   # both: once
                   chunk({"reasoning": None, "reasoning_details": [{"type": "reasoning.text", "text": "d"}]}),
                   chunk({"reasoning": "e", "reasoning_details": [{"type": "reasoning.text", "text": "e"}]}),
                   chunk({"content": "answer", "reasoning_content": None}), chunk({}, "stop")))
    assert r.builder.thinking == "abcde" and r.response.text == "answer"
    assert [e.text for e in r.events if isinstance(e, ThinkingDelta)] == list("abcde")
    thinking, details, text = r.response.parts   # reasoning_details entries are parts of their own
    assert (thinking.content, thinking.provider_details) == ("abc", None)
    assert (details.content, details.provider_details, text.content) == ("de", {"type": "reasoning.text"}, "answer")


def test_openrouter_reasoning_details_entries_keep_what_goes_back():
    text = {"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0}
    r = replay(sse(chunk({"reasoning": "Th", "reasoning_details": [dict(text, text="Th", signature="")]}),
                   chunk({"reasoning": "ink", "reasoning_details": [dict(text, text="ink", id="rd-1")]}),
                   chunk({"reasoning": None, "reasoning_details": [dict(text, signature="SIG")]}),
                   chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "ENC", "index": 1,
                                                 "format": None, "id": "rs_9"}]}),
                   chunk({"content": "ok"}), chunk({}, "stop")), chunk_size=3)
    first, encrypted, answer = r.response.parts
    assert (first.content, first.signature, first.provider_id, first.redacted_data) == ("Think", "SIG", "rd-1", None)
    assert first.provider_details == text and answer.content == "ok"
    assert (encrypted.content, encrypted.redacted_data, encrypted.provider_id) == ("", "ENC", "rs_9")
    assert encrypted.provider_details == {"type": "reasoning.encrypted", "index": 1}   # null format dropped
    assert [e.text for e in r.events if isinstance(e, ThinkingDelta)] == ["Th", "ink"]


def test_usage_completion_tokens_without_reasoning_are_normalised():
    """xAI: total = prompt + completion + reasoning (OpenAI: total = prompt + completion)."""
    xai = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 45,
           "completion_tokens_details": {"reasoning_tokens": 30}}
    openai = {"prompt_tokens": 10, "completion_tokens": 35, "total_tokens": 45,
              "completion_tokens_details": {"reasoning_tokens": 30}}
    for usage in (xai, openai):
        u = replay(sse(chunk({}, "stop", usage=usage))).response.usage
        assert (u.input_tokens, u.output_tokens, u.details["reasoning_tokens"]) == (10, 35, 30)
    no_total = dict(xai, total_tokens=None)
    assert replay(sse(chunk({}, "stop", usage=no_total))).response.usage.output_tokens == 5


def test_gotcha_20_error_chunk_raises_with_provider_message():
    r = replay(sse(chunk({"content": "partial"}),
                   {"error": {"message": "Upstream overloaded", "type": "server_error", "code": 503}}, done=False))
    assert isinstance(r.error, ModelStreamError) and "Upstream overloaded" in str(r.error)
    assert r.error.error_type == "server_error" and r.error.status == 503 and "Upstream" in r.error.line
    assert r.partial.text == "partial"


def test_gotcha_20_openrouter_error_with_choices_and_groq_error_event():
    openrouter = replay(sse(chunk({"reasoning": "hm"}, "length"),
                            dict(chunk({"content": ""}, "error"), error={"code": 400, "message": "Token limit"})))
    assert "Token limit" in str(openrouter.error) and openrouter.error.status == 400
    groq = replay('data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\nevent: error\n'
                  'data: {"error":{"message":"Tool call validation failed","type":"invalid_request_error",'
                  '"code":"tool_use_failed","status_code":400}}\n\n')
    assert "Tool call validation failed" in str(groq.error)
    assert (groq.error.error_type, groq.error.status) == ("invalid_request_error", 400)


def test_gotcha_21_stray_json_and_non_json_data():
    stray = replay('data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
                   '{"error":{"code":400,"message":"exceed_context_size_error","type":"exceed_context_size_error"}}\n')
    assert "exceed_context_size_error" in str(stray.error)
    bad = replay("data: error: something broke\n\n")
    assert isinstance(bad.error, ModelStreamError) and "something broke" in bad.error.line


def test_gotcha_23_cut_off_stream_is_an_error():
    r = replay(sse(chunk({"content": "half"}), done=False))
    assert isinstance(r.error, ModelStreamError) and "cut off" in str(r.error)
    assert r.partial.text == "half"


def test_gotcha_23_finish_without_done_is_accepted():
    r = replay(sse(chunk({"content": "whole"}), chunk({}, "stop"), done=False))
    assert r.response.text == "whole" and not r.translator.done


def test_gotcha_29_unknown_fields_ignored():
    r = replay(sse(dict(chunk({"content": "a", "annotations": [{"type": "url_citation"}], "channel": "final"}),
                        obfuscation="xyz", service_tier="default", system_fingerprint="fp", timings={"n": 1},
                        provider="P", sla_metrics={}),
                   dict(chunk({}, "stop"), native_finish_reason="STOP")))
    assert r.response.text == "a"


def test_events_after_done_ignored():
    r = replay(sse(chunk({"content": "a"}), chunk({}, "stop")) + sse(chunk({"content": "late"}), done=False))
    assert r.response.text == "a"


def test_think_tags_split_across_deltas():
    pieces = ["\n<th", "ink>", "\nreason", "ing</", "think>", "\n\n", "Answer", " <think>literal"]
    r = replay(sse(*[chunk({"content": p}) for p in pieces], chunk({}, "stop")))
    assert r.builder.thinking == "\nreasoning" and r.response.text == "Answer <think>literal"


def test_think_tags_only_at_start():
    r = replay(sse(chunk({"content": "Use <think> tags"}), chunk({}, "stop")))
    assert r.response.text == "Use <think> tags" and r.builder.thinking == ""
    unclosed = replay(sse(chunk({"content": "<think>still going"}), chunk({}, "length")))
    assert unclosed.builder.thinking == "still going" and unclosed.response.text == ""


def test_mistral_content_list_thinking():
    r = replay(sse(chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm"}]}]}),
                   chunk({"content": [{"type": "text", "text": "Yes"}]}), chunk({"content": "!"}),
                   chunk({}, "stop")))
    assert r.builder.thinking == "Hmm" and r.response.text == "Yes!"


def test_refusal_is_text():
    r = replay(sse(chunk({"content": None, "refusal": "I can't"}), chunk({"refusal": " help."}), chunk({}, "stop")))
    assert r.response.text == "I can't help."


def test_tool_call_events_in_order():
    r = replay(sse(chunk({"tool_calls": [call(0, "c1", "f", '{"a"')]}), chunk({"tool_calls": [call(0, args=":1}")]}),
                   chunk({"tool_calls": [call(1, "c2", "g", "{}")]}), chunk({}, "tool_calls")), chunk_size=3)
    kinds = [(type(e).__name__, getattr(e, "tool_call_id", None)) for e in r.events]
    assert kinds == [("ToolCallStart", "c1"), ("ToolCallDelta", "c1"), ("ToolCallDelta", "c1"),
                     ("ToolCallStart", "c2"), ("ToolCallDelta", "c2")]
    assert "".join(e.delta for e in r.events if isinstance(e, ToolCallDelta) and e.tool_call_id == "c1") == '{"a":1}'
