"""requests I/O for streaming models: open a response, read its SSE events, abort it.

Layer: ``models/_http_model.py`` -> ``_http.py`` -> ``_sse.py``. Knows nothing of
providers; never imports the layers above. Every requests / urllib3 / socket error is
mapped to ours here (``raise ... from exc``):

* connect refused / DNS / TLS / dropped before headers -> ``ModelStreamError``
  (``error_type="connection_error"``);
* no connection or no headers within ``Timeout.connect`` -> ``StreamTimeout("connect")``;
* no content bytes for ``Timeout.idle`` (``:`` keep-alive comments do not count) ->
  ``StreamTimeout("idle")``; the whole response over ``Timeout.total`` -> ``StreamTimeout("total")``;
* connection cut mid-body -> ``ModelStreamError`` (``error_type="connection_cut"``) naming the
  bytes received; invalid UTF-8 / oversized line -> ``ModelStreamError(line=...)``;
* any failure after a cancel aborted the socket -> ``StreamAborted`` (private: a cancel,
  never reported as an error).

Bodies are read with ``raw.read1(read_size, decode_content=True)`` so each token reaches the
caller as soon as its bytes arrive, in chunked and close-delimited framing alike (gotcha #1).

Cancel (R14): while a request is open, ``cancel.add_callback`` holds an ``_Abort`` handle that
shuts the socket down from the cancelling thread (``response.close()`` does not wake a blocked
read). Before the headers arrive the socket lives inside urllib3; sessions made by
``new_session()`` mount ``AbortableAdapter``, whose connections report themselves to the
handle, so a cancel while waiting for headers (or right after connecting) is immediate too.
With a caller-supplied session (or a SOCKS proxy) a cancel before the headers takes effect
when they arrive, or at the latest after ``Timeout.connect``. A cancel during the TCP/TLS handshake itself
takes effect as soon as it completes (bounded by ``Timeout.connect``).

Headers, keys and query strings are never logged or put in a message.
"""
from __future__ import annotations

import logging
import re
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from ._sse import ServerSentEvent, SSEDecodeError, SSEDecoder
from .exceptions import ModelStreamError, StreamTimeout, UserError
from .settings import Timeout

__all__ = ["AbortableAdapter", "OpenResponse", "StreamAborted", "abort", "describe_error",
           "new_session", "open_response", "safe_url"]

log = logging.getLogger("agentstream")
_tls = threading.local()


class StreamAborted(Exception):
    """The response was aborted by a cancel; the caller should just stop."""


# --- sockets ---------------------------------------------------------------------------

def _socket_of(response: Any) -> Optional[socket.socket]:
    """The socket under a requests response (None for mocks or once closed)."""
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:  # close-delimited bodies: http.client hands the socket to the response
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(sock: Any) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass


def abort(response: Any) -> None:
    """Wake any read blocked on ``response`` at once (callable from any thread)."""
    sock = _socket_of(response)
    if sock is not None:
        _shutdown(sock)
        return
    try:  # urllib3 >= 2.3
        response.raw.shutdown()
    except Exception:
        pass


class _Abort:
    """Cancel callback for one attempt: shuts down whichever socket the attempt uses.

    ``detach()`` (when the attempt is over) disarms it under the same lock, so a late
    cancel can never shut down a pooled connection another request reuses.
    """

    def __init__(self) -> None:
        self.aborted = False
        self.conn: Any = None
        self.response: Any = None
        self._detached = False
        self._lock = threading.Lock()

    def __call__(self) -> None:  # on the cancelling thread
        with self._lock:
            if self._detached:
                return
            self.aborted = True
            self._shutdown()
        log.debug("cancel: aborted the open request")

    def attach(self, conn: Any = None, response: Any = None) -> None:
        with self._lock:
            self.conn = conn if conn is not None else self.conn
            self.response = response if response is not None else self.response
            if self.aborted and not self._detached:
                self._shutdown()

    def detach(self) -> None:
        with self._lock:
            self._detached = True

    def _shutdown(self) -> None:
        if self.response is not None:
            abort(self.response)
        elif self.conn is not None:
            _shutdown(getattr(self.conn, "sock", None))


