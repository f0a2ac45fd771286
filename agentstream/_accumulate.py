"""One accumulator for every provider: neutral stream items -> public events + ModelResponse.

Providers key each part by a vendor id (an index, an item id, a synthesized
id); ``ResponseBuilder`` maps those to parts in order of first appearance.
Tool arguments are buffered as a string and parsed once, when the response
is built (never re-parsed per fragment); arguments that are not a JSON object
are kept raw on the part (``ToolCallPart.raw_args``). A tool call id repeated
within one response is made unique (``id_2``, ...). The partial state is
always available for a cancel or an error.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Dict, List, Optional, Set, Tuple

from .events import TextDelta, ThinkingDelta, ToolCallDelta, ToolCallStart
from .messages import ModelResponse, TextPart, ThinkingPart, ToolCallPart
from ._channel import Batch
from .models._base import (FinishReport, ResponseInfo, StreamReset, TextChunk, ThinkingChunk, ToolCallChunk,
                           UsageReport)
from .usage import Usage

__all__ = ["ResponseBuilder", "parse_tool_args"]

log = logging.getLogger("agentstream")


def parse_tool_args(raw: str) -> Tuple[Dict[str, Any], Optional[str]]:
    """Parse accumulated argument JSON. Returns (args, error message or None).

    ``""``, ``"null"`` and whitespace mean "no arguments" (gotcha #14).
    """
    text = raw.strip()
    if not text or text == "null":
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {}, f"arguments are not valid JSON ({exc}): {text[:200]!r}"
    if value is None:
        return {}, None
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}: {text[:200]!r}"
    return value, None


class _ToolState:
    __slots__ = ("name", "call_id", "fragments", "whole", "started")

    def __init__(self) -> None:
        self.name: str = ""
        self.call_id: str = ""
        self.fragments: List[str] = []
        self.whole: Optional[Dict[str, Any]] = None
        self.started = False


class ResponseBuilder:
    """Feed neutral items in; get public delta events out; ``build()`` the response."""

    def __init__(self, model_name: Optional[str] = None, provider_name: Optional[str] = None) -> None:
        self.model_name = model_name
        self.provider_name = provider_name
        self.response_id: Optional[str] = None
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Usage] = None
        self._order: List[Tuple[str, Any]] = []          # (kind, key) in first-seen order
        self._text: Dict[Any, List[str]] = {}
        self._thinking: Dict[Any, List[Any]] = {}         # [fragments, signature, redacted]
        self._tools: Dict[Any, _ToolState] = {}
        self._provider_ids: Dict[Tuple[str, Any], str] = {}  # (kind, key) -> provider item id
        self._signatures: Dict[Tuple[str, Any], str] = {}    # (kind, key) -> signature of a text/tool part
        self._details: Dict[Any, Dict[str, Any]] = {}         # thinking key -> provider_details
        self._call_ids: Set[str] = set()                  # tool call ids given out (unique)
        self.invalid_args: Dict[str, str] = {}            # tool_call_id -> error, filled by build()
        self.emitted = 0                                  # deltas emitted to the user

    # -- feeding ------------------------------------------------------------
    def feed(self, item: Any) -> List[Any]:
        """Take one item; return the public events it produces (maybe none)."""
        if type(item) is TextChunk:
            if not item.text:
                return self._text_signature(item) if item.signature else []
            parts = self._text.get(item.part_id)
            if parts is None:
                parts = self._text[item.part_id] = []
                self._order.append(("text", item.part_id))
            parts.append(item.text)
            if item.signature:
                self._text_signature(item)
            if item.provider_id is not None:
                self._provider_ids.setdefault(("text", item.part_id), item.provider_id)
            if len(parts) > 4096:  # memory: fold fragments of a long text into one string
                parts[:] = ["".join(parts)]
            self.emitted += 1
            return [TextDelta(item.text)]
        if type(item) is ToolCallChunk:
            return self._feed_tool(item)
        if type(item) is ThinkingChunk:
            return self._feed_thinking(item)
        if type(item) is UsageReport:
            self.usage = item.usage
        elif type(item) is FinishReport:
            if item.reason:
                self.finish_reason = item.reason
        elif type(item) is ResponseInfo:
            self.model_name = item.model_name or self.model_name
            self.response_id = item.response_id or self.response_id
        return []

    def _text_signature(self, item: TextChunk) -> List[Any]:
        """Keep a text part's signature (Gemini's thoughtSignature), also on an empty part."""
        if item.part_id not in self._text:
            self._text[item.part_id] = []
            self._order.append(("text", item.part_id))
        self._signatures.setdefault(("text", item.part_id), item.signature)
        return []

    def _feed_thinking(self, item: ThinkingChunk) -> List[Any]:
        state = self._thinking.get(item.part_id)
        if state is None:
            state = self._thinking[item.part_id] = [[], None, None]
            self._order.append(("thinking", item.part_id))
        if item.signature:
            state[1] = (state[1] or "") + item.signature
        if item.redacted_data:
            state[2] = item.redacted_data
        if item.provider_id is not None:
            self._provider_ids.setdefault(("thinking", item.part_id), item.provider_id)
        if item.details:
            kept = self._details.setdefault(item.part_id, {})
            for key, value in item.details.items():
                kept.setdefault(key, value)
        if not item.text:
            return []
        state[0].append(item.text)
        if len(state[0]) > 4096:
            state[0][:] = ["".join(state[0])]
        self.emitted += 1
        return [ThinkingDelta(item.text)]

    def _feed_tool(self, item: ToolCallChunk) -> List[Any]:
        state = self._tools.get(item.part_id)
        if state is None:
            state = self._tools[item.part_id] = _ToolState()
            self._order.append(("tool", item.part_id))
        if item.tool_name and not state.name:
            state.name = item.tool_name
        if item.tool_call_id and not state.call_id:
            state.call_id = self._unique_id(item.tool_call_id)
        if item.provider_id is not None:
            self._provider_ids.setdefault(("tool", item.part_id), item.provider_id)
        if item.signature:
            self._signatures.setdefault(("tool", item.part_id), item.signature)
        events: List[Any] = []
        if not state.started and state.name:
            state.started = True
            if not state.call_id:
                state.call_id = f"call_{uuid.uuid4().hex[:24]}"
            events.append(ToolCallStart(state.name, state.call_id))
            if state.fragments:  # fragments that came before the name
                events.append(ToolCallDelta("".join(state.fragments), state.call_id))
        args = item.args
        if isinstance(args, dict):
            state.whole = args
        elif args:
            state.fragments.append(args)
            if state.started:
                events.append(ToolCallDelta(args, state.call_id))
        self.emitted += len(events)
        return events

    def _unique_id(self, call_id: str) -> str:
        """``call_id``, or ``call_id_2``, ``_3``, ... when another call of this response has it
        (some servers repeat one id; the Anthropic API rejects a history with duplicates). The
        unique id is used alike in events, execution and history."""
        unique, n = call_id, 1
        while unique in self._call_ids:
            n += 1
            unique = f"{call_id}_{n}"
        if unique != call_id:
            log.debug("tool call id %r repeated in one response; using %r", call_id, unique)
        self._call_ids.add(unique)
        return unique

    # -- reading ------------------------------------------------------------
    @property
    def text(self) -> str:
        return "".join("".join(self._text[key]) for kind, key in self._order if kind == "text")

    @property
    def thinking(self) -> str:
        return "".join("".join(self._thinking[key][0]) for kind, key in self._order if kind == "thinking")

    def tool_names(self) -> List[str]:
        return [s.name for s in self._tools.values() if s.name]

    def build(self, *, partial: bool = False) -> ModelResponse:
        """The response so far. With ``partial`` (a cancel or an error), tool
        calls whose arguments do not parse are left out instead of flagged."""
        parts: List[Any] = []
        for kind, key in self._order:
            if kind == "text":
                parts.append(TextPart("".join(self._text[key]), provider_id=self._provider_ids.get((kind, key)),
                                      signature=self._signatures.get((kind, key))))
            elif kind == "thinking":
                fragments, signature, redacted = self._thinking[key]
                parts.append(ThinkingPart("".join(fragments), signature=signature, redacted_data=redacted,
                                          provider_id=self._provider_ids.get((kind, key)),
                                          provider_details=dict(self._details[key]) if key in self._details
                                          else None))
            else:
                state = self._tools[key]
                if not state.name:
                    continue
                if not state.call_id:
                    state.call_id = f"call_{uuid.uuid4().hex[:24]}"
                raw: Optional[str] = None
                if state.whole is not None and not state.fragments:
                    args, error = dict(state.whole), None
                else:
                    raw = "".join(state.fragments)
                    args, error = parse_tool_args(raw)
                if error:
                    if partial:
                        continue
                    self.invalid_args[state.call_id] = error
                parts.append(ToolCallPart(state.name, args, state.call_id,
                                          provider_id=self._provider_ids.get((kind, key)),
                                          raw_args=raw if error else None,
                                          signature=self._signatures.get((kind, key))))
        finish = self.finish_reason
        if any(isinstance(p, ToolCallPart) for p in parts) and finish in (None, "", "stop"):
            finish = "tool_calls"  # gotcha #16
        return ModelResponse(parts=parts, model_name=self.model_name, provider_name=self.provider_name,
                             finish_reason=finish,
                             usage=self.usage.copy() if self.usage else Usage(),
                             provider_response_id=self.response_id)


def complete_response(model: Any, messages: List[Any], settings: Any, params: Any, ctx: Any) -> ModelResponse:
    """One whole response of ``model``, not streamed to the user (summaries use it)."""
    builder = ResponseBuilder(model.model_name, getattr(model, "system", None))
    for item in model.stream(messages, settings, params, ctx):
        for one in (item if type(item) is Batch else (item,)):
            if type(one) is StreamReset:   # cut and sent again: start over
                builder = ResponseBuilder(model.model_name, getattr(model, "system", None))
            else:
                builder.feed(one)
    return builder.build()
