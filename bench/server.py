"""Loopback chat-completions SSE server, run in its own process (``python -m bench.server``).

It prints ``PORT <n>`` and serves on 127.0.0.1 until its stdin closes. The
scenario is the first path segment of the base URL, so every client (raw
socket, requests, the openai SDK, pydantic-ai, agentstream) just gets a
``base_url``::

    http://127.0.0.1:<port>/mode=fast,n=20000,framing=chunked/v1   (+ /chat/completions)

Options: ``mode`` = ``fast`` (n tokens as fast as the socket takes them),
``paced`` (a token every ``ms`` milliseconds; each token is
``[i:<perf_counter_ns at send>]``), ``stall`` (n tokens, then silence until
the client closes; the close time is recorded under ``id``), ``tool``
(a streamed tool call while the request has fewer than ``steps`` tool
results, then a short text answer). ``framing`` = ``chunked`` (one HTTP chunk
per SSE event, keep-alive) or ``close`` (close-delimited body, no length).
``GET /ctl/closed?id=X`` returns ``{"closed_ns": ...}`` once the server saw
stall X's connection close (waits up to 3 s). Timestamps are
``time.perf_counter_ns()`` (CLOCK_MONOTONIC, shared by all processes).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from . import payload

_CLOSED: Dict[str, int] = {}
_CLOSED_COND = threading.Condition()
_CACHE: Dict[Tuple[str, str], bytes] = {}
_SSE_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"


def frame(events: List[bytes], chunked: bool) -> bytes:
    if not chunked:
        return b"".join(events)
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


def _block(name: str, chunked: bool) -> bytes:
    """Pre-framed bytes of one full token cycle (``cycle``) or the role event (``role``)."""
    key = (name, "chunked" if chunked else "close")
    data = _CACHE.get(key)
    if data is None:
        if name == "cycle":
            events = [payload.content_event(payload.token(i)) for i in range(payload.CYCLE)]
        else:
            events = [payload.role_event()]
        data = _CACHE[key] = frame(events, chunked)
    return data


def parse_options(segment: str) -> Dict[str, str]:
    opts = {"mode": "fast", "n": "100", "framing": "chunked", "ms": "20", "steps": "1", "id": ""}
    for item in segment.split(","):
        key, _, value = item.partition("=")
        if key:
            opts[key] = value
    return opts


# -- the scenarios ---------------------------------------------------------------------

def _send_fast(conn: socket.socket, n: int, chunked: bool) -> None:
    conn.sendall(_block("role", chunked))
    full, rest = divmod(n, payload.CYCLE)
    block = _block("cycle", chunked)
    for _ in range(full):
        conn.sendall(block)
    if rest:
        conn.sendall(frame([payload.content_event(payload.token(i)) for i in range(rest)], chunked))
    conn.sendall(frame([payload.finish_events("stop", n)], chunked))


def _send_paced(conn: socket.socket, n: int, interval: float, chunked: bool) -> None:
    conn.sendall(_block("role", chunked))
    start = time.perf_counter()
    for i in range(n):
        delay = start + (i + 1) * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event = payload.content_event(f"[{i}:{time.perf_counter_ns()}]")
        conn.sendall(frame([event], chunked))
    conn.sendall(frame([payload.finish_events("stop", n)], chunked))


def _send_stall(conn: socket.socket, n: int, stall_id: str, chunked: bool) -> None:
    events = [payload.role_event()] + [payload.content_event(payload.token(i)) for i in range(n)]
    conn.sendall(frame(events, chunked))
    conn.settimeout(30.0)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    with _CLOSED_COND:
        _CLOSED[stall_id] = time.perf_counter_ns()
        _CLOSED_COND.notify_all()


def _send_tool(conn: socket.socket, body: bytes, steps: int, chunked: bool) -> None:
    request = json.loads(body or b"{}")
    done = sum(1 for m in request.get("messages", ()) if m.get("role") == "tool")
    if done < steps:
        events = payload.tool_call_events(done) + [payload.finish_events("tool_calls", 10)]
    else:
        events = [payload.role_event(), payload.content_event(" done"), payload.finish_events("stop", 1)]
    conn.sendall(frame(events, chunked))


def _respond(conn: socket.socket, opts: Dict[str, str], body: bytes) -> bool:
    """Send one streamed response; returns whether the connection stays open."""
    chunked = opts["framing"] == "chunked"
    head = _SSE_HEADERS + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Connection: close\r\n\r\n")
    conn.sendall(head)
    mode = opts["mode"]
    if mode == "fast":
        _send_fast(conn, int(opts["n"]), chunked)
    elif mode == "paced":
        _send_paced(conn, int(opts["n"]), float(opts["ms"]) / 1000.0, chunked)
    elif mode == "stall":
        _send_stall(conn, int(opts["n"]), opts["id"], chunked)
        return False
    elif mode == "tool":
        _send_tool(conn, body, int(opts["steps"]), chunked)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if chunked:
        conn.sendall(b"0\r\n\r\n")
        return True
    return False


def _control(conn: socket.socket, path: str) -> None:
    query = dict(p.partition("=")[::2] for p in path.partition("?")[2].split("&") if p)
    value: Optional[int] = None
    if path.startswith("/ctl/closed"):
        deadline = time.monotonic() + 3.0
        with _CLOSED_COND:
            while query.get("id", "") not in _CLOSED and time.monotonic() < deadline:
                _CLOSED_COND.wait(deadline - time.monotonic())
            value = _CLOSED.pop(query.get("id", ""), None)
    data = json.dumps({"closed_ns": value}).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(data), data))


def _read_request(conn: socket.socket, buf: bytes) -> Optional[Tuple[str, bytes, bytes]]:
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None
        rest += data
    return path, rest[:length], rest[length:]


def _handle(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        while True:
            request = _read_request(conn, buf)
            if request is None:
                return
            path, body, buf = request
            if path.startswith("/ctl/"):
                _control(conn, path)
                continue
            if not _respond(conn, parse_options(path.lstrip("/").split("/", 1)[0]), body):
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def serve() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    _block("cycle", True), _block("cycle", False), _block("role", True), _block("role", False)
    sys.stdout.write(f"PORT {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    threading.Thread(target=_exit_on_stdin_eof, daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_handle, args=(conn,), daemon=True).start()


def _exit_on_stdin_eof() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


class LoopbackServer:
    """Starts ``python -m bench.server`` and builds base URLs for it.

    Usage::

        with LoopbackServer() as server:
            url = server.base_url(mode="fast", n=20000, framing="chunked")
    """

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self._ids = 0

    def __enter__(self) -> "LoopbackServer":
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.server"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=root)
        line = self.proc.stdout.readline().decode()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise RuntimeError(f"loopback server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def base_url(self, **opts: Any) -> str:
        return f"http://127.0.0.1:{self.port}/" + ",".join(f"{k}={v}" for k, v in opts.items()) + "/v1"

    def new_id(self) -> str:
        self._ids += 1
        return f"s{self._ids}"

    def closed_ns(self, stall_id: str) -> Optional[int]:
        """When the server saw stall ``stall_id``'s connection close (None: not within 3 s)."""
        url = f"http://127.0.0.1:{self.port}/ctl/closed?id={stall_id}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())["closed_ns"]


if __name__ == "__main__":
    serve()
