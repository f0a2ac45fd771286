"""HTTPModel / _http against a loopback raw-socket server: delivery, timeouts, cancel, errors."""
from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest
import requests
import responses

from agentstream._cancel import CancelToken
from agentstream.exceptions import (AuthenticationError, ModelHTTPError, ModelStreamError, StreamTimeout,
                                    UserError)
from agentstream.models._base import ModelRequestParameters, StreamContext, TextChunk
from agentstream.settings import ModelSettings, Timeout
from tests.server import FAKE_KEY, Reply, Server, TinyModel, collect, consume_in_thread, refused_url, sse

PROMPT = 0.1  # seconds: a cancel must end a blocked read within this


@pytest.fixture
def server(fd_guard):
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked
    assert not srv.errors, srv.errors


@pytest.fixture
def make_model(server):
    made: List[TinyModel] = []

    def make(**kwargs: Any) -> TinyModel:
        kwargs.setdefault("base_url", server.url)
        kwargs.setdefault("api_key", FAKE_KEY)
        kwargs.setdefault("timeout", Timeout(connect=2, idle=2, total=10))
        model = TinyModel("tiny-1", **kwargs)
        made.append(model)
        return model

    yield make
    for model in made:
        model.close()


def texts(items: List[Any]) -> List[str]:
    return [i.text for i in items if isinstance(i, TextChunk)]


# --- delivery ----------------------------------------------------------------------------------

@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_token_reaches_consumer_before_next_chunk(server, make_model, chunked):
    """gotcha #1: read1, no hold-back on chunked or close-delimited bodies"""
    gate = threading.Event()
    server.enqueue(Reply.sse({"t": "Hel"}, {"t": "lo"}, "[DONE]", chunked=chunked, gates={1: gate},
                             gate_timeout=3))
    model = make_model()
    got = []

    def on_item(item: Any) -> None:
        got.append(time.monotonic())
        gate.set()  # the server sends the next chunk only now

    start = time.monotonic()
    items, error = collect(model, on_item=on_item)
    assert error is None
    assert texts(items) == ["Hel", "lo"]
    assert server.gate_timeouts == 0, "the first token was held back until more data arrived"
    assert got[0] - start < 1.5


def test_items_of_one_read_come_as_one_list(server, make_model):
    server.enqueue(Reply(chunks=[sse({"t": "a"}, {"t": "b"}, {"t": "c"}), sse({"t": "d"}), sse("[DONE]")],
                         gates={1: threading.Event()}, gate_timeout=0.2))
    ctx = StreamContext(cancel=CancelToken())
    got = list(make_model().stream(["hi"], ModelSettings(), ModelRequestParameters(), ctx))
    assert got == [[TextChunk("a"), TextChunk("b"), TextChunk("c")], TextChunk("d")]


def test_items_before_an_error_in_the_same_read_are_kept(server, make_model):
    server.enqueue(Reply(chunks=[sse({"t": "a"}, {"error": {"type": "overloaded_error", "message": "busy"}})]))
    retries: List[Any] = []
    items, error = collect(make_model(), retries=retries)
    assert texts(items) == ["a"]
    assert isinstance(error, ModelStreamError) and error.error_type == "overloaded_error"
    assert retries == []  # output had started


def test_request_shape(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]"))
    model = make_model(headers={"X-Model": "m"})
    items, error = collect(model, settings=ModelSettings(extra_headers={"X-Run": "r"}))
    assert error is None and texts(items) == ["a"]
    req = server.requests[0]
    assert (req.method, req.path) == ("POST", "/v1/stream")
    assert req.json == {"model": "tiny-1", "input": ["hi"]}
    assert req.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["x-model"] == "m" and req.headers["x-run"] == "r"


def test_connection_is_reused(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]"),
                   Reply.json(401, {"error": {"message": "no"}}),
                   Reply.sse({"t": "b"}, "[DONE]", length=True))
    model = make_model()
    assert texts(collect(model)[0]) == ["a"]
    assert isinstance(collect(model)[1], AuthenticationError)
    assert texts(collect(model)[0]) == ["b"]
    assert server.connection_count == 1


def test_done_then_server_keeps_connection_open(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]", stall_after=2))
    model = make_model()
    start = time.monotonic()
    items, error = collect(model)
    assert error is None and texts(items) == ["a"]
    assert time.monotonic() - start < 1.0
    assert server.disconnected.wait(2)


def test_big_single_event(server, make_model):
    big = "x" * 10_000_000
    server.enqueue(Reply.sse({"t": big}, "[DONE]"))
    items, error = collect(make_model())
    assert error is None and texts(items) == [big]


