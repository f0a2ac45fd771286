"""The ``agentstream`` command, end to end: ``sys.executable -m agentstream ...`` in a subprocess.

Offline runs use ``--model test`` or ``--model tests.test_cli:<factory>`` (the
``module:attr`` form); provider runs talk to ``tests.server.Server`` on
127.0.0.1. Every subprocess gets an environment without API keys or proxies,
with every provider base URL pointing at a refused loopback port, so it can
reach nothing but 127.0.0.1. Synchronisation is on the subprocess's output
(read from its pipe), never on sleeps.
"""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from agentstream import ModelMessagesTypeAdapter, TextPart, ThinkingPart
from agentstream._cli_models import detect_model, probe_local_servers
from agentstream.models import FunctionModel, TestModel
from agentstream.models._registry import KNOWN_PREFIXES

from .server import FAKE_KEY, Reply, Server, refused_url

REPO = Path(__file__).resolve().parent.parent
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

pytestmark = pytest.mark.timeout(20)


# -- models and tools the subprocess imports (``--model tests.test_cli:stalling_model``) ---------------
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: City name.
    """
    return f"{city}: 18C, sunny"


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def stalling_model() -> FunctionModel:
    """Streams "partial answer", then waits for the cancel."""
    def fn(messages: List[Any], info: Any) -> Any:
        yield "partial answer"
        info.cancel.wait(30)
    return FunctionModel(fn, model_name="stalling")


def stuck_model() -> FunctionModel:
    """Streams "partial answer", then blocks, deaf to the cancel: only a second Ctrl-C ends the CLI."""
    def fn(messages: List[Any], info: Any) -> Any:
        yield "partial answer"
        threading.Event().wait(30)
    return FunctionModel(fn, model_name="stuck")


def thinking_model() -> FunctionModel:
    def fn(messages: List[Any], info: Any) -> Any:
        yield ThinkingPart("pondering")
        yield "the answer"
    return FunctionModel(fn, model_name="thinker")


def failing_model() -> FunctionModel:
    """Streams a little, then fails."""
    def fn(messages: List[Any], info: Any) -> Any:
        yield "so far "
        raise RuntimeError("the model broke")
    return FunctionModel(fn, model_name="failing")


def echo_system_model() -> FunctionModel:
    """Answers with the system prompt it was given."""
    def fn(messages: List[Any], info: Any) -> Any:
        return "system was: " + " ".join(p.content for m in messages for p in getattr(m, "parts", ())
                                         if getattr(p, "part_kind", "") == "system-prompt")
    return FunctionModel(fn, model_name="echo")


# -- running the CLI -------------------------------------------------------------------------------------
def cli_env(**extra: str) -> Dict[str, str]:
    """No keys, no proxies, every provider URL refused: only what ``extra`` allows is reachable."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k != "AGENTSTREAM_MODEL"}
    refused = refused_url() + "/v1"
    for info in KNOWN_PREFIXES.values():
        for name in ("key_env", "base_url_env"):
            var = getattr(info, name, None)
            if var:
                env.pop(var, None)
        if getattr(info, "base_url_env", None):
            env[info.base_url_env] = refused
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def run_cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentstream", *args], cwd=REPO, env=env or cli_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


