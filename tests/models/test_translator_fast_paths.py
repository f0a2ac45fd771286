"""The translators' fast paths give what the general code gives.

* ``_json.loads``: ``orjson`` when installed (the ``fast`` extra), else ``json``; same values,
  same errors (differential against ``json.loads``), and both used by the translators.
* ``OpenAIChatTranslator._plain_text``: plain text chunks skip the general walk; any chunk
  sequence translates to the same items with the fast path on and off.
"""
from __future__ import annotations

import json
from typing import Any, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentstream._sse import ServerSentEvent
from agentstream.exceptions import ModelStreamError
from agentstream.models import _json
from agentstream.models._anthropic_stream import AnthropicTranslator
from agentstream.models._base import TextChunk
from agentstream.models._openai_stream import OpenAIChatTranslator

from ._sse_helpers import Replay, anthropic_sse, sse

try:
    import orjson
except ImportError:  # the optional extra is not installed: the orjson tests skip
    orjson = None

needs_orjson = pytest.mark.skipif(orjson is None, reason="orjson (the fast extra) is not installed")


# --- _json.loads -------------------------------------------------------------------------------

def test_loads_is_orjson_when_installed():
    if orjson is None:
        assert _json.loads is _json.stdlib_loads and _json.orjson_loads is None
    else:
        assert _json.loads is _json.orjson_loads


def _outcome(loads: Any, text: Any) -> Any:
    try:
        value = loads(text)
    except RecursionError:
        return "RecursionError"
    except ValueError as exc:
        return ("ValueError", isinstance(exc, json.JSONDecodeError))
    return ("value", repr(value), type(value).__name__)


EDGES = ["NaN", "-Infinity", "[1e400, -1e999]", '"\\ud800"', '"\\udc00x"', "18446744073709551615",
         "18446744073709551616", "-9223372036854775809", '{"n": 1234567890123456789012}', "9" * 19,
         '{"a": 1, "a": 2}', '"a\tb"', "\ufeff{}", "-0", "-0.0", "1E5", "5e-324", "[" * 3000 + "]" * 3000,
         '"\\u0000\u2028é✅"', " {} ", '{"a": 1} x', "", "nul", '{"t": "' + "1" * 30 + '"}', b'{"b": 1}',
         "[1,\n -12345678901234567890]", "\t12345678901234567890", "-12345678901234567890",
         "0.1000000000000000055511151231257827021181583404541015625", "1e0000000000000000001",
         "12345678901234567890.5", "0.12345678901234567890123", "[1.7976931348623157e308, 2e-400]"]


@needs_orjson
@pytest.mark.parametrize("text", EDGES, ids=range(len(EDGES)))
def test_orjson_loads_edges_match_json(text):
    assert _outcome(_json.make_orjson_loads(orjson.loads), text) == _outcome(json.loads, text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@needs_orjson
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.booleans())
def test_orjson_loads_matches_json(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert _outcome(_json.make_orjson_loads(orjson.loads), text) == _outcome(json.loads, text)


OPENAI_STREAM = sse(
    {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hé"}, "finish_reason": None}]},
    {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": {"n": 12345678901234567890123}}}]}}]},
    {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"id": "c1", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
ANTHROPIC_STREAM = anthropic_sse(
    {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 5}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hé"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "tu_1", "name": "f", "input": {"n": 12345678901234567890123}}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
    {"type": "message_stop"})


@pytest.mark.parametrize("translator, stream", [(OpenAIChatTranslator, OPENAI_STREAM),
                                                (AnthropicTranslator, ANTHROPIC_STREAM)], ids=["openai", "anthropic"])
def test_translators_with_the_stdlib_and_the_default(monkeypatch, translator, stream):
    fast = Replay(stream, translator())
    monkeypatch.setattr(_json, "loads", _json.stdlib_loads)
    slow = Replay(stream, translator())
    assert fast.error is None and slow.error is None
    assert fast.items == slow.items
    assert fast.calls() == slow.calls() == [("f", fast.calls()[0][1], {"n": 12345678901234567890123})]
    assert fast.response.text == "Hé"


# --- OpenAI plain-text fast path ------------------------------------------------------------------

def event(data: Any) -> ServerSentEvent:
    return ServerSentEvent(data=data if isinstance(data, str) else json.dumps(data))


def test_plain_text_chunks_take_the_fast_path(monkeypatch):
    translator = OpenAIChatTranslator()
    head = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}
    assert len(translator.translate(event(head))) == 2   # ResponseInfo + text: the general path
    monkeypatch.setattr(OpenAIChatTranslator, "_choice", lambda *a: pytest.fail("the general path ran"))
    for delta in ({"content": " there"}, {"content": "!", "role": "assistant", "refusal": None}):
        chunk = {"id": "c1", "model": "m", "object": "chat.completion.chunk", "created": 1,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]}
        assert translator.translate(event(chunk)) == [TextChunk(delta["content"])]


TEXTS = st.sampled_from(["x", "Hé ✅", "", " ", "<think>", "<th", "ink>", "r</think>", "</think> a", "\n"])
MISSING = object()


@st.composite
def chunks(draw: Any) -> Any:
    """Mostly plain text chunks, each with a few of the things that must leave the fast path."""
    def maybe(*values: Any) -> Any:   # usually the plain value (the first), sometimes another
        return values[0] if draw(st.integers(0, 3)) else draw(st.sampled_from(values[1:]))

    delta = {"content": maybe(draw(TEXTS), None, [{"type": "text", "text": "l"}], 5, MISSING)}
    for key, values in (("role", ("assistant", None)), ("refusal", (None, "", "no")),
                        ("reasoning_content", ("r", "")), ("extra", (1,)),
                        ("tool_calls", ([{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}],))):
        if not draw(st.integers(0, 5)):
            delta[key] = draw(st.sampled_from(values))
    choice = {"index": maybe(0, MISSING, None, 1, False), "delta": maybe(delta, MISSING, None, "text"),
              "finish_reason": maybe(None, MISSING, "", "stop", "odd"), "logprobs": maybe(None, MISSING)}
    chunk = {"id": maybe("c1", MISSING, "", "c2", None), "model": maybe("m", MISSING, "", None, 5),
             "choices": maybe([choice], [], [choice, dict(choice, index=1)], [3], None, "x", MISSING),
             "usage": maybe(MISSING, None, 0, {"prompt_tokens": 1, "completion_tokens": 2}),
             "x_groq": maybe(MISSING, {}, {"usage": {"prompt_tokens": 4}}),
             "error": maybe(MISSING, None, "", {})}
    if draw(st.integers(0, 40)) == 0:
        return "[DONE]"
    return _strip(chunk)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not MISSING}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def run(translator: OpenAIChatTranslator, chunks: List[Any]) -> List[Any]:
    out: List[Any] = []
    try:
        for chunk in chunks:
            out.append(translator.translate(event(chunk)))
        out.append(translator.finish())
    except ModelStreamError as exc:
        out.append(("error", str(exc)))
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunks(), min_size=1, max_size=12))
def test_fast_path_changes_nothing(chunks):
    general = OpenAIChatTranslator()
    general._plain_text = lambda chunk: None   # type: ignore[method-assign]
    assert run(OpenAIChatTranslator(), chunks) == run(general, chunks)
