"""requests I/O for streaming models: open a response, read its SSE events.

Layer: ``models/_http_model.py`` -> ``_http.py`` -> (``_session.py``, ``_abort.py``,
``_chunked.py``, ``_sse.py``). Knows nothing of providers; never imports the layers above.
Every requests / urllib3 / socket error is mapped to ours here (``raise ... from exc``):

* connect refused / DNS / TLS / dropped before headers -> ``ModelStreamError``
  (``error_type="connection_error"``);
* no connection or no headers within ``Timeout.connect`` -> ``StreamTimeout("connect")``;
* no content bytes for ``Timeout.idle`` (``:`` keep-alive comments do not count) ->
  ``StreamTimeout("idle")``; the whole response over ``Timeout.total`` -> ``StreamTimeout("total")``;
* connection cut mid-body -> ``ModelStreamError`` (``error_type="connection_cut"``) naming the
  bytes received; invalid UTF-8 / oversized line -> ``ModelStreamError(line=...)``;
* a header value requests refuses -> ``UserError`` with a fixed message and no chained
  exception (requests' message holds the value: possibly the API key);
* any failure after a cancel aborted the socket -> ``StreamAborted`` (private: a cancel,
  never reported as an error; see ``_abort.py``).

Bodies are read with ``raw.read1(read_size, decode_content=True)`` so each token reaches the
caller as soon as its bytes arrive, in chunked and close-delimited framing alike (gotcha #1).
A chunked body without ``Content-Encoding`` is decoded by ``_chunked._ChunkedReader`` instead.

The names other modules and tests use from the split-out modules (``new_session``,
``AbortableAdapter``, ``StreamAborted``, ``_ChunkedReader``, ...) stay importable from here.
Headers, keys and query strings are never logged or put in a message.
"""
from __future__ import annotations

import logging
import re
import socket
import time
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests

from ._abort import (AbortableAdapter, StreamAborted, _Abort, _ReportingConnection,  # noqa: F401 (re-exported)
                     _socket_of, _tls, abort)
from ._chunked import ChunkedBodyError, _ChunkedReader, _chunked_reader  # noqa: F401 (re-exported)
from ._session import POOL_MAXSIZE, _PREPARED_MAX, _post, _Session, new_session  # noqa: F401 (re-exported)
from ._sse import ServerSentEvent, SSEDecodeError, SSEDecoder, decoder_state, events_before_error, made_progress
from .exceptions import ModelStreamError, StreamTimeout, UserError
from .settings import Timeout

__all__ = ["AbortableAdapter", "OpenResponse", "StreamAborted", "abort", "describe_error",
           "new_session", "open_response", "safe_url"]

log = logging.getLogger("agentstream")


# --- messages ----------------------------------------------------------------------------

_QUERY = re.compile(r"\?[^\s'\")]+")


def safe_url(url: str) -> str:
    """``url`` without credentials or query string (for messages and logs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else _QUERY.sub("?…", url)
    except ValueError:
        return "<invalid url>"


def describe_error(exc: BaseException) -> str:
    """The root cause of a requests/urllib3 error, without URLs' query strings."""
    chain = [exc]
    for _ in range(8):
        e = chain[-1]
        reason = getattr(e, "reason", None)
        args = [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        nxt = reason if isinstance(reason, BaseException) else (args[0] if args else e.__cause__)
        if nxt is None or any(nxt is c for c in chain):
            break
        chain.append(nxt)
    for e in reversed(chain):
        if isinstance(e, OSError) and e.strerror:
            return f"{e.strerror} (errno {e.errno})" if e.errno else str(e.strerror)
    last = chain[-1]
    return _QUERY.sub("?…", f"{type(last).__name__}: {last}" if str(last) else type(last).__name__)


def _map_open_error(exc: requests.RequestException, url: str, connect: Optional[float],
                    header_wait: Optional[float], kind: str) -> Exception:
    where = safe_url(url)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return StreamTimeout(f"could not connect to {where} within {connect:g} s (Timeout.{kind})",
                             kind=kind, seconds=connect)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return StreamTimeout(f"no response headers from {where} within {header_wait:g} s "
                             f"(Timeout.{kind})", kind=kind, seconds=header_wait)
    if isinstance(exc, requests.exceptions.InvalidHeader):   # its message holds the value (a key?)
        return UserError(f"invalid request to {where}: a header value has leading or trailing "
                         f"whitespace, a line break or another character HTTP does not allow "
                         f"(check the API key and headers=)")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidJSONError)):
        return UserError(f"invalid request to {where}: {describe_error(exc)}")
    return ModelStreamError(f"connection to {where} failed: {describe_error(exc)}",
                            error_type="connection_error")


# --- opening -------------------------------------------------------------------------------

def _register(cancel: Any, handle: _Abort) -> Callable[[], None]:
    add = getattr(cancel, "add_callback", None)
    return add(handle) if add is not None else (lambda: None)


