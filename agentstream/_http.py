"""requests I/O for streaming models: open a response, read its SSE events.

Layer: ``models/_http_model.py`` -> ``_http.py`` -> (``_session.py``, ``_abort.py``,
``_chunked.py``, ``_sse.py``, ``_http_errors.py``). Knows nothing of providers; never imports the layers above.
Every requests / urllib3 / socket error is mapped to ours here:

* connect refused / DNS / TLS / dropped before headers -> ``ModelStreamError``
  (``error_type="connection_error"``);
* no connection or no headers within ``Timeout.connect`` -> ``StreamTimeout("connect")``;
* no content bytes for ``Timeout.idle`` (``:`` keep-alive comments do not count) ->
  ``StreamTimeout("idle")``; the whole response over ``Timeout.total`` -> ``StreamTimeout("total")``;
* connection cut mid-body -> ``ModelStreamError`` (``error_type="connection_cut"``) naming the
  bytes received; invalid UTF-8 / oversized line -> ``ModelStreamError(line=...)``;
* a header value requests refuses -> ``UserError`` with a fixed message (requests' message
  holds the value: possibly the API key);
* any failure after a cancel aborted the socket -> ``StreamAborted`` (private: a cancel,
  never reported as an error; see ``_abort.py``).

No requests / urllib3 exception is ever chained to ours (neither ``__cause__`` nor
``__context__``): requests' keep the prepared request, ``Authorization`` header included.
The cause, if any, is a fresh copy of the root ``OSError`` (errno and text only).

Each response's connection has one owner (``_abort.ConnectionOwner``): the read timeout is
set, and a cancel shuts the socket down, only while urllib3 has not taken the connection
back -- it does so on its own at the end of a Content-Length body, after which another
request may already be reading that socket.

Bodies are read with ``raw.read1(read_size, decode_content=True)`` so each token reaches the
caller as soon as its bytes arrive, in chunked and close-delimited framing alike (gotcha #1).
A chunked body without ``Content-Encoding`` is decoded by ``_chunked._ChunkedReader`` instead.

URLs in messages and logs go through ``_http_errors.safe_url`` (no credentials, no query;
importable from here too); headers and keys are never logged or put in a message.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple

import requests

from ._abort import ConnectionOwner, StreamAborted, _tls
from ._chunked import _chunked_reader
from ._http_errors import clean_cause, describe_error, is_timeout, map_open_error, safe_url, secs
from ._session import _post
from ._sse import ServerSentEvent, SSEDecodeError, SSEDecoder
from .exceptions import ModelStreamError, StreamTimeout, UserError
from .settings import Timeout

__all__ = ["OpenResponse", "open_response", "safe_url"]

log = logging.getLogger("agentstream")


# --- opening -------------------------------------------------------------------------------

def _register(cancel: Any, owner: ConnectionOwner) -> Callable[[], None]:
    add = getattr(cancel, "add_callback", None)
    return add(owner) if add is not None else (lambda: None)


def open_response(session: requests.Session, url: str, *, json_body: Any, headers: Mapping[str, str],
                  timeout: Timeout, cancel: Any = None, read_size: int = 65536) -> Optional["OpenResponse"]:
    """POST ``json_body`` with ``stream=True``; return the open response, or None if cancelled.

    ``Timeout.connect`` bounds both the TCP connect and the wait for the headers; both are
    also capped by ``Timeout.total``, which starts now.
    """
    started = time.monotonic()
    owner = ConnectionOwner()
    unregister = _register(cancel, owner)
    connect = header_wait = timeout.connect
    kind = "connect"
    if timeout.total is not None and (connect is None or timeout.total < connect):
        connect = header_wait = timeout.total
        kind = "total"
    log.debug("POST %s", safe_url(url))
    _tls.owner = owner
    error: Optional[Exception] = None
    cause: Optional[BaseException] = None
    try:
        response = _post(session, url, json_body, headers, (connect, header_wait))
    except requests.RequestException as exc:
        error = map_open_error(exc, url, connect, header_wait, kind)
        cause = None if isinstance(error, UserError) else clean_cause(exc)
    except BaseException:
        unregister()
        owner.close()
        raise
    finally:
        _tls.owner = None
    if error is not None:   # raised here, outside the handler: no __context__
        unregister()
        if owner.close():   # aborted by a cancel
            return None
        raise error from cause
    owner.attach(response)
    opened = OpenResponse(response, owner, unregister, timeout, started, read_size)
    if owner.aborted:
        opened.close()
        return None
    log.debug("HTTP %s %s", response.status_code, opened.content_type or "(no content type)")
    return opened


# --- reading -------------------------------------------------------------------------------

class OpenResponse:
    """One open streaming response: status, headers, bounded body reads, SSE events.

    ``bytes_read``: body bytes so far; ``head``: the first bytes of the body (up to 200, for
    messages); ``eof``: the body was read to its end.
    """

    def __init__(self, response: requests.Response, owner: ConnectionOwner, unregister: Callable[[], None],
                 timeout: Timeout, started: float, read_size: int) -> None:
        self.response = response
        self.timeout = timeout
        self.deadline = started + timeout.total if timeout.total is not None else None
        self.read_size = read_size
        self.bytes_read = 0
        self.head = b""
        self.eof = False
        self._owner = owner
        self._unregister = unregister
        raw = response.raw
        chunked = _chunked_reader(response)
        if chunked is not None:
            self._read: Callable[[int], bytes] = chunked.read
        elif hasattr(raw, "read1"):
            self._read = lambda n: raw.read1(n, decode_content=True)
        else:  # a raw object without read1 (a mock): may batch close-delimited bodies
            self._read = lambda n: raw.read(n, decode_content=True)

    status = property(lambda self: self.response.status_code)
    headers = property(lambda self: self.response.headers)

    @property
    def url(self) -> str:
        """The URL that answered (after redirects), scrubbed (``safe_url``)."""
        return safe_url(getattr(self.response, "url", "") or "")

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters ("" if absent)."""
        return self.response.headers.get("content-type", "").split(";")[0].strip().lower()

    def _settimeout(self, seconds: Optional[float]) -> None:
        """Bound the next read by ``seconds`` (a no-op once urllib3 took the connection back)."""
        self._owner.settimeout(seconds)

    def _budget(self, last_content: float) -> Tuple[Optional[float], str, Optional[float]]:
        """(seconds left, which timeout, its setting); raises if one already passed."""
        now = time.monotonic()
        limit, kind, seconds = None, "idle", self.timeout.idle
        if seconds is not None:
            limit = last_content + seconds
        if self.deadline is not None and (limit is None or self.deadline <= limit):
            limit, kind, seconds = self.deadline, "total", self.timeout.total
        if limit is None:
            return None, kind, None
        if limit - now <= 0:
            raise self._timeout_error(kind, seconds)
        return limit - now, kind, seconds

    def _timeout_error(self, kind: str, seconds: Optional[float]) -> StreamTimeout:
        if kind == "idle":
            msg = (f"no content from the server for {secs(seconds)} (Timeout.idle; keep-alive "
                   f"comments do not count) after {self.bytes_read} bytes")
        else:
            msg = f"the response took longer than {secs(seconds)} (Timeout.total) after {self.bytes_read} bytes"
        return StreamTimeout(msg, kind=kind, seconds=seconds)

    def _read_once(self, kind: str, seconds: Optional[float]) -> bytes:
        try:
            chunk = self._read(self.read_size)
        except Exception as exc:
            error, cause = self._read_error(exc, kind, seconds), clean_cause(exc)
        else:
            if not chunk:
                if self._owner.aborted:
                    raise StreamAborted()
            elif not self.bytes_read:
                self.head = chunk[:200]
            self.bytes_read += len(chunk)
            return chunk
        raise error from cause   # outside the handler: no __context__

    def _read_error(self, exc: Exception, kind: str, seconds: Optional[float]) -> Exception:
        if self._owner.aborted:
            return StreamAborted()
        if is_timeout(exc):
            return self._timeout_error(kind, seconds)
        return ModelStreamError(f"connection cut after {self.bytes_read} bytes of the response: "
                                f"{describe_error(exc)}", error_type="connection_cut")

    def read_body(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes of the body (for error responses); never raises on I/O errors."""
        parts, size = [], 0
        try:
            while size < limit:
                wait, kind, seconds = self._budget(time.monotonic())
                self._owner.settimeout(wait)
                chunk = self._read_once(kind, seconds)
                if not chunk:
                    self.eof = True
                    break
                parts.append(chunk)
                size += len(chunk)
        except (ModelStreamError, StreamTimeout) as exc:
            log.debug("reading the error body failed: %s", exc)
        return b"".join(parts)[:limit]

    def reads(self, decoder: Optional[SSEDecoder] = None,
              keepalive: Optional[Callable[[ServerSentEvent], bool]] = None) -> Iterator[List[ServerSentEvent]]:
        """The body's SSE events as they arrive: one list per network read that completed any,
        then the flushed tail at EOF.

        Idle time is measured from the last byte of content and only while waiting for the
        server, not while the caller holds a batch. Keep-alives do not count: ``:`` comment
        lines, and events for which ``keepalive(event)`` is true (Anthropic's ``ping``).
        """
        decoder = decoder or SSEDecoder()
        settimeout = self._owner.settimeout
        last = time.monotonic()
        seen = decoder.content_lines
        while True:
            wait, kind, seconds = self._budget(last)
            settimeout(wait)
            chunk = self._read_once(kind, seconds)
            if not chunk:
                self.eof = True
                break
            try:
                events = decoder.feed(chunk)
            except SSEDecodeError as exc:
                error = ModelStreamError(f"undecodable stream after {self.bytes_read} bytes: {exc}",
                                         line=exc.line.decode("utf-8", "replace"))
                before = exc.events
            else:
                if events:
                    yield events
                if _made_progress(decoder, seen, events, keepalive):
                    last = time.monotonic()
                seen = decoder.content_lines
                continue
            if before:   # the events of this read that came before the bad line
                yield before
            raise error
        try:
            tail = decoder.flush()
        except SSEDecodeError as exc:
            error = ModelStreamError(f"undecodable stream at its end: {exc}",
                                     line=exc.line.decode("utf-8", "replace"))
            before = exc.events
        else:
            if tail:
                yield tail
            return
        if before:
            yield before
        raise error

    def drain(self, grace: float) -> None:
        """After the terminator: read to EOF for up to ``grace`` s so the connection can be reused.
        (Once urllib3 took the connection back, at the end of a Content-Length body, the reads
        just return the end: the socket is not touched.)"""
        if self.eof:
            return
        self._owner.settimeout(max(grace, 0.001))
        deadline = time.monotonic() + grace
        try:
            while time.monotonic() < deadline and self.bytes_read < 1 << 24:
                if not self._read_once("idle", grace):
                    self.eof = True
                    return
        except Exception as exc:
            log.debug("no clean end after the terminator (%s); closing the connection", type(exc).__name__)

    def close(self) -> None:
        """Unregister the cancel callback and close; reuse the connection if the body ended cleanly."""
        self._unregister()
        aborted = self._owner.close()   # from now on nothing here touches the connection
        try:
            if self.eof and not aborted:
                self.response.raw.release_conn()
            self.response.close()
        except Exception:
            log.debug("closing the response failed", exc_info=True)


def _made_progress(decoder: SSEDecoder, seen: int, events: List[ServerSentEvent],
                   keepalive: Optional[Callable[[ServerSentEvent], bool]]) -> bool:
    """Did the last read carry content (restarting the idle timer)? Comments never do; nor
    do events that are keep-alives, unless a real event has started after them."""
    if keepalive is None:
        return bool(events) or decoder.content_lines != seen or decoder.pending_content
    if any(not keepalive(event) for event in events):
        return True
    open_event = decoder.open_event
    return (open_event is not None and open_event != "ping") or decoder.pending_content
