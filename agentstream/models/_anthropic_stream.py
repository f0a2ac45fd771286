"""Anthropic Messages stream -> neutral stream items (pure; no I/O).

One ``AnthropicTranslator`` per response (``notes/wire-formats.md`` §3,
gotcha #26). Dispatches on ``data.type`` (some proxies drop ``event:``
lines), falling back to the event name. Content blocks are keyed by their
``index`` and, for ``tool_use``, their id: a ``content_block_start`` at an
index already used starts a new block (unless it restates the same id), so
two calls sent at one index stay two calls:

* ``text`` -> ``TextChunk``; ``thinking`` -> ``ThinkingChunk`` (+ the
  ``signature_delta``); ``redacted_thinking`` arrives whole -> a
  ``ThinkingChunk`` with ``redacted_data``.
* ``tool_use``: id and name from ``content_block_start``; the ``input: {}``
  there is a placeholder, the arguments come only from ``partial_json``
  (all empty -> ``{}``). A proxy that sends a non-empty ``input`` and no
  deltas gets that input.
* server tools (``server_tool_use``, ``*_tool_result``, ``mcp_tool_use``,
  ``compaction``, ...) and unknown blocks/deltas/events are ignored.

Usage: ``message_start`` has input and cache counts, ``message_delta`` is
cumulative (may restate input): fields are overlaid, the last report wins.
``input_tokens`` is the whole prompt (uncached + cache read + cache write).
``event: error`` -> ``ModelStreamError`` with the error type and its status (a rate limit:
``_errors.InBandRateLimitError``, also a ``RateLimitError``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .._sse import ServerSentEvent
from ..exceptions import ModelStreamError
from ..usage import Usage
from . import _json
from ._base import (FinishReport, ResponseInfo, StreamItem, TextChunk, ThinkingChunk, ToolCallChunk,
                    UsageReport)
from ._errors import in_band_error

__all__ = ["AnthropicTranslator", "map_stop_reason"]

_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
         "model_context_window_exceeded": "length"}

_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def map_stop_reason(reason: Any) -> Optional[str]:
    """``end_turn``/``stop_sequence`` -> stop, ``max_tokens`` -> length, ``tool_use`` -> tool_calls; others raw."""
    if not isinstance(reason, str) or not reason:
        return None
    return _STOP.get(reason, reason)


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class AnthropicTranslator:
    """Translates one Messages stream (see the module docstring)."""

    def __init__(self) -> None:
        self._done = False
        self._stopped = False                      # a stop_reason was seen
        self._keys: Dict[Any, Any] = {}            # index -> key of the block now open there
        self._blocks: Dict[Any, str] = {}          # key -> "text" | "thinking" | "tool" | "ignored"
        self._tool_ids: Dict[Any, str] = {}        # key -> tool_use id
        self._tool_args: Dict[Any, List[Any]] = {}  # key -> [fragment seen?, start input]
        self._reused = 0                           # blocks started at an index already used
        self._usage: Dict[str, int] = {}
        self._extra: Dict[str, int] = {}

    @property
    def done(self) -> bool:
        return self._done

    def finish(self) -> List[StreamItem]:
        if not self._done and not self._stopped:
            raise ModelStreamError("the stream ended before message_stop: the response was cut off")
        return []

    def translate(self, event: ServerSentEvent) -> List[StreamItem]:
        data = event.data.strip()
        if self._done or not data:
            return []
        payload = _json.event_object(data)
        kind = payload.get("type") or event.event
        if kind == "error" or (event.stray and "error" in payload):
            raise self._error(payload, data)
        handler = _HANDLERS.get(kind)
        return handler(self, payload) if handler else []   # ping, unknown types: ignored

    # -- events -----------------------------------------------------------------
    def _message_start(self, payload: Dict[str, Any]) -> List[StreamItem]:
        message = payload.get("message")
        message = message if isinstance(message, dict) else {}
        items: List[StreamItem] = []
        model, rid = message.get("model"), message.get("id")
        if model or rid:
            items.append(ResponseInfo(model if isinstance(model, str) else None, rid if isinstance(rid, str) else None))
        items.extend(self._take_usage(message.get("usage")))
        return items

    def _key(self, index: Any, block: Dict[str, Any]) -> Any:
        """The part key of a block starting at ``index``: the index for the first block there; a
        start at a used index begins a new block (key ``(index, n)``) unless it restates the
        same ``tool_use`` id (a proxy's repeated start)."""
        current = self._keys.get(index)
        if current is None:
            key = index
        elif block.get("type") == "tool_use" and block.get("id") and self._tool_ids.get(current) == block["id"]:
            return current
        else:
            self._reused += 1
            key = (index, self._reused)
        self._keys[index] = key
        return key

    def _block_start(self, payload: Dict[str, Any]) -> List[StreamItem]:
        block = payload.get("content_block")
        block = block if isinstance(block, dict) else {}
        index = self._key(payload.get("index"), block)
        btype = block.get("type")
        if btype == "text":
            self._blocks[index] = "text"
            text = block.get("text")
            return [TextChunk(text, index)] if isinstance(text, str) and text else []
        if btype == "thinking":
            self._blocks[index] = "thinking"
            text, sig = block.get("thinking"), block.get("signature")
            if (isinstance(text, str) and text) or (isinstance(sig, str) and sig):
                return [ThinkingChunk(text or "", index, signature=sig or None)]
            return []
        if btype == "redacted_thinking":
            self._blocks[index] = "ignored"
            data = block.get("data")
            return [ThinkingChunk("", index, redacted_data=data)] if isinstance(data, str) and data else []
        if btype == "tool_use":
            self._blocks[index] = "tool"
            start_input = block.get("input")
            self._tool_args.setdefault(index, [False, start_input if isinstance(start_input, dict) and start_input
                                               else None])
            name, call_id = block.get("name"), block.get("id")
            if isinstance(call_id, str) and call_id:
                self._tool_ids[index] = call_id
            return [ToolCallChunk(index, name if isinstance(name, str) else None,
                                  call_id if isinstance(call_id, str) else None, None)]
        self._blocks[index] = "ignored"   # server_tool_use, *_tool_result, compaction, unknown
        return []

    def _block_delta(self, payload: Dict[str, Any]) -> List[StreamItem]:
        index, delta = self._keys.get(payload.get("index"), payload.get("index")), payload.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        dtype, block = delta.get("type"), self._blocks.get(index)
        if dtype == "text_delta" and block in ("text", None):
            text = delta.get("text")
            return [TextChunk(text, index)] if isinstance(text, str) and text else []
        if dtype == "thinking_delta" and block in ("thinking", None):
            text = delta.get("thinking")
            return [ThinkingChunk(text, index)] if isinstance(text, str) and text else []
        if dtype == "signature_delta" and block in ("thinking", None):
            sig = delta.get("signature")
            return [ThinkingChunk("", index, signature=sig)] if isinstance(sig, str) and sig else []
        if dtype == "input_json_delta" and block == "tool":
            fragment = delta.get("partial_json")
            if isinstance(fragment, str) and fragment:
                self._tool_args[index][0] = True
                return [ToolCallChunk(index, args=fragment)]
        return []   # citations_delta, server-tool input, unknown deltas

    def _block_stop(self, payload: Dict[str, Any]) -> List[StreamItem]:
        index = self._keys.get(payload.get("index"), payload.get("index"))
        state = self._tool_args.get(index)
        if self._blocks.get(index) == "tool" and state and not state[0] and state[1]:
            return [ToolCallChunk(index, args=dict(state[1]))]   # whole input, no deltas (proxies)
        return []

    def _message_delta(self, payload: Dict[str, Any]) -> List[StreamItem]:
        items: List[StreamItem] = []
        delta = payload.get("delta")
        reason = map_stop_reason(delta.get("stop_reason")) if isinstance(delta, dict) else None
        if reason:
            self._stopped = True
            items.append(FinishReport(reason))
        items.extend(self._take_usage(payload.get("usage")))
        return items

    def _message_stop(self, payload: Dict[str, Any]) -> List[StreamItem]:
        self._done = True
        return []

    # -- helpers ------------------------------------------------------------------
    def _take_usage(self, raw: Any) -> List[StreamItem]:
        if not isinstance(raw, dict):
            return []
        for key in _USAGE_KEYS:
            value = _int(raw.get(key))
            if value is not None:
                self._usage[key] = value
        tools = raw.get("server_tool_use")
        if isinstance(tools, dict):
            for key, value in tools.items():
                if _int(value):
                    self._extra[f"server_tool_use.{key}"] = value
        u = self._usage
        read, write = u.get("cache_read_input_tokens", 0), u.get("cache_creation_input_tokens", 0)
        details = dict(self._extra)
        details["uncached_input_tokens"] = u.get("input_tokens", 0)
        usage = Usage(input_tokens=u.get("input_tokens", 0) + read + write, output_tokens=u.get("output_tokens", 0),
                      cache_read_tokens=read, cache_write_tokens=write, details=details)
        return [UsageReport(usage)]

    @staticmethod
    def _error(payload: Dict[str, Any], line: str) -> ModelStreamError:
        error = payload.get("error")
        error = error if isinstance(error, dict) else {}
        etype = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message") or "unknown error"
        return in_band_error(f"error inside the model stream: {etype or 'error'}: {message}", error, line)


_HANDLERS = {
    "message_start": AnthropicTranslator._message_start,
    "content_block_start": AnthropicTranslator._block_start,
    "content_block_delta": AnthropicTranslator._block_delta,
    "content_block_stop": AnthropicTranslator._block_stop,
    "message_delta": AnthropicTranslator._message_delta,
    "message_stop": AnthropicTranslator._message_stop,
}