def open_response(session: requests.Session, url: str, *, json_body: Any, headers: Mapping[str, str],
                  timeout: Timeout, cancel: Any = None, read_size: int = 65536) -> Optional["OpenResponse"]:
    """POST ``json_body`` with ``stream=True``; return the open response, or None if cancelled.

    ``Timeout.connect`` bounds both the TCP connect and the wait for the headers; both are
    also capped by ``Timeout.total``, which starts now.
    """
    started = time.monotonic()
    handle = _Abort()
    unregister = _register(cancel, handle)
    connect = header_wait = timeout.connect
    kind = "connect"
    if timeout.total is not None and (connect is None or timeout.total < connect):
        connect = header_wait = timeout.total
        kind = "total"
    log.debug("POST %s", safe_url(url))
    _tls.abort = handle
    unchained: Optional[Exception] = None
    try:
        response = _post(session, url, json_body, headers, (connect, header_wait))
    except requests.RequestException as exc:
        unregister()
        handle.detach()
        if handle.aborted:
            return None
        error = _map_open_error(exc, url, connect, header_wait, kind)
        if not isinstance(exc, requests.exceptions.InvalidHeader):
            raise error from exc
        unchained = error   # raised below, outside the handler: no __cause__ nor __context__
    except BaseException:
        unregister()
        handle.detach()
        raise
    finally:
        _tls.abort = None
    if unchained is not None:
        raise unchained from None
    handle.attach(response=response)
    opened = OpenResponse(response, handle, unregister, timeout, started, read_size)
    if handle.aborted:
        opened.close()
        return None
    log.debug("HTTP %s %s", response.status_code, opened.content_type or "(no content type)")
    return opened


# --- reading -------------------------------------------------------------------------------

class OpenResponse:
    """One open streaming response: status, headers, bounded body reads, SSE events."""

    def __init__(self, response: requests.Response, handle: _Abort, unregister: Callable[[], None],
                 timeout: Timeout, started: float, read_size: int) -> None:
        self.response = response
        self.timeout = timeout
        self.deadline = started + timeout.total if timeout.total is not None else None
        self.read_size = read_size
        self.bytes_read = 0
        self.eof = False
        self._handle = handle
        self._unregister = unregister
        self._sock = _socket_of(response)
        self._sock_timeout: Any = object()
        raw = response.raw
        chunked = _chunked_reader(response)
        if chunked is not None:
            self._read: Callable[[int], bytes] = chunked.read
        elif hasattr(raw, "read1"):
            self._read = lambda n: raw.read1(n, decode_content=True)
        else:  # urllib3 < 2.2: may batch close-delimited bodies
            self._read = lambda n: raw.read(n, decode_content=True)

    status = property(lambda self: self.response.status_code)
    headers = property(lambda self: self.response.headers)

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters ("" if absent)."""
        return self.response.headers.get("content-type", "").split(";")[0].strip().lower()

    def _settimeout(self, seconds: Optional[float]) -> None:
        """Bound the next read by ``seconds``. The socket's timeout is changed only when it is
        not already within [seconds, seconds * 1.1 + 50 ms]: a read that ends up to that much
        late still raises the right error (the budget is checked again before every read),
        and a syscall per read is saved."""
        current = self._sock_timeout
        if self._sock is None or seconds == current:
            return
        if seconds is not None and current.__class__ is float and seconds <= current <= seconds * 1.1 + 0.05:
            return
        try:
            self._sock.settimeout(seconds)
            self._sock_timeout = None if seconds is None else float(seconds)
        except OSError:
            pass

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
            msg = (f"no content from the server for {seconds:g} s (Timeout.idle; keep-alive "
                   f"comments do not count) after {self.bytes_read} bytes")
        else:
            msg = f"the response took longer than {seconds:g} s (Timeout.total) after {self.bytes_read} bytes"
        return StreamTimeout(msg, kind=kind, seconds=seconds)

    def _read_once(self, kind: str, seconds: Optional[float]) -> bytes:
        try:
            chunk = self._read(self.read_size)
        except Exception as exc:
            if self._handle.aborted:
                raise StreamAborted() from exc
            if _is_timeout(exc):
                raise self._timeout_error(kind, seconds) from exc
            raise ModelStreamError(f"connection cut after {self.bytes_read} bytes of the response: "
                                   f"{describe_error(exc)}", error_type="connection_cut") from exc
        if not chunk and self._handle.aborted:
            raise StreamAborted()
        self.bytes_read += len(chunk)
        return chunk

    def read_body(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes of the body (for error responses); never raises on I/O errors."""
        parts, size = [], 0
        try:
            while size < limit:
                wait, kind, seconds = self._budget(time.monotonic())
                self._settimeout(wait)
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
        last = time.monotonic()
        seen = decoder.content_lines
        while True:
            wait, kind, seconds = self._budget(last)
            self._settimeout(wait)
            chunk = self._read_once(kind, seconds)
            if not chunk:
                self.eof = True
                break
            state = decoder_state(decoder)
            try:
                events = decoder.feed(chunk)
            except SSEDecodeError as exc:
                before = events_before_error(decoder, state, chunk)
                if before:   # the events of this read that came before the bad line
                    yield before
                raise ModelStreamError(f"undecodable stream after {self.bytes_read} bytes: {exc}",
                                       line=exc.line.decode("utf-8", "replace")) from exc
            if events:
                yield events
            if made_progress(decoder, seen, events, keepalive):
                last = time.monotonic()
            seen = decoder.content_lines
        try:
            tail = decoder.flush()
        except SSEDecodeError as exc:
            raise ModelStreamError(f"undecodable stream at its end: {exc}",
                                   line=exc.line.decode("utf-8", "replace")) from exc
        if tail:
            yield tail

    def drain(self, grace: float) -> None:
        """After the terminator: read to EOF for up to ``grace`` s so the connection can be reused."""
        if self.eof:
            return
        self._settimeout(max(grace, 0.001))
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
        self._handle.detach()
        try:
            if self.eof and not self._handle.aborted:
                self.response.raw.release_conn()
            self.response.close()
        except Exception:
            log.debug("closing the response failed", exc_info=True)


def _is_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    return isinstance(exc, (ReadTimeoutError, socket.timeout, requests.exceptions.Timeout))