def test_text_plain_with_sse_lines_is_accepted(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]", headers={"Content-Type": "text/plain"}))
    items, error = collect(make_model())
    assert error is None and texts(items) == ["a"]


# --- timeouts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ping", [None, 0.1], ids=["silent", "pings"])
def test_idle_timeout(server, make_model, ping):
    server.enqueue(Reply.sse({"t": "a"}, stall_after=1, keepalive_every=ping))
    model = make_model(timeout=Timeout(connect=2, idle=0.5))
    seen = []
    items, error = collect(model, on_item=lambda item: seen.append(time.monotonic()))
    elapsed = time.monotonic() - seen[0]
    assert texts(items) == ["a"]
    assert isinstance(error, StreamTimeout) and error.kind == "idle" and error.seconds == 0.5
    assert "0.5 s" in str(error)
    assert 0.45 <= elapsed < 1.5, elapsed  # pings every 100 ms did not reset it


def test_idle_is_reset_by_a_big_event_still_arriving(server, make_model):
    pieces = [b'data: {"t": "'] + [b"x" * 100] * 6 + [b'"}\n\n', sse("[DONE]")]
    server.enqueue(Reply(chunks=pieces, delay_between=0.1))
    items, error = collect(make_model(timeout=Timeout(connect=2, idle=0.3)))
    assert error is None and texts(items) == ["x" * 600]


def test_idle_timeout_before_any_content_without_retries(server, make_model):
    server.enqueue(Reply(stall_after=0, keepalive_every=0.1))
    items, error = collect(make_model(timeout=Timeout(connect=2, idle=0.3), max_retries=0))
    assert items == [] and isinstance(error, StreamTimeout) and error.kind == "idle"


def test_total_timeout_on_endless_stream(server, make_model):
    server.enqueue(Reply(chunks=[sse({"t": "x"})], repeat_forever=sse({"t": "x"}), delay_between=0.01))
    model = make_model(timeout=Timeout(connect=2, idle=5, total=0.5))
    start = time.monotonic()
    items, error = collect(model)
    assert isinstance(error, StreamTimeout) and error.kind == "total" and "0.5 s" in str(error)
    assert len(items) > 5
    assert 0.45 <= time.monotonic() - start < 2.0


def test_header_wait_is_bounded_by_connect_timeout(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]", delay_before_headers=30))
    items, error = collect(make_model(timeout=Timeout(connect=0.3, idle=5), max_retries=0))
    assert isinstance(error, StreamTimeout) and error.kind == "connect" and error.seconds == 0.3


# --- cancel ------------------------------------------------------------------------------------

def test_cancel_during_stalled_read(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, stall_after=1))
    cancel = CancelToken()
    first, done, result = consume_in_thread(make_model(), cancel)
    assert first.wait(3)
    start = time.monotonic()
    cancel.cancel()
    assert done.wait(3)
    assert result["end"] - start < PROMPT, result["end"] - start
    assert result["error"] is None and texts(result["items"]) == ["a"]
    assert server.disconnected.wait(2)
    result["thread"].join(2)


@pytest.mark.parametrize("reused", [False, True], ids=["new-connection", "pooled-connection"])
def test_cancel_before_headers(server, make_model, reused):
    model = make_model()
    if reused:
        server.enqueue(Reply.sse({"t": "a"}, "[DONE]"))
        assert collect(model)[1] is None
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]", delay_before_headers=30))
    cancel = CancelToken()
    _first, done, result = consume_in_thread(model, cancel)
    assert server.wait_for_requests(1 + reused, 3)
    start = time.monotonic()
    cancel.cancel()
    assert done.wait(3)
    assert result["end"] - start < PROMPT, result["end"] - start
    assert result["error"] is None and result["items"] == []
    assert server.disconnected.wait(2)
    assert server.connection_count == 1
    result["thread"].join(2)


def test_default_session_uses_abortable_connections():
    from agentstream import _abort
    from agentstream._session import new_session

    session = new_session()
    try:
        for url in ("http://127.0.0.1:9", "https://127.0.0.1:9"):
            adapter = session.get_adapter(url)
            assert isinstance(adapter, _abort.AbortableAdapter)
            pool = adapter.poolmanager.connection_from_url(url)
            assert issubclass(pool.ConnectionCls, _abort._ReportingConnection)
            assert isinstance(pool, _abort._OwnedPool)
            proxied = adapter.proxy_manager_for("http://127.0.0.1:3128").connection_from_url(url)
            assert issubclass(proxied.ConnectionCls, _abort._ReportingConnection)
    finally:
        session.close()


