"""A scriptable raw-socket HTTP/1.1 server on 127.0.0.1 for streaming tests.

Every fault a mock cannot produce: chunked vs close-delimited bodies, stalls (with or
without ``: ping`` keep-alives), endless streams, drops mid-chunk, resets (RST), delayed
headers, gated chunks, raw bytes. Usage::

    with Server() as server:
        server.enqueue(Reply.sse({"t": "a"}, "[DONE]", delay_between=0.05))
        ...  # requests to server.url
        server.requests[0].json            # what the client sent
        server.disconnected.wait(2)        # the client hung up

Replies are consumed in order, one per request; with none queued, ``responder(request)``
answers if set (for concurrent clients), else the request gets a 500 and is recorded in
``errors``. Each connection has its own thread; keep-alive is honoured for
chunked and Content-Length replies. Every wait inside the server also ends when the client
disconnects or the server stops, so ``stop()`` (or leaving ``with``) always returns promptly
and every server thread ("testserver-*") ends.
"""
from __future__ import annotations

import collections
import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Deque, Dict, List, Optional

__all__ = ["FAKE_KEY", "Reply", "Request", "Server", "TinyModel", "TinyTranslator", "collect", "refused_url",
           "sse", "sse_event", "consume_in_thread"]

POLL = 0.05
_KNOWN = {s.value for s in HTTPStatus}


def sse_event(data: Any, event: Optional[str] = None, id: Optional[str] = None) -> bytes:
    """One event: ``data`` (dict/list -> JSON, str as is, each line its own ``data:``)."""
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"event: {event}"] if event else []
    if id is not None:
        lines.append(f"id: {id}")
    lines += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse(*events: Any) -> bytes:
    """An SSE body: bytes are sent as is, anything else becomes ``sse_event(item)``."""
    return b"".join(e if isinstance(e, bytes) else sse_event(e) for e in events)


@dataclass
class Reply:
    """One scripted response.

    Body framing: ``chunked`` (default, keep-alive), ``length`` (Content-Length,
    keep-alive), or neither: close-delimited (the server closes to end the body).
    ``chunks`` are sent one write each; ``delay_between`` paces them; ``gates[i]`` makes the
    server wait (up to ``gate_timeout``; timeouts are counted in ``Server.gate_timeouts``)
    for an Event before chunk ``i`` (``i == len(chunks)``: before the end of the body).
    Faults: ``delay_before_headers``; ``stall_after=n`` stalls after ``n`` chunks until the
    client leaves or the server stops, sending ``keepalive`` every ``keepalive_every`` s;
    ``repeat_forever`` is sent every ``delay_between`` s after the chunks, until the client
    leaves; ``reset_after=n`` sends a TCP RST after ``n`` chunks; ``drop_mid_chunk=i`` sends
    half of chunk ``i`` then closes; ``raw`` is written verbatim instead of a response.
    """

    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    chunks: List[bytes] = field(default_factory=list)
    chunked: bool = True
    length: bool = False
    reason: Optional[str] = None
    delay_before_headers: float = 0.0
    delay_between: float = 0.0
    gates: Dict[int, threading.Event] = field(default_factory=dict)
    gate_timeout: float = 5.0
    stall_after: Optional[int] = None
    keepalive_every: Optional[float] = None
    keepalive: bytes = b": ping\n\n"
    repeat_forever: Optional[bytes] = None
    reset_after: Optional[int] = None
    drop_mid_chunk: Optional[int] = None
    raw: Optional[bytes] = None
    close: bool = False

    @classmethod
    def sse(cls, *events: Any, **kwargs: Any) -> "Reply":
        """A text/event-stream reply, one chunk per event."""
        return cls(chunks=[sse(e) for e in events], **kwargs)

    @classmethod
    def json(cls, status: int, body: Any, headers: Optional[Dict[str, str]] = None, **kwargs: Any) -> "Reply":
        """A JSON reply with Content-Length (how APIs answer errors)."""
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        return cls(status=status, headers=all_headers, chunks=[data], length=True, **kwargs)


@dataclass
class Request:
    method: str
    path: str
    headers: Dict[str, str]  # lower-case names
    body: bytes
    connection: int  # index into Server.connections
    time: float  # time.monotonic() when the request was complete

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class Connection:
    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.buffer = b""
        self.disconnected = threading.Event()  # set when the client closed or reset


class _Gone(Exception):
    """The client left or the server is stopping."""


