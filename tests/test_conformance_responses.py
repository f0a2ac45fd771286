"""Every recorded OpenAI Responses transcript in shared/wire/pydantic-ai/openai-responses through
``ResponsesTranslator`` + ``ResponseBuilder``, cut at random points.

The expected values come from each transcript's final ``response.completed`` event (the
response as the server summed it up), not from the deltas the translator reads: the text of
the ``message`` items, the summary and reasoning text of the ``reasoning`` items, the
``function_call`` items (name, ``call_id``, ``id``, arguments), usage with cached and reasoning
tokens. A reasoning item's ``encrypted_content`` is expected from its ``output_item.done``
event when there is one (the translator keeps that one: it is there before the output that
follows; the final response carries a fresh encryption of the same reasoning), else from the
final response. The transcripts are read in place (never copied); without them the tests skip.
Also one end-to-end replay of a recorded reasoning + tool call turn through a loopback server.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agentstream._accumulate import ResponseBuilder
from agentstream._sse import SSEDecoder
from agentstream.events import TextDelta, ThinkingDelta
from agentstream.messages import ThinkingPart
from agentstream.models._responses_stream import ResponsesTranslator

WIRE = Path(__file__).resolve().parent.parent.parent / "shared" / "wire" / "pydantic-ai"
FOLDER = WIRE / "openai-responses"
SEEDS = range(6)


def _transcripts() -> List[Any]:
    if not FOLDER.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"recorded transcripts not found at {FOLDER} (shared/ is next to the repo)"))]
    return [pytest.param(path, id=path.stem) for path in sorted(FOLDER.glob("*.sse"))]


def _events(raw: bytes) -> List[Dict[str, Any]]:
    out = []
    for line in raw.decode("utf-8").splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            out.append(json.loads(line[5:]))
    return out


def reference(raw: bytes) -> Dict[str, Any]:
    """What the transcript says, from its final response (simple on purpose)."""
    events = _events(raw)
    final = [e for e in events if e["type"] in ("response.completed", "response.incomplete")][-1]["response"]
    done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
    text, thinking, calls, signatures, ids = [], [], [], [], []
    for index, item in enumerate(final["output"]):
        if item["type"] == "message":
            text.extend(p.get("text") or p.get("refusal") or "" for p in item["content"])
            ids.append(("text", item["id"]))
        elif item["type"] == "reasoning":
            thinking.extend(p["text"] for p in item.get("summary") or [])
            thinking.extend(p["text"] for p in item.get("content") or [])
            encrypted = (done.get(index) or {}).get("encrypted_content") or item.get("encrypted_content")
            if encrypted:
                signatures.append(encrypted)
        elif item["type"] == "function_call":
            calls.append((item["name"], item["call_id"], json.loads(item["arguments"] or "{}")))
            ids.append(("tool", item["id"]))
    usage = final["usage"]
    finish = "tool_calls" if calls else "stop" if final["status"] == "completed" else "length"
    return {"text": "".join(text), "thinking": "".join(thinking), "calls": calls, "signatures": signatures,
            "finish": finish, "ids": ids, "model": final["model"], "id": final["id"],
            "usage": (usage["input_tokens"], usage["output_tokens"],
                      usage["input_tokens_details"]["cached_tokens"],
                      usage["output_tokens_details"]["reasoning_tokens"])}


def replay(raw: bytes, cuts: List[int]) -> Dict[str, Any]:
    decoder, translator, builder = SSEDecoder(), ResponsesTranslator(), ResponseBuilder()
    events: List[Any] = []

    def take(items: List[Any]) -> None:
        for item in items:
            events.extend(builder.feed(item))

    bounds = [0] + cuts + [len(raw)]
    for start, end in zip(bounds, bounds[1:]):
        for sse in decoder.feed(raw[start:end]):
            take(translator.translate(sse))
    for sse in decoder.flush():
        take(translator.translate(sse))
    take(translator.finish())
    return {"builder": builder, "events": events, "done": translator.done}


def _cuts(size: int, seed: int) -> List[int]:
    rng = random.Random(seed * 7919 + size)
    count = [1, 8, 64, size // 40 or 1, size // 3 or 1, size][seed % 6]   # from one cut to every byte
    return sorted(rng.sample(range(1, size), min(count, size - 1)))


@pytest.mark.parametrize("path", _transcripts())
def test_transcript_decodes_at_random_split_points(path: Path) -> None:
    raw = path.read_bytes()
    expected = reference(raw)
    for seed in SEEDS:
        got = replay(raw, _cuts(len(raw), seed))
        builder, where = got["builder"], f"{path.name}, seed {seed}"
        response = builder.build()
        assert got["done"], where
        assert response.text == builder.text == expected["text"], where
        assert builder.thinking == expected["thinking"], where
        assert "".join(e.text for e in got["events"] if isinstance(e, TextDelta)) == expected["text"], where
        assert "".join(e.text for e in got["events"] if isinstance(e, ThinkingDelta)) == expected["thinking"], where
        assert [(c.tool_name, c.tool_call_id, c.args) for c in response.tool_calls] == expected["calls"], where
        assert not builder.invalid_args, where
        assert response.finish_reason == expected["finish"], where
        usage = response.usage
        assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                usage.details.get("reasoning_tokens", 0)) == expected["usage"], where
        thinking = [p for p in response.parts if isinstance(p, ThinkingPart)]
        assert [p.signature for p in thinking if p.signature] == expected["signatures"], where
        kinds = {"TextPart": "text", "ToolCallPart": "tool"}
        ids = [(kinds[type(p).__name__], p.provider_id) for p in response.parts if type(p).__name__ in kinds]
        if "openrouter" not in path.name:   # OpenRouter renames its items in the final response
            assert ids == expected["ids"], where
        assert response.model_name == expected["model"], where
        assert response.provider_response_id == expected["id"], where


def test_every_responses_transcript_is_covered() -> None:
    if not FOLDER.is_dir():
        pytest.skip(f"recorded transcripts not found at {FOLDER}")
    assert len(list(FOLDER.glob("*.sse"))) >= 14


# --- end to end: a recorded reasoning + tool call turn, then a recorded answer -----------------

def test_e2e_recorded_reasoning_tool_turn(no_thread_leak) -> None:
    if not FOLDER.is_dir():
        pytest.skip(f"recorded transcripts not found at {FOLDER}")
    from agentstream import Agent
    from agentstream.models import OpenAIResponsesModel
    from tests import server as srv

    first = (FOLDER / "bedrock_mantle_tool_call_2.sse").read_bytes()
    second = (FOLDER / "text_after_function_output.sse").read_bytes()
    ref1, ref2 = reference(first), reference(second)
    name, call_id, args = ref1["calls"][0]
    with srv.Server() as server:
        server.enqueue(srv.Reply(chunks=[first[i:i + 7] for i in range(0, len(first), 7)]),
                       srv.Reply(chunks=[second], chunked=False))
        model = OpenAIResponsesModel("openai.gpt-5.6-luna", base_url=server.url + "/openai/v1", api_key=srv.FAKE_KEY)
        agent = Agent(model)
        agent.tool_plain(name=name)(lambda: "second result")
        stream = agent.run_stream("Follow the tool instructions.")
        events = list(stream)
        model.close()
    result = stream.result()
    assert result.output == ref2["text"]
    assert [(e.tool_name, e.tool_call_id) for e in events if e.kind == "tool_executed"] == [(name, call_id)]
    sent = server.requests[1].json["input"]
    reasoning = [i for i in sent if i.get("type") == "reasoning"]
    assert [(i["id"], i["encrypted_content"]) for i in reasoning] == \
        [(next(p.provider_id for p in result.messages[1].parts if isinstance(p, ThinkingPart)),
          ref1["signatures"][0])]
    call = next(i for i in sent if i.get("type") == "function_call")
    output = next(i for i in sent if i.get("type") == "function_call_output")
    assert (call["call_id"], call["name"], json.loads(call["arguments"]), call["id"]) == \
        (call_id, name, args, ref1["ids"][0][1])
    assert output == {"type": "function_call_output", "call_id": call_id, "output": "second result"}
    assert (result.usage.input_tokens, result.usage.output_tokens) == \
        (ref1["usage"][0] + ref2["usage"][0], ref1["usage"][1] + ref2["usage"][1])