def test_cancel_before_headers_with_callers_session_is_bounded_by_connect(server, make_model):
    """Documented bound: with a plain requests.Session the cancel lands when the header wait ends."""
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]", delay_before_headers=30))
    session = requests.Session()
    cancel = CancelToken()
    _first, done, result = consume_in_thread(
        make_model(session=session, timeout=Timeout(connect=0.5, idle=5)), cancel)
    assert server.wait_for_requests(1, 3)
    cancel.cancel()
    assert done.wait(3)
    assert result["error"] is None and result["items"] == []
    result["thread"].join(2)
    session.close()


def test_cancel_before_request_sends_nothing(server, make_model):
    cancel = CancelToken()
    cancel.cancel()
    items, error = collect(make_model(), cancel=cancel)
    assert (items, error) == ([], None)
    assert server.requests == []


# --- broken streams ----------------------------------------------------------------------------

def test_drop_mid_chunk(server, make_model):
    """gotcha #24: connection cut mid-stream"""
    server.enqueue(Reply.sse({"t": "a"}, {"t": "b"}, {"t": "c"}, drop_mid_chunk=2))
    items, error = collect(make_model())
    assert texts(items) == ["a", "b"]
    assert isinstance(error, ModelStreamError) and error.error_type == "connection_cut"
    assert "cut after" in str(error) and "bytes" in str(error)


def test_drop_mid_event_close_delimited(server, make_model):
    server.enqueue(Reply.sse({"t": "a"}, {"t": "b"}, {"t": "c"}, chunked=False, drop_mid_chunk=2))
    items, error = collect(make_model())
    assert texts(items) == ["a", "b"]
    assert isinstance(error, ModelStreamError)


def test_reset_mid_stream(server, make_model):
    """gotcha #24"""
    gate = threading.Event()
    server.enqueue(Reply.sse({"t": "a"}, {"t": "b"}, reset_after=2, gates={2: gate}))
    items, error = collect(make_model(), on_item=lambda item: gate.set() if item.text == "b" else None)
    assert texts(items) == ["a", "b"]
    assert isinstance(error, ModelStreamError) and error.error_type == "connection_cut"


def test_eof_without_terminator(server, make_model):
    """gotcha #23: a stream that ends without its terminator is an error"""
    server.enqueue(Reply.sse({"t": "a"}))
    items, error = collect(make_model())
    assert texts(items) == ["a"]
    assert isinstance(error, ModelStreamError) and "ended before" in str(error)


def test_invalid_utf8(server, make_model):
    server.enqueue(Reply(chunks=[b'data: {"t": "\xff\xfe"}\n\n']))
    items, error = collect(make_model(max_retries=0))
    assert isinstance(error, ModelStreamError) and error.line and "\ufffd" in error.line


def test_stray_json_error_line(server, make_model):
    """gotcha #21: raw JSON error without data:"""
    line = b'{"error":{"code":400,"message":"context size exceeded","type":"exceed_context_size_error"}}\n'
    server.enqueue(Reply(chunks=[line]))
    items, error = collect(make_model())
    assert isinstance(error, ModelStreamError)
    assert "context size exceeded" in str(error)
    assert error.error_type == "exceed_context_size_error" and error.status == 400
    assert len(server.requests) == 1  # a 400 is not retried


def test_line_without_data_field(server, make_model):
    server.enqueue(Reply(chunks=[b"upstream failed badly\n\n"]))
    items, error = collect(make_model(max_retries=0))
    assert isinstance(error, ModelStreamError) and error.line == "upstream failed badly"


def test_unknown_fields_are_ignored_as_the_spec_says(server, make_model):
    """WHATWG: a field line with an unknown name is ignored -- `` data: x`` (field " data") too."""
    server.enqueue(Reply(chunks=[sse({"t": "a"}), b"foo: bar\n data: {\"t\": \"x\"}\n\n", sse({"t": "b"}),
                                 sse("[DONE]")]))
    items, error = collect(make_model(max_retries=0))
    assert error is None and texts(items) == ["a", "b"]


def test_an_html_page_served_as_an_event_stream_is_reported(server, make_model):
    server.enqueue(Reply(chunks=[b"<!DOCTYPE html>\n<html><body>Bad Gateway</body></html>\n"], length=True))
    items, error = collect(make_model(max_retries=0))
    assert isinstance(error, ModelStreamError) and "not Server-Sent Events" in str(error)
    assert error.line == "<!DOCTYPE html>"


# --- HTTP errors -------------------------------------------------------------------------------

