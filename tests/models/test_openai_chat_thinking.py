"""``thinking_budget`` -> ``reasoning_effort`` (Chat Completions, Responses) and the ``xai:`` prefix."""
from __future__ import annotations

import pytest

from agentstream import Agent
from agentstream._profiles import context_limit, profile_for
from agentstream.exceptions import UserError
from agentstream.models._base import ModelRequestParameters
from agentstream.models._effort import reasoning_effort
from agentstream.models._infer import model_from_string
from agentstream.models._registry import PROVIDERS
from agentstream.models.openai_chat import OpenAIChatModel
from agentstream.models.openai_responses import OpenAIResponsesModel
from agentstream.settings import ModelSettings
from tests import server as srv


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("XAI_API_KEY", "XAI_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def body(model, **settings):
    return model.build_request([], ModelSettings(**settings), ModelRequestParameters()).json


def chat(provider):
    return OpenAIChatModel("m", api_key="k", provider=provider, base_url="http://127.0.0.1:9/v1")


@pytest.mark.parametrize("provider,budget,sent", [
    ("openai", 0, {"reasoning_effort": "minimal"}),
    ("openai", 1024, {"reasoning_effort": "low"}),
    ("openai", 4096, {"reasoning_effort": "medium"}),
    ("deepseek", 32000, {"reasoning_effort": "high"}),
    ("vllm", 0, {"reasoning_effort": "low"}),          # vLLM / Ollama / Groq take no "minimal"
    ("ollama", 2048, {"reasoning_effort": "medium"}),
    ("groq", 100, {"reasoning_effort": "low"}),
    ("xai", 4096, {"reasoning_effort": "high"}),       # grok-3-mini: low or high
    ("xai", 512, {"reasoning_effort": "low"}),
    ("openrouter", 2048, {"reasoning": {"max_tokens": 2048}}),
    ("openrouter", 0, {"reasoning": {"effort": "none"}}),
])
def test_thinking_budget_where_the_server_takes_it(provider, budget, sent):
    got = body(chat(provider), thinking_budget=budget)
    assert {k: got[k] for k in ("reasoning_effort", "reasoning") if k in got} == sent


@pytest.mark.parametrize("provider", ["lmstudio", "llamacpp", "together", "my-proxy"])
def test_thinking_budget_not_sent_where_unknown(provider):
    got = body(chat(provider), thinking_budget=4096)
    assert "reasoning_effort" not in got and "reasoning" not in got


def test_thinking_budget_never_overrides_extra_body():
    assert body(chat("openai"), thinking_budget=100, extra_body={"reasoning_effort": "high"})["reasoning_effort"] \
        == "high"
    got = body(chat("openrouter"), thinking_budget=100, extra_body={"reasoning": {"effort": "high"}})
    assert got["reasoning"] == {"effort": "high"} and "reasoning_effort" not in got
    got = body(chat("deepseek"), thinking_budget=100, extra_body={"thinking": {"type": "enabled"}})
    assert got["thinking"] == {"type": "enabled"} and got["reasoning_effort"] == "low"   # DeepSeek's documented pair
    assert "reasoning_effort" not in body(chat("openai"))


def test_responses_budget_zero_is_the_lowest_effort():
    model = OpenAIResponsesModel("gpt-5-mini", api_key="k")
    assert body(model, thinking_budget=0)["reasoning"] == {"effort": "minimal", "summary": "auto"}
    assert "reasoning" not in body(model)


def test_reasoning_effort_levels():
    assert [reasoning_effort(b) for b in (-1, 0, 1, 1024, 1025, 8192, 8193)] == \
        ["minimal", "minimal", "low", "low", "medium", "medium", "high"]
    assert reasoning_effort(0, ("low", "high")) == "low" and reasoning_effort(5000, ("low", "high")) == "high"
    assert reasoning_effort(99999, ("minimal", "low")) == "low"    # above the top: the highest it takes
    assert reasoning_effort(5000, ()) == "medium"


# --- xai: -------------------------------------------------------------------------------------

def test_xai_prefix_key_and_base_url(monkeypatch):
    spec = PROVIDERS["xai"]
    assert (spec.api, spec.base_url, spec.key_env, spec.base_url_env) == \
        ("openai-chat", "https://api.x.ai/v1", "XAI_API_KEY", "XAI_BASE_URL")
    with pytest.raises(UserError, match="XAI_API_KEY"):
        model_from_string("xai:grok-4")
    monkeypatch.setenv("XAI_API_KEY", srv.FAKE_KEY)
    model = model_from_string("xai:grok-4")
    assert isinstance(model, OpenAIChatModel) and model.system == "xai" and srv.FAKE_KEY not in repr(model)
    request = model.build_request([], ModelSettings(), ModelRequestParameters())
    assert request.url == "https://api.x.ai/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {srv.FAKE_KEY}"
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert model_from_string("xai:grok-4").build_request([], ModelSettings(), ModelRequestParameters()).url == \
        "http://127.0.0.1:9/v1/chat/completions"


@pytest.mark.parametrize("name,window", [
    ("grok-4", 256_000), ("grok-4-0709", 256_000), ("grok-code-fast-1", 256_000),
    ("grok-4-fast-reasoning", 2_000_000), ("grok-4.1-fast-non-reasoning", 2_000_000), ("x-ai/grok-4.1-fast", 2_000_000),
    ("grok-3-mini", 131_072), ("xai:grok-3", 131_072), ("grok-2-vision-1212", 32_768),
])
def test_grok_context_windows(name, window):
    assert profile_for(name).context_window == window and profile_for(name).family == "grok"


def test_xai_usage_counts_reasoning_as_output(no_thread_leak):
    usage = {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
             "completion_tokens_details": {"reasoning_tokens": 94}}
    with srv.Server() as server:
        server.enqueue(srv.Reply.sse({"id": "r", "model": "grok-3-mini", "choices": [
            {"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]},
            {"id": "r", "choices": [], "usage": usage}, "[DONE]"))
        model = OpenAIChatModel("grok-3-mini", base_url=server.url, api_key=srv.FAKE_KEY, provider="xai")
        result = Agent(model).run("hi")
        model.close()
    assert (result.usage.input_tokens, result.usage.output_tokens) == (32, 103)
    assert result.usage.details["reasoning_tokens"] == 94 and context_limit(model) == 131_072
