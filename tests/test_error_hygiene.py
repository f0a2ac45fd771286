"""Errors a user sees (issue 10, point 4): no API key anywhere reachable from them, the URL
named (scrubbed), a hint at ``base_url`` on a 404, a base_url ending in an endpoint path
refused at construction, an empty body said to be empty.

"Reachable" is everything an exception handler, logger or error tracker could walk:
``__cause__`` / ``__context__`` chains, ``args``, attributes (``.request`` / ``.response`` of
requests' exceptions, their headers, ...), recursively. (Not the frames of ``__traceback__``:
their locals hold whatever the code had, in every library.)
"""
from __future__ import annotations

import socket
import threading
from typing import Any, List, Set

import pytest

from agentstream import Agent, UserError
from agentstream.exceptions import ModelHTTPError, ModelStreamError, StreamTimeout
from agentstream.models.anthropic import AnthropicModel
from agentstream.models.openai_chat import OpenAIChatModel
from agentstream.settings import Timeout
from tests.server import FAKE_KEY, Reply, Server, TinyModel, collect, refused_url, sse

_SKIP = (type, type(socket), type(len), type(lambda: 0), type(threading.Lock()), threading.Thread)


def key_paths(obj: Any, key: str = FAKE_KEY) -> List[str]:
    """Every path from ``obj`` to a str / bytes holding ``key`` (bounded walk)."""
    found: List[str] = []
    seen: Set[int] = set()
    needle = key.encode()

    def walk(value: Any, path: str, depth: int) -> None:
        if isinstance(value, str):
            if key in value:
                found.append(path)
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            if needle in bytes(value):
                found.append(path)
            return
        if value is None or isinstance(value, (int, float, bool, _SKIP)) or depth > 12 or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, BaseException):
            walk(value.__cause__, path + ".__cause__", depth + 1)
            walk(value.__context__, path + ".__context__", depth + 1)
            walk(value.args, path + ".args", depth + 1)
            try:
                walk(str(value), f"str({path})", depth + 1)
                walk(repr(value), f"repr({path})", depth + 1)
            except Exception:
                pass
        if isinstance(value, dict):
            for k, v in list(value.items()):
                walk(k, f"{path}[key]", depth + 1)
                walk(v, f"{path}[{k!r}]", depth + 1)
            return
        if isinstance(value, (list, tuple, set, frozenset)):
            for i, v in enumerate(list(value)):
                walk(v, f"{path}[{i}]", depth + 1)
            return
        attrs = getattr(value, "__dict__", None)
        if isinstance(attrs, dict):
            for name, v in list(attrs.items()):
                if name != "__traceback__":
                    walk(v, f"{path}.{name}", depth + 1)
        for name in getattr(type(value), "__slots__", ()):
            walk(getattr(value, name, None), f"{path}.{name}", depth + 1)

    walk(obj, "error", 0)
    return found


@pytest.fixture
def server(fd_guard):
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked


def tiny(url: str, **kwargs: Any) -> TinyModel:
    kwargs.setdefault("timeout", Timeout(connect=2, idle=0.3, total=10))
    return TinyModel("tiny-1", base_url=url, api_key=FAKE_KEY, max_retries=0, **kwargs)


def error_of(model: TinyModel) -> BaseException:
    try:
        _items, error = collect(model)
    finally:
        model.close()
    assert error is not None
    return error


def test_the_walk_finds_a_key_behind_a_requests_exception():
    import requests

    request = requests.Request("POST", "http://127.0.0.1:9/x", headers={"Authorization": f"Bearer {FAKE_KEY}"})
    wrapped = ModelStreamError("boom")
    wrapped.__cause__ = requests.ConnectionError("refused", request=request.prepare())
    assert key_paths(wrapped) == ["error.__cause__.request.headers._store['authorization'][1]"]


REPLIES = {
    "http-401": Reply.json(401, {"error": {"message": "bad key", "type": "authentication_error"}}),
    "http-500": Reply.json(500, {"error": {"message": "boom", "type": "server_error"}}),
    "cut-mid-body": Reply.sse({"t": "a"}, {"t": "b"}, drop_mid_chunk=1),
    "reset": Reply.sse({"t": "a"}, {"t": "b"}, reset_after=1),
    "idle-timeout": Reply.sse({"t": "a"}, {"t": "b"}, stall_after=1),
    "header-timeout": Reply.sse({"t": "a"}, delay_before_headers=5),
    "invalid-utf8": Reply(chunks=[sse({"t": "a"}), b'data: {"t": "\xff"}\n\n']),
    "not-sse": Reply(chunks=[sse({"t": "a"}), b"<html>Bad Gateway</html>\n"]),
}


@pytest.mark.parametrize("case", sorted(REPLIES))
def test_no_key_reachable_from_a_stream_error(server, case):
    server.enqueue(REPLIES[case])
    timeout = Timeout(connect=0.3, idle=0.3) if case == "header-timeout" else None
    error = error_of(tiny(server.url, **({"timeout": timeout} if timeout else {})))
    assert isinstance(error, (ModelHTTPError, ModelStreamError, StreamTimeout)), repr(error)
    assert key_paths(error) == []


def test_no_key_reachable_from_a_connection_error(fd_guard):
    error = error_of(tiny(refused_url()))
    assert isinstance(error, ModelStreamError) and error.error_type == "connection_error"
    assert key_paths(error) == []
    assert isinstance(error.__cause__, ConnectionRefusedError)   # a clean copy of the root cause
    assert error.__cause__.__traceback__ is None and error.__context__ is None


