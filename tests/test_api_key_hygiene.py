"""API keys with stray whitespace: a trailing newline (a key read from a file or a mounted
secret) is stripped; whitespace or control characters inside the key are refused at
construction with a ``UserError`` that never shows the key; a header requests refuses is
reported with a fixed message and no chained exception (requests' message holds the value).
"""
from __future__ import annotations

import traceback
from typing import Iterator, List

import pytest

from agentstream import UserError
from agentstream.models.anthropic import AnthropicModel
from agentstream.models.gemini import GeminiModel
from agentstream.models.openai_chat import OpenAIChatModel
from tests.faultkit import ANTHROPIC, OPENAI, WIRES, drive, make_fixture, server_fixture  # noqa: F401

SECRET = "sk-test-SECRET-0123456789abcdef"
CLASSES = {"openai": (OpenAIChatModel, "OPENAI_API_KEY", "/v1"), "anthropic": (AnthropicModel, "ANTHROPIC_API_KEY", ""),
           "gemini": (GeminiModel, "GEMINI_API_KEY", "")}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: List[BaseException] = []
    while exc is not None and not any(exc is s for s in seen):
        seen.append(exc)
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def assert_no_secret(exc: BaseException, secret: str = "SECRET") -> None:
    for e in _chain(exc):
        assert secret not in str(e) and secret not in repr(e), f"{type(e).__name__} shows the key"
        assert secret not in repr(vars(e)) if hasattr(e, "__dict__") else True
    shown = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert secret not in shown, "the traceback shows the key"


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
@pytest.mark.parametrize("key", [SECRET + "\n", SECRET + "\r\n", "  " + SECRET + "\t\n"])
def test_surrounding_whitespace_is_stripped(server, make, wire, key):
    server.enqueue(wire.reply("hello"))
    agent = make(wire, api_key=key)
    assert agent.model._api_key == SECRET
    out = drive(agent)
    assert out.error is None, out.error
    out.check_terminal("run_complete")
    sent = server.requests[0].headers
    assert sent.get("authorization", sent.get("x-api-key")) in ("Bearer " + SECRET, SECRET)


@pytest.mark.parametrize("provider", sorted(CLASSES))
def test_surrounding_whitespace_is_stripped_from_the_environment(monkeypatch, provider):
    cls, env, suffix = CLASSES[provider]
    monkeypatch.setenv(env, SECRET + "\n")
    model = cls("m", base_url="http://127.0.0.1:9" + suffix)
    try:
        assert model._api_key == SECRET
    finally:
        model.close()


@pytest.mark.parametrize("provider", sorted(CLASSES))
@pytest.mark.parametrize("key", ["sk-SECRET\n0123456789", "sk-SECRET 0123456789", "sk-SECRET\x000123456789",
                                 "sk-SECRET\x7f0123456789", "sk-SECRET\u20280123456789"])
def test_inner_whitespace_or_control_character_is_refused(monkeypatch, provider, key):
    cls, env, suffix = CLASSES[provider]
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(UserError, match="api_key=") as info:
        cls("m", base_url="http://127.0.0.1:9" + suffix, api_key=key)
    assert "whitespace or control characters" in str(info.value)
    assert_no_secret(info.value)


@pytest.mark.parametrize("provider", sorted(CLASSES))
def test_refused_key_from_the_environment_names_the_variable(monkeypatch, provider):
    cls, env, suffix = CLASSES[provider]
    monkeypatch.setenv(env, "sk-SECRET\n0123456789\n")
    with pytest.raises(UserError, match=env) as info:
        cls("m", base_url="http://127.0.0.1:9" + suffix)
    assert_no_secret(info.value)


@pytest.mark.parametrize("provider", sorted(CLASSES))
def test_blank_key_is_refused(monkeypatch, provider):
    cls, env, suffix = CLASSES[provider]
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(UserError, match="blank"):
        cls("m", base_url="http://127.0.0.1:9" + suffix, api_key=" \n")


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_invalid_header_value_is_reported_without_it(server, make, wire):
    """requests' InvalidHeader names the value; the UserError must not, nor chain it."""
    agent = make(wire, headers={"X-Extra": "value-SECRET-123\n"})
    out = drive(agent)
    assert isinstance(out.error, UserError), out.error
    assert "header value" in str(out.error)
    assert out.error.__cause__ is None and out.error.__context__ is None
    assert_no_secret(out.error)
    assert server.requests == []


def test_scrub_replaces_the_escaped_form_of_the_key():
    from agentstream.exceptions import ModelStreamError

    model = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", api_key=SECRET)
    try:
        model._api_key = SECRET + "\t"   # as if the key held a character repr escapes
        exc = model._scrub(ModelStreamError(f"boom {repr(SECRET + chr(9))}", line=repr(SECRET + "\t")))
        assert "SECRET" not in str(exc) and "SECRET" not in (exc.line or "")
    finally:
        model.close()
