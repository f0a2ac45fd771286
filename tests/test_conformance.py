"""Every recorded transcript in shared/wire/pydantic-ai through our translators.

Each ``.sse`` file is decoded (``SSEDecoder``), translated (the provider's
translator) and accumulated (``ResponseBuilder``), feeding the bytes in 1,
7 and 64 KiB pieces. The result is checked against a deliberately simple
reference parse of the same file (json-load each ``data:`` line, concatenate
the content fields), written here independently of the translators.

The transcripts are read in place from ``<repo>/../shared`` (never copied);
without them the tests skip. A few are also replayed end to end through a
loopback HTTP server and ``Agent.run_stream``: see the bottom of the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from agentstream._accumulate import ResponseBuilder
from agentstream._sse import SSEDecoder
from agentstream.events import TextDelta, ThinkingDelta
from agentstream.exceptions import ModelStreamError
from agentstream.messages import ThinkingPart
from agentstream.models._anthropic_stream import AnthropicTranslator
from agentstream.models._openai_stream import OpenAIChatTranslator

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
WIRE = SHARED / "wire" / "pydantic-ai"
FORMATS = {"openai-chat": "openai", "groq": "openai", "mistral": "openai", "other": "openai",
           "anthropic": "anthropic"}
#: folders whose transcripts have their own conformance file (left out of the parametrisation here)
UNSUPPORTED = {"openai-responses": "decoded by tests/test_conformance_responses.py (OpenAI Responses)",
               "gemini": "decoded by tests/test_conformance_gemini.py (Gemini streamGenerateContent)"}
CHUNK_SIZES = (1, 7, 64 * 1024)


def _transcripts() -> List[Any]:
    if not WIRE.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"recorded transcripts not found at {WIRE} (shared/ is next to the repo)"))]
    params = []
    for path in sorted(WIRE.glob("*/*.sse")):
        folder = path.parent.name
        ident = f"{folder}/{path.stem}"
        if folder in UNSUPPORTED:
            continue
        if folder in FORMATS:
            params.append(pytest.param(path, FORMATS[folder], id=ident))
        else:
            params.append(pytest.param(path, None, id=ident, marks=pytest.mark.skip(
                reason=f"unknown transcript folder {folder!r}")))
    return params


# --- reference parses (simple on purpose) ---------------------------------------

def _data_lines(raw: bytes) -> List[Any]:
    out = []
    for line in raw.decode("utf-8").splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            out.append(json.loads(payload))
    return out


def reference_openai(raw: bytes) -> Dict[str, Any]:
    text: List[str] = []
    thinking: List[str] = []
    calls: Dict[int, Dict[str, str]] = {}
    signatures: Dict[Any, str] = {}   # reasoning_details entry -> its signature fragments joined
    encrypted = set()
    usage = None
    error = None
    finish = None
    for chunk in _data_lines(raw):
        if chunk.get("error"):
            error = chunk["error"]["message"]
            break
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                text.append(content)
            for item in content if isinstance(content, list) else []:
                if item["type"] == "thinking":
                    thinking.extend(t["text"] for t in item["thinking"])
                elif item["type"] == "text":
                    text.append(item["text"])
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                thinking.append(reasoning)
            else:
                thinking.extend(d.get("text") or "" for d in delta.get("reasoning_details") or [])
            for d in delta.get("reasoning_details") or []:
                key = (d.get("index"), d["type"])
                signatures[key] = signatures.get(key, "") + (d.get("signature") or "")
                if d["type"] == "reasoning.encrypted":
                    encrypted.add(key)
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "args": ""})
                function = call.get("function") or {}
                slot["id"] = slot["id"] or call.get("id") or ""
                slot["name"] = slot["name"] or function.get("name") or ""
                slot["args"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
        found = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if found:
            usage = (found["prompt_tokens"], found["completion_tokens"])
    joined = "".join(text)
    if joined.lstrip().startswith("<think>"):
        inner, _, after = joined.lstrip()[len("<think>"):].partition("</think>")
        thinking.append(inner)
        joined = after.lstrip()
    return {"text": joined, "thinking": "".join(thinking), "usage": usage, "error": error,
            "finish": finish, "signatures": [s for s in signatures.values() if s], "redacted": len(encrypted),
            "calls": [(c["name"], c["id"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]}


def reference_anthropic(raw: bytes) -> Dict[str, Any]:
    text, thinking, signatures = [], [], []
    blocks: Dict[int, str] = {}
    calls: Dict[int, Dict[str, str]] = {}
    usage: Dict[str, int] = {}
    redacted, error, finish = 0, None, None
    for event in _data_lines(raw):
        kind = event["type"]
        if kind == "error":
            error = event["error"]["message"]
            break
        if kind == "message_start":
            usage.update(event["message"]["usage"])
        elif kind == "content_block_start":
            block = event["content_block"]
            blocks[event["index"]] = block["type"]
            if block["type"] == "tool_use":
                calls[event["index"]] = {"id": block["id"], "name": block["name"], "args": ""}
            redacted += block["type"] == "redacted_thinking"
        elif kind == "content_block_delta":
            delta, btype = event["delta"], blocks[event["index"]]
            if delta["type"] == "text_delta" and btype == "text":
                text.append(delta["text"])
            elif delta["type"] == "thinking_delta":
                thinking.append(delta["thinking"])
            elif delta["type"] == "signature_delta":
                signatures.append(delta["signature"])
            elif delta["type"] == "input_json_delta" and btype == "tool_use":
                calls[event["index"]]["args"] += delta["partial_json"]
        elif kind == "message_delta":
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            finish = event["delta"].get("stop_reason") or finish
    prompt = sum(usage.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens",
                                             "cache_creation_input_tokens"))
    finish = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}.get(finish, finish)
    return {"text": "".join(text), "thinking": "".join(thinking), "signatures": signatures,
            "redacted": redacted, "error": error, "finish": finish,
            "usage": (prompt, usage["output_tokens"]) if usage else None,
            "calls": [(c["name"], c["id"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]}


# --- driving the real code ------------------------------------------------------

def replay(raw: bytes, fmt: str, chunk_size: int) -> Dict[str, Any]:
    decoder = SSEDecoder()
    translator = OpenAIChatTranslator() if fmt == "openai" else AnthropicTranslator()
    builder = ResponseBuilder()
    events: List[Any] = []
    error: Optional[ModelStreamError] = None
    try:
        for start in range(0, len(raw), chunk_size):
            for sse in decoder.feed(raw[start:start + chunk_size]):
                for item in translator.translate(sse):
                    events.extend(builder.feed(item))
        for sse in decoder.flush():
            for item in translator.translate(sse):
                events.extend(builder.feed(item))
        for item in translator.finish():
            events.extend(builder.feed(item))
    except ModelStreamError as exc:
        error = exc
    return {"builder": builder, "events": events, "error": error, "done": translator.done}


@pytest.mark.parametrize("path,fmt", _transcripts())
def test_transcript_matches_reference(path: Path, fmt: str) -> None:
    raw = path.read_bytes()
    expected = (reference_openai if fmt == "openai" else reference_anthropic)(raw)
    for size in CHUNK_SIZES:
        got = replay(raw, fmt, size)
        builder = got["builder"]
        where = f"{path.name} fed in {size}-byte pieces"
        if expected["error"]:   # in-band error events (gotcha #20): raised, partial kept
            assert got["error"] is not None, where
            assert expected["error"] in str(got["error"]), where
            assert got["error"].line, where
            response = builder.build(partial=True)
        else:
            assert got["error"] is None, f"{where}: {got['error']!r}"
            response = builder.build()
            assert response.finish_reason == expected["finish"] or (
                expected["finish"] in (None, "stop") and response.finish_reason == "tool_calls"), where
        assert builder.text == expected["text"], where
        assert builder.thinking == expected["thinking"], where
        deltas = got["events"]
        assert "".join(e.text for e in deltas if isinstance(e, TextDelta)) == expected["text"], where
        assert "".join(e.text for e in deltas if isinstance(e, ThinkingDelta)) == expected["thinking"], where
        calls = [(c.tool_name, c.tool_call_id, c.args) for c in response.tool_calls]
        assert calls == expected["calls"], where
        assert not builder.invalid_args, where
        if expected["usage"] is not None:
            assert (response.usage.input_tokens, response.usage.output_tokens) == expected["usage"], where
        thinking_parts = [p for p in response.parts if isinstance(p, ThinkingPart)]
        assert [p.signature for p in thinking_parts if p.signature] == expected["signatures"], where
        assert sum(1 for p in thinking_parts if p.redacted_data) == expected["redacted"], where


def test_unsupported_folders_are_listed() -> None:
    if not WIRE.is_dir():
        pytest.skip(f"recorded transcripts not found at {WIRE}")
    folders = {p.name for p in WIRE.iterdir() if p.is_dir()}
    assert folders <= set(FORMATS) | set(UNSUPPORTED), folders - set(FORMATS) - set(UNSUPPORTED)


# --- end to end: loopback HTTP server -> HTTP model -> Agent.run_stream ----------------------

def _server():
    if not WIRE.is_dir():
        pytest.skip(f"recorded transcripts not found at {WIRE}")
    from tests import server

    return server


def _reply(srv: Any, raw: bytes, size: int, framing: str) -> Any:
    pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
    return srv.Reply(chunks=pieces, chunked=framing == "chunked")


def _run(agent: Any, prompt: str, **handlers: Any) -> Any:
    stream = agent.run_stream(prompt, **handlers)
    seen: List[Any] = []
    try:
        for event in stream:
            seen.append(event)
    except Exception as exc:  # noqa: BLE001 - the test checks it
        return stream, seen, exc
    return stream, seen, None


def _openai_roles(messages: List[Dict[str, Any]]) -> List[Any]:
    out = []
    for m in messages:
        calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in m.get("tool_calls") or []]
        content = m.get("content")
        if calls and not content:   # we send "" where pydantic-ai sends null (llama-cpp-python refuses null)
            content = None
        out.append((m["role"], content, m.get("tool_call_id"), calls))
    return out


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_e2e_openai_tool_call_then_answer(no_thread_leak, framing):
    srv = _server()
    from agentstream import Agent
    from agentstream.models.openai_chat import OpenAIChatModel

    folder = WIRE / "openai-chat"
    first = (folder / "tool_call_get_capital_gpt4o_mini.sse").read_bytes()
    second = (folder / "text_after_tool_result_gpt4o_mini.sse").read_bytes()
    recorded = json.loads((folder / "text_after_tool_result_gpt4o_mini.request.json").read_text())
    ref1, ref2 = reference_openai(first), reference_openai(second)
    with srv.Server() as server:
        server.enqueue(_reply(srv, first, 7, framing), _reply(srv, second, 64, framing))
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.url + "/v1", api_key=srv.FAKE_KEY)
        agent = Agent(model)
        calls: List[Any] = []

        @agent.tool_plain
        def get_capital(country: str) -> str:
            calls.append(country)
            return "London"

        texts: List[str] = []
        stream, seen, error = _run(agent, recorded["messages"][0]["content"], on_text=texts.append)
        model.close()
    assert error is None and stream.result().output == ref2["text"] == "".join(texts)
    assert calls == [ref1["calls"][0][2]["country"]]
    executed = [e for e in seen if e.kind == "tool_executed"]
    assert [(e.tool_name, e.tool_call_id, e.success) for e in executed] == [ref1["calls"][0][:2] + (True,)]
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 2
    assert server.requests[0].headers["authorization"] == f"Bearer {srv.FAKE_KEY}"
    sent = server.requests[1].json
    assert _openai_roles(sent["messages"]) == _openai_roles(recorded["messages"])   # same history as pydantic-ai
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_capital"]
    usage = stream.result().usage
    assert (usage.input_tokens, usage.output_tokens) == tuple(a + b for a, b in zip(ref1["usage"], ref2["usage"]))
    assert srv.FAKE_KEY not in repr(model)


def test_e2e_anthropic_tool_use_then_answer(no_thread_leak):
    srv = _server()
    from agentstream import Agent
    from agentstream.models.anthropic import AnthropicModel

    folder = WIRE / "anthropic"
    first = (folder / "client_tool_use_after_tool_search.sse").read_bytes()
    second = (folder / "text_after_tool_result.sse").read_bytes()
    recorded = json.loads((folder / "text_after_tool_result.request.json").read_text())
    ref1, ref2 = reference_anthropic(first), reference_anthropic(second)
    with srv.Server() as server:
        server.enqueue(_reply(srv, first, 7, "chunked"), _reply(srv, second, 64, "close"))
        model = AnthropicModel("claude-sonnet-4-6", base_url=server.url, api_key=srv.FAKE_KEY)
        agent = Agent(model)

        @agent.tool_plain
        def get_exchange_rate(from_currency: str, to_currency: str) -> str:
            """Look up the current exchange rate between two currencies."""
            return "1 USD = 0.92 EUR"

        stream, seen, error = _run(agent, recorded["messages"][0]["content"][0]["text"])
        model.close()
    assert error is None and stream.result().output == ref2["text"]
    name, call_id, args = ref1["calls"][0]
    executed = [e for e in seen if e.kind == "tool_executed"]
    assert [(e.tool_name, e.tool_call_id, e.result) for e in executed] == [(name, call_id, "1 USD = 0.92 EUR")]
    request = server.requests[1]
    assert request.path == "/v1/messages" and request.headers["x-api-key"] == srv.FAKE_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    sent = request.json["messages"]
    assert [m["role"] for m in sent] == [m["role"] for m in recorded["messages"]] == ["user", "assistant", "user"]
    tool_use = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    assert tool_use == [b for b in recorded["messages"][1]["content"] if b["type"] == "tool_use"]
    texts = [b["text"] for b in sent[1]["content"] if b["type"] == "text"]
    assert texts == [b["text"] for b in recorded["messages"][1]["content"] if b["type"] == "text"]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": call_id, "content": "1 USD = 0.92 EUR"}]


def test_e2e_in_band_error_keeps_partial_and_is_not_retried(no_thread_leak):
    srv = _server()
    from agentstream import Agent
    from agentstream.models.openai_chat import OpenAIChatModel

    raw = (WIRE / "groq" / "error_event_after_text_tool_choice_required.sse").read_bytes()
    ref = reference_openai(raw)
    with srv.Server() as server:
        server.enqueue(_reply(srv, raw, 64, "chunked"))
        model = OpenAIChatModel("openai/gpt-oss-120b", base_url=server.url + "/openai/v1", api_key=srv.FAKE_KEY,
                                provider="groq")
        thinking: List[str] = []
        stream, seen, error = _run(Agent(model), "hi", on_thinking=thinking.append)
        model.close()
    assert isinstance(error, ModelStreamError) and ref["error"] in str(error)
    assert seen[-1].kind == "error" and len(server.requests) == 1
    assert stream.text == ref["text"] and "".join(thinking) == ref["thinking"]


def test_e2e_reasoning_content_streams_thinking(no_thread_leak):
    srv = _server()
    from agentstream import Agent
    from agentstream.models.openai_chat import OpenAIChatModel

    raw = (WIRE / "other" / "deepseek_reasoner_reasoning_content.sse").read_bytes()
    ref = reference_openai(raw)
    with srv.Server() as server:
        server.enqueue(_reply(srv, raw, 1024, "close"))
        model = OpenAIChatModel("deepseek-reasoner", base_url=server.url, api_key=srv.FAKE_KEY, provider="deepseek")
        thinking: List[str] = []
        stream, seen, error = _run(Agent(model), "hi", on_thinking=thinking.append)
        model.close()
    assert error is None and stream.result().output == ref["text"] and "".join(thinking) == ref["thinking"]
    assert server.requests[0].path == "/chat/completions"