class LiveCLI:
    """The CLI as a subprocess whose merged output is read as it arrives."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "agentstream", *args], cwd=REPO, env=env or cli_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = b""
        self.eof = False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 4096)
            with self.cond:
                if not data:
                    self.eof = True
                else:
                    self.output += data
                self.cond.notify_all()
            if not data:
                return

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def wait_for(self, marker: str, timeout: float = 10) -> None:
        with self.cond:
            self.cond.wait_for(lambda: marker.encode() in self.output or self.eof, timeout)
        assert marker in self.text, f"{marker!r} not in output: {self.text!r}"

    def finish(self, timeout: float = 10) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(timeout)
        self.proc.stdout.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()


@pytest.fixture
def live():
    started: List[LiveCLI] = []

    def start(*args: str, env: Optional[Dict[str, str]] = None) -> LiveCLI:
        cli = LiveCLI(*args, env=env)
        started.append(cli)
        return cli

    yield start
    for cli in started:
        cli.kill()


def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


USAGE_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}


def openai_reply(*texts: str, **kwargs: Any) -> Reply:
    return Reply.sse(chunk({"role": "assistant", "content": ""}), *[chunk({"content": t}) for t in texts],
                     chunk({}, "stop"), USAGE_CHUNK, "[DONE]", **kwargs)


# -- run ---------------------------------------------------------------------------------------------------
def test_run_streams_text_and_a_usage_line():
    done = run_cli("run", "--model", "test", "hello")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "success (no tool calls)"
    assert lines[-1].startswith("[usage] model=test requests=1 tool_calls=0 ")
    assert "\x1b[" not in done.stdout  # not a terminal: no escape codes


def test_run_tools_print_on_their_own_lines():
    done = run_cli("run", "--model", "test", "--tools", "tests.test_cli:get_weather,tests.test_cli:add", "go")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == ['[tool] get_weather(city="a")', "[tool] add(a=0, b=0)",
                         "[result] get_weather -> a: 18C, sunny", "[result] add -> 0"]
    assert json.loads(lines[4]) == {"get_weather": "a: 18C, sunny", "add": 0}
    assert lines[5].startswith("[usage] model=test requests=2 tool_calls=2 ")


def test_run_system_prompt_reaches_the_model():
    done = run_cli("run", "--model", "tests.test_cli:echo_system_model", "--system", "Be terse.", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "system was: Be terse."


def test_run_json_prints_one_event_per_line():
    done = run_cli("run", "--model", "test", "--tools", "tests.test_cli:add", "--json", "hi")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_complete"
    assert kinds.count("run_complete") == 1 and "error" not in kinds and "cancelled" not in kinds
    assert [e["args"] for e in events if e["kind"] == "tool_call_complete"] == [{"a": 0, "b": 0}]
    assert "".join(e["text"] for e in events if e["kind"] == "text_delta") == '{"add": 0}'
    assert events[-1]["usage"]["tool_calls"] == 1


def test_thinking_is_plain_in_a_pipe():
    done = run_cli("run", "--model", "tests.test_cli:thinking_model", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["[thinking] pondering", "the answer"]
    assert "\x1b[" not in done.stdout


def test_thinking_is_dimmed_on_a_terminal():
    master, slave = pty.openpty()
    env = cli_env(TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "agentstream", "run", "--model", "tests.test_cli:thinking_model",
                             "hi"], cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not data:
                break
            output += data
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
    text = output.decode()
    assert "\x1b[2mpondering\x1b[0m" in text
    assert "[thinking]" not in text
    assert "the answer" in text and "[usage] model=thinker" in text


def test_a_failed_run_keeps_its_text_and_prints_the_usage_line_on_stderr():
    done = run_cli("run", "--model", "tests.test_cli:failing_model", "hi")
    assert done.returncode == 1
    assert done.stdout == "so far \n"
    error, usage = done.stderr.splitlines()
    assert error == "agentstream: error: the model broke"
    assert usage.startswith("[usage] model=failing requests=1 tool_calls=0 ") and "(estimated)" in usage
    done = run_cli("run", "--model", "tests.test_cli:failing_model", "--json", "hi")
    assert done.returncode == 1
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["kind"] == "error" and last["error"] == {"type": "RuntimeError", "message": "the model broke"}
    assert last["usage"]["requests"] == 1 and last["usage"]["estimated"] is True
    history = ModelMessagesTypeAdapter.validate_python(last["messages"])
    assert history[-1].parts == [TextPart("so far ")] and history[-1].finish_reason == "error"
    assert done.stderr.splitlines()[0] == "agentstream: error: the model broke"
    assert done.stderr.splitlines()[1].startswith("[usage] model=failing requests=1 ")


def test_unknown_model_prefix_lists_the_known_ones():
    done = run_cli("run", "--model", "nosuch:thing", "hi")
    assert done.returncode == 2
    assert "unknown model provider 'nosuch'" in done.stderr and "openai:" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_tools_spec_is_a_usage_error():
    done = run_cli("run", "--model", "test", "--tools", "tests.test_cli:no_such_tool", "hi")
    assert done.returncode == 2
    assert "--tools 'tests.test_cli:no_such_tool'" in done.stderr and "Traceback" not in done.stderr


def test_missing_key_is_reported_without_a_traceback():
    done = run_cli("run", "--model", "openai:gpt-4o-mini", "hi")
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr and "Traceback" not in done.stderr


# -- Ctrl-C ------------------------------------------------------------------------------------------------
def test_ctrl_c_cancels_and_keeps_the_partial_answer(live):
    cli = live("run", "--model", "tests.test_cli:stalling_model", "hi")
    cli.wait_for("partial answer")
    t0 = time.monotonic()
    cli.proc.send_signal(signal.SIGINT)
    assert cli.finish() == 130
    assert time.monotonic() - t0 < 3
    text = cli.text
    assert "[cancelling] press Ctrl-C again to quit" in text
    assert "[cancelled] kept 14 characters of text" in text
    assert "[usage] model=stalling requests=1" in text and "(estimated)" in text
    assert "Traceback" not in text


def test_ctrl_c_with_json_ends_with_the_cancelled_event(live):
    cli = live("run", "--model", "tests.test_cli:stalling_model", "--json", "hi")
    cli.wait_for('"partial answer"')
    cli.proc.send_signal(signal.SIGINT)
    assert cli.finish() == 130
    events = [json.loads(line) for line in cli.text.splitlines() if line.startswith("{")]
    assert events[-1]["kind"] == "cancelled" and events[-1]["partial_text"] == "partial answer"
    assert [e["kind"] for e in events].count("cancelled") == 1


def test_second_ctrl_c_quits_while_the_cancel_hangs(live):
    cli = live("run", "--model", "tests.test_cli:stuck_model", "hi")
    cli.wait_for("partial answer")
    cli.proc.send_signal(signal.SIGINT)
    cli.wait_for("[cancelling]")
    t0 = time.monotonic()
    cli.proc.send_signal(signal.SIGINT)
    assert cli.finish() == 130
    assert time.monotonic() - t0 < 2  # well inside the 5 s grace: the second Ctrl-C did it
    assert "[interrupted] quitting" in cli.text and "Traceback" not in cli.text


# -- against a provider on loopback --------------------------------------------------------------------------
def test_run_uses_openai_when_its_key_is_set():
    with Server() as server:
        server.enqueue(openai_reply("Hello", ", world"))
        done = run_cli("run", "hi", env=cli_env(OPENAI_API_KEY=FAKE_KEY, OPENAI_BASE_URL=server.url + "/v1"))
    assert done.returncode == 0, done.stderr
    text, usage = done.stdout.splitlines()
    assert text == "Hello, world"
    assert usage.startswith("[usage] model=gpt-4o-mini requests=1 tool_calls=0 input=11 output=3 total=14 ")
    request = server.requests[0]
    assert request.path == "/v1/chat/completions" and request.json["model"] == "gpt-4o-mini"
    assert FAKE_KEY not in done.stdout + done.stderr


def test_ctrl_c_against_a_stalled_server(live):
    with Server() as server:
        server.enqueue(Reply.sse(chunk({"role": "assistant", "content": "partial answer"}), stall_after=1))
        cli = live("run", "--model", "openai:gpt-4o-mini", "hi",
                   env=cli_env(OPENAI_API_KEY=FAKE_KEY, OPENAI_BASE_URL=server.url + "/v1"))
        cli.wait_for("partial answer")
        t0 = time.monotonic()
        cli.proc.send_signal(signal.SIGINT)
        assert cli.finish() == 130
        assert time.monotonic() - t0 < 3
        assert server.disconnected.wait(5)  # the CLI hung up on the stalled response
    assert "[cancelled] kept 14 characters of text" in cli.text
    assert "[usage] model=gpt-4o-mini requests=1" in cli.text


# -- models and demo -----------------------------------------------------------------------------------------
def test_models_lists_every_prefix_and_what_it_needs():
    done = run_cli("models")
    assert done.returncode == 0, done.stderr
    for prefix, info in KNOWN_PREFIXES.items():
        assert prefix in done.stdout
        if getattr(info, "key_env", None):
            assert info.key_env in done.stdout
    assert "OPENAI_API_KEY (not set)" in done.stdout
    assert "module:attr" in done.stdout


def test_models_json():
    done = run_cli("models", "--json", env=cli_env(ANTHROPIC_API_KEY=FAKE_KEY))
    rows = {r["prefix"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert rows["anthropic:"]["key_set"] is True and rows["openai:"]["key_set"] is False
    assert rows["openai:"]["key_env"] == "OPENAI_API_KEY" and rows["test"]["key_env"] is None
    assert FAKE_KEY not in done.stdout


def test_demo_offline():
    done = run_cli("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("agentstream demo - model: offline model, no network")
    assert "[thinking] Two questions" in out
    assert '[tool] get_weather(city="Paris")' in out and "[tool] add(a=2, b=3)" in out
    assert "[result] add -> 5" in out and "2 + 3 = 5" in out
    assert out.splitlines()[-1].startswith("[usage] model=offline-demo requests=2 tool_calls=2 ")


def test_demo_finds_a_local_server():
    with Server() as server:
        server.enqueue(Reply.json(200, {"object": "list", "data": [{"id": "llama-test", "object": "model"}]}),
                       openai_reply("Sunny in Paris; 5."))
        done = run_cli("demo", env=cli_env(OLLAMA_BASE_URL=server.url + "/v1"))
        paths = [r.path for r in server.requests]
    assert done.returncode == 0, done.stderr
    assert f"model: ollama:llama-test (local server at {server.url}/v1)" in done.stdout
    assert "Sunny in Paris; 5." in done.stdout
    assert paths == ["/v1/models", "/v1/chat/completions"]


# -- detection, in process -----------------------------------------------------------------------------------
def test_probe_picks_a_chat_model():
    with Server() as server:
        server.enqueue(Reply.json(200, {"data": [{"id": "nomic-embed-text"}, {"id": "llama3.2"}]}))
        url = server.url + "/v1"
        assert probe_local_servers([("lmstudio", refused_url() + "/v1"), ("ollama", url)]) == \
            ("ollama", "llama3.2", url)


def test_probe_gives_up_fast_on_a_silent_server():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        t0 = time.monotonic()
        assert probe_local_servers([("ollama", url), ("vllm", refused_url() + "/v1")], timeout=0.3) is None
        assert time.monotonic() - t0 < 1.0
    finally:
        silent.close()


def test_detect_model_order(monkeypatch):
    for info in KNOWN_PREFIXES.values():
        if getattr(info, "key_env", None):
            monkeypatch.delenv(info.key_env, raising=False)
        if getattr(info, "base_url_env", None):
            monkeypatch.setenv(info.base_url_env, refused_url() + "/v1")
    monkeypatch.delenv("AGENTSTREAM_MODEL", raising=False)
    model, why = detect_model(TestModel)
    assert isinstance(model, TestModel) and why.startswith("offline model")
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    assert detect_model(TestModel)[0].startswith("anthropic:")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    assert detect_model(TestModel)[0] == "openai:gpt-4o-mini"
    monkeypatch.setenv("AGENTSTREAM_MODEL", "groq:llama-3.1-8b-instant")
    assert detect_model(TestModel) == ("groq:llama-3.1-8b-instant",
                                       "groq:llama-3.1-8b-instant (from AGENTSTREAM_MODEL)")
