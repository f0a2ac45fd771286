"""Session fixtures for ``make test-real``: each real server started once, on a free port of
127.0.0.1, and stopped (no process, no listener left) at the end of the session."""
from __future__ import annotations

import gc
from typing import Any, Callable, Iterator, List

import pytest
import requests

from tests.faultkit import fd_count, settle_resources
from tests.real._servers import ServerProcess, real_venv, smollm2_gguf, venv_tool

FAKELLM_CONFIG = """\
version: 1
rules:
  # Second turn of the weather flow: the tool's result came back -> answer in text.
  - name: weather_answer
    when: {tool_result_contains: "sunny-and-21"}
    respond: {content: "Paris is sunny and 21 degrees."}
  - name: weather_call
    when: {messages_contain: "weather in paris"}
    respond:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}]
  - name: long_text
    when: {messages_contain: "long story"}
    respond: {content: "%s"}
  - name: greeting
    when: {messages_contain: "say hello"}
    respond: {content: "Hello from fakellm, streamed word by word."}
""" % " ".join(f"word{i}" for i in range(400))   # 400 words, 10 ms apart: a 4 s stream


def _serve(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    print(f"\n{server.name} ready on {server.root} after {server.startup_seconds:.1f} s")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fakellm_server(tmp_path_factory: Any) -> Iterator[ServerProcess]:
    """fakellm (OpenAI at /v1, Anthropic at /v1/messages) with the rules above."""
    exe = venv_tool("fakellm")
    work = tmp_path_factory.mktemp("fakellm")
    (work / "fakellm.yaml").write_text(FAKELLM_CONFIG)
    yield from _serve(ServerProcess(
        "fakellm", [str(exe), "serve", "--host", "127.0.0.1", "--port", "{port}",
                    "--config", str(work / "fakellm.yaml")],
        "/_fakellm/stats", log_dir=work, cwd=work))


@pytest.fixture(scope="session")
def llmock_server(tmp_path_factory: Any) -> Iterator[ServerProcess]:
    """llmock: OpenAI at /v1, Anthropic at /anthropic; faults scripted per test over /_llmock."""
    exe = venv_tool("llmock")
    work = tmp_path_factory.mktemp("llmock")
    yield from _serve(ServerProcess(
        "llmock", [str(exe), "serve", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
        "/health", log_dir=work, cwd=work))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: Any) -> Iterator[ServerProcess]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (CPU, 2 threads)."""
    python = venv_tool("python")
    model = smollm2_gguf()
    work = tmp_path_factory.mktemp("llama")
    yield from _serve(ServerProcess(
        "llama-cpp-python", [str(python), "-m", "llama_cpp.server", "--model", str(model),
                             "--host", "127.0.0.1", "--port", "{port}", "--model_alias", "smollm2",
                             "--chat_format", "chatml-function-calling", "--n_ctx", "2048",
                             "--n_threads", "2", "--verbose", "False"],
        "/v1/models", log_dir=work, cwd=work, ready_timeout=120))


@pytest.fixture
def llmock(llmock_server: ServerProcess) -> Iterator[Any]:
    """A clean llmock (no queued behaviour, empty journal) and a ``script(*behaviours)`` helper."""
    with requests.Session() as session:
        session.post(llmock_server.root + "/_llmock/reset", timeout=5).raise_for_status()

        class Control:
            server = llmock_server

            @staticmethod
            def script(*behaviors: dict) -> None:
                session.post(llmock_server.root + "/_llmock/scenario", json={"behaviors": list(behaviors)},
                             timeout=5).raise_for_status()

            @staticmethod
            def requests() -> list:
                return session.get(llmock_server.root + "/_llmock/requests", timeout=5).json()["requests"]

            @staticmethod
            def verdict() -> dict:
                return session.get(llmock_server.root + "/_llmock/verdict", timeout=5).json()

        yield Control


@pytest.fixture
def fakellm(fakellm_server: ServerProcess) -> ServerProcess:
    """fakellm with its conversation state cleared (rules match on turns and tool results)."""
    requests.post(fakellm_server.root + "/_fakellm/reset", timeout=5).raise_for_status()
    return fakellm_server


@pytest.fixture
def no_leaks(no_thread_leak: Any) -> Iterator[None]:
    """No agentstream thread and no file descriptor (socket) left by the test."""
    gc.collect()
    before = fd_count()
    yield
    assert settle_resources(before) <= before, "a socket or file was left open"


@pytest.fixture
def close_later(no_leaks: Any) -> Iterator[Callable[[Any], Any]]:
    """``close_later(agent)`` -> agent; its model is closed when the test ends (pass or fail),
    before ``no_leaks`` checks for open sockets."""
    agents: List[Any] = []
    yield lambda agent: agents.append(agent) or agent
    for agent in agents:
        agent.model.close()


def pytest_report_header(config: Any) -> str:
    return f"real servers: {real_venv()}"
