"""agentstream.web and examples/flask_app.py: SSE responses, and a departed client cancels the run.

The browser tests drive headless Chromium (Debian ``chromium`` + ``chromium-driver``)
with selenium against the example app served by werkzeug on 127.0.0.1; they skip,
with the reason, when those are not installed (CI installs them: ``.ci/run``).
"""
from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from agentstream import Agent
from agentstream.models import FunctionModel, TestModel
from agentstream.web import TERMINAL_KINDS, django_response, flask_response

flask = pytest.importorskip("flask")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app.py"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")

pytestmark = pytest.mark.timeout(20)


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("agentstream_flask_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Steps:
    """A model that streams its next chunk each time the test calls ``release()``
    (and stops at once on cancel)."""

    def __init__(self, *chunks: str) -> None:
        self.chunks = chunks
        self.permits = threading.Semaphore(0)

    def release(self) -> None:
        self.permits.release()

    def __call__(self, messages: Any, info: Any) -> Iterator[str]:
        unhook = info.cancel.add_callback(self.permits.release)
        try:
            for chunk in self.chunks:
                if not self.permits.acquire(timeout=15) or info.cancel.is_set():
                    return
                yield chunk
        finally:
            unhook()


class Recording:
    """An agent for the app that notes every event of every run it starts."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.kinds: List[List[str]] = []
        self.ended = threading.Event()

    def run_stream(self, prompt: str) -> Any:
        kinds: List[str] = []
        self.kinds.append(kinds)

        def note(event: Any) -> None:
            kinds.append(event.kind)
            if event.kind in TERMINAL_KINDS:
                self.ended.set()

        return self.agent.run_stream(prompt, on_event=note)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-werkzeug", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def frames(body: bytes) -> List[Any]:
    """(event, data) of each SSE frame; heartbeats skipped."""
    out = []
    for block in body.decode("utf-8").split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if lines:
            fields = dict(line.split(": ", 1) for line in lines)
            out.append((fields["event"], json.loads(fields["data"])))
    return out


# -- the helpers ----------------------------------------------------------------------------------------------------
def test_flask_response_streams_every_event(no_thread_leak):
    app = flask.Flask("t")
    agent = Agent(TestModel(custom_output_text="Hello there"))
    app.add_url_rule("/s", "s", lambda: flask_response(agent.run_stream("hi"), heartbeat=1))
    response = app.test_client().get("/s")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    got = frames(response.get_data())
    assert got[0][0] == "run_start" and got[-1][0] == "run_complete"
    assert all(kind == data["kind"] for kind, data in got)
    assert "".join(d["text"] for k, d in got if k == "text_delta") == "Hello there"


def test_django_response(no_thread_leak):
    django = pytest.importorskip("django", reason="Django not installed (optional)")
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEFAULT_CHARSET="utf-8")
        django.setup()
    stream = Agent(TestModel(custom_output_text="Hi")).run_stream("hi")
    response = django_response(stream, heartbeat=1)
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    got = frames(b"".join(response.streaming_content))
    assert got[-1][0] == "run_complete"
    response.close()


def test_closing_the_response_early_cancels(no_thread_leak):
    """What a WSGI server does when the client leaves: close() the body."""
    steps = Steps("first", "never sent")
    stream = Agent(FunctionModel(steps)).run_stream("hi")
    with flask.Flask("t").test_request_context():
        response = flask_response(stream, heartbeat=0.05)
    body = iter(response.response)
    steps.release()
    received = b""
    while b"event: text_delta" not in received:
        received += next(body)
    assert not stream.cancel_token.is_set()
    response.close()
    assert stream.cancel_token.is_set() and stream.done


# -- the example app over a real socket ----------------------------------------------------------------------------------
def test_client_leaving_cancels_the_run_on_the_server(no_thread_leak):
    steps = Steps("Hello", "never sent")
    agent = Recording(Agent(FunctionModel(steps)))
    app = load_example().create_app(agent, heartbeat=0.1)
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/stream?prompt=hi")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        assert response.getheader("X-Accel-Buffering") == "no"
        steps.release()
        received = b""
        while b"event: text_delta" not in received:
            received += response.read1(65536)
        (stream,) = app.extensions["agentstream_runs"].values()
        assert not stream.cancel_token.is_set()
        response.close()  # the client leaves mid-answer
        conn.close()
        assert agent.ended.wait(5), agent.kinds
        (kinds,) = agent.kinds
        assert kinds[-1] == "cancelled" and kinds.count("text_delta") == 1
        assert stream.cancel_token.is_set()


def test_cancel_endpoint(no_thread_leak):
    steps = Steps("Hello", "never sent")
    agent = Recording(Agent(FunctionModel(steps)))
    app = load_example().create_app(agent, heartbeat=0.1)
    client = app.test_client()
    assert client.post("/cancel/nope").status_code == 404
    response = client.get("/stream?prompt=hi", buffered=False)
    body = response.iter_encoded()
    steps.release()
    (run_id,) = list(app.extensions["agentstream_runs"])
    assert client.post(f"/cancel/{run_id}").status_code == 204
    got = frames(b"".join(body))
    assert [k for k, _ in got][-1] == "cancelled" and got[-1][1]["partial_text"] in ("", "Hello")
    response.close()


# -- the example app in headless Chromium ------------------------------------------------------------------------------
@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver, log_output=subprocess.DEVNULL),
                              options=options)
    driver.set_page_load_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver: Any, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById({element_id!r}).textContent")


def wait_text(driver: Any, element_id: str, expected: str, timeout: float = 5) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.02).until(
        lambda d: page_text(d, element_id) == expected,
        message=f"#{element_id} never became {expected!r} (it is {page_text(driver, element_id)!r})")


@pytest.mark.slow
def test_page_shows_text_as_it_arrives_and_leaving_cancels(browser, no_thread_leak):
    steps = Steps("Hello", ", wor", "ld!")
    agent = Recording(Agent(FunctionModel(steps)))
    app = load_example().create_app(agent, heartbeat=0.1)
    with serve(app) as url:
        browser.get(url + "/?prompt=hi")
        wait_text(browser, "status", "running")
        steps.release()
        wait_text(browser, "answer", "Hello")  # the first chunk is on the page, alone
        steps.release()
        wait_text(browser, "answer", "Hello, wor")
        assert page_text(browser, "status") == "running"
        (stream,) = app.extensions["agentstream_runs"].values()
        browser.get("about:blank")  # leave the page mid-answer (its pagehide closes the EventSource)
        assert agent.ended.wait(5), agent.kinds
        assert stream.cancel_token.is_set()
        (kinds,) = agent.kinds
        assert kinds[-1] == "cancelled" and kinds.count("text_delta") == 2


@pytest.mark.slow
def test_page_completes_a_run_then_stops_one(browser, no_thread_leak):
    def get_weather(city: str) -> str:
        """Weather."""
        return f"{city}: sunny"

    agent = Recording(Agent(TestModel(custom_output_text="Sunny in Paris."), tools=[get_weather]))
    app = load_example().create_app(agent, heartbeat=0.1)
    with serve(app) as url:
        browser.get(url + "/?prompt=hi")
        wait_text(browser, "status", "run_complete")
        assert page_text(browser, "answer") == "Sunny in Paris."
        assert page_text(browser, "tools") == 'get_weather({"city":"a"}) -> "a: sunny"'
        assert agent.kinds[0][-1] == "run_complete"

        steps = Steps("Hello", "never sent")
        agent.agent = Agent(FunctionModel(steps))
        agent.ended.clear()
        browser.get(url + "/?prompt=again")
        steps.release()
        wait_text(browser, "answer", "Hello")
        browser.find_element("id", "stop").click()
        wait_text(browser, "status", "cancelled")
        assert agent.ended.wait(5) and agent.kinds[1][-1] == "cancelled"
        assert len(agent.kinds) == 2  # the first EventSource was closed, not reconnected


@pytest.mark.slow
def test_quitting_the_browser_cancels(browser, no_thread_leak):
    steps = Steps("Hello", "never sent")
    agent = Recording(Agent(FunctionModel(steps)))
    app = load_example().create_app(agent, heartbeat=0.1)
    with serve(app) as url:
        browser.get(url + "/?prompt=hi")
        steps.release()
        wait_text(browser, "answer", "Hello")
        browser.quit()  # the fixture's quit() afterwards is harmless
        assert agent.ended.wait(5), agent.kinds
        assert agent.kinds[0][-1] == "cancelled"


@pytest.mark.slow
def test_page_drops_a_response_that_is_sent_again(browser, no_thread_leak):
    """``Retrying(reset=True)`` (max_retries_after_output): the page removes what the void
    response showed and keeps the earlier steps' text."""
    from agentstream.messages import ToolCallPart
    from agentstream.models._base import StreamReset

    def fn(messages: Any, info: Any) -> Iterator[Any]:
        if len(messages) == 1:
            yield "Checking. "
            yield ToolCallPart("noop", {}, "c1")
            return
        yield "Cloudy"
        yield StreamReset(1, 0.0, "connection cut")
        yield "Sunny."

    def noop() -> str:
        """Nothing."""
        return "ok"

    agent = Recording(Agent(FunctionModel(fn), tools=[noop]))
    app = load_example().create_app(agent, heartbeat=0.1)
    with serve(app) as url:
        browser.get(url + "/?prompt=hi")
        wait_text(browser, "status", "run_complete")
        assert page_text(browser, "answer") == "Checking. Sunny."
        assert "retrying" in agent.kinds[0]