class _ReportingConnection:
    """Mixin: tell the current thread's ``_Abort`` handle about the connection in use."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        handle = getattr(_tls, "abort", None)
        if handle is not None:
            handle.attach(conn=self)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        handle = getattr(_tls, "abort", None)
        if handle is not None:
            handle.attach(conn=self)
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = type("_HTTPConnection", (_ReportingConnection, HTTPConnection), {})


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = type("_HTTPSConnection", (_ReportingConnection, HTTPSConnection), {})


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class AbortableAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections a cancel can abort before the headers arrive."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if isinstance(manager, ProxyManager):  # (not SOCKS: its own connection classes)
            manager.pool_classes_by_scheme = _POOLS
        return manager

    def close(self) -> None:
        """Close every pooled connection now. (urllib3 2's ``PoolManager.clear()`` only drops
        the pools and leaves their sockets to the garbage collector, so a pool still referenced,
        e.g. from the traceback of an error the caller keeps, kept its sockets open.)"""
        managers = [self.poolmanager] + list(self.proxy_manager.values())
        for manager in managers:
            pools = getattr(manager, "pools", None)
            for key in list(pools.keys()) if pools is not None else ():
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()


def new_session() -> requests.Session:
    """A session whose requests a cancel can abort at any point."""
    session = requests.Session()
    session.mount("http://", AbortableAdapter())
    session.mount("https://", AbortableAdapter())
    return session


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
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader,
                        requests.exceptions.InvalidJSONError)):
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
    try:
        response = session.post(url, json=json_body, headers=dict(headers), stream=True,
                                timeout=(connect, header_wait))
    except requests.RequestException as exc:
        unregister()
        handle.detach()
        if handle.aborted:
            return None
        raise _map_open_error(exc, url, connect, header_wait, kind) from exc
    except BaseException:
        unregister()
        handle.detach()
        raise
    finally:
        _tls.abort = None
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
        if hasattr(raw, "read1"):
            self._read: Callable[[int], bytes] = lambda n: raw.read1(n, decode_content=True)
        else:  # urllib3 < 2.2: may batch close-delimited bodies
            self._read = lambda n: raw.read(n, decode_content=True)

    status = property(lambda self: self.response.status_code)
    headers = property(lambda self: self.response.headers)

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters ("" if absent)."""
        return self.response.headers.get("content-type", "").split(";")[0].strip().lower()

    def _settimeout(self, seconds: Optional[float]) -> None:
        if self._sock is not None and seconds != self._sock_timeout:
            try:
                self._sock.settimeout(seconds)
                self._sock_timeout = seconds
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
            try:
                events = decoder.feed(chunk)
            except SSEDecodeError as exc:
                raise ModelStreamError(f"undecodable stream after {self.bytes_read} bytes: {exc}",
                                       line=exc.line.decode("utf-8", "replace")) from exc
            if events:
                yield events
            if _made_progress(decoder, seen, events, keepalive):
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


def _pending_content(decoder: SSEDecoder) -> bool:
    """True while a non-comment line is partly received (a big event still arriving)."""
    partial = getattr(decoder, "_partial", None)  # SSEDecoder internals: pieces of the open line
    return bool(partial) and partial[0][:1] != b":"


def _made_progress(decoder: SSEDecoder, seen: int, events: List[ServerSentEvent],
                   keepalive: Optional[Callable[[ServerSentEvent], bool]]) -> bool:
    """Did the last read carry content (restarting the idle timer)? Comments never do; nor
    do events that are keep-alives, unless a real event has started after them."""
    if keepalive is None:
        return bool(events) or decoder.content_lines != seen or _pending_content(decoder)
    if any(not keepalive(event) for event in events):
        return True
    pending_event = getattr(decoder, "_event", "")   # SSEDecoder internals: `event:` of the open event
    started = bool(getattr(decoder, "_dirty", False)) and pending_event != "ping"
    return started or _pending_content(decoder)


def _is_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    return isinstance(exc, (ReadTimeoutError, socket.timeout, requests.exceptions.Timeout))
