"""agentstream against llama-cpp-python's OpenAI-compatible server running a real model
(SmolLM2-135M-Instruct, CPU), served with ``--chat_format chatml-function-calling``.

That small model calls a tool only when ``tool_choice`` forces it, and a forced choice holds on
every request, so the tool round trip forces the tool through ``model_settings`` on the first
request only (``FirstRequestForced``) and lets the model answer freely once the result is back.
"""
from __future__ import annotations

from typing import Any, List

import pytest

from agentstream import Agent, ModelHTTPError, ModelStreamError, Timeout
from agentstream.models.openai_chat import OpenAIChatModel
from tests.faultkit import drive
from tests.real.helpers import cancel_after_deltas, fast_backoff

pytestmark = pytest.mark.real

SETTINGS = {"temperature": 0, "seed": 7}
TIMEOUT = Timeout(connect=5, idle=30, total=90)


class FirstRequestForced(OpenAIChatModel):
    """Sends ``tool_choice`` only until a tool result is in the conversation."""

    def build_request(self, messages: List[Any], settings: Any, params: Any) -> Any:
        request = super().build_request(messages, settings, params)
        if any(m.get("role") == "tool" for m in request.json["messages"]):
            request.json.pop("tool_choice", None)
        return request


@pytest.fixture
def llama(llama_server: Any, close_later: Any) -> Any:
    """``llama(cls=OpenAIChatModel, agent_kwargs=None, **model_kwargs)`` -> Agent on the server."""
    def make(cls: type = OpenAIChatModel, agent_kwargs: Any = None, **model_kwargs: Any) -> Agent:
        model_kwargs.setdefault("base_url", llama_server.root + "/v1")
        model_kwargs.setdefault("timeout", TIMEOUT)
        model = fast_backoff(cls("smollm2", provider="llamacpp", **model_kwargs))
        return close_later(Agent(model, **(agent_kwargs or {})))
    return make


def test_streamed_text_by_prefix(llama_server: Any, close_later: Any, monkeypatch: Any) -> None:
    """``Agent("llamacpp:...")`` with LLAMACPP_BASE_URL: real tokens stream as text deltas."""
    monkeypatch.setenv("LLAMACPP_BASE_URL", llama_server.root + "/v1")
    agent = close_later(Agent("llamacpp:smollm2", model_settings=dict(SETTINGS, max_tokens=24)))
    out = drive(agent, "Say hello in five words.", timeout=60)
    out.check_terminal("run_complete")
    deltas = out.of("text_delta")
    assert len(deltas) >= 3 and out.stream.text.strip()
    assert "".join(d.text for d in deltas) == out.stream.text
    assert out.of("response_complete")[0].finish_reason in ("stop", "length")
    usage = out.stream.result().usage
    assert usage.requests == 1 and usage.output_tokens > 0 and usage.input_tokens > 0


@pytest.mark.timeout(180)   # grammar-constrained tool generation is slow on a loaded 2-core machine
def test_tool_round_trip(llama: Any) -> None:
    """Forced tool call (tool_choice via model_settings) -> the tool runs -> the result goes
    back (an assistant message with tool calls and no text) -> the model answers in text."""
    calls = []

    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
        """
        calls.append(city)
        return f"sunny, 21 degrees in {city}"

    agent = llama(FirstRequestForced, agent_kwargs={
        "tools": [get_weather], "model_settings": dict(SETTINGS, tool_choice="get_weather", max_tokens=48)})
    out = drive(agent, "What is the weather in Paris?", timeout=150)
    assert out.error is None, repr(out.error)
    out.check_terminal("run_complete")
    assert len(calls) == 1 and isinstance(calls[0], str)
    (complete,) = out.of("tool_call_complete")
    assert complete.tool_name == "get_weather" and set(complete.args) == {"city"}
    (executed,) = out.of("tool_executed")
    assert executed.success
    result = out.stream.result()
    assert result.usage.requests == 2 and isinstance(result.output, str) and result.output.strip()


def test_cancel_mid_generation(llama: Any) -> None:
    """Cancel after 5 generated tokens: Cancelled within 1 s with the partial text, nothing
    left open, and the server (which stops generating) serves the next run."""
    agent = llama(agent_kwargs={"model_settings": dict(SETTINGS, max_tokens=400)})
    run = cancel_after_deltas(agent, "Write a long story about a dragon and a knight.", deltas=5)
    assert run["latency"] < 1.0, run["latency"]
    assert run["event"].partial_text == "".join(run["texts"]) != ""
    again = drive(agent, "Say hi.", model_settings={"max_tokens": 8}, timeout=60)
    again.check_terminal("run_complete")


def test_404_from_a_base_url_without_v1(llama: Any, llama_server: Any) -> None:
    """A wrong base_url (no /v1) gets the server's 404: an error at once, not retried."""
    agent = llama(base_url=llama_server.root)
    out = drive(agent, "hello", timeout=30)
    out.check_terminal("error")
    assert isinstance(out.error, ModelHTTPError) and out.error.status == 404, repr(out.error)
    assert out.of("retrying") == []
    assert "check base_url=" in str(out.error) and "/chat/completions" in str(out.error)
    assert out.error.url.endswith("/chat/completions")


def test_prompt_over_the_context_window(llama: Any) -> None:
    """Over n_ctx (2048) this server answers 200 and an empty event stream (it fails after
    the headers): a ModelStreamError, never a silent empty answer or a hang."""
    agent = llama(max_retries=0)
    out = drive(agent, "hello " * 3000, timeout=60)
    out.check_terminal("error")
    assert isinstance(out.error, ModelStreamError), repr(out.error)
    assert out.stream.text == ""
