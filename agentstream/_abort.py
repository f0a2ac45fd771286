"""One owner per connection: who may touch a request's socket, and how a cancel reaches it (R14).

A ``ConnectionOwner`` owns the connection of one request attempt from its opening to its
release. The requesting thread tells it each step (``connecting``: a socket is created and
about to connect; ``using``: a pooled or new connection sends the request; ``attach``: the
headers are in). When urllib3 takes the connection back into its pool -- ``release_conn()``,
which urllib3 also calls on its own when a Content-Length body has been read to its end --
the owner is told (``released``) and from then on touches nothing: no ``settimeout``, no
``shutdown``, since another request may be using that socket already. ``close()`` ends the
ownership for good.

The owner is the ``CancelToken`` callback of its attempt: calling it shuts the owned socket
down (``response.close()`` does not wake a blocked read), at once or as soon as a socket is
reported. It and ``released`` take the same lock, so a cancel never reaches a connection
another request took from the pool, whatever urllib3's ``HTTPResponse.shutdown()`` does (2.3
and 2.4 shut a pooled socket down; it is never called here).

Sessions mounting ``AbortableAdapter`` (``_session.new_session()``) use connection classes
that report to the current thread's owner (``_tls.owner``, set by ``_http.open_response``)
and create each socket themselves, registering it before ``connect()``: a cancel during the
TCP connect, a proxy CONNECT or the TLS handshake ends the attempt at once. Their pools tell
the owner when a connection comes back. With a caller-supplied session (or a SOCKS proxy) the
owner learns of the connection only with the headers (a cancel before them takes effect
then, at the latest after ``Timeout.connect``); the response's ``release_conn`` is wrapped
so that the release is still seen.

Layer: used by ``_session.py`` and ``_http.py``; imports only requests / urllib3 and the
standard library -- nothing of agentstream, and never the layers above.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import threading
import weakref
from typing import Any, Optional

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import ProxyManager
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT
from urllib3.util.wait import wait_for_write

__all__ = ["AbortableAdapter", "ConnectionOwner", "StreamAborted"]

log = logging.getLogger("agentstream")
#: ``owner``: the ``ConnectionOwner`` of the request this thread is opening (or None)
_tls = threading.local()
_UNSET = object()
_OWNER_ATTR = "_agentstream_owner"   # on a urllib3 connection: the owner using it


class StreamAborted(Exception):
    """The response was aborted by a cancel; the caller should just stop."""


def _socket_of(response: Any) -> Optional[socket.socket]:
    """The socket under a requests response (None for mocks or once released / closed)."""
    raw = getattr(response, "raw", None)
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None and conn is not None:  # close-delimited: http.client hands the socket to the response
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(sock: Any) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass


class ConnectionOwner:
    """Owns one request attempt's connection from open to release (see the module docstring).

    ``aborted``: a cancel came while the attempt was open. Calling the owner is the cancel.
    """

    __slots__ = ("aborted", "_lock", "_conn", "_sock", "_dup", "_closed", "_timeout", "__weakref__")

    def __init__(self) -> None:
        self.aborted = False
        self._lock = threading.Lock()
        self._conn: Any = None      # the urllib3 connection in use, while ours
        self._sock: Any = None      # its socket, while ours
        self._dup: Optional[socket.socket] = None   # while connecting: a dup of the new socket
        self._closed = False
        self._timeout: Any = _UNSET   # last timeout set on ``_sock``

    def __call__(self) -> None:
        """The cancel (any thread): shut the owned socket down, now or when one is reported."""
        with self._lock:
            if self._closed:
                return
            self.aborted = True
            _shutdown(self._dup if self._dup is not None else self._sock)
        log.debug("cancel: aborted the open request")

    # -- reported by the requesting thread -----------------------------------------------------
    def connecting(self, conn: Any, sock: socket.socket) -> None:
        """``sock`` (not yet connected) is about to connect for ``conn``. Kept as a dup until
        ``connected``: TLS wraps (and detaches) the socket object it was given."""
        dup: Optional[socket.socket] = sock.dup()
        with self._lock:
            previous, self._dup = self._dup, None   # the dup for an address that failed
            if not self._closed:
                self._take(conn)
                self._dup, dup = dup, None
                if self.aborted:
                    _shutdown(self._dup)
        for stale in (previous, dup):   # (dup: only if closed meanwhile)
            if stale is not None:
                stale.close()

    def connected(self, conn: Any) -> None:
        """``conn.connect()`` returned or failed: own its socket (if any) from now on."""
        with self._lock:
            dup, self._dup = self._dup, None
            if not self._closed and self._conn is conn:
                self._own(conn.sock)
                if self.aborted:
                    _shutdown(self._sock)
        if dup is not None:
            dup.close()

    def using(self, conn: Any) -> None:
        """``conn`` sends this attempt's request."""
        with self._lock:
            if not self._closed:
                self._take(conn)
                if conn.sock is not None:
                    self._own(conn.sock)
                if self.aborted:
                    _shutdown(self._sock)

    def attach(self, response: Any) -> None:
        """The headers are in: own the response's connection (until urllib3 takes it back)."""
        raw = getattr(response, "raw", None)
        conn = getattr(raw, "_connection", None)
        with self._lock:
            if self._closed:
                return
            if conn is None:   # released already, or no connection at all (a mock)
                self._disown()
            else:
                self._take(conn)
                if not isinstance(getattr(raw, "_pool", None), _OwnedPool):   # a caller's session
                    raw.release_conn = _ReleaseHook(self, raw)
                self._own(_socket_of(response))
            if self.aborted:
                _shutdown(self._sock)

    def released(self, conn: Any) -> None:
        """urllib3 takes ``conn`` back (into its pool): touch nothing of it any more."""
        with self._lock:
            if conn is None or conn is self._conn:
                self._disown()

    def close(self) -> bool:
        """The attempt is over: never touch the connection again. Returns ``aborted``."""
        with self._lock:
            self._closed = True
            self._disown()
            dup, self._dup = self._dup, None
        if dup is not None:
            dup.close()
        return self.aborted

    # -- used by the reading thread ----------------------------------------------------------------
    def settimeout(self, seconds: Optional[float]) -> None:
        """Bound the next read by ``seconds``, on the owned socket only. It is changed only when
        not already within [seconds, seconds * 1.1 + 50 ms]: a read that ends up to that much
        late still raises the right error (the budget is checked again before every read), and
        a syscall per read is saved."""
        current = self._timeout
        if seconds == current:
            return
        if seconds is not None and current.__class__ is float and seconds <= current <= seconds * 1.1 + 0.05:
            return
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            try:
                sock.settimeout(seconds)
                self._timeout = None if seconds is None else float(seconds)
            except OSError:
                pass

    # -- under the lock ------------------------------------------------------------------------
    def _take(self, conn: Any) -> None:
        if conn is not self._conn:
            self._disown()
            self._conn = conn
            try:
                setattr(conn, _OWNER_ATTR, self)
            except AttributeError:
                pass

    def _own(self, sock: Any) -> None:
        if sock is not self._sock:
            self._sock = sock
            self._timeout = _UNSET

    def _disown(self) -> None:
        conn = self._conn
        if conn is not None and getattr(conn, _OWNER_ATTR, None) is self:
            setattr(conn, _OWNER_ATTR, None)
        self._conn = self._sock = None
        self._timeout = _UNSET


