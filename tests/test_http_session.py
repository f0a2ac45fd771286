"""_session: the session new_session() makes (prepared requests, environment, pool size).
(The lazy socket timeout: tests/test_connection_owner.py.) Requests must look and behave as ``session.post`` made them."""
from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any, Dict, List

import pytest
import requests

from agentstream import _session
from agentstream.models._base import TextChunk
from agentstream.settings import Timeout
from tests.conftest import open_fds
from tests.server import FAKE_KEY, Reply, Server, TinyModel, collect, refused_url


@pytest.fixture
def server():
    gc.collect()
    before = open_fds()
    with Server() as srv:
        yield srv
    assert not srv.leaked, srv.leaked
    assert not srv.errors, srv.errors
    deadline = time.monotonic() + 3.0
    while open_fds() > before and time.monotonic() < deadline:
        gc.collect()
        threading.Event().wait(0.02)  # bounded wait for sockets to be released
    assert open_fds() <= before, f"file descriptors leaked: {before} -> {open_fds()}"


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", os.devnull)
    return monkeypatch


def model_on(url: str, session: Any = None, **kwargs: Any) -> TinyModel:
    return TinyModel("tiny-1", base_url=url, api_key=FAKE_KEY, session=session,
                     timeout=Timeout(connect=2, idle=2, total=10), **kwargs)


def texts(items: List[Any]) -> List[str]:
    return [i.text for i in items if isinstance(i, TextChunk)]


def sent(server: Server, model: TinyModel, **settings: Any) -> Dict[str, Any]:
    server.enqueue(Reply.sse({"t": "a"}, "[DONE]"))
    items, error = collect(model, **settings)
    assert error is None and texts(items) == ["a"]
    req = server.requests[-1]
    return {"method": req.method, "path": req.path, "headers": req.headers, "body": req.body}


# --- prepared requests -----------------------------------------------------------------------

def test_request_is_the_one_session_post_sends(server, clean_env):
    ours = model_on(server.url)
    plain = model_on(server.url, session=requests.Session())
    try:
        assert isinstance(ours.session, _session._Session)
        first, again, reference = sent(server, ours), sent(server, ours), sent(server, plain)
    finally:
        ours.close()
        plain.session.close()
    assert first == again == reference
    assert list(first["headers"]) == list(reference["headers"])   # same order, too
    assert len(ours.session._prepared) == 1


def test_bodies_and_headers_per_request(server, clean_env):
    from agentstream.settings import ModelSettings

    model = model_on(server.url)
    try:
        one = sent(server, model)
        two = sent(server, model, settings=ModelSettings(extra_headers={"X-Run": "r"}))
        model.session.headers["X-Session"] = "s"   # a change to the session applies at once
        three = sent(server, model)
    finally:
        model.close()
    assert "x-run" not in one["headers"] and two["headers"]["x-run"] == "r"
    assert "x-run" not in three["headers"] and three["headers"]["x-session"] == "s"
    assert one["body"] == two["body"] == three["body"]
    assert one["headers"]["content-length"] == str(len(one["body"]))


def test_prepared_requests_are_bounded():
    session = _session.new_session()
    try:
        for i in range(3 * _session._PREPARED_MAX):
            with pytest.raises(requests.RequestException):   # nothing listens: the request is still prepared
                _session._post(session, refused_url() + "/x", {"i": i}, {"X-I": str(i)}, (0.5, 0.5))
        assert 0 < len(session._prepared) <= _session._PREPARED_MAX
    finally:
        session.close()


def test_proxy_from_environment(server, clean_env):
    clean_env.setenv("HTTP_PROXY", server.url)
    model = model_on("http://example.invalid")   # the "proxy" (the test server) answers
    try:
        request = sent(server, model)
    finally:
        model.close()
    assert request["path"] == "http://example.invalid/v1/stream"


def test_no_proxy_from_environment(server, clean_env):
    clean_env.setenv("HTTP_PROXY", refused_url())
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    model = model_on(server.url)
    try:
        assert sent(server, model)["path"] == "/v1/stream"
    finally:
        model.close()


def test_ca_bundle_from_environment(clean_env):
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/agentstream-test/ca.pem")
    session = _session.new_session()
    try:
        with pytest.raises(requests.RequestException):
            _session._post(session, refused_url() + "/x", {}, {}, (0.5, 0.5))
        (_prepared, settings), = session._prepared.values()
        assert settings["verify"] == "/etc/agentstream-test/ca.pem"
    finally:
        session.close()


def test_cookies_persist_as_with_session_post(server, clean_env):
    model = model_on(server.url)
    try:
        server.enqueue(Reply.sse({"t": "a"}, "[DONE]", headers={"Set-Cookie": "sid=abc; Path=/"}))
        assert collect(model)[1] is None
        assert sent(server, model)["headers"]["cookie"] == "sid=abc"
    finally:
        model.close()


def test_redirect_is_followed_as_with_session_post(server, clean_env):
    model = model_on(server.url)
    try:
        server.enqueue(Reply(status=307, headers={"Location": "/v2/stream"}, length=True))
        redirected = sent(server, model)
    finally:
        model.close()
    first = server.requests[0]
    assert (first.path, redirected["path"]) == ("/v1/stream", "/v2/stream")
    assert redirected["body"] == first.body and redirected["method"] == "POST"


def test_session_hooks_and_auth_still_apply(server, clean_env):
    seen: List[int] = []
    model = model_on(server.url)
    try:
        model.session.hooks["response"].append(lambda r, **kw: seen.append(r.status_code))
        model.session.auth = ("user", "pw")
        request = sent(server, model)
    finally:
        model.close()
    assert seen == [200]
    assert request["headers"]["authorization"].startswith("Basic ")


# --- pool size -------------------------------------------------------------------------------

def test_pool_keeps_a_connection_per_concurrent_stream(server, clean_env):
    """16 concurrent streams, twice: the second round reuses all 16 connections (urllib3's
    default pool of 10 would discard 6 and open 6 new ones)."""
    streams = 16
    release = threading.Event()
    server.responder = lambda request: Reply.sse({"t": "a"}, "[DONE]", gates={1: release}, gate_timeout=5)
    model = model_on(server.url)
    try:
        for round_ in (1, 2):
            results: List[Any] = []
            threads = [threading.Thread(target=lambda: results.append(collect(model)), name=f"test-stream-{i}")
                       for i in range(streams)]
            for thread in threads:
                thread.start()
            assert server.wait_for_requests(streams * round_, 5)
            release.set()
            for thread in threads:
                thread.join(5)
            release.clear()
            assert [(texts(items), error) for items, error in results] == [(["a"], None)] * streams
    finally:
        model.close()
    assert server.connection_count == streams
    assert server.gate_timeouts == 0
