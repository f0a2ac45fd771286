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
A chunked body without ``Content-Encoding`` is decoded here instead (``_ChunkedReader``): one
socket read, every complete HTTP chunk in it at once (http.client returns one HTTP chunk per
call); it needs http.client's private attributes and falls back to ``read1`` without them.

Sessions from ``new_session()`` keep up to ``POOL_MAXSIZE`` connections per host, and prepare
each distinct request (url, headers) once: the environment (proxies, ``NO_PROXY``, CA bundle,
``.netrc``) is read when a request is first prepared, not per request (``_post``).

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

import http.client
import logging
import re
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple
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


#: connections kept per host: as many concurrent streams as are likely (urllib3 discards, not
#: reuses, every connection over this)
POOL_MAXSIZE = 64


class _Session(requests.Session):
    """The session ``new_session()`` makes: ``open_response`` may reuse prepared requests on it."""

    def __init__(self) -> None:
        super().__init__()
        #: (url, headers, session settings) -> (prepared request without a body, send settings)
        self._prepared: Dict[Any, Tuple[requests.PreparedRequest, Dict[str, Any]]] = {}


def new_session() -> requests.Session:
    """A session whose requests a cancel can abort at any point."""
    session = _Session()
    session.mount("http://", AbortableAdapter(pool_maxsize=POOL_MAXSIZE))
    session.mount("https://", AbortableAdapter(pool_maxsize=POOL_MAXSIZE))
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
        response = _post(session, url, json_body, headers, (connect, header_wait))
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


#: most prepared requests kept per session (one per distinct url and headers)
_PREPARED_MAX = 16


def _post(session: requests.Session, url: str, json_body: Any, headers: Mapping[str, str],
          timeout: Tuple[Optional[float], Optional[float]]) -> requests.Response:
    """``session.post(url, json=json_body, headers=headers, stream=True, timeout=timeout)``.

    On a session from ``new_session()`` in its default state (no cookies, auth, hooks or
    params) the request is prepared, and the environment read (proxies, ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, ``.netrc``), once per (url, headers, session
    headers / proxies / verify / cert); each request copies it, adds the body and goes through
    ``session.send`` (redirects, hooks, cookies as ``post``). Saves ~0.35 ms a request.
    """
    prepared_cache = getattr(session, "_prepared", None)
    if (prepared_cache is None or session.cookies or session.auth is not None or session.params
            or any(session.hooks.values())):
        return session.post(url, json=json_body, headers=dict(headers), stream=True, timeout=timeout)
    try:
        key: Any = (url, tuple(headers.items()), tuple(session.headers.items()), tuple(session.proxies.items()),
                    session.verify, session.cert, session.trust_env)
        cached = prepared_cache.get(key)
    except TypeError:  # unhashable settings: no caching
        key, cached = None, None
    if cached is None:
        prepared = session.prepare_request(requests.Request("POST", url, headers=dict(headers)))
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        cached = (prepared, settings)
        if key is not None:
            if len(prepared_cache) >= _PREPARED_MAX:   # headers that change per request: start over
                prepared_cache.clear()
            prepared_cache[key] = cached
    prepared, settings = cached
    request = prepared.copy()
    request.prepare_body(None, None, json_body)
    return session.send(request, timeout=timeout, allow_redirects=True, **settings)


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
            state = _decoder_state(decoder)
            try:
                events = decoder.feed(chunk)
            except SSEDecodeError as exc:
                before = _events_before_error(decoder, state, chunk)
                if before:   # the events of this read that came before the bad line
                    yield before
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


class ChunkedBodyError(Exception):
    """A chunked body that broke off or is malformed (reported as ``connection_cut``)."""


def _chunked_reader(response: Any) -> Optional["_ChunkedReader"]:
    """A ``_ChunkedReader`` for this response, or None to read it through urllib3: not
    chunked, content-encoded, partly read already, or not the http.client response it expects."""
    raw = getattr(response, "raw", None)
    httpresp = getattr(raw, "_fp", None)
    if type(httpresp) is not http.client.HTTPResponse:   # (a subclass may read differently)
        return None
    fp = getattr(httpresp, "fp", None)
    if (not getattr(httpresp, "chunked", False) or getattr(httpresp, "chunk_left", 0) is not None
            or getattr(httpresp, "_method", None) == "HEAD" or not hasattr(fp, "read1")
            or not callable(getattr(httpresp, "_close_conn", None))
            or getattr(raw, "_fp_bytes_read", None) != 0
            or response.headers.get("content-encoding")):
        return None
    return _ChunkedReader(httpresp)


