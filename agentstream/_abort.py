"""Cancel (R14) for an open request: shut its socket down from the cancelling thread.

While a request is open, ``cancel.add_callback`` holds an ``_Abort`` handle that shuts the
socket down (``response.close()`` does not wake a blocked read). Before the headers arrive the
socket lives inside urllib3; sessions mounting ``AbortableAdapter`` (``_session.new_session()``)
use connections that report themselves to the current thread's handle (``_tls.abort``, set by
``_http.open_response``), so a cancel while waiting for headers (or right after connecting) is
immediate too. With a caller-supplied session (or a SOCKS proxy) a cancel before the headers
takes effect when they arrive, or at the latest after ``Timeout.connect``. A cancel during the
TCP/TLS handshake itself takes effect as soon as it completes (bounded by ``Timeout.connect``).

Layer: used by ``_session.py`` and ``_http.py``; imports only requests / urllib3 and the
standard library -- nothing of agentstream, and never the layers above.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Optional

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

__all__ = ["AbortableAdapter", "StreamAborted", "abort"]

log = logging.getLogger("agentstream")
#: ``abort``: the ``_Abort`` handle of the request this thread is opening (or None)
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
