"""_chunked._ChunkedReader: chunked bodies decoded in bulk (one socket read, every HTTP chunk in it).

Unit tests run the reader over a real ``http.client.HTTPResponse`` on a scripted socket (each
scripted piece is one socket read, so splits are exact) and compare it with http.client's own
decoding. End-to-end tests run both paths -- the bulk reader and urllib3's ``read1`` (the
fallback when http.client's private attributes are not there) -- against loopback servers.
"""
from __future__ import annotations

import collections
import http.client
import io
import select
import socket
import threading
import time
from typing import Any, Deque, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentstream import _chunked, _http
from agentstream._cancel import CancelToken
from agentstream.exceptions import ModelStreamError
from agentstream.models._base import TextChunk
from agentstream.settings import Timeout
from tests.server import FAKE_KEY, Reply, Server, TinyModel, collect, consume_in_thread, sse

PROMPT = 0.1  # seconds: a cancel must end a blocked read within this
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


# --- a real http.client response over scripted socket reads ------------------------------------

class _Pieces(io.RawIOBase):
    """A raw stream returning one scripted piece per read (b"" at the end)."""

    def __init__(self, pieces: List[bytes]) -> None:
        self.pieces: Deque[bytes] = collections.deque(p for p in pieces if p)
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        if not self.pieces:
            return 0
        piece = self.pieces.popleft()
        n = min(len(buffer), len(piece))
        buffer[:n] = piece[:n]
        if n < len(piece):
            self.pieces.appendleft(piece[n:])
        return n


class _Sock:
    def __init__(self, pieces: List[bytes]) -> None:
        self.raw = _Pieces(pieces)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self.raw)


def response_over(pieces: List[bytes]) -> http.client.HTTPResponse:
    """An http.client response whose headers are read; each later piece is one socket read."""
    resp = http.client.HTTPResponse(_Sock([HEAD] + pieces))  # type: ignore[arg-type]
    resp.begin()
    return resp


def bulk_read(pieces: List[bytes], size: int = 65536) -> bytes:
    resp = response_over(pieces)
    reader = _chunked._ChunkedReader(resp)
    out = []
    for _ in range(10_000):
        data = reader.read(size)
        if not data:
            assert resp.isclosed(), "the response must be closed at the end (connection reuse)"
            return b"".join(out)
        out.append(data)
    raise AssertionError("the reader never reached the end")


def http_client_read(pieces: List[bytes]) -> bytes:
    return response_over(pieces).read()


