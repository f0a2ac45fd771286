"""Gemini ``streamGenerateContent?alt=sse`` -> neutral stream items (pure; no I/O).

One ``GeminiTranslator`` per response (``notes/wire-formats.md`` §4). Every event is a whole
``GenerateContentResponse``; only candidate 0 is read. Its ``content.parts``:

* ``{"text"}`` -> ``TextChunk``; ``{"text", "thought": true}`` -> ``ThinkingChunk``. Consecutive
  parts of one kind are one part of ours (streamed text is cut into many parts); a
  ``thoughtSignature`` goes on the part it came with (``TextChunk``/``ThinkingChunk.signature``);
  a second signature starts a new part, so each is sent back as it came. A signature on an
  empty text part after a function call makes an empty ``TextPart`` that carries it back.
* ``{"functionCall": {"name", "args", "id"?}}`` -> one ``ToolCallChunk`` per call, arguments as
  JSON text, its ``thoughtSignature`` on the call. Gemini usually sends no id: the id is made
  up here, ``gemini_<response>_<n>_<name>`` (``local_call_id``), and never sent back
  (``is_local_call_id``). Gemini 3's streamed arguments (``willContinue`` / ``partialArgs``
  with a ``jsonPath`` each, ended by an empty ``functionCall``) are assembled and reported
  when the call is complete.
* anything else (code execution, inline data, ...) is passed over.

``usageMetadata`` is cumulative and repeated: each one is reported, the last wins; output tokens
are ``candidatesTokenCount + thoughtsTokenCount`` (Gemini counts thoughts apart), the cached
prompt tokens are ``cache_read_tokens``, thoughts ``details["reasoning_tokens"]``. There is no
terminator: the stream ends at EOF after the event with ``finishReason``, which is mapped by
``map_finish_reason``; ``MALFORMED_FUNCTION_CALL`` / ``UNEXPECTED_TOOL_CALL`` raise
``UnexpectedModelBehavior``; a blocked prompt (``promptFeedback.blockReason``) finishes with
``content_filter``. ``{"error": ...}`` in the stream -> ``ModelStreamError``.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from .._sse import ServerSentEvent
from ..exceptions import ModelStreamError, UnexpectedModelBehavior
from ..usage import Usage
from . import _json
from ._base import (FinishReport, ResponseInfo, StreamItem, TextChunk, ThinkingChunk, ToolCallChunk,
                    UsageReport)
from ._errors import error_status

__all__ = ["GeminiTranslator", "is_local_call_id", "local_call_id", "map_finish_reason", "usage_from_gemini"]

LOCAL_ID_PREFIX = "gemini_"
_FILTERED = frozenset(("SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
                       "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"))
_BROKEN_CALL = frozenset(("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"))
_PATH = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def local_call_id(response_id: Optional[str], n: int, name: str) -> str:
    """The id of the ``n``-th function call of a response that came without one."""
    rid = _UNSAFE.sub("", response_id or "")[:12]
    return f"{LOCAL_ID_PREFIX}{rid or 'r'}_{n}_{_UNSAFE.sub('_', name or 'call')}"


def is_local_call_id(call_id: Optional[str]) -> bool:
    """True for ids made up by ``local_call_id`` (not Gemini's own: never sent back)."""
    return not call_id or call_id.startswith(LOCAL_ID_PREFIX)


def map_finish_reason(reason: Any) -> Optional[str]:
    """``STOP`` -> stop, ``MAX_TOKENS`` -> length, safety/recitation/blocklist/... -> content_filter;
    other values are kept raw (``FINISH_REASON_UNSPECIFIED`` -> None)."""
    if not isinstance(reason, str) or not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "STOP":
        return "stop"
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in _FILTERED else reason


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_gemini(raw: Dict[str, Any]) -> Usage:
    """``usageMetadata`` -> ``Usage`` (see the module docstring)."""
    thoughts, tool_prompt = _int(raw.get("thoughtsTokenCount")), _int(raw.get("toolUsePromptTokenCount"))
    details: Dict[str, int] = {}
    if thoughts:
        details["reasoning_tokens"] = thoughts
    if tool_prompt:
        details["tool_use_prompt_tokens"] = tool_prompt
    return Usage(input_tokens=_int(raw.get("promptTokenCount")) + tool_prompt,
                 output_tokens=_int(raw.get("candidatesTokenCount")) + thoughts,
                 cache_read_tokens=_int(raw.get("cachedContentTokenCount")), details=details)


def _set_path(args: Dict[str, Any], path: str, value: Any, append: bool) -> None:
    """Set ``value`` at a ``jsonPath`` (``$.a.b[0]``); strings at the same path are appended."""
    keys: List[Any] = []
    for match in _PATH.finditer(path[1:] if path.startswith("$") else path):
        name, index, quoted, dquoted = match.groups()
        keys.append(int(index) if index is not None else next(k for k in (name, quoted, dquoted) if k is not None))
    if not keys:
        return
    node: Any = args
    for key, following in zip(keys, keys[1:]):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            while len(node) <= key:
                node.append(None)
            if not isinstance(node[key], (dict, list)):
                node[key] = empty
            node = node[key]
        else:
            if not isinstance(node.get(key), (dict, list)):
                node[key] = empty
            node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        while len(node) <= last:
            node.append(None)
        old = node[last]
    else:
        old = node.get(last)
    if append and isinstance(value, str) and isinstance(old, str):
        value = old + value
    node[last] = value


def _partial_value(arg: Dict[str, Any]) -> Any:
    for key in ("stringValue", "numberValue", "boolValue"):
        if key in arg:
            return arg[key]
    return None   # nullValue


class GeminiTranslator:
    """Translates one Gemini stream (see the module docstring)."""

    def __init__(self) -> None:
        self._info_sent = False
        self._response_id: Optional[str] = None
        self._finished = False
        self._segment = 0
        self._segment_kind: Optional[str] = None   # "text" | "thinking" | "call"
        self._segment_signed = False               # the current text/thinking part has a signature
        self._calls = 0
        self._open: Optional[Dict[str, Any]] = None   # a call whose arguments are still streaming

    @property
    def done(self) -> bool:
        return False   # no terminator: the stream ends at EOF

    def finish(self) -> List[StreamItem]:
        items = self._close_call()
        if not self._finished:
            raise ModelStreamError("the stream ended before a finishReason: the response was cut off")
        return items

    def translate(self, event: ServerSentEvent) -> List[StreamItem]:
        data = event.data.strip()
        if not data:
            return []
        payload = _json.event_object(data)
        if payload.get("error"):
            raise self._error(payload, data)
        items: List[StreamItem] = []
        self._info(payload, items)
        candidates = payload.get("candidates")
        candidate = next((c for c in candidates if isinstance(c, dict) and c.get("index", 0) in (0, None)), None) \
            if isinstance(candidates, list) else None
        if candidate is not None:
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    self._part(part, items)
        usage = payload.get("usageMetadata")
        if isinstance(usage, dict):
            items.append(UsageReport(usage_from_gemini(usage)))
        if candidate is not None:
            self._finish_reason(candidate, items)
        feedback = payload.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason") and not candidate:
            self._finished = True
            items.append(FinishReport("content_filter"))
        return items

    # -- pieces -----------------------------------------------------------------
    def _info(self, payload: Dict[str, Any], items: List[StreamItem]) -> None:
        rid, model = payload.get("responseId"), payload.get("modelVersion")
        rid = rid if isinstance(rid, str) and rid else None
        model = model if isinstance(model, str) and model else None
        self._response_id = self._response_id or rid
        if not self._info_sent and (rid or model):
            self._info_sent = True
            items.append(ResponseInfo(model, rid))

    def _part(self, part: Dict[str, Any], items: List[StreamItem]) -> None:
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._function_call(call, signature, items)
            return
        text = part.get("text")
        if not isinstance(text, str) or not (text or signature):
            return   # executableCode, inlineData, an empty text: nothing of ours
        kind = "thinking" if part.get("thought") is True else "text"
        if kind != self._segment_kind or (signature and self._segment_signed):
            self._segment += 1
            self._segment_kind = kind
            self._segment_signed = False
        key = (kind, self._segment)
        items.append(ThinkingChunk(text, key, signature=signature) if kind == "thinking"
                     else TextChunk(text, key, signature=signature))
        self._segment_signed = self._segment_signed or bool(signature)

    def _function_call(self, call: Dict[str, Any], signature: Optional[str], items: List[StreamItem]) -> None:
        self._segment_kind = "call"
        name = call.get("name") if isinstance(call.get("name"), str) and call.get("name") else None
        partial = call.get("partialArgs") if isinstance(call.get("partialArgs"), list) else None
        state = self._open
        if state is not None and name is None:   # the streamed call goes on, or ends ({})
            if signature:
                items.append(ToolCallChunk(state["key"], signature=signature))
            self._apply(state, partial)
            if not call.get("willContinue"):
                items.extend(self._close_call())
            return
        items.extend(self._close_call())
        if name is None:
            return   # an empty functionCall with nothing open
        key = ("call", self._calls)
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        call_id = call_id or local_call_id(self._response_id, self._calls, name)
        self._calls += 1
        args = call.get("args") if isinstance(call.get("args"), dict) else {}
        if call.get("willContinue"):
            self._open = {"key": key, "args": dict(args), "last": None}
            self._apply(self._open, partial)
            items.append(ToolCallChunk(key, name, call_id, signature=signature))
            return
        if partial:
            state = {"key": key, "args": dict(args), "last": None}
            self._apply(state, partial)
            args = state["args"]
        items.append(ToolCallChunk(key, name, call_id, json.dumps(args, ensure_ascii=False), signature=signature))

    @staticmethod
    def _apply(state: Dict[str, Any], partial: Optional[List[Any]]) -> None:
        for arg in partial or ():
            path = arg.get("jsonPath") if isinstance(arg, dict) else None
            if isinstance(path, str):
                _set_path(state["args"], path, _partial_value(arg), append=state["last"] == path)
                state["last"] = path

    def _close_call(self) -> List[StreamItem]:
        state, self._open = self._open, None
        if state is None:
            return []
        return [ToolCallChunk(state["key"], args=json.dumps(state["args"], ensure_ascii=False))]

    def _finish_reason(self, candidate: Dict[str, Any], items: List[StreamItem]) -> None:
        raw = candidate.get("finishReason")
        if not isinstance(raw, str) or not raw:
            return
        items.extend(self._close_call())
        self._finished = True
        if raw in _BROKEN_CALL:
            message = candidate.get("finishMessage")
            detail = f": {message[:500]}" if isinstance(message, str) and message else ""
            what = "a malformed function call" if raw == "MALFORMED_FUNCTION_CALL" else "a call of an undeclared tool"
            raise UnexpectedModelBehavior(f"Gemini produced {what} (finishReason {raw}){detail}")
        reason = map_finish_reason(raw)
        if reason:
            items.append(FinishReport(reason))

    @staticmethod
    def _error(payload: Dict[str, Any], line: str) -> ModelStreamError:
        error = payload.get("error")
        if not isinstance(error, dict):
            return ModelStreamError(f"error inside the model stream: {str(error)[:300]}", line=line)
        status = error.get("status") if isinstance(error.get("status"), str) else None
        message = error.get("message") or json.dumps(error)[:300]
        return ModelStreamError(f"error inside the model stream: {status or 'error'}: {message}", line=line,
                                error_type=status, status=error_status(payload))
