"""Test setup: no test may reach beyond loopback, and no run may leak its thread."""
from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address):  # type: ignore[no-untyped-def]
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host not in ("localhost",):
                raise OSError(f"tests may not connect to non-loopback host {host!r}")
            return
        if not ip.is_loopback:
            raise OSError(f"tests may not connect to non-loopback address {host!r}")


def _guarded_connect(self, address):  # type: ignore[no-untyped-def]
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):  # type: ignore[no-untyped-def]
    _check(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost") and not str(host).startswith("127.") and host != "::1":
        raise OSError(f"tests may not resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _guarded_getaddrinfo


def agentstream_threads():
    return [t for t in threading.enumerate() if t.name.startswith("agentstream-")]


def wait_no_agentstream_threads(timeout: float = 5.0) -> list:
    """Wait (bounded) for every agentstream thread to end; return the ones left."""
    import time

    deadline = time.monotonic() + timeout
    left = agentstream_threads()
    while left and time.monotonic() < deadline:
        for t in left:
            t.join(max(0.0, deadline - time.monotonic()))
        left = agentstream_threads()
    return left


def open_fds() -> int:
    """How many file descriptors this process has open."""
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fd_guard():
    """Fail the test if it leaves a file descriptor (socket) or a server/agentstream thread."""
    import gc
    import time

    gc.collect()
    before = open_fds()
    yield
    deadline = time.monotonic() + 3.0
    while open_fds() > before and time.monotonic() < deadline:
        gc.collect()
        threading.Event().wait(0.02)  # bounded wait for sockets to be released
    assert open_fds() <= before, f"file descriptors leaked: {before} -> {open_fds()}"
    left = [t.name for t in threading.enumerate() if t.name.startswith(("testserver-", "agentstream-"))]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def no_thread_leak():
    yield
    left = wait_no_agentstream_threads()
    assert not left, f"threads left running: {[t.name for t in left]}"