def chunk(data: bytes, ext: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    return b"%x%s%s%s\r\n" % (len(data), ext, eol, data)


BODY = (chunk(b"data: a\n\n") + chunk(b"data: bc\n\n", b";name=value") + chunk(b"xyz", b"; ext", b"\n")
        + b"0;last\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n")
DATA = b"data: a\n\ndata: bc\n\nxyz"


def test_whole_body_in_one_read():
    assert bulk_read([BODY]) == DATA == http_client_read([BODY])


def test_every_split_into_two_reads():
    for cut in range(1, len(BODY)):
        assert bulk_read([BODY[:cut], BODY[cut:]]) == DATA, cut


def test_one_byte_per_read():
    assert bulk_read([BODY[i:i + 1] for i in range(len(BODY))]) == DATA


def test_one_read_returns_every_complete_chunk():
    resp = response_over([chunk(b"a") + chunk(b"b") + chunk(b"c")[:4], chunk(b"c")[4:] + b"0\r\n\r\n"])
    reader = _chunked._ChunkedReader(resp)
    assert reader.read(65536) == b"abc"   # "c" arrived in the first read too
    assert reader.read(65536) == b""
    assert resp.isclosed()


def test_nothing_is_read_after_the_trailers():
    resp = response_over([BODY, b"NEXT"])
    reader = _chunked._ChunkedReader(resp)
    while reader.read(65536):
        pass
    assert resp.isclosed()
    assert list(resp.fp.raw.pieces if resp.fp else []) == []  # fp closed: nothing more read from it


def test_no_blank_line_after_the_last_chunk_is_tolerated():
    """http.client accepts EOF where the trailers should end."""
    body = chunk(b"abc") + b"0\r\n"
    assert bulk_read([body]) == b"abc" == http_client_read([body])


@pytest.mark.parametrize("body", [
    chunk(b"abc") + b"zz\r\n",                # not hex
    b"-3\r\nabc\r\n0\r\n\r\n",                # negative
    b"\r\nabc\r\n0\r\n\r\n",                  # empty size line
], ids=["not-hex", "negative", "empty"])
def test_malformed_chunk_size(body):
    with pytest.raises(_chunked.ChunkedBodyError, match="malformed chunk size"):
        bulk_read([body])


def test_data_before_a_malformed_size_comes_first():
    resp = response_over([chunk(b"ab") + chunk(b"c") + b"zz\r\n"])
    reader = _chunked._ChunkedReader(resp)
    assert reader.read(65536) == b"abc"
    for _ in range(2):
        with pytest.raises(_chunked.ChunkedBodyError, match="malformed"):
            reader.read(65536)


def test_oversized_size_line():
    with pytest.raises(_chunked.ChunkedBodyError, match="64 KiB"):
        bulk_read([b"1;" + b"x" * 70_000])


@pytest.mark.parametrize("cut", [3, len(chunk(b"abcdef")) - 1, len(chunk(b"abcdef"))],
                         ids=["in-header", "in-data", "between-chunks"])
def test_eof_inside_the_body(cut):
    body = chunk(b"abcdef") + chunk(b"gh")
    with pytest.raises(_chunked.ChunkedBodyError, match="closed inside a chunked body"):
        bulk_read([body[:cut]])


@st.composite
def chunked_bodies(draw: Any) -> Any:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
    body = b""
    for data in chunks:
        size = (b"%x" if draw(st.booleans()) else b"%X") % len(data)
        size = b"0" * draw(st.integers(0, 2)) + size
        ext = draw(st.sampled_from([b"", b";a", b";a=b", b' ; name="q;x"']))
        body += size + ext + draw(st.sampled_from([b"\r\n", b"\n"])) + data + b"\r\n"
    trailers = draw(st.lists(st.sampled_from([b"X-A: 1\r\n", b"X-B: two words\n"]), max_size=2))
    body += b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n" + b"".join(trailers) + b"\r\n"
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=6)))
    pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    return b"".join(chunks), pieces


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_bodies(), st.sampled_from([1, 5, 65536]))
def test_decodes_like_http_client(case, size):
    data, pieces = case
    assert bulk_read(pieces, size) == data == http_client_read(pieces)


def test_falls_back_without_http_client_internals():
    class Raw:
        _fp = io.BytesIO(b"")   # e.g. the `responses` mock, another urllib3 version

    class Resp:
        raw = Raw()
        headers = {"content-type": "text/event-stream"}

    assert _chunked._chunked_reader(Resp()) is None


# --- end to end: both read paths --------------------------------------------------------------

@pytest.fixture(params=["bulk", "urllib3"])
def read_path(request, monkeypatch):
    """Run the test with the bulk reader, and with urllib3's read1 (the fallback); check that
    the path asked for is the one used."""
    used: List[bool] = []
    original = _chunked._chunked_reader

    def spy(response: Any) -> Any:
        reader = original(response) if request.param == "bulk" else None
        used.append(reader is not None)
        return reader

    monkeypatch.setattr(_http, "_chunked_reader", spy)   # where OpenResponse looks it up
    yield request.param
    assert used and all(used) == (request.param == "bulk"), used


@pytest.fixture
def server(fd_guard):
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked
    assert not srv.errors, srv.errors


def tiny(url: str, **kwargs: Any) -> TinyModel:
    kwargs.setdefault("timeout", Timeout(connect=2, idle=2, total=10))
    return TinyModel("tiny-1", base_url=url, api_key=FAKE_KEY, **kwargs)


def texts(items: List[Any]) -> List[str]:
    return [i.text for i in items if isinstance(i, TextChunk)]


def test_connection_reused_after_chunked_streams(server, read_path):
    server.enqueue(Reply.sse({"t": "a"}, {"t": "b"}, "[DONE]"), Reply.sse({"t": "c"}, "[DONE]"),
                   Reply.sse({"t": "d"}, {"finish": "stop"}))
    model = tiny(server.url)
    try:
        assert [texts(collect(model)[0]) for _ in range(3)] == [["a", "b"], ["c"], ["d"]]
    finally:
        model.close()
    assert server.connection_count == 1