class _ReleaseHook:
    """``response.raw.release_conn`` on a caller's session: tells the owner, then releases."""

    __slots__ = ("owner", "raw")

    def __init__(self, owner: ConnectionOwner, raw: Any) -> None:
        self.owner = weakref.ref(owner)
        self.raw = weakref.ref(raw)

    def __call__(self) -> None:
        owner, raw = self.owner(), self.raw()
        if owner is not None:
            owner.released(None)
        if raw is not None:
            type(raw).release_conn(raw)


# --- connection and pool classes that report to the owner -----------------------------------

def _owner() -> Optional[ConnectionOwner]:
    return getattr(_tls, "owner", None)


class _ReportingConnection:
    """Mixin: report to the current thread's owner; create each socket before connecting it."""

    def connect(self) -> None:
        owner = _owner()
        if owner is None:
            return super().connect()  # type: ignore[misc]
        try:
            super().connect()  # type: ignore[misc]
        finally:
            owner.connected(self)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        owner = _owner()
        if owner is not None:
            owner.using(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _new_conn(self) -> socket.socket:
        """urllib3's ``_new_conn`` (``create_connection`` and its errors), with the socket
        reported to the owner before ``connect()``, so that a cancel can interrupt it."""
        owner = _owner()
        if owner is None:
            return super()._new_conn()  # type: ignore[misc]
        c: Any = self
        try:
            sock = _create_connection(c._dns_host, c.port, c.timeout, c.source_address, c.socket_options,
                                      self, owner)
        except socket.gaierror as e:
            raise NameResolutionError(c.host, c, e) from e
        except socket.timeout as e:
            raise ConnectTimeoutError(c, f"Connection to {c.host} timed out. (connect timeout={c.timeout})") from e
        except OSError as e:
            raise NewConnectionError(c, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, c.host, c.port)
        return sock


def _create_connection(host: str, port: int, timeout: Any, source_address: Any, options: Any,
                       conn: Any, owner: ConnectionOwner) -> socket.socket:
    """``urllib3.util.connection.create_connection``, each socket reported to ``owner`` before
    it connects (``_connect``)."""
    if host.startswith("["):
        host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    err: Optional[OSError] = None
    for af, socktype, proto, _canonname, sa in socket.getaddrinfo(host, port, allowed_gai_family(),
                                                                   socket.SOCK_STREAM):
        sock = None
        try:
            sock = socket.socket(af, socktype, proto)
            for option in options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            owner.connecting(conn, sock)
            _connect(sock, sa, sock.gettimeout(), owner)
            return sock
        except OSError as exc:
            err = exc
            if sock is not None:
                sock.close()
    if err is not None:
        try:
            raise err
        finally:
            err = None
    raise OSError("getaddrinfo returns an empty list")


_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN})


