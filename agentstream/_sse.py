"""Incremental Server-Sent-Events decoder (WHATWG event-stream rules), pure and sync.

Feed raw bytes as they arrive; get back completed events.  Lines are split only on
CRLF / LF / CR in the *byte* stream (a CRLF straddling two feeds is one terminator) and
each complete line is decoded as strict UTF-8, so reads that end mid-character are fine
and U+0085 / U+2028 / U+2029 are never treated as line breaks.

Field lines with an unknown name are ignored, as the spec says: ``foo: bar``, ``error``, and
`` data: x`` (its field name is `` data``, with the space). Lenient extensions: ``flush()``
dispatches an unterminated last event at EOF, and a line that cannot be a field line of an
event stream -- one starting with ``{`` or ``[`` (a raw JSON error body), or whose name
(before the first colon, surrounding blanks aside) is not a token, such as ``Internal Server
Error`` or ``<html>`` -- is reported as a ``stray`` event instead of being dropped, so a body
that is not an event stream (an HTML page, plain JSON, an error text) gives a clear error.

What a reader (``_http.OpenResponse.reads``) needs is public: ``content_lines`` /
``comment_lines``, ``pending_content`` (a content line partly received), ``open_event`` (the
event being received, if any) and ``SSEDecodeError.events`` (the events a failed ``feed``
completed before the bad line). Imports only the standard library: no requests, nothing of
agentstream.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, List, Optional

__all__ = ["SSEDecodeError", "ServerSentEvent", "SSEDecoder"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_BOM = b"\xef\xbb\xbf"
_new = object.__new__


class SSEDecodeError(ValueError):
    """Invalid UTF-8 in a line, or a line / pending event over ``max_event_bytes``.

    ``line`` holds the offending raw line (truncated to 200 bytes), ``events`` the events the
    failing ``feed`` completed before it (a read may hold many).  After this error the
    stream should be treated as broken: the rest of the chunk being fed is discarded.
    """

    def __init__(self, message: str, line: bytes = b"", events: Optional[List["ServerSentEvent"]] = None) -> None:
        super().__init__(message)
        self.line = bytes(line[:200])
        self.events: List[ServerSentEvent] = list(events or ())


@dataclass(frozen=True)
class ServerSentEvent:
    event: str = "message"  # last `event:` value of the event ("stray" for stray lines)
    data: str = ""  # data lines joined with "\n"
    id: Optional[str] = None  # last event id seen (persists across events, per WHATWG)
    retry: Optional[int] = None  # last valid `retry:` value seen (persists likewise)
    stray: bool = False  # a non-SSE line (e.g. raw JSON error); `data` is the whole line

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Incremental decoder: ``feed(bytes) -> [events]`` per read, ``flush()`` at EOF."""

    def __init__(self, max_event_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_event_bytes = max_event_bytes
        self.content_lines = 0  # completed non-empty, non-comment lines (liveness signal)
        self.comment_lines = 0  # `:` lines (keep-alives); deliberately not content
        self._reset()
        self._id: Optional[str] = None
        self._retry: Optional[int] = None

    def _reset(self) -> None:
        self._partial: List[bytes] = []  # pieces of the current unterminated line
        self._partial_len = 0
        self._cr = False  # previous feed ended in b"\r": skip a leading b"\n"
        self._bom = True  # first line of the stream not seen yet
        self._data: List[str] = []  # data lines of the pending event
        self._data_len = 0
        self._event = ""
        self._dirty = False  # a field line was seen since the last blank line
        self._unterminated = False  # flush() found a pending line/event

    @property
    def pending_content(self) -> bool:
        """True while a non-comment line is partly received (a big event still arriving)."""
        partial = self._partial
        return bool(partial) and partial[0][:1] != b":"

    @property
    def open_event(self) -> Optional[str]:
        """The ``event:`` type of the event being received ("" if it has none yet), or None
        when no field line came since the last blank line."""
        return self._event if self._dirty else None

    @property
    def ended_cleanly(self) -> bool:
        """True when no partial line or event is pending (last event ended by a blank line)."""
        return not (self._partial or self._dirty or self._unterminated)

    def feed(self, chunk: bytes) -> List[ServerSentEvent]:
        """Consume one read of the byte stream; return the events it completed."""
        if not chunk:
            return []
        self._unterminated = False
        if self._cr:
            self._cr = False
            if chunk[0] == 10:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\r" in chunk:
            self._cr = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        partial = self._partial
        if b"\n" not in chunk:  # still inside one line: just accumulate (no rescans)
            partial.append(chunk)
            self._partial_len += len(chunk)
            if self._partial_len > self.max_event_bytes:
                raise SSEDecodeError("SSE line exceeds max_event_bytes", b"".join(partial[:2]))
            return []
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if partial:
            partial.append(lines[0])
            lines[0] = b"".join(partial)
            self._partial = partial = []
        if tail:
            partial.append(tail)
        self._partial_len = len(tail)
        if len(lines[0]) + len(chunk) > self.max_event_bytes:
            for i, line in enumerate(lines):
                if len(line) > self.max_event_bytes:
                    raise SSEDecodeError("SSE line exceeds max_event_bytes", line,
                                         self._process(lines[:i]) if i else [])
            if len(tail) > self.max_event_bytes:
                raise SSEDecodeError("SSE line exceeds max_event_bytes", tail, self._process(lines))
        return self._process(lines)

    def flush(self) -> List[ServerSentEvent]:
        """At EOF: dispatch a pending unterminated line/event (lenient), then reset.

        The last event id / retry values are kept.  ``ended_cleanly`` is False afterwards
        if anything was pending, until more data is fed.
        """
        pending = bool(self._partial) or self._dirty
        out: List[ServerSentEvent] = []
        if self._partial:
            line = b"".join(self._partial)
            self._partial = []
            self._partial_len = 0
            out = self._process([line])
        if self._data:
            out.append(ServerSentEvent(self._event or "message", "\n".join(self._data),
                                       self._id, self._retry))
        self._reset()
        self._unterminated = pending
        return out

    def _process(self, lines: List[bytes]) -> List[ServerSentEvent]:
        if self._bom:
            self._bom = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        out: List[ServerSentEvent] = []
        data = self._data
        data_len = self._data_len
        limit = self.max_event_bytes
        event = self._event
        dirty = self._dirty
        content = comments = 0
        try:
            for line in lines:
                if not line:  # blank line: dispatch
                    if data:  # == ServerSentEvent(...), minus the slow frozen __init__
                        ev = _new(ServerSentEvent)
                        d = ev.__dict__
                        d["event"] = event or "message"
                        d["data"] = "\n".join(data)
                        d["id"] = self._id
                        d["retry"] = self._retry
                        out.append(ev)
                        data = []
                        data_len = 0
                    event = ""
                    dirty = False
                    continue
                if line[0] == 58:  # b":" comment / keep-alive
                    comments += 1
                    continue
                content += 1
                if line.startswith(b"data: "):  # the hot path
                    value = line[6:].decode("utf-8")
                    name = "data"
                else:
                    name, _, value = line.decode("utf-8").partition(":")
                    if value[:1] == " ":
                        value = value[1:]
                if name == "data":
                    data_len += len(line)
                    if data_len > limit:
                        raise SSEDecodeError("SSE event exceeds max_event_bytes", line, out)
                    data.append(value)
                    dirty = True
                elif name == "event":
                    event = value
                    dirty = True
                elif name == "id":
                    if "\0" not in value:
                        self._id = value
                    dirty = True
                elif name == "retry":
                    if value.isascii() and value.isdigit():
                        self._retry = int(value)
                    dirty = True
                elif line[0] in b"{[" or not _IDENT.match(name.strip(" \t")):
                    out.append(ServerSentEvent("stray", line.decode("utf-8"),
                                               self._id, self._retry, True))
                else:  # an unknown field (" data" too): ignored per spec
                    dirty = True
        except UnicodeDecodeError as exc:
            raise SSEDecodeError("invalid UTF-8 in SSE line: %s" % exc, line, out) from None
        finally:
            self._data = data
            self._data_len = data_len
            self._event = event
            self._dirty = dirty
            self.content_lines += content
            self.comment_lines += comments
        return out