class Server:
    """See the module docstring. ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(POLL)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready = threading.Event()
        self.disconnected = threading.Event()  # any client disconnected
        self.requests: List[Request] = []
        self.connections: List[Connection] = []
        self.errors: List[str] = []
        self.gate_timeouts = 0
        self._replies: Deque[Reply] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self.leaked: List[str] = []
        #: ``responder(request) -> Reply`` answers when no scripted reply is queued (concurrent
        #: clients, whose requests arrive in no fixed order)
        self.responder: Optional[Any] = None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        self._spawn(self._accept_loop, "testserver-accept")
        self.ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            socks = [c.sock for c in self.connections]
            self._cond.notify_all()
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.leaked = [t.name for t in self._threads if t.is_alive()]
        self._listener.close()

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- scripting and inspection -----------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._cond:
            self._replies.extend(replies)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= count, timeout)

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    # -- serving ------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self.ready.set()
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delays between writes
            with self._cond:
                conn = Connection(len(self.connections), sock)
                self.connections.append(conn)
            self._spawn(self._serve, f"testserver-conn-{conn.index}", conn)

    def _serve(self, conn: Connection) -> None:
        try:
            while not self._stop.is_set():
                request = self._read_request(conn)
                with self._cond:
                    self.requests.append(request)
                    reply = self._replies.popleft() if self._replies else None
                    self._cond.notify_all()
                if reply is None and self.responder is not None:
                    reply = self.responder(request)
                if reply is None:
                    self.errors.append(f"no scripted reply for {request.method} {request.path}")
                    reply = Reply.json(500, {"error": {"message": "test server: no scripted reply"}})
                if not self._respond(conn, reply):
                    break
        except _Gone:
            pass
        except Exception as exc:  # recorded, never raised in a server thread
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass

    def _gone(self, conn: Connection) -> _Gone:
        if not self._stop.is_set():
            conn.disconnected.set()
            self.disconnected.set()
        return _Gone()

    def _poll(self, conn: Connection, seconds: float) -> None:
        """Wait up to ``seconds`` for input; buffer it. Raises _Gone on EOF/reset/stop."""
        if self._stop.is_set():
            raise _Gone()
        try:
            readable, _, _ = select.select([conn.sock], [], [], max(0.0, seconds))
            if not readable:
                return
            data = conn.sock.recv(65536)
        except (OSError, ValueError):
            raise self._gone(conn) from None
        if self._stop.is_set():
            raise _Gone()
        if not data:
            raise self._gone(conn)
        conn.buffer += data

    def _pause(self, conn: Connection, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            self._poll(conn, min(POLL, max(remaining, 0.0)))
            if remaining <= 0:
                return

    def _send(self, conn: Connection, data: bytes) -> None:
        if self._stop.is_set():
            raise _Gone()
        try:
            conn.sock.sendall(data)
        except OSError:
            raise self._gone(conn) from None

    def _read_request(self, conn: Connection) -> Request:
        while b"\r\n\r\n" not in conn.buffer:
            self._poll(conn, POLL)
        head, _, conn.buffer = conn.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        while len(conn.buffer) < size:
            self._poll(conn, POLL)
        body, conn.buffer = conn.buffer[:size], conn.buffer[size:]
        return Request(method, path, headers, body, conn.index, time.monotonic())

    # -- replying -----------------------------------------------------------------------------
    def _respond(self, conn: Connection, reply: Reply) -> bool:
        """Send ``reply``; True if the connection stays open for another request."""
        if reply.delay_before_headers:
            self._pause(conn, reply.delay_before_headers)
        if reply.raw is not None:
            self._send(conn, reply.raw)
            return self._finish_close(conn)
        framing = "length" if reply.length else "chunked" if reply.chunked else "close"
        self._send(conn, self._head(reply, framing))
        frame = (lambda b: b"%x\r\n%s\r\n" % (len(b), b)) if framing == "chunked" else (lambda b: b)
        chunks = [c for c in reply.chunks if c]
        for i, chunk in enumerate(chunks + [None]):  # type: ignore[operator]
            if i in reply.gates:
                self._wait_gate(conn, reply.gates[i], reply.gate_timeout)
            if reply.reset_after == i:
                return self._reset(conn)
            if reply.stall_after == i:
                self._stall(conn, reply, frame)
            if chunk is None:
                break
            if i and reply.delay_between:
                self._pause(conn, reply.delay_between)
            if reply.drop_mid_chunk == i:
                half = chunk[:max(1, len(chunk) // 2)]
                self._send(conn, (b"%x\r\n" % len(chunk) + half) if framing == "chunked" else half)
                conn.sock.shutdown(socket.SHUT_RDWR)
                return False
            self._send(conn, frame(chunk))
        while reply.repeat_forever is not None:
            self._pause(conn, reply.delay_between)
            self._send(conn, frame(reply.repeat_forever))
        if framing == "chunked":
            self._send(conn, b"0\r\n\r\n")
        if framing == "close" or reply.close:
            return self._finish_close(conn)
        return True

    def _head(self, reply: Reply, framing: str) -> bytes:
        headers = {k.lower(): (k, v) for k, v in reply.headers.items()}
        if "content-type" not in headers and reply.status < 300:
            headers["content-type"] = ("Content-Type", "text/event-stream")
        if framing == "chunked":
            headers["transfer-encoding"] = ("Transfer-Encoding", "chunked")
        elif framing == "length":
            headers["content-length"] = ("Content-Length", str(sum(len(c) for c in reply.chunks)))
        if framing == "close" or reply.close:
            headers["connection"] = ("Connection", "close")
        reason = reply.reason or (HTTPStatus(reply.status).phrase if reply.status in _KNOWN else "Overloaded")
        lines = [f"HTTP/1.1 {reply.status} {reason}"] + [f"{k}: {v}" for k, v in headers.values()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _wait_gate(self, conn: Connection, gate: threading.Event, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not gate.is_set():
            if time.monotonic() >= deadline:
                self.gate_timeouts += 1
                return
            self._poll(conn, POLL / 5)

    def _stall(self, conn: Connection, reply: Reply, frame: Any) -> None:
        """Until the client leaves or the server stops (raises _Gone)."""
        while True:
            if reply.keepalive_every:
                self._pause(conn, reply.keepalive_every)
                self._send(conn, frame(reply.keepalive))
            else:
                self._poll(conn, POLL)

    def _reset(self, conn: Connection) -> bool:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()
        return False

    def _finish_close(self, conn: Connection) -> bool:
        """End a close-delimited reply (FIN), then wait for the client to close too."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        while True:
            self._poll(conn, POLL)


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