def _connect(sock: socket.socket, address: Any, timeout: Optional[float], owner: ConnectionOwner) -> None:
    """``sock.connect(address)`` within ``timeout``, ended at once by a cancel: the connect is
    started without blocking, then ``owner.aborted`` is checked -- a cancel that came before
    the socket was connecting could not shut it down -- and only then waited for (a cancel
    shuts a connecting socket down, which wakes the wait)."""
    if sys.platform == "win32":   # (a failed non-blocking connect shows only in select's "exceptional")
        sock.connect(address)
        return
    sock.setblocking(False)
    err = sock.connect_ex(address)
    if err and err not in _IN_PROGRESS:
        raise OSError(err, os.strerror(err))
    if err:
        if not owner.aborted and not wait_for_write(sock, timeout):
            raise socket.timeout("timed out")
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if owner.aborted:
        raise ConnectionAbortedError(errno.ECONNABORTED, "the request was cancelled")
    if err:
        raise OSError(err, os.strerror(err))
    sock.settimeout(timeout)


class _OwnedPool:
    """Mixin: tell a connection's owner when the pool takes the connection back."""

    def _put_conn(self, conn: Any) -> None:
        owner = getattr(conn, _OWNER_ATTR, None) if conn is not None else None
        if owner is not None:
            owner.released(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_OwnedPool, HTTPConnectionPool):
    ConnectionCls = type("_HTTPConnection", (_ReportingConnection, HTTPConnection), {})


class _HTTPSPool(_OwnedPool, HTTPSConnectionPool):
    ConnectionCls = type("_HTTPSConnection", (_ReportingConnection, HTTPSConnection), {})


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class AbortableAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections a cancel can abort at any point, connect included."""

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
