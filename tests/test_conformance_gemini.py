"""Every recorded Gemini transcript (shared/wire/pydantic-ai/gemini) through GeminiTranslator.

Each ``.sse`` file (CRLF framing) is decoded, translated and accumulated, fed whole and in
pieces cut at random points (seeded, so a failure repeats), and checked against a simple
reference parse of the same file written here: json-load each ``data:`` line and concatenate
the text and thought parts, collect the function calls, keep the last ``usageMetadata``.
The transcripts are read in place (never copied); without them the tests skip. Two are also
replayed end to end through a loopback server and ``Agent("google:...")``.
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
from agentstream.messages import TextPart, ThinkingPart
from agentstream.models._gemini_stream import GeminiTranslator, is_local_call_id

WIRE = Path(__file__).resolve().parent.parent.parent / "shared" / "wire" / "pydantic-ai" / "gemini"
SPLITS = 5   # random cuttings per transcript, besides whole, 1-byte and 7-byte pieces


def _transcripts() -> List[Any]:
    if not WIRE.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"recorded transcripts not found at {WIRE}"))]
    return [pytest.param(path, id=path.stem) for path in sorted(WIRE.glob("*.sse"))]


def reference(raw: bytes) -> Dict[str, Any]:
    text, thinking, calls, signatures = [], [], [], []
    usage, finish = None, None
    for line in raw.decode("utf-8").split("\r\n"):
        if not line.startswith("data: "):
            continue
        event = json.loads(line[len("data: "):])
        candidate = event["candidates"][0]
        for part in candidate.get("content", {}).get("parts", []):
            if "thoughtSignature" in part:
                signatures.append(part["thoughtSignature"])
            if "functionCall" in part:
                call = part["functionCall"]
                calls.append((call["name"], call.get("id"), call.get("args") or {}))
            elif part.get("thought"):
                thinking.append(part["text"])
            elif "text" in part:
                text.append(part["text"])
        usage = event.get("usageMetadata", usage)
        finish = candidate.get("finishReason", finish)
    return {"text": "".join(text), "thinking": "".join(thinking), "calls": calls, "signatures": signatures,
            "finish": {"STOP": "tool_calls" if calls else "stop", "MAX_TOKENS": "length"}.get(finish, finish),
            "usage": (usage["promptTokenCount"],
                      usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)),
            "thoughts": usage.get("thoughtsTokenCount", 0)}


def replay(pieces: List[bytes]) -> Dict[str, Any]:
    decoder, translator, builder = SSEDecoder(), GeminiTranslator(), ResponseBuilder()
    events: List[Any] = []
    for piece in pieces:
        for sse in decoder.feed(piece):
            for item in translator.translate(sse):
                events.extend(builder.feed(item))
    for sse in decoder.flush():
        for item in translator.translate(sse):
            events.extend(builder.feed(item))
    for item in translator.finish():
        events.extend(builder.feed(item))
    return {"response": builder.build(), "events": events, "builder": builder}


def cuttings(raw: bytes, seed: str) -> List[List[bytes]]:
    rng = random.Random(seed)
    out = [[raw], [raw[i:i + 1] for i in range(len(raw))], [raw[i:i + 7] for i in range(0, len(raw), 7)]]
    for _ in range(SPLITS):
        cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(1, 40))))
        out.append([raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])])
    return out


@pytest.mark.parametrize("path", _transcripts())
def test_transcript_decodes_exactly_at_random_split_points(path: Path) -> None:
    raw = path.read_bytes()
    assert b"\r\n\r\n" in raw   # Gemini's CRLF framing
    expected = reference(raw)
    for n, pieces in enumerate(cuttings(raw, path.name)):
        got = replay(pieces)
        response, events = got["response"], got["events"]
        where = f"{path.name}, cutting {n} ({len(pieces)} pieces)"
        assert got["builder"].text == response.text == expected["text"], where
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == expected["text"], where
        assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == expected["thinking"], where
        assert "".join(p.content for p in response.parts if isinstance(p, ThinkingPart)) == expected["thinking"]
        calls = response.tool_calls
        assert [(c.tool_name, c.args) for c in calls] == [(name, args) for name, _, args in expected["calls"]], where
        for call, (_, call_id, _) in zip(calls, expected["calls"]):
            assert call.tool_call_id == call_id if call_id else is_local_call_id(call.tool_call_id), where
        assert len({c.tool_call_id for c in calls}) == len(calls), where
        kept = [p.signature for p in response.parts if getattr(p, "signature", None)]
        assert kept == expected["signatures"], where
        assert response.finish_reason == expected["finish"], where
        assert (response.usage.input_tokens, response.usage.output_tokens) == expected["usage"], where
        assert response.usage.details.get("reasoning_tokens", 0) == expected["thoughts"], where
        assert not got["builder"].invalid_args, where


def test_signature_stays_on_the_part_it_came_with() -> None:
    if not WIRE.is_dir():
        pytest.skip(f"recorded transcripts not found at {WIRE}")
    raw = (WIRE / "thinking_thought_parts.sse").read_bytes()
    expected = reference(raw)
    parts = replay([raw])["response"].parts
    signed = [p for p in parts if getattr(p, "signature", None)]
    assert len(signed) == 1 and isinstance(signed[0], TextPart)
    assert signed[0].signature == expected["signatures"][0]
    assert isinstance(parts[0], ThinkingPart) and parts[0].signature is None


# --- end to end: loopback server -> Agent("google:...") ---------------------------------------

def _server() -> Any:
    if not WIRE.is_dir():
        pytest.skip(f"recorded transcripts not found at {WIRE}")
    from tests import server

    return server


def test_e2e_recorded_tool_call_with_signature_then_answer(monkeypatch, no_thread_leak) -> None:
    srv = _server()
    from agentstream import Agent

    first = (WIRE / "function_call_thought_signature.sse").read_bytes()
    ref = reference(first)
    answer = (WIRE / "text_after_tools.sse").read_bytes()
    recorded = json.loads((WIRE / "function_call_thought_signature.request.json").read_text())
    with srv.Server() as server:
        server.enqueue(srv.Reply(chunks=[first[i:i + 97] for i in range(0, len(first), 97)]),
                       srv.Reply(chunks=[answer], chunked=False))
        monkeypatch.setenv("GEMINI_API_KEY", srv.FAKE_KEY)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.setenv("GEMINI_BASE_URL", server.url)
        agent = Agent("google:gemini-3-pro-preview")
        name, _, args = ref["calls"][0]

        @agent.tool_plain(name=name)
        def get_country() -> str:
            return "Mexico"

        result = agent.run(recorded["contents"][0]["parts"][0]["text"])
        agent.model.close()
    assert result.output == reference(answer)["text"]
    assert len(server.requests) == 2
    sent = server.requests[1]
    assert sent.headers["x-goog-api-key"] == srv.FAKE_KEY and srv.FAKE_KEY not in sent.path
    model_turn = sent.json["contents"][1]
    assert model_turn == {"role": "model", "parts": [
        {"functionCall": {"name": name, "args": args}, "thoughtSignature": ref["signatures"][0]}]}
    assert sent.json["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": name, "response": {"output": "Mexico"}}}]}
