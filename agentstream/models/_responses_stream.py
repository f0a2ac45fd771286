"""OpenAI Responses stream -> neutral stream items (pure; no I/O).

One ``ResponsesTranslator`` per response (``notes/wire-formats.md`` §2). It
dispatches on ``data.type`` (OpenRouter sends no ``event:`` lines), falling
back to the event name. Output items are keyed by ``output_index`` (else by
``item_id``), so a delta finds its item even when the final response renames
it (OpenRouter's ``rs_tmp_...`` ids):

* ``message``: ``output_text.delta`` / ``refusal.delta`` -> ``TextChunk``.
* ``reasoning``: each ``reasoning_summary_text`` part and each raw
  ``reasoning_text`` part (open servers) -> its own ``ThinkingChunk`` part with
  the item id as ``provider_id``; the item's ``encrypted_content`` becomes the
  ``signature`` of its first part (from ``output_item.done``, else from the
  final response), so it can be sent back with ``store: false``.
* ``function_call``: name, ``call_id`` (the id the result goes back under) and
  the item id (``provider_id``) from ``output_item.added``; arguments from the
  ``.delta`` events, or only from ``.done`` / the finished item when a server
  (LM Studio) sends no deltas.
* Built-in tools (``web_search_call``, ``tool_search``, ...), ``content_part``,
  annotations and unknown events are passed over.

Whatever a server sends only whole (a ``.done`` without deltas, an item that
never streamed and appears only in ``response.completed``) is taken from there,
each thing once. ``response.completed`` -> finish ``stop`` plus usage (cached
tokens -> ``cache_read_tokens``, ``reasoning_tokens`` in details);
``response.incomplete`` -> ``length`` (``max_output_tokens``) or the raw reason;
``error`` / ``response.failed`` -> ``ModelStreamError`` with the error code as
``error_type`` and its status (``server_error`` 500 is retried before any
output, ``insufficient_quota`` never). A reasoning item's signature that comes
before any visible output is held back until the next output item, so it does
not end the window in which a failure may still be retried.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from .._sse import ServerSentEvent
from ..exceptions import ModelStreamError
from ..usage import Usage
from . import _json
from ._base import (FinishReport, ResponseInfo, StreamItem, TextChunk, ThinkingChunk, ToolCallChunk,
                    UsageReport)
from ._errors import in_band_error

__all__ = ["ResponsesTranslator", "usage_from_responses"]

_INCOMPLETE = {"max_output_tokens": "length", "max_tokens": "length", "content_filter": "content_filter"}
_END = ("response.completed", "response.incomplete", "response.failed")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def usage_from_responses(raw: Dict[str, Any]) -> Usage:
    """``input_tokens``/``output_tokens`` (+ details) -> ``Usage``; ``input_tokens``
    includes the cached ones, ``output_tokens`` the reasoning ones."""
    details: Dict[str, int] = {}
    cache_read = cache_write = 0
    for key in ("input_tokens_details", "output_tokens_details"):
        source = raw.get(key)
        for name, value in (source.items() if isinstance(source, dict) else ()):
            if name == "cached_tokens":
                cache_read = _int(value)
            elif name == "cache_write_tokens":
                cache_write = _int(value)
            elif _int(value):
                details[name] = value
    return Usage(input_tokens=_int(raw.get("input_tokens")), output_tokens=_int(raw.get("output_tokens")),
                 cache_read_tokens=cache_read, cache_write_tokens=cache_write, details=details)


def responses_error(error: Any, line: str, where: str) -> ModelStreamError:
    """The error of an ``error`` event or a failed response (``in_band_error``: a rate limit is
    an ``InBandRateLimitError``); its error type is the code, which decides retries."""
    error = dict(error) if isinstance(error, dict) else {"message": str(error)}
    code = _str(error.get("code")) or _str(error.get("type"))
    if error.get("type") == "error":   # the event's own type, not an error type
        error.pop("type")
    message = error.get("message") or code or "unknown error"
    text = f"{message} ({code})" if code and code not in str(message) else str(message)
    exc = in_band_error(f"error inside the model {where}: {text}", error, line)
    exc.error_type = code or exc.error_type
    return exc


class _Item:
    """One output item: its kind, id, and which of its pieces were already reported."""

    __slots__ = ("kind", "id", "first_key", "seen", "signed", "args")

    def __init__(self, kind: str, item_id: Optional[str]) -> None:
        self.kind = kind                       # "message" | "reasoning" | "function_call" | "ignored"
        self.id = item_id
        self.first_key: Any = None             # key of the first thinking part (gets the signature)
        self.seen: Set[Any] = set()            # part keys that had text
        self.signed = False
        self.args = False                      # function arguments reported


class ResponsesTranslator:
    """Translates one Responses stream (see the module docstring)."""

    def __init__(self) -> None:
        self._done = False
        self._ended = False                    # completed / incomplete seen
        self._info = False
        self._items: Dict[Any, _Item] = {}     # key -> item
        self._by_id: Dict[str, Any] = {}       # item id -> key
        self._pending: List[StreamItem] = []   # signatures held back until the first output
        self._output = False                   # an output item was returned

    @property
    def done(self) -> bool:
        return self._done

    def finish(self) -> List[StreamItem]:
        if not self._ended:
            raise ModelStreamError("the stream ended before response.completed: the response was cut off")
        items, self._pending = self._pending, []
        return items

    def translate(self, event: ServerSentEvent) -> List[StreamItem]:
        data = event.data.strip()
        if self._done or not data:
            return []
        if data == "[DONE]":   # OpenRouter, after response.completed
            self._done = True
            return []
        payload = _json.event_object(data)
        kind = payload.get("type") or event.event
        if kind == "error" or ("type" not in payload and payload.get("error")):   # also a bare {"error": ...}
            raise responses_error(payload.get("error") or payload, data, "stream")
        if kind == "response.failed":
            response = payload.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            raise responses_error(error or {"message": "the response failed"}, data, "response")
        handler = _HANDLERS.get(kind)
        return self._release(handler(self, payload)) if handler else []   # unknown types: ignored

    # -- output bookkeeping -------------------------------------------------------
    def _release(self, items: List[StreamItem]) -> List[StreamItem]:
        """Hold back signature-only items until real output (or the end) comes."""
        if not items:
            return items
        if not self._output and not self._ended:
            if all(isinstance(i, ThinkingChunk) and not i.text for i in items):
                self._pending.extend(items)
                return []
            if not any(isinstance(i, (TextChunk, ThinkingChunk, ToolCallChunk)) for i in items):
                return items
            self._output = True
        if self._pending:
            items, self._pending = self._pending + items, []
        return items

    def _key(self, payload: Dict[str, Any]) -> Any:
        item_id = _str(payload.get("item_id"))
        if item_id is not None and item_id in self._by_id:
            return self._by_id[item_id]
        index = payload.get("output_index")
        if isinstance(index, int) and not isinstance(index, bool):
            return index
        return item_id

    def _item(self, key: Any, kind: str, item_id: Optional[str] = None) -> _Item:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = _Item(kind, item_id)
            if item_id:
                self._by_id.setdefault(item_id, key)
        elif item_id and not item.id:
            item.id = item_id
        return item

    # -- events -------------------------------------------------------------------
    def _created(self, payload: Dict[str, Any]) -> List[StreamItem]:
        response = payload.get("response")
        if self._info or not isinstance(response, dict):
            return []
        model, rid = _str(response.get("model")), _str(response.get("id"))
        if not (model or rid):
            return []
        self._info = True
        return [ResponseInfo(model, rid)]

    def _added(self, payload: Dict[str, Any]) -> List[StreamItem]:
        raw = payload.get("item")
        raw = raw if isinstance(raw, dict) else {}
        kind = raw.get("type")
        kind = kind if kind in ("message", "reasoning", "function_call") else "ignored"
        key = self._key({"output_index": payload.get("output_index"), "item_id": raw.get("id")})
        item = self._item(key, kind, _str(raw.get("id")))
        if kind != "function_call":
            return []
        return [ToolCallChunk(key, _str(raw.get("name")), _str(raw.get("call_id")), None, provider_id=item.id)]

    def _text_delta(self, payload: Dict[str, Any]) -> List[StreamItem]:
        key = self._key(payload)
        return self._text(key, payload.get("content_index"), payload.get("delta"), False, payload)

    def _text_done(self, payload: Dict[str, Any]) -> List[StreamItem]:
        key = self._key(payload)
        text = payload.get("text") if "text" in payload else payload.get("refusal")
        return self._text(key, payload.get("content_index"), text, True, payload)

    def _text(self, key: Any, index: Any, text: Any, whole: bool, payload: Dict[str, Any]) -> List[StreamItem]:
        """Text of a message's content part; a whole text only if no delta of that part came."""
        item = self._item(key, "message", _str(payload.get("item_id")))
        part = index if isinstance(index, int) else 0
        if item.kind != "message" or not isinstance(text, str) or not text or (whole and part in item.seen):
            return []
        item.seen.add(part)
        return [TextChunk(text, key, provider_id=item.id)]

    def _thinking(self, payload: Dict[str, Any], piece: str, whole: bool) -> List[StreamItem]:
        key = self._key(payload)
        item = self._item(key, "reasoning", _str(payload.get("item_id")))
        index = payload.get("summary_index") if piece == "s" else payload.get("content_index")
        part = (key, piece, index if isinstance(index, int) else 0)
        text = payload.get("text") if whole else payload.get("delta")
        if item.kind != "reasoning" or not isinstance(text, str) or not text or (whole and part in item.seen):
            return []
        item.seen.add(part)
        return [self._thinking_chunk(item, part, text)]

    def _thinking_chunk(self, item: _Item, part: Any, text: str, signature: Optional[str] = None) -> ThinkingChunk:
        if item.first_key is None:
            item.first_key = part
        return ThinkingChunk(text, part, signature=signature, provider_id=item.id)

    def _args_delta(self, payload: Dict[str, Any]) -> List[StreamItem]:
        key = self._key(payload)
        item = self._item(key, "function_call", _str(payload.get("item_id")))
        fragment = payload.get("delta")
        if item.kind != "function_call" or not isinstance(fragment, str) or not fragment:
            return []
        item.args = True
        return [ToolCallChunk(key, args=fragment, provider_id=item.id)]

    def _args_done(self, payload: Dict[str, Any]) -> List[StreamItem]:
        key = self._key(payload)
        item = self._item(key, "function_call", _str(payload.get("item_id")))
        if item.kind != "function_call":
            return []
        return self._call_rest(key, item, payload)

    def _call_rest(self, key: Any, item: _Item, raw: Dict[str, Any]) -> List[StreamItem]:
        """Name / call id / arguments a server sent only whole."""
        name, call_id, args = _str(raw.get("name")), _str(raw.get("call_id")), raw.get("arguments")
        args = args if isinstance(args, (str, dict)) and args and not item.args else None
        if args is None and not (name or call_id):
            return []
        item.args = item.args or args is not None
        return [ToolCallChunk(key, name, call_id, args, provider_id=item.id)]

    def _done_item(self, payload: Dict[str, Any]) -> List[StreamItem]:
        raw = payload.get("item")
        if not isinstance(raw, dict):
            return []
        return self._finish_item(self._key({"output_index": payload.get("output_index"),
                                            "item_id": raw.get("id")}), raw)

    def _finish_item(self, key: Any, raw: Dict[str, Any]) -> List[StreamItem]:
        """A finished item (``output_item.done``, or one of the final response's output):
        what was not streamed of it."""
        kind = raw.get("type")
        kind = kind if kind in ("message", "reasoning", "function_call") else "ignored"
        item = self._item(key, kind, _str(raw.get("id")))
        if item.kind != kind or kind == "ignored":
            return []
        if kind == "function_call":
            return self._call_rest(key, item, raw)
        out: List[StreamItem] = []
        if kind == "message":
            for index, part in enumerate(raw.get("content") or ()):
                if isinstance(part, dict):
                    out.extend(self._text(key, index, part.get("text") or part.get("refusal"), True, {}))
            return out
        for piece, field in (("s", "summary"), ("c", "content")):
            for index, part in enumerate(raw.get(field) or ()):
                text = part.get("text") if isinstance(part, dict) else None
                name = (key, piece, index)
                if isinstance(text, str) and text and name not in item.seen:
                    item.seen.add(name)
                    out.append(self._thinking_chunk(item, name, text))
        signature = _str(raw.get("encrypted_content"))
        if signature and not item.signed:
            item.signed = True
            out.append(ThinkingChunk("", item.first_key if item.first_key is not None else (key, "r", 0),
                                     signature=signature, provider_id=item.id))
        return out

    def _end(self, payload: Dict[str, Any]) -> List[StreamItem]:
        response = payload.get("response")
        response = response if isinstance(response, dict) else {}
        items: List[StreamItem] = self._created(payload)
        output = response.get("output")
        for index, raw in enumerate(output if isinstance(output, list) else ()):
            if isinstance(raw, dict):   # an item is found by its index, else by its id
                key = index if index in self._items else self._by_id.get(_str(raw.get("id")) or "", index)
                items.extend(self._finish_item(key, raw))
        usage = response.get("usage")
        if isinstance(usage, dict):
            items.append(UsageReport(usage_from_responses(usage)))
        kind = payload.get("type")
        if kind == "response.completed":
            items.append(FinishReport("stop"))
        elif kind == "response.incomplete":
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            items.append(FinishReport(_INCOMPLETE.get(reason, reason) if isinstance(reason, str) and reason
                                      else "length"))
        self._ended = self._done = True
        items, self._pending = self._pending + items, []
        return items


_HANDLERS = {
    "response.created": ResponsesTranslator._created,
    "response.in_progress": ResponsesTranslator._created,
    "response.queued": ResponsesTranslator._created,
    "response.output_item.added": ResponsesTranslator._added,
    "response.output_item.done": ResponsesTranslator._done_item,
    "response.output_text.delta": ResponsesTranslator._text_delta,
    "response.refusal.delta": ResponsesTranslator._text_delta,
    "response.output_text.done": ResponsesTranslator._text_done,
    "response.refusal.done": ResponsesTranslator._text_done,
    "response.reasoning_summary_text.delta": lambda self, p: self._thinking(p, "s", False),
    "response.reasoning_summary_text.done": lambda self, p: self._thinking(p, "s", True),
    "response.reasoning_text.delta": lambda self, p: self._thinking(p, "c", False),
    "response.reasoning_text.done": lambda self, p: self._thinking(p, "c", True),
    "response.function_call_arguments.delta": ResponsesTranslator._args_delta,
    "response.function_call_arguments.done": ResponsesTranslator._args_done,
    "response.completed": ResponsesTranslator._end,
    "response.incomplete": ResponsesTranslator._end,
}
