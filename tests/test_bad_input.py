"""Bad input from the user: each is a clear ``UserError`` raised by ``Agent(...)``, the model's
constructor or ``run_stream(...)`` -- before any request is sent (a loopback server that
would answer is checked to have received nothing, not even a connection).
"""
from __future__ import annotations

from typing import Any, Callable

import pytest

from agentstream import Agent, Compression, RunContext, Timeout, UserError
from agentstream.models.anthropic import AnthropicModel
from agentstream.models.openai_chat import OpenAIChatModel
from tests.faultkit import FAKE_KEY, OPENAI, Server

KEYS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GROQ_API_KEY")


@pytest.fixture
def server(no_thread_leak, monkeypatch):
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    with Server() as srv:
        srv.enqueue(OPENAI.reply("should never be asked"))
        yield srv
        assert srv.requests == [] and srv.connection_count == 0, "a request was sent"


def raises(match: str, fn: Callable[[], Any]) -> UserError:
    with pytest.raises(UserError, match=match) as info:
        fn()
    assert isinstance(info.value, ValueError)   # UserError is also a ValueError
    return info.value


def agent_at(server: Server, **kwargs: Any) -> Agent:
    return Agent(OpenAIChatModel("gpt-test", base_url=server.url + "/v1", api_key=FAKE_KEY), **kwargs)


# --- tools ----------------------------------------------------------------------------------

class NotASchema:
    pass


def star_args(*cities: str) -> str: ...
def star_kwargs(**options: str) -> str: ...
def positional_only(city: str, /) -> str: ...
def unschemable(thing: NotASchema) -> str: ...
async def coroutine(city: str) -> str: ...
def ctx_not_first(city: str, ctx: RunContext) -> str: ...


@pytest.mark.parametrize("tool, match", [
    (star_args, r"tool 'star_args': parameter \*cities is not supported"),
    (star_kwargs, r"tool 'star_kwargs': parameter \*\*options is not supported"),
    (positional_only, "positional-only parameter 'city'"),
    (unschemable, "tool 'unschemable': unsupported parameter types"),
    (coroutine, "tool 'coroutine' is an async function"),
    (ctx_not_first, "RunContext must be the first parameter"),
    (42, "tool 42 is not callable"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_tool_with_an_unsupported_signature(server, tool, match):
    raises(match, lambda: agent_at(server, tools=[tool]))
    agent = agent_at(server)
    raises(match, lambda: agent.tool_plain(tool))
    assert agent.tools == {}


def test_duplicate_tool_names(server):
    def lookup(city: str) -> str: ...

    raises("duplicate tool name 'lookup'", lambda: agent_at(server, tools=[lookup, lookup]))
    agent = agent_at(server, tools=[lookup])
    raises("duplicate tool name 'lookup'", lambda: agent.tool_plain(name="lookup")(lambda city: city))
    raises("final_result", lambda: agent_at(server, tools=[], output_type=int).tool_plain(name="final_result")(lookup))
    assert list(agent.tools) == ["lookup"]


# --- models -----------------------------------------------------------------------------------

def test_unknown_model_prefix_lists_the_known_ones(server):
    error = raises("unknown model provider 'opena'", lambda: Agent("opena:gpt-4o"))
    assert "openai:" in str(error) and "anthropic:" in str(error)
    raises("looks like 'provider:model'", lambda: Agent("gpt-4o"))
    raises("no model name", lambda: Agent("openai:"))


@pytest.mark.parametrize("spec, variable", [("openai:gpt-4o", "OPENAI_API_KEY"),
                                            ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
                                            ("groq:llama-3.3", "GROQ_API_KEY")])
def test_missing_api_key_names_the_variable(server, monkeypatch, spec, variable):
    monkeypatch.setenv(variable.replace("API_KEY", "BASE_URL"), server.url)
    raises(f"set {variable} or pass api_key=", lambda: Agent(spec))


@pytest.mark.parametrize("url", ["localhost:8000/v1", "127.0.0.1:8000", "ftp://127.0.0.1/v1", "not a url",
                                 "http://", "http:///v1", "http://exa mple.com/v1", "http://127.0.0.1:99999/v1"])
@pytest.mark.parametrize("cls", [OpenAIChatModel, AnthropicModel])
def test_bad_base_url(server, cls, url):
    error = raises("base_url", lambda: cls("m", base_url=url, api_key=FAKE_KEY))
    assert url.replace("/v1", "").rstrip("/") in str(error)   # it shows what was given
    if url.startswith("localhost"):
        assert "did you mean 'http://localhost:8000" in str(error)


def test_bad_base_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "127.0.0.1:9/v1")
    raises("did you mean 'http://127.0.0.1:9/v1'", lambda: OpenAIChatModel("m", api_key=FAKE_KEY))


def test_base_url_credentials_stay_out_of_the_message(server):
    error = raises("base_url", lambda: OpenAIChatModel("m", base_url=f"http://u:{FAKE_KEY}@h:99999/?k=secret",
                                                       api_key=FAKE_KEY))
    assert FAKE_KEY not in str(error) and "secret" not in str(error)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_retries": -1}, "max_retries must be an int >= 0, got -1"),
    ({"max_retries": 1.5}, "max_retries"),
    ({"timeout": "10"}, "timeout must be a Timeout or a number"),
    ({"context_window": -5}, "context_window must be a positive int"),
    ({"read_size": 0}, "read_size must be a positive int"),
])
@pytest.mark.parametrize("cls", [OpenAIChatModel, AnthropicModel])
def test_invalid_model_arguments(server, cls, kwargs, match):
    raises(match, lambda: cls("m", base_url=server.url, api_key=FAKE_KEY, **kwargs))


@pytest.mark.parametrize("kwargs, match", [
    ({"idle": -1}, "Timeout.idle must be > 0.0, got -1"),
    ({"connect": 0}, "Timeout.connect must be > 0.0"),
    ({"total": "5"}, "Timeout.total must be a number"),
    ({"idle": float("nan")}, "Timeout.idle must be a number"),
])
def test_invalid_timeout(kwargs, match):
    raises(match, lambda: Timeout(**kwargs))


# --- settings, at Agent(...) and at run_stream(...) ----------------------------------------------

@pytest.mark.parametrize("settings, match", [
    ({"temperature": 5}, "temperature must be between 0.0 and 2.0, got 5"),
    ({"max_tokens": 0}, "max_tokens must be a positive int, got 0"),
    ({"top_p": 1.5}, "top_p"),
    ({"temprature": 0.5}, "unknown model setting"),
])
def test_invalid_model_settings(server, settings, match):
    raises(match, lambda: agent_at(server, model_settings=settings))
    agent = agent_at(server)
    raises(match, lambda: agent.run_stream("hi", model_settings=settings))


@pytest.mark.parametrize("kwargs, match", [
    ({"prompt": 42}, "prompt must be a str"),
    ({"prompt": None}, "needs a prompt"),
    ({"cancel_token": object()}, "cancel_token must be a CancelToken"),
    ({"on_text": "print"}, "on_text must be callable"),
    ({"compression": "summarize"}, "compression must be a Compression"),
    ({"usage_limits": {"request_limit": 3}}, "usage_limits must be a UsageLimits"),
])
def test_invalid_run_stream_arguments(server, kwargs, match):
    agent = agent_at(server)
    prompt = kwargs.pop("prompt", "hi")
    raises(match, lambda: agent.run_stream(prompt, **kwargs))


def test_invalid_compression():
    raises("strategy must be 'truncate' or 'summarize'", lambda: Compression("zip"))
    raises("threshold", lambda: Compression(threshold=1.5))