# --- a minimal HTTPModel for transport tests ------------------------------------------------
# Wire format: each event's data is JSON {"t": text} -> TextChunk, {"finish": reason} ->
# FinishReport, {"error": {"type", "message"}} -> in-band ModelStreamError; "[DONE]" ends.

from agentstream._cancel import CancelToken  # noqa: E402
from agentstream._channel import Batch  # noqa: E402
from agentstream.exceptions import ModelStreamError  # noqa: E402
from agentstream.models._base import (FinishReport, ModelRequestParameters, StreamContext,  # noqa: E402
                                      TextChunk)
from agentstream.models._errors import ERROR_TYPE_STATUS  # noqa: E402
from agentstream.models._http_model import HTTPModel, HTTPRequest  # noqa: E402
from agentstream.settings import ModelSettings  # noqa: E402

FAKE_KEY = "sk-test-FAKEKEY-0123456789abcdefDONOTLEAK"


class TinyTranslator:
    def __init__(self) -> None:
        self._done = False
        self.finish_reason: Optional[str] = None

    @property
    def done(self) -> bool:
        return self._done

    def translate(self, event: Any) -> List[Any]:
        if event.data == "[DONE]":
            self._done = True
            return []
        try:
            obj = json.loads(event.data)
        except ValueError:
            raise ModelStreamError("tiny: event data is not JSON", line=event.data) from None
        if "error" in obj:
            err = obj["error"]
            raise ModelStreamError(f"tiny: {err.get('message')}", line=event.data, error_type=err.get("type"),
                                   status=ERROR_TYPE_STATUS.get(err.get("type")))
        if "t" in obj:
            return [TextChunk(obj["t"])]
        if "finish" in obj:
            self.finish_reason = obj["finish"]
            return [FinishReport(obj["finish"])]
        return []

    def finish(self) -> List[Any]:
        if not self._done and self.finish_reason is None:
            raise ModelStreamError("tiny: stream ended before [DONE]")
        return []


class TinyModel(HTTPModel):
    system = "tiny"
    retry_base = 0.01
    retry_max_delay = 0.05

    def build_request(self, messages: Any, settings: Any, params: Any) -> HTTPRequest:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        inputs = [m if isinstance(m, str) else type(m).__name__ for m in messages]
        return HTTPRequest(f"{self.base_url}/v1/stream", {"model": self.model_name, "input": inputs}, headers)

    def new_translator(self) -> TinyTranslator:
        return TinyTranslator()


def collect(model: HTTPModel, cancel: Any = None, retries: Optional[List[Any]] = None,
            settings: Optional[ModelSettings] = None, on_item: Any = None) -> Any:
    """Run one stream to its end: (items, error or None). ``retries`` gets (attempt, delay, error)."""
    ctx = StreamContext(cancel=cancel if cancel is not None else CancelToken(),
                        on_retry=lambda a, d, e: retries.append((a, d, e)) if retries is not None else None)
    items: List[Any] = []
    try:
        for batch in model.stream(["hi"], settings or ModelSettings(), ModelRequestParameters(), ctx):
            for item in batch if type(batch) is Batch else [batch]:  # a Batch: the items of one read
                items.append(item)
                if on_item is not None:
                    on_item(item)
    except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
        return items, exc
    return items, None


def consume_in_thread(model: HTTPModel, cancel: CancelToken):
    """Start consuming on a thread; returns (first-item event, done event, result dict)."""
    first, done, result = threading.Event(), threading.Event(), {"items": []}

    def run() -> None:
        items, error = collect(model, cancel=cancel, on_item=lambda item: first.set())
        result.update(items=items, error=error, end=time.monotonic())
        done.set()

    thread = threading.Thread(target=run, name="test-consumer", daemon=True)
    thread.start()
    result["thread"] = thread
    return first, done, result