def test_no_key_reachable_from_a_connect_timeout(fd_guard):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.socket()
    filler.connect(listener.getsockname())   # the accept queue is full: the next connect hangs
    try:
        error = error_of(tiny(f"http://127.0.0.1:{listener.getsockname()[1]}",
                              timeout=Timeout(connect=0.3, idle=1)))
    finally:
        filler.close()
        listener.close()
    assert isinstance(error, StreamTimeout) and error.kind == "connect", repr(error)
    assert key_paths(error) == []


@pytest.mark.parametrize("case", ["http-500", "cut-after-output", "refused"])
def test_no_key_reachable_through_an_agent_run(server, case):
    """What the run raises (with its partial text, messages and usage attached) holds no key."""
    base = refused_url() if case == "refused" else server.url
    if case == "http-500":
        server.enqueue(Reply.json(500, {"error": {"message": "boom"}}))
    elif case == "cut-after-output":
        server.enqueue(Reply(chunks=[sse({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}), b"data: {"],
                             drop_mid_chunk=1))
    model = OpenAIChatModel("gpt-test", base_url=base + "/v1", api_key=FAKE_KEY, max_retries=0)
    try:
        with pytest.raises((ModelHTTPError, ModelStreamError)) as info:
            Agent(model).run("hi")
    finally:
        model.close()
    assert key_paths(info.value) == []


# --- messages ----------------------------------------------------------------------------------

class QueryModel(TinyModel):
    def build_request(self, *args: Any) -> Any:
        request = super().build_request(*args)
        request.url += "?key=SECRETQ"   # as Gemini's ?alt=sse, or a key in the query
        return request


def test_http_error_names_the_url_without_its_query(server):
    server.enqueue(Reply.json(500, {"error": {"message": "boom"}}))
    model = QueryModel("tiny-1", base_url=server.url.replace("//", "//user:SECRETU@") + "/base",
                       api_key=FAKE_KEY, max_retries=0)
    error = error_of(model)
    assert isinstance(error, ModelHTTPError)
    assert f"(POST {server.url}/base/v1/stream)" in str(error)
    assert error.url == f"{server.url}/base/v1/stream"   # type: ignore[attr-defined]
    assert "SECRETQ" not in repr(error) and "SECRETU" not in repr(error)


@pytest.mark.parametrize("url, shown", [
    ("https://user:pw@host:8443/v1/x?key=k#frag", "https://host:8443/v1/x"),
    ("http://[::1]:8080/v1?x=1", "http://[::1]:8080/v1"),
    ("host/v1?key=k", "host/v1"),
    ("//user:pw@host/v1", "//host/v1"),
    ("http://host:99999/v1?key=k", "http://host:99999/v1"),
])
def test_safe_url(url, shown):
    from agentstream._http_errors import safe_url

    assert safe_url(url) == shown


def test_404_hints_at_base_url(server):
    server.enqueue(Reply.json(404, {"error": {"message": "Not Found"}}))
    model = OpenAIChatModel("gpt-test", base_url=server.url + "/v2", api_key=FAKE_KEY, max_retries=0)
    try:
        with pytest.raises(ModelHTTPError) as info:
            Agent(model).run("hi")
    finally:
        model.close()
    message = str(info.value)
    assert "HTTP 404" in message and "check base_url=" in message
    assert f"requests go to {server.url}/v2/chat/completions" in message


@pytest.mark.parametrize("cls, base, root", [
    (OpenAIChatModel, "http://127.0.0.1:9/v1/chat/completions", "http://127.0.0.1:9/v1"),
    (OpenAIChatModel, "http://127.0.0.1:9/v1/chat/completions/", "http://127.0.0.1:9/v1"),
    (OpenAIChatModel, "http://127.0.0.1:9/v1/completions", "http://127.0.0.1:9/v1"),
    (OpenAIChatModel, "http://127.0.0.1:9/v1/responses", "http://127.0.0.1:9/v1"),
    (AnthropicModel, "http://127.0.0.1:9/v1/messages", "http://127.0.0.1:9"),
    (AnthropicModel, "http://127.0.0.1:9/messages", "http://127.0.0.1:9"),
])
def test_base_url_ending_in_an_endpoint_is_refused_with_the_fix(cls, base, root):
    with pytest.raises(UserError) as info:
        cls("m", base_url=base, api_key=FAKE_KEY)
    assert f"base_url={root!r}" in str(info.value)


def test_base_url_with_endpoint_like_segments_elsewhere_is_fine():
    model = OpenAIChatModel("m", base_url="http://127.0.0.1:9/chat/completions-proxy/v1", api_key=FAKE_KEY)
    model.close()


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_empty_200_body_says_zero_bytes(server, framing):
    server.enqueue(Reply(chunks=[], length=framing == "length", chunked=framing == "chunked"))
    error = error_of(tiny(server.url))
    assert isinstance(error, ModelStreamError)
    assert "after 0 bytes" in str(error), str(error)


def test_body_without_any_event_says_how_it_starts(server):
    server.enqueue(Reply(headers={"Content-Type": "text/plain"}, chunks=[b"Error: upstream timed out\n"],
                         length=True))
    error = error_of(tiny(server.url))
    assert isinstance(error, ModelStreamError)
    assert "without a single Server-Sent Event" in str(error) and "Error: upstream timed out" in str(error)
