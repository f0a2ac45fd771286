"""The shared fault, cancel and key-hygiene tests, run against GeminiModel.

``tests/faultkit.py`` scripts OpenAI and Anthropic; ``GEMINI`` below is the same ``Wire``
interface for Gemini streams (CRLF framing, no terminator, ``finishReason`` + cumulative
``usageMetadata`` on the last event). The tests themselves are the shared ones, called with
``wire=GEMINI``, so Gemini is held to exactly what the other providers are.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from agentstream import Agent, ModelStreamError
from agentstream.models.gemini import GeminiModel
from tests import test_api_key_hygiene as hygiene
from tests import test_cancel_http as cancel
from tests import test_faults as faults
from tests import test_faults_http as faults_http
from tests.faultkit import FAST, FAKE_KEY, Reply, Server, Wire, assert_failed, drive
from tests.faultkit import make_fixture, server_fixture  # noqa: F401 (the "server" and "make" fixtures)

MODEL = "gemini-test"


def gm_event(*parts: Dict[str, Any], finish: Optional[str] = None, usage: Optional[Dict[str, int]] = None) -> bytes:
    candidate: Dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: Dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL, "responseId": "resp-1"}
    if usage:
        body["usageMetadata"] = usage
    return f"data: {json.dumps(body)}\r\n\r\n".encode("utf-8")


def gm_finish() -> bytes:
    return gm_event({"text": ""}, finish="STOP", usage={"promptTokenCount": 11, "candidatesTokenCount": 7,
                                                         "totalTokenCount": 18})


def gm_reply(*texts: str, **kwargs: Any) -> Reply:
    return Reply(chunks=[gm_event({"text": t}) for t in texts] + [gm_finish()], **kwargs)


def gm_tools_reply(*calls: tuple, **kwargs: Any) -> Reply:
    """Each call ``(call_id, name, args_json)``; Gemini may send the id (here it does)."""
    chunks = [gm_event({"functionCall": {"name": name, "args": json.loads(args), "id": cid}})
              for cid, name, args in calls]
    return Reply(chunks=chunks + [gm_finish()], **kwargs)


def gemini_agent(server: Server, *, model_kwargs: Optional[Dict[str, Any]] = None, **agent_kwargs: Any) -> Agent:
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault("api_key", FAKE_KEY)
    kwargs.setdefault("timeout", FAST)
    return Agent(GeminiModel(MODEL, base_url=server.url, **kwargs), **agent_kwargs)


def gemini_wire_problems(body: Dict[str, Any]) -> List[str]:
    """What the Gemini API would reject in a request body."""
    problems: List[str] = []
    contents = body.get("contents") or []
    if not contents or contents[0].get("role") != "user":
        problems.append("must start with a user turn")
    for i, turn in enumerate(contents):
        parts = turn.get("parts") or []
        if turn.get("role") not in ("user", "model"):
            problems.append(f"turn {i}: role {turn.get('role')!r}")
        if not parts:
            problems.append(f"turn {i} is empty")
        if i and turn.get("role") == contents[i - 1].get("role"):
            problems.append(f"turns {i - 1} and {i} are both {turn.get('role')}")
        calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
        if turn.get("role") == "model" and calls:
            after = contents[i + 1].get("parts") or [] if i + 1 < len(contents) else []
            answers = [p["functionResponse"]["name"] for p in after if "functionResponse" in p]
            if answers != calls:
                problems.append(f"turn {i}: calls {calls} answered by {answers}")
        for p in parts:
            if "functionResponse" in p and not isinstance(p["functionResponse"].get("response"), dict):
                problems.append(f"turn {i}: functionResponse.response must be an object")
    if contents and contents[-1].get("role") != "user":
        problems.append("the request ends with a model turn")
    return problems


GEMINI = Wire("gemini", gemini_agent, gm_reply, lambda *texts: [gm_event({"text": t}) for t in texts],
              gm_tools_reply, gemini_wire_problems, f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")


def test_a_normal_run_with_a_tool(server, make):
    faults.test_normal_run_with_a_tool(server, make, GEMINI)
    assert [r.path for r in server.requests] == [GEMINI.path] * 2
    assert all(r.headers["x-goog-api-key"] == FAKE_KEY for r in server.requests)


@pytest.mark.parametrize("how", ["drop", "reset"])
def test_connection_cut_after_output_keeps_the_partial(server, make, how):
    faults.test_connection_cut_after_output_keeps_the_partial(server, make, GEMINI, how)


def test_a_10_mb_single_event(server, make):
    faults.test_a_10_mb_single_event(server, make, GEMINI)


def test_5xx_then_success(server, make):
    faults_http.test_500_502_503_529_then_success(server, make, GEMINI)


def test_200_with_a_json_error_body(server, make):
    faults_http.test_200_with_a_json_error_body(server, make, GEMINI)


def test_stream_cut_before_the_finish_reason(server, make):
    server.enqueue(Reply(chunks=GEMINI.partial("Hel")))   # EOF, no finishReason
    out = drive(make(GEMINI))
    assert_failed(out, ModelStreamError, "before a finishReason", partial="Hel")


def test_cancel_before_the_first_byte(server):
    cancel.test_cancel_before_the_first_byte(server, GEMINI)


def test_cancel_inside_a_stalled_read(server):
    cancel.test_cancel_inside_a_stalled_read(server, GEMINI)


def test_cancel_while_a_tool_runs_awaits_it(server):
    cancel.test_cancel_while_a_tool_runs_awaits_it(server, GEMINI)


def test_cancel_during_a_summary_request(server):
    cancel.test_cancel_during_a_summary_request(server, GEMINI)


@pytest.mark.parametrize("key", [hygiene.SECRET + "\n", hygiene.SECRET + "\r\n", "  " + hygiene.SECRET + "\t\n"])
def test_surrounding_whitespace_is_stripped(server, make, key):
    server.enqueue(GEMINI.reply("hello"))
    agent = make(GEMINI, api_key=key)
    out = drive(agent)
    assert out.error is None and out.stream.result().output == "hello"
    assert server.requests[0].headers["x-goog-api-key"] == hygiene.SECRET