class _ChunkedReader:
    """Reads a chunked body from http.client's buffered socket file, decoding every complete
    HTTP chunk of a read at once (``http.client.HTTPResponse.read1`` returns one HTTP chunk a
    call: a Python-level round per SSE event on a busy stream).

    Decodes as http.client does: chunk extensions (``;...``) ignored, the 2 bytes after each
    chunk's data skipped, trailers read and discarded up to the blank line (or EOF), lines at
    most 64 KiB. After the last chunk it closes http.client's response (``_close_conn``), as
    http.client does, so the pooled connection can be reused.

    ``read()``: the data of the chunks completed so far (at least one byte), ``b""`` at the
    end of the body; ``ChunkedBodyError`` when the connection closed inside the body or a
    chunk size line is malformed. Socket errors and timeouts propagate.
    """

    __slots__ = ("_resp", "_fp", "_buf", "_left", "_skip", "_trailers", "_done", "_error")

    def __init__(self, httpresp: http.client.HTTPResponse) -> None:
        self._resp = httpresp
        self._fp = httpresp.fp
        self._buf = b""          # received, not yet decoded (at most a part of a line)
        self._left = 0           # data bytes of the current chunk still to come
        self._skip = 0           # bytes of the CRLF after the current chunk still to skip
        self._trailers = False   # after the last chunk: reading the trailer lines
        self._done = False
        self._error: Optional[ChunkedBodyError] = None   # raised once the data before it is out

    def read(self, size: int) -> bytes:
        if self._error is not None:
            raise self._error
        while True:
            out = self._decode() if self._buf else b""
            if out or self._done:
                return out
            data = self._fp.read1(size)
            if not data:
                if not self._trailers:
                    raise ChunkedBodyError("the connection closed inside a chunked body")
                self._finish()   # no blank line after the trailers: tolerated, as http.client does
                return b""
            self._buf = self._buf + data if self._buf else data

    def _decode(self) -> bytes:
        out: List[bytes] = []
        try:
            self._decode_into(out)
        except ChunkedBodyError as exc:
            if not out:
                raise
            self._error, self._buf = exc, b""   # the data decoded before the error first
        return out[0] if len(out) == 1 else b"".join(out)

    def _decode_into(self, out: List[bytes]) -> None:
        buf, pos, end = self._buf, 0, len(self._buf)
        left, skip = self._left, self._skip
        try:
            while pos < end:
                if left:
                    take = left if left <= end - pos else end - pos
                    out.append(buf[pos:pos + take])
                    pos += take
                    left -= take
                    if not left:
                        skip = 2
                    continue
                if skip:
                    take = skip if skip <= end - pos else end - pos
                    pos += take
                    skip -= take
                    continue
                eol = buf.find(b"\n", pos)
                if eol < 0:
                    if end - pos > _MAXLINE:
                        raise ChunkedBodyError("a chunk size or trailer line over 64 KiB")
                    break
                if eol + 1 - pos > _MAXLINE:
                    raise ChunkedBodyError("a chunk size or trailer line over 64 KiB")
                if self._trailers:
                    line, pos = buf[pos:eol + 1], eol + 1
                    if line == b"\r\n" or line == b"\n":
                        self._finish()
                        return
                    continue
                try:
                    size = int(buf[pos:eol], 16)   # as http.client: whitespace around it is fine
                except ValueError:
                    size = _chunk_size(buf[pos:eol + 1])   # an extension, or malformed
                if size < 0:
                    raise ChunkedBodyError(f"malformed chunk size line {bytes(buf[pos:eol + 1][:40])!r}")
                pos = eol + 1
                if not size:
                    self._trailers = True
                elif pos + size + 2 <= end:   # the whole chunk, and its CRLF, in this read
                    out.append(buf[pos:pos + size])
                    pos += size + 2
                else:
                    left = size
        finally:
            self._left, self._skip = left, skip
        self._buf = buf[pos:] if pos < end else b""

    def _finish(self) -> None:
        self._done = True
        self._buf = b""
        if self._resp.fp is not None:
            self._resp._close_conn()  # type: ignore[attr-defined]   # as http.client at the last chunk


_MAXLINE = 65536   # http.client's limit for a chunk size or trailer line


def _chunk_size(line: bytes) -> int:
    """The size in a chunk size line (extensions after ``;`` ignored), as http.client reads it."""
    semi = line.find(b";")
    text = line[:semi] if semi >= 0 else line
    try:
        size = int(text, 16)
    except ValueError:
        size = -1
    if size < 0:
        raise ChunkedBodyError(f"malformed chunk size line {bytes(line[:40])!r}")
    return size


def _decoder_state(decoder: SSEDecoder) -> Optional[Dict[str, Any]]:
    """A copy of the decoder's state (SSEDecoder internals), to replay a read that failed."""
    state = getattr(decoder, "__dict__", None)
    if state is None or not isinstance(state.get("_partial"), list) or not isinstance(state.get("_data"), list):
        return None
    state = state.copy()
    state["_partial"] = state["_partial"][:]
    state["_data"] = state["_data"][:]
    return state


def _events_before_error(decoder: SSEDecoder, state: Optional[Dict[str, Any]], chunk: bytes) -> List[ServerSentEvent]:
    """The events ``chunk`` completed before the line that made ``decoder.feed`` fail: the
    decoder drops them with the error, and a read may hold many events (a whole chunked
    read, or a close-delimited one), which the caller must still get before the error."""
    if state is None:
        return []
    decoder.__dict__.update(state)
    events: List[ServerSentEvent] = []
    for line in chunk.splitlines(keepends=True):
        try:
            events.extend(decoder.feed(line))
        except SSEDecodeError:
            break
    return events


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
