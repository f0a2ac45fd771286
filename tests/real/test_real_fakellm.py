"""agentstream against fakellm, a third-party mock server of the OpenAI and Anthropic APIs.

fakellm streams text word by word (10 ms apart) and tool-call arguments in pieces; its rules
(tests/real/conftest.py) script a two-turn weather flow. fakellm ignores ``status`` for
streamed requests, so HTTP errors are covered on llmock instead.
"""
from __future__ import annotations

from typing import Any

import pytest
import requests

from agentstream import Agent
from tests.faultkit import drive
from tests.real.helpers import WEATHER, anthropic_model, cancel_after_deltas, openai_model

pytestmark = pytest.mark.real

MODELS = {"openai": openai_model, "anthropic": anthropic_model}
both = pytest.mark.parametrize("api", sorted(MODELS))


@pytest.fixture
def agent_for(fakellm: Any, close_later: Any) -> Any:
    """``agent_for(api, **agent_kwargs)``: an Agent on fakellm, its model closed afterwards."""
    return lambda api, **kwargs: close_later(Agent(MODELS[api](fakellm.root), **kwargs))


def matched_rules(server: Any) -> list:
    recent = requests.get(server.root + "/_fakellm/stats", timeout=5).json()["recent"]
    return [r["matched_rule"] for r in reversed(recent)]


@both
def test_streamed_text(fakellm: Any, api: str, agent_for: Any) -> None:
    agent = agent_for(api)
    out = drive(agent, "Please say hello")
    out.check_terminal("run_complete")
    text = "Hello from fakellm, streamed word by word."
    assert [e.text for e in out.of("text_delta")] == [w if i == 0 else " " + w
                                                    for i, w in enumerate(text.split(" "))]
    assert out.stream.text == text and out.stream.result().output == text
    assert out.of("response_complete")[0].finish_reason in ("stop", "end_turn")


@both
def test_tool_round_trip(fakellm: Any, api: str, agent_for: Any) -> None:
    """Tool call streamed in pieces -> the tool runs -> its result goes back -> the answer."""
    calls = []

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"{WEATHER} in {city}"

    agent = agent_for(api, tools=[get_weather])
    out = drive(agent, "What is the weather in Paris?")
    out.check_terminal("run_complete")
    assert calls == ["Paris"]
    (complete,) = out.of("tool_call_complete")
    assert complete.tool_name == "get_weather" and complete.args == {"city": "Paris"}
    (executed,) = out.of("tool_executed")
    assert executed.success and WEATHER in str(executed.result)
    result = out.stream.result()
    assert result.output == "Paris is sunny and 21 degrees."
    assert result.usage.requests == 2 and result.usage.tool_calls == 1
    assert matched_rules(fakellm)[-2:] == ["weather_call", "weather_answer"]


@both
def test_cancel_mid_stream(fakellm: Any, api: str, agent_for: Any) -> None:
    """Cancel after 5 of 400 words: Cancelled within 1 s with the partial text, nothing left open."""
    agent = agent_for(api)
    run = cancel_after_deltas(agent, "Tell me a long story")
    assert run["latency"] < 1.0, run["latency"]
    event = run["event"]
    assert event.partial_text.startswith("word0 word1 word2 word3 word4")
    assert "word399" not in event.partial_text
    assert run["out"].elapsed < 3.0, run["out"].elapsed   # the 4 s stream was not read to its end
