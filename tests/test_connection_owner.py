"""One owner per connection (issue 10, point 1), over a loopback server.

A response owns its connection from the open until urllib3 takes it back into the pool
(``release_conn``, or on its own at the end of a Content-Length body); from then on it
touches nothing. A cancel interrupts connecting too: the TCP connect and the TLS handshake.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Dict, List

import pytest
import requests
import urllib3.response

from agentstream._abort import ConnectionOwner
from agentstream._cancel import CancelToken
from agentstream.exceptions import StreamTimeout
from agentstream.models._base import TextChunk
from agentstream.settings import Timeout
from tests.server import FAKE_KEY, Reply, Server, TinyModel, collect, consume_in_thread, sse


@pytest.fixture
def server(fd_guard):
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked
    assert not srv.errors, srv.errors


def texts(items: List[Any]) -> List[str]:
    return [i.text for i in items if isinstance(i, TextChunk)]


def shared_model(url: str, idle: Any, session: Any = None) -> TinyModel:
    return TinyModel("tiny-1", base_url=url, api_key=FAKE_KEY, session=session,
                     timeout=Timeout(connect=2, idle=idle, total=10))


def run_a_then_b_on_its_connection(server: Server, model: TinyModel, cancel_a: bool = False) -> Dict[str, Any]:
    """Run A (Content-Length body, read whole in one read: urllib3 releases its connection at
    once) holds its first item while run B, on another thread, takes A's pooled connection and
    gets its first item; then A goes on (drains, or is cancelled) while B's body keeps coming
    with 0.5 s gaps."""
    server.enqueue(Reply(chunks=[sse({"t": "a"}, "[DONE]")], length=True),
                   Reply.sse({"t": "b1"}, {"t": "b2"}, {"t": "b3"}, "[DONE]", delay_between=0.5))
    b_first = threading.Event()
    out: Dict[str, Any] = {}
    cancel_a_token = CancelToken()

    def run_b() -> None:
        out["b"] = collect(model, on_item=lambda item: b_first.set())

    b_thread = threading.Thread(target=run_b, name="test-run-b", daemon=True)

    def hold_a(item: Any) -> None:
        if not b_thread.is_alive() and "b" not in out:
            b_thread.start()
            assert b_first.wait(5)
            if cancel_a:
                cancel_a_token.cancel()

    out["a"] = collect(model, cancel=cancel_a_token, on_item=hold_a)
    b_thread.join(10)
    assert not b_thread.is_alive()
    assert server.requests[1].connection == server.requests[0].connection, "B did not reuse A's connection"
    return out


@pytest.mark.parametrize("session", [None, "callers"], ids=["own-session", "callers-session"])
@pytest.mark.parametrize("idle", [2.0, None], ids=["idle-2s", "no-idle-timeout"])
def test_a_drained_stream_never_retimes_the_socket_another_stream_reuses(server, idle, session):
    session = requests.Session() if session else None
    model = shared_model(server.url, idle, session)
    try:
        out = run_a_then_b_on_its_connection(server, model)
    finally:
        model.close()
        if session is not None:
            session.close()
    items, error = out["a"]
    assert error is None and texts(items) == ["a"]
    items, error = out["b"]
    assert error is None, repr(error)
    assert texts(items) == ["b1", "b2", "b3"]


@pytest.mark.parametrize("session", [None, "callers"], ids=["own-session", "callers-session"])
def test_cancel_after_release_never_shuts_down_the_socket_another_stream_reuses(server, monkeypatch, session):
    """As urllib3 2.3 / 2.4 did: ``HTTPResponse.shutdown()`` shut the socket down even after the
    connection went back to the pool. A cancel must not reach it either way."""
    def old_shutdown(self: Any) -> None:
        if self._sock_shutdown:
            self._sock_shutdown(socket.SHUT_RD)

    monkeypatch.setattr(urllib3.response.HTTPResponse, "shutdown", old_shutdown)
    session = requests.Session() if session else None
    model = shared_model(server.url, 2.0, session)
    try:
        out = run_a_then_b_on_its_connection(server, model, cancel_a=True)
    finally:
        model.close()
        if session is not None:
            session.close()
    assert out["a"] == ([TextChunk("a")], None)   # cancelled after its first item: just ends
    items, error = out["b"]
    assert error is None, repr(error)
    assert texts(items) == ["b1", "b2", "b3"]


def test_timeout_message_without_a_setting():
    """A socket timeout with no Timeout.idle configured is reported, not a TypeError."""
    from agentstream._http import OpenResponse

    opened = OpenResponse.__new__(OpenResponse)
    opened.bytes_read = 3
    error = opened._timeout_error("idle", None)
    assert isinstance(error, StreamTimeout) and "3 bytes" in str(error)


# --- the owner's rules ------------------------------------------------------------------------

class _Sock:
    def __init__(self) -> None:
        self.calls: List[Any] = []

    def settimeout(self, value: Any) -> None:
        self.calls.append(("settimeout", value))

    def shutdown(self, how: int) -> None:
        self.calls.append(("shutdown", how))


class _Conn:
    def __init__(self) -> None:
        self.sock = _Sock()


def test_owner_touches_nothing_once_released():
    owner, conn = ConnectionOwner(), _Conn()
    owner.using(conn)
    owner.settimeout(1.0)
    owner.released(conn)
    owner.settimeout(2.0)
    owner()            # the cancel
    assert owner.aborted
    assert conn.sock.calls == [("settimeout", 1.0)]


def test_owner_cancel_before_the_connection_shuts_it_down_when_it_comes():
    owner, conn = ConnectionOwner(), _Conn()
    owner()
    owner.using(conn)
    assert conn.sock.calls == [("shutdown", socket.SHUT_RDWR)]
    other = _Conn()
    owner.close()
    owner.using(other)   # closed: never again
    owner()
    assert other.sock.calls == []


def test_socket_timeout_changes_only_when_it_must():
    owner, conn = ConnectionOwner(), _Conn()
    owner.using(conn)
    for seconds in (2.0, 1.99, 2, 1.9, 1.5, 1.5, 1.0, 3.0, None, None, 0.001, 0.05, 0.051):
        owner.settimeout(seconds)
    # skipped: 1.99 / 2 / 1.9 (2.0 is within [s, s * 1.1 + 0.05]), the repeated 1.5 and None, and
    # 0.05 / 0.051 (0.001 is below them: a socket timeout is never longer than the budget allows)
    assert [value for _, value in conn.sock.calls] == [2.0, 1.5, 1.0, 3.0, None, 0.001, 0.05, 0.051]


# --- cancel while connecting ----------------------------------------------------------------

@pytest.fixture
def full_backlog():
    """A loopback port whose accept queue is full: a connect to it hangs (the SYN is dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    try:
        for _ in range(8):
            sock = socket.socket()
            sock.settimeout(0.2)
            try:
                sock.connect(address)
            except OSError:   # timed out: the queue is full
                sock.close()
                break
            fillers.append(sock)
        else:
            pytest.skip("the accept queue never filled up")
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@pytest.fixture
def silent_tls():
    """An https:// loopback URL whose server accepts TCP but never answers the TLS handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: List[socket.socket] = []
    got_one, stop = threading.Event(), threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
                got_one.set()
            except OSError:
                continue

    thread = threading.Thread(target=accept, name="testserver-silent-tls", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}", got_one
    finally:
        stop.set()
        thread.join(2)
        for sock in accepted:
            sock.close()
        listener.close()


def cancel_while_opening(url: str, started: Any) -> Dict[str, Any]:
    model = TinyModel("tiny-1", base_url=url, api_key=FAKE_KEY, timeout=Timeout(connect=30, idle=30))
    cancel = CancelToken()
    try:
        _first, done, result = consume_in_thread(model, cancel)
        assert started()
        at = time.monotonic()
        cancel.cancel()
        assert done.wait(5)
        result["thread"].join(2)
        result["latency"] = result["end"] - at
    finally:
        model.close()
    return result


def test_cancel_during_tcp_connect_ends_at_once(fd_guard, full_backlog):
    connecting = threading.Event()
    port = int(full_backlog.rsplit(":", 1)[1])
    real = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}

    def spy(name: str) -> Any:
        def connect(sock: socket.socket, address: Any) -> Any:
            if address[1] == port:
                connecting.set()
            return real[name](sock, address)
        return connect

    for name in real:
        setattr(socket.socket, name, spy(name))
    try:
        result = cancel_while_opening(full_backlog, lambda: connecting.wait(5))
    finally:
        for name, method in real.items():
            setattr(socket.socket, name, method)
    assert result["error"] is None and result["items"] == []
    assert result["latency"] < 1.0, result["latency"]


def test_cancel_during_tls_handshake_ends_at_once(fd_guard, silent_tls):
    url, accepted = silent_tls
    result = cancel_while_opening(url, lambda: accepted.wait(5))
    assert result["error"] is None and result["items"] == []
    assert result["latency"] < 1.0, result["latency"]


def test_a_host_whose_first_address_refuses_connects_to_the_next(server, monkeypatch):
    """Each address tried gets its own socket (and the owner its own dup): none is left open."""
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    dead_port = refused.getsockname()[1]
    refused.close()
    real = socket.getaddrinfo

    def two_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "twohomed.localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead_port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]"))
    model = TinyModel("tiny-1", base_url=f"http://twohomed.localhost:{server.port}", api_key=FAKE_KEY,
                      timeout=Timeout(connect=2, idle=2))
    try:
        items, error = collect(model)
    finally:
        model.close()
    assert error is None and texts(items) == ["a"]
