"""OpenAI Chat Completions stream -> neutral stream items (pure; no I/O).

One ``OpenAIChatTranslator`` per response. It takes ``ServerSentEvent``s and
returns ``TextChunk``/``ThinkingChunk``/``ToolCallChunk``/``UsageReport``/
``FinishReport``/``ResponseInfo`` items; ``_accumulate.ResponseBuilder``
does the rest. It copes with the compatible servers' variations
(``notes/streaming-gotchas.md``):

* #10 chunks with ``choices: []`` or no choices at all; only choice 0 is read.
* #11 tool-call id/name repeated or blanked: passed on as is, the builder
  keeps the first non-empty value.
* #12/#13 ``index`` missing (-> position in the delta list) or every call at
  index 0: a NEW non-empty id at a known index starts a new call.
* #14 arguments ``""``/``null``/absent/whole dict; #15 whole calls and
  arguments in the finish chunk (items of a chunk come before its finish).
* #16 finish_reason: last non-empty wins, unknown values kept raw.
* #17 usage: every usage object is reported, the builder keeps the last;
  Groq's ``x_groq.usage`` too.
* #19 ``reasoning_content`` / ``reasoning`` / ``reasoning_details``, once. OpenRouter's
  ``reasoning_details`` entries win when present: one thinking part per entry (by ``index`` and
  ``type``) keeping its signature, encrypted ``data``, ``id`` and ``format`` to be sent back.
* usage whose ``completion_tokens`` leave the reasoning tokens out (xAI: the total is
  prompt + completion + reasoning) gets them added to the output tokens.
* #20 ``{"error": ...}`` inside the stream -> ``ModelStreamError``, classified by
  its code as well as its type (a rate limit is also a ``RateLimitError``).
* #29 unknown fields ignored.
Plus Mistral's content lists (``[{"type": "thinking", ...}]``) and
``<think>...</think>`` at the start of the content (DeepSeek-R1 distills).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from .._sse import ServerSentEvent
from ..exceptions import ModelStreamError
from ..usage import Usage
from . import _json
from ._base import (FinishReport, ResponseInfo, StreamItem, TextChunk, ThinkingChunk, ToolCallChunk,
                    UsageReport)
from ._errors import in_band_error

__all__ = ["OpenAIChatTranslator", "map_finish_reason", "usage_from_openai"]

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
           "content_filter": "content_filter", "error": "error", "end_turn": "stop", "eos": "stop",
           "max_tokens": "length"}
_OPEN, _CLOSE = "<think>", "</think>"
_PLAIN_DELTA = frozenset(("content", "role", "refusal"))   # delta keys of a plain text chunk


def map_finish_reason(reason: Any) -> Optional[str]:
    """Normalise a finish_reason; ``""``/None -> None; unknown values are kept raw."""
    if not isinstance(reason, str) or not reason:
        return None
    return _FINISH.get(reason, reason)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_openai(raw: Dict[str, Any]) -> Usage:
    """``prompt_tokens``/``completion_tokens`` (+ details) -> ``Usage``."""
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    details: Dict[str, int] = {}
    for source in (prompt, completion):
        if isinstance(source, dict):
            for key, value in source.items():
                if _int(value) and key not in ("cached_tokens", "cache_write_tokens"):
                    details[key] = value
    if _int(raw.get("prompt_cache_miss_tokens")):
        details["prompt_cache_miss_tokens"] = raw["prompt_cache_miss_tokens"]
    cache_read = _int(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0
    cache_read = cache_read or _int(raw.get("prompt_cache_hit_tokens"))
    cache_write = _int(prompt.get("cache_write_tokens")) if isinstance(prompt, dict) else 0
    input_tokens, output = _int(raw.get("prompt_tokens")), _int(raw.get("completion_tokens"))
    reasoning = _int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0
    if reasoning and _int(raw.get("total_tokens")) == input_tokens + output + reasoning:
        output += reasoning   # xAI: completion_tokens exclude the reasoning tokens (OpenAI's include them)
    return Usage(input_tokens=input_tokens, output_tokens=output,
                 cache_read_tokens=cache_read, cache_write_tokens=cache_write, details=details)


def stream_error(error: Any, line: str, where: str = "stream") -> ModelStreamError:
    """The error for an ``{"error": ...}`` payload (OpenAI / compatible shape), classified by its
    code as well as its type (``_errors.classify_error``); a rate limit is a ``RateLimitError``."""
    message = (error.get("message") or json.dumps(error)[:300]) if isinstance(error, dict) else str(error)
    return in_band_error(f"error inside the model {where}: {message}", error, line)


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


#: the fields of a ``reasoning_details`` entry with a home on ThinkingPart; the rest is provider_details
_DETAIL_FIELDS = frozenset(("text", "summary", "data", "signature", "id"))


def _detail_chunk(position: int, entry: Dict[str, Any]) -> ThinkingChunk:
    """One OpenRouter ``reasoning_details`` entry (a fragment of the entry at its ``index``):
    ``reasoning.text`` (text, signature), ``reasoning.summary`` (summary) or
    ``reasoning.encrypted`` (data). ``openai_chat`` rebuilds the entry from the part."""
    index = entry.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        index = position
    kind = entry["type"]
    text = entry.get("summary") if kind == "reasoning.summary" else entry.get("text")
    details = {k: v for k, v in entry.items() if k not in _DETAIL_FIELDS and v is not None}
    return ThinkingChunk(text if isinstance(text, str) else "", part_id=("details", index, kind),
                         signature=_str(entry.get("signature")), redacted_data=_str(entry.get("data")),
                         provider_id=_str(entry.get("id")), details=details)


class _ThinkTags:
    """Splits ``<think>...</think>`` off the start of the content (tags may straddle deltas)."""

    def __init__(self) -> None:
        self.state = "start"      # start -> thinking -> after (strip leading space) -> text
        self.pending = ""

    def feed(self, text: str) -> List[StreamItem]:
        out: List[StreamItem] = []
        self.pending += text
        while self.pending:
            buf = self.pending
            if self.state == "start":
                stripped = buf.lstrip()
                if stripped.startswith(_OPEN):
                    self.pending, self.state = stripped[len(_OPEN):], "thinking"
                elif _OPEN.startswith(stripped):
                    return out  # blank, or could still become "<think>"
                else:
                    self.state = "text"
            elif self.state == "thinking":
                end = buf.find(_CLOSE)
                if end >= 0:
                    if end:
                        out.append(ThinkingChunk(buf[:end]))
                    self.pending, self.state = buf[end + len(_CLOSE):], "after"
                    continue
                keep = next((n for n in range(len(_CLOSE) - 1, 0, -1) if buf.endswith(_CLOSE[:n])), 0)
                if len(buf) > keep:
                    out.append(ThinkingChunk(buf[:len(buf) - keep]))
                self.pending = buf[len(buf) - keep:]
                return out
            elif self.state == "after":
                self.pending = buf.lstrip()
                if self.pending:
                    self.state = "text"
            else:
                out.append(TextChunk(buf))
                self.pending = ""
        return out

    def flush(self) -> List[StreamItem]:
        buf, self.pending = self.pending, ""
        if not buf:
            return []
        return [ThinkingChunk(buf)] if self.state == "thinking" else [TextChunk(buf)]


class OpenAIChatTranslator:
    """Translates one Chat Completions stream (see the module docstring)."""

    def __init__(self) -> None:
        self._done = False
        self._finished = False          # a finish_reason was seen
        self._model: Optional[str] = None
        self._id: Optional[str] = None
        self._slots: Dict[int, List[Any]] = {}   # tool index -> [part_id, call id]
        self._calls = 0
        self._think = _ThinkTags()

    @property
    def done(self) -> bool:
        return self._done

    def translate(self, event: ServerSentEvent) -> List[StreamItem]:
        data = event.data.strip()
        if self._done or not data:
            return []
        if data == "[DONE]":
            self._done = True
            return []
        try:
            chunk = _json.loads(data)
        except ValueError:
            if event.stray:
                raise ModelStreamError(f"unexpected non-SSE line in the stream: {data[:200]}", line=data) from None
            raise ModelStreamError(f"malformed JSON in the stream: {data[:200]}", line=data) from None
        if not isinstance(chunk, dict):
            raise ModelStreamError(f"unexpected stream chunk: {data[:200]}", line=data)
        if chunk.get("error"):  # gotcha #20 (also `event: error` and stray JSON lines)
            raise stream_error(chunk["error"], data)
        if event.stray:
            raise ModelStreamError(f"unexpected non-SSE line in the stream: {data[:200]}", line=data)
        if self._think.state == "text":   # the common chunk, without the general walk below
            text = self._plain_text(chunk)
            if text is not None:
                return [TextChunk(text)]
        items: List[StreamItem] = []
        self._info(chunk, items)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():   # gotcha #10
            if isinstance(choice, dict) and choice.get("index", 0) in (0, None):
                self._choice(choice, items)
        usage = chunk.get("usage")
        if not isinstance(usage, dict):
            x_groq = chunk.get("x_groq")
            usage = x_groq.get("usage") if isinstance(x_groq, dict) else None
        if isinstance(usage, dict):   # gotcha #17: report each, the builder keeps the last
            items.append(UsageReport(usage_from_openai(usage)))
        return items

    def finish(self) -> List[StreamItem]:
        items = self._think.flush()
        if not self._done and not self._finished:
            raise ModelStreamError("the stream ended before [DONE] or a finish_reason: the response was cut off")
        return items

    # -- pieces -----------------------------------------------------------------
    def _plain_text(self, chunk: Dict[str, Any]) -> Optional[str]:
        """The content of a chunk that yields exactly ``[TextChunk(content)]`` past the
        ``<think>`` check: one choice (index 0), a delta of only non-empty ``content``,
        ``role`` and an empty ``refusal``, no finish_reason, usage or error, and no
        model / id not reported yet. None for any other chunk."""
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1 or chunk.get("usage") is not None or "x_groq" in chunk:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("finish_reason") is not None \
                or choice.get("index", 0) not in (0, None):
            return None
        delta = choice.get("delta")
        if type(delta) is not dict or not delta.keys() <= _PLAIN_DELTA or delta.get("refusal"):
            return None
        content = delta.get("content")
        if type(content) is not str or not content:
            return None
        if not (self._model and self._id):   # would _info() report something?
            model, rid = chunk.get("model"), chunk.get("id")
            if (not self._model and isinstance(model, str) and model) or \
                    (not self._id and isinstance(rid, str) and rid):
                return None
        return content

    def _info(self, chunk: Dict[str, Any], items: List[StreamItem]) -> None:
        model, rid = chunk.get("model"), chunk.get("id")
        model = model if isinstance(model, str) and model and not self._model else None
        rid = rid if isinstance(rid, str) and rid and not self._id else None
        if model or rid:
            self._model = self._model or model
            self._id = self._id or rid
            items.append(ResponseInfo(model, rid))

    def _choice(self, choice: Dict[str, Any], items: List[StreamItem]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        self._reasoning(delta, items)
        content = delta.get("content")
        if isinstance(content, str) and content:
            items.extend(self._think.feed(content))
        elif isinstance(content, list):   # Mistral: list of typed chunks
            self._content_list(content, items)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            items.append(TextChunk(refusal))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    items.append(self._tool_call(position, call))
        elif isinstance(delta.get("function_call"), dict):  # legacy single function call
            items.append(self._tool_call(0, {"function": delta["function_call"]}))
        reason = map_finish_reason(choice.get("finish_reason"))
        if reason:   # after every delta of the chunk (gotcha #15)
            self._finished = True
            items.append(FinishReport(reason))

    def _reasoning(self, delta: Dict[str, Any], items: List[StreamItem]) -> None:
        details = delta.get("reasoning_details")
        entries = [d for d in details if isinstance(d, dict) and isinstance(d.get("type"), str)] \
            if isinstance(details, list) else []
        if entries:   # they carry what "reasoning" has, and what must go back (gotcha #19: once)
            items.extend(_detail_chunk(position, entry) for position, entry in enumerate(entries))
            return
        text = next((v for v in (delta.get("reasoning_content"), delta.get("reasoning"))
                     if isinstance(v, str) and v), None)   # gotcha #19: both present -> once
        if text:
            items.append(ThinkingChunk(text))

    def _content_list(self, content: List[Any], items: List[StreamItem]) -> None:
        for piece in content:
            if isinstance(piece, str):
                items.extend(self._think.feed(piece))
            elif not isinstance(piece, dict):
                continue
            elif piece.get("type") == "text" and isinstance(piece.get("text"), str):
                items.extend(self._think.feed(piece["text"]))
            elif piece.get("type") == "thinking":
                inner = piece.get("thinking")
                inner = inner if isinstance(inner, list) else [inner]
                text = "".join(i if isinstance(i, str) else (i.get("text") or "") if isinstance(i, dict) else ""
                               for i in inner)
                if text:
                    items.append(ThinkingChunk(text))

    def _tool_call(self, position: int, call: Dict[str, Any]) -> ToolCallChunk:
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position                                   # gotcha #12
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        slot = self._slots.get(index)
        if slot is None or (call_id and slot[1] and call_id != slot[1]):   # gotcha #12/#13
            slot = self._slots[index] = [("tool", self._calls), call_id]
            self._calls += 1
        elif call_id and not slot[1]:
            slot[1] = call_id
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name") if isinstance(function.get("name"), str) and function.get("name") else None
        args = function.get("arguments")
        if not isinstance(args, (str, dict)) or args == "":    # gotcha #14
            args = None
        return ToolCallChunk(slot[0], name, call_id, args)
