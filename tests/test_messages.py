"""Messages as data; events as JSON-safe dicts; the public surface."""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

import agentstream
from agentstream import events
from agentstream.messages import (ModelMessagesTypeAdapter, ModelRequest, ModelResponse, RetryPromptPart,
                                  SystemPromptPart, TextPart, ThinkingPart, ToolCallPart, ToolReturnPart,
                                  UserPromptPart, messages_from_json, messages_to_json)
from agentstream.usage import Usage

HISTORY = [
    ModelRequest([SystemPromptPart("sys"), UserPromptPart("héllo ✅ \u2028 line")]),
    ModelResponse([ThinkingPart("hmm", signature="sig=="), ThinkingPart("", redacted_data="opaque"),
                   TextPart("text"), ToolCallPart("f", {"a": [1, {"b": None}]}, "c1")],
                  model_name="m-1", finish_reason="tool_calls",
                  usage=Usage(requests=1, input_tokens=10, output_tokens=5, cache_read_tokens=2,
                              details={"reasoning_tokens": 3}),
                  provider_response_id="resp_1"),
    ModelRequest([ToolReturnPart("f", {"nested": [1, 2]}, "c1"), ToolReturnPart("g", "boom", "c2", is_error=True),
                  RetryPromptPart("bad args", "f", "c3"), RetryPromptPart("plain retry")]),
]


def test_history_round_trips_through_json_unchanged():
    data = messages_to_json(HISTORY)
    assert messages_from_json(data) == HISTORY
    assert messages_from_json(data.decode()) == HISTORY
    assert ModelMessagesTypeAdapter.validate_python(json.loads(data)) == HISTORY


def test_thinking_provider_details_round_trip_and_default():
    part = ThinkingPart("why", signature="s", provider_id="rd-1",
                        provider_details={"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0})
    history = [ModelResponse([part, ThinkingPart("", redacted_data="enc", provider_details={"type": "x"})],
                             provider_name="openrouter")]
    data = messages_to_json(history)
    assert messages_from_json(data) == history
    assert json.loads(data)[0]["parts"][0]["provider_details"]["format"] == "anthropic-claude-v1"
    old = json.loads(messages_to_json([ModelResponse([ThinkingPart("t")])]))   # a history saved before the field
    del old[0]["parts"][0]["provider_details"]
    assert messages_from_json(json.dumps(old))[0].parts[0] == ThinkingPart("t")


def test_json_has_discriminators():
    data = json.loads(messages_to_json(HISTORY))
    assert [m["kind"] for m in data] == ["request", "response", "request"]
    assert [p["part_kind"] for p in data[1]["parts"]] == ["thinking", "thinking", "text", "tool-call"]


def test_bad_history_json_is_a_clear_error():
    with pytest.raises(Exception, match="kind"):
        messages_from_json(b'[{"parts": []}]')


def test_tool_return_content_text():
    assert ToolReturnPart("f", "plain", "1").content_text() == "plain"
    assert json.loads(ToolReturnPart("f", {"a": 1}, "1").content_text()) == {"a": 1}


def _sample(cls):
    values = {"run_id": "r", "estimated_tokens": 1, "request_bytes": 2, "original_tokens": 3,
              "compressed_tokens": 1, "strategy": "truncate", "messages_before": 4, "messages_after": 2,
              "step": 1, "attempt": 1, "delay": 0.5, "error": ValueError("x"), "text": "t",
              "tool_name": "f", "tool_call_id": "c", "delta": "{", "finish_reason": "stop", "usage": Usage(),
              "args": {"a": 1}, "success": True, "result": object(), "output": {"o": 1}, "message": "m",
              "partial_text": "p", "partial_thinking": "", "pending_tools": ["f"], "messages": HISTORY}
    kwargs = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
    return cls(**kwargs)


EVENT_CLASSES = [getattr(events, n) for n in events.__all__
                 if isinstance(getattr(events, n), type) and getattr(events, n) is not events.Event]


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_is_frozen_and_json_safe(cls):
    event = _sample(cls)
    data = json.loads(json.dumps(event.to_dict()))
    assert data["kind"] == cls.kind
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind2 = 1  # type: ignore[attr-defined]


def test_event_kinds_unique():
    kinds = [c.kind for c in EVENT_CLASSES]
    assert len(kinds) == len(set(kinds))


def test_public_names_sorted_and_importable():
    assert agentstream.__all__ == sorted(agentstream.__all__)
    for name in agentstream.__all__:
        assert hasattr(agentstream, name), name
    from agentstream.models import FunctionModel, TestModel, Timeout  # noqa: F401


def test_layering_sse_has_no_http_and_leaves_import_no_upper_layers():
    root = Path(agentstream.__file__).parent

    def imports(module: str):
        tree = ast.parse((root / module).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(("." * node.level) + (node.module or ""))
        return names

    assert not {n for n in imports("_sse.py") if n.startswith(("requests", "urllib3", "."))}
    assert not {n for n in imports("exceptions.py") if n.startswith(".")}
    assert {n for n in imports("usage.py") if n.startswith(".")} <= {".exceptions"}
    assert not {n for n in imports("_loop.py") if n in ("threading", "queue")}
    assert not {n for n in imports("messages.py") if n.startswith(".") and n != ".usage"}


def test_logging_is_silent_by_default():
    import logging

    logger = logging.getLogger("agentstream")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_py_typed_marker_present():
    assert (Path(agentstream.__file__).parent / "py.typed").exists()