def test_drop_mid_chunk_is_connection_cut(server, read_path):
    server.enqueue(Reply.sse({"t": "a"}, {"t": "b"}, {"t": "c"}, drop_mid_chunk=2, gates={2: threading.Event()},
                             gate_timeout=0.2))
    model = tiny(server.url, max_retries=0)
    try:
        items, error = collect(model)
    finally:
        model.close()
    assert texts(items) == ["a", "b"]
    assert isinstance(error, ModelStreamError) and error.error_type == "connection_cut"
    assert "cut after" in str(error)


def test_malformed_chunk_size_end_to_end(server, read_path):
    server.enqueue(Reply(raw=HEAD + chunk(sse({"t": "a"})) + b"zz\r\nxx\r\n0\r\n\r\n"))
    model = tiny(server.url, max_retries=0)
    try:
        items, error = collect(model)
    finally:
        model.close()
    assert texts(items) == ["a"]
    assert isinstance(error, ModelStreamError) and error.error_type == "connection_cut"


def test_cancel_during_stalled_chunked_read(server, read_path):
    server.enqueue(Reply.sse({"t": "a"}, stall_after=1))
    model = tiny(server.url)
    cancel = CancelToken()
    first, done, result = consume_in_thread(model, cancel)
    try:
        assert first.wait(3)
        start = time.monotonic()
        cancel.cancel()
        assert done.wait(3)
        assert result["end"] - start < PROMPT, result["end"] - start
        assert result["error"] is None and texts(result["items"]) == ["a"]
        assert server.disconnected.wait(2)
    finally:
        result["thread"].join(2)
        model.close()


def test_events_before_an_undecodable_line_in_the_same_read(server, read_path):
    """A bulk read holds many events: those before a bad line still come first."""
    server.enqueue(Reply(chunks=[sse({"t": "a"}) + sse({"t": "b"}) + b'data: {"t": "\xff"}\n\n'], chunked=True))
    model = tiny(server.url, max_retries=0)
    try:
        items, error = collect(model)
    finally:
        model.close()
    assert texts(items) == ["a", "b"]
    assert isinstance(error, ModelStreamError) and "undecodable" in str(error)


class KeepAliveRawServer:
    """Answers each request on a connection with the next scripted raw response (bytes sent
    as they are, one write per piece) and keeps the connection open."""

    def __init__(self, responses: List[List[bytes]]) -> None:
        self.responses: Deque[List[bytes]] = collections.deque(responses)
        self.connections = 0
        self.requests: List[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    def __enter__(self) -> "KeepAliveRawServer":
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        assert not any(t.is_alive() for t in self._threads)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="testserver-raw", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            self.connections += 1
            self._spawn(self._serve, sock)

    def _recv(self, sock: socket.socket) -> Optional[bytes]:
        while not self._stop.is_set():
            if select.select([sock], [], [], 0.05)[0]:
                return sock.recv(65536)
        return None

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with sock:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = self._recv(sock)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                while len(buffer) < length:
                    data = self._recv(sock)
                    if not data:
                        return
                    buffer += data
                self.requests.append(head)
                buffer = buffer[length:]
                for piece in self.responses.popleft():
                    sock.sendall(piece)


def test_extensions_trailers_and_reuse(fd_guard, read_path):
    body1 = (chunk(sse({"t": "a"}), b";ext=1") + chunk(sse({"t": "b"}), b";x") + chunk(sse("[DONE]"))
             + b"0;end\r\nX-Checksum: abc\r\nX-More: 2\r\n\r\n")
    body2 = chunk(sse({"t": "c"})) + chunk(sse("[DONE]")) + b"0\r\n\r\n"
    split = [HEAD, body1[:5], body1[5:40], body1[40:]]   # a chunk header split across writes
    with KeepAliveRawServer([split, [HEAD + body2]]) as srv:
        model = tiny(srv.url)
        try:
            assert collect(model) == ([TextChunk("a"), TextChunk("b")], None)
            assert collect(model) == ([TextChunk("c")], None)
        finally:
            model.close()
    assert srv.connections == 1 and len(srv.requests) == 2