def test_401_maps_to_authentication_error_without_the_key(server, make_model):
    body = {"error": {"message": f"Incorrect API key provided: {FAKE_KEY}", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}
    server.enqueue(Reply.json(401, body, headers={"x-request-id": "req_abc123"}))
    model = make_model()
    items, error = collect(model)
    assert isinstance(error, AuthenticationError) and error.status == 401
    assert error.request_id == "req_abc123" and error.code == "invalid_api_key"
    assert "Incorrect API key provided" in str(error) and "req_abc123" in str(error)
    for text in (str(error), repr(error), error.body, repr(model), str(error.args)):
        assert FAKE_KEY not in text
    assert len(server.requests) == 1


def test_json_error_body_with_status_200(server, make_model):
    """gotcha #22: status and content type checked before SSE parsing"""
    server.enqueue(Reply.json(200, {"error": {"message": "prompt is too long", "type": "invalid_request_error"}}))
    items, error = collect(make_model())
    assert isinstance(error, ModelHTTPError) and error.status == 400
    assert "prompt is too long" in str(error)


def test_json_body_that_is_not_an_error(server, make_model):
    server.enqueue(Reply.json(200, {"choices": [{"message": {"content": "hi"}}]}))
    items, error = collect(make_model())
    assert isinstance(error, ModelStreamError) and "application/json" in str(error)


def test_wrong_content_type(server, make_model):
    """gotcha #22"""
    server.enqueue(Reply(headers={"Content-Type": "text/html"}, chunks=[b"<html>gateway</html>"], length=True))
    items, error = collect(make_model())
    assert isinstance(error, ModelStreamError) and "text/html" in str(error)
    assert "<html>" in error.line


def test_connection_refused(fd_guard):
    model = TinyModel("tiny-1", base_url=refused_url() + "/x?key=SECRETQUERY", max_retries=0)
    try:
        items, error = collect(model)
    finally:
        model.close()
    assert isinstance(error, ModelStreamError) and error.error_type == "connection_error"
    assert "refused" in str(error).lower() and "127.0.0.1" in str(error)
    assert "SECRETQUERY" not in str(error)


# --- construction, repr ------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1, "2", True, 1.5])
def test_max_retries_validated(bad):
    with pytest.raises(UserError):
        TinyModel("m", base_url="http://127.0.0.1:1", max_retries=bad)


def test_repr_hides_key_and_url_secrets():
    model = TinyModel("m", base_url="http://user:pw@127.0.0.1:9/v1/?token=abc/", api_key=FAKE_KEY)
    try:
        text = repr(model)
        assert "m" in text and "127.0.0.1:9" in text
        for secret in (FAKE_KEY, "pw", "token=abc"):
            assert secret not in text
    finally:
        model.close()


def test_key_from_environment(monkeypatch):
    class EnvModel(TinyModel):
        api_key_env = "TINY_TEST_KEY"

    monkeypatch.setenv("TINY_TEST_KEY", FAKE_KEY)
    model = EnvModel("m", base_url="http://127.0.0.1:9")
    assert model._api_key == FAKE_KEY and FAKE_KEY not in repr(model)
    model.close()


def test_close_closes_only_the_session_the_model_made():
    closed = []

    class Spy(requests.Session):
        def close(self) -> None:
            closed.append(self)
            super().close()

    theirs = Spy()
    model = TinyModel("m", base_url="http://127.0.0.1:9", session=theirs)
    assert model.session is theirs
    model.close()
    assert closed == []
    theirs.close()
    own = TinyModel("m", base_url="http://127.0.0.1:9")
    own._session.__class__ = Spy
    own.close()
    assert closed == [theirs, own.session]


# --- responses (no sockets) --------------------------------------------------------------------

@pytest.mark.parametrize("read_size", [1, 7, 65536])
def test_read_sizes_with_responses(read_size):
    body = sse({"t": "café ✅"}, {"t": "b"}, ": ping\n\n".encode(), "[DONE]")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "http://api.test/v1/stream", body=body, content_type="text/event-stream")
        model = TinyModel("m", base_url="http://api.test", api_key=FAKE_KEY, read_size=read_size)
        items, error = collect(model)
        model.close()
        sent = mock.calls[0].request
    assert error is None and texts(items) == ["café ✅", "b"]
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.headers["Accept"] == "text/event-stream"


def test_responses_error_status():
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "http://api.test/v1/stream", status=404,
                 json={"type": "error", "error": {"type": "not_found_error", "message": "model: nope"},
                       "request_id": "req_011"})
        model = TinyModel("m", base_url="http://api.test")
        items, error = collect(model)
        model.close()
        assert len(mock.calls) == 1
    assert type(error) is ModelHTTPError and error.status == 404
    assert error.request_id == "req_011" and "model: nope" in str(error)
