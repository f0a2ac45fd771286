"""Concurrency and soak, against the loopback server through ``OpenAIChatModel``.

* 64 runs at once in one process (one shared ``Agent``, one thread per run), each calling a tool;
* many sequential runs with seeded random faults and cancels (``soak_runs(n)``): 150 in the
  default suite, 1,000 under ``-m soak`` (``make soak``).

Afterwards no thread, socket or file descriptor is left (bounded waits), Python memory is
back to its baseline within a small margin (tracemalloc), and every run is accounted for:
each ended with exactly one terminal event of the type its scenario expects.
"""
from __future__ import annotations

import gc
import json
import random
import re
import threading
import time
import tracemalloc
import weakref
from collections import Counter
from typing import Any, Dict, List, Tuple

import pytest

from agentstream import (Agent, CancelToken, ModelHTTPError, ModelStreamError, RunCancelled, StreamTimeout,
                         Timeout)
from agentstream.models.openai_chat import OpenAIChatModel
from tests.conftest import wait_no_agentstream_threads
from tests.faultkit import FAKE_KEY, TERMINAL, Reply, Server, fd_count, oa_reply, oa_text, oa_tools_reply, wait_for


def baseline() -> Tuple[int, int]:
    gc.collect()
    return threading.active_count(), fd_count()


def assert_back_to(threads: int, fds: int) -> None:
    assert wait_no_agentstream_threads(10) == []
    assert wait_for(lambda: threading.active_count() <= threads, 10), \
        [t.name for t in threading.enumerate()]
    assert wait_for(lambda: gc.collect() >= 0 and fd_count() <= fds, 10), f"fds {fds} -> {fd_count()}"


def tool_loop_responder(request: Any) -> Reply:
    """Request without a tool result -> call ``echo`` with the run's number; with one -> answer."""
    messages = request.json["messages"]
    n = int(re.search(r"run (\d+)", messages[0]["content"]).group(1))
    if messages[-1]["role"] == "tool":
        return oa_reply(f"done {messages[-1]['content']}")
    return oa_tools_reply((f"call_{n}", "echo", json.dumps({"n": n})))


# --- 64 runs at once ---------------------------------------------------------------------------

def test_64_concurrent_runs_with_tools():
    threads0, fds0 = baseline()
    count = 64
    results: Dict[int, Any] = {}
    terminals: Dict[int, List[str]] = {}
    with Server() as server:
        server.responder = tool_loop_responder
        model = OpenAIChatModel("gpt-test", base_url=server.url + "/v1", api_key=FAKE_KEY,
                                timeout=Timeout(connect=10, idle=10, total=30))
        agent = Agent(model)
        tool_threads: Dict[int, str] = {}

        @agent.tool_plain
        def echo(n: int) -> str:
            tool_threads[n] = threading.current_thread().name
            return f"#{n}"

        start = threading.Barrier(count, timeout=10)

        def one(i: int) -> None:
            start.wait()
            kinds: List[str] = []
            try:
                results[i] = agent.run(f"run {i}", on_event=lambda e: kinds.append(e.kind))
            except BaseException as exc:  # noqa: BLE001 - recorded and asserted below
                results[i] = exc
            terminals[i] = [k for k in kinds if k in TERMINAL]

        runners = [threading.Thread(target=one, args=(i,), name=f"test-run-{i}") for i in range(count)]
        for t in runners:
            t.start()
        for t in runners:
            t.join(30)
        assert not any(t.is_alive() for t in runners), "a run hung"
        model.close()
    failed = {i: r for i, r in results.items() if isinstance(r, BaseException)}
    assert not failed, failed
    assert sorted(results) == list(range(count))
    assert all(results[i].output == f"done #{i}" for i in range(count)), "runs saw each other's data"
    assert all(terminals[i] == ["run_complete"] for i in range(count))
    assert all(results[i].usage.requests == 2 and results[i].usage.tool_calls == 1 for i in range(count))
    assert sorted(tool_threads) == list(range(count))
    assert all(name.startswith("agentstream-run-") for name in tool_threads.values())
    assert len(server.requests) == 2 * count and not server.errors and not server.leaked
    assert_back_to(threads0, fds0)


# --- a failed run is freed ----------------------------------------------------------------------------

def test_a_failed_run_is_freed_once_dropped():
    """The error's traceback holds the stream (``result()``'s frame): the stream, its history
    and the exception must still be collectable once the caller drops them."""
    threads0, fds0 = baseline()
    with Server() as server:
        server.enqueue(Reply(chunks=[oa_text("a"), oa_text("b")], drop_mid_chunk=1))
        model = OpenAIChatModel("gpt-test", base_url=server.url + "/v1", api_key=FAKE_KEY, max_retries=0)
        stream = Agent(model).run_stream("hi")
        with pytest.raises(ModelStreamError) as info:
            stream.result(timeout=10)
        assert info.value.partial_text == "a"
        refs = [weakref.ref(stream), weakref.ref(stream._shared), weakref.ref(info.value)]
        del stream, info
        model.close()
    assert wait_for(lambda: gc.collect() >= 0 and all(r() is None for r in refs), 5), \
        [type(r()).__name__ for r in refs if r() is not None]
    assert_back_to(threads0, fds0)


# --- sequential soak with random faults and cancels ------------------------------------------------

class Soak:
    """Scenarios: each scripts the server and returns (run kwargs, expected terminal kind,
    expected exception class or None, requests the server should get)."""

    def __init__(self, server: Server, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.model = OpenAIChatModel("gpt-test", base_url=server.url + "/v1", api_key=FAKE_KEY,
                                     timeout=Timeout(connect=2, idle=2, total=10), max_retries=2)
        self.model.retry_base, self.model.retry_max_delay = 0.002, 0.005
        self.quick = OpenAIChatModel("gpt-test", base_url=server.url + "/v1", api_key=FAKE_KEY,
                                     timeout=Timeout(connect=2, idle=0.03), max_retries=0)
        self.agent = Agent(self.model)
        self.agent.tool(self._tool)

    def close(self) -> None:
        self.model.close()
        self.quick.close()

    @staticmethod
    def _tool(ctx: Any, mode: str) -> str:
        if mode == "cancel":
            ctx.cancel_token.cancel()   # as if the user cancelled while the tool runs
        return f"tool {mode}"

    def text(self) -> Any:
        self.server.enqueue(oa_reply(*[f"w{i} " for i in range(self.rng.randint(1, 20))]))
        return {}, "run_complete", None, 1

    def tool(self) -> Any:
        self.server.enqueue(oa_tools_reply(("c1", "_tool", '{"mode": "ok"}')), oa_reply("after tool"))
        return {}, "run_complete", None, 2

    def retry(self) -> Any:
        self.server.enqueue(Reply.json(self.rng.choice([500, 503, 529]), {"error": {"message": "busy"}}),
                            oa_reply("ok"))
        return {}, "run_complete", None, 2

    def cut(self) -> Any:
        n = self.rng.randint(1, 5)
        self.server.enqueue(Reply(chunks=[oa_text(f"p{i}") for i in range(n)] + [oa_text("lost")],
                                  drop_mid_chunk=n))
        return {}, "error", ModelStreamError, 1

    def http_error(self) -> Any:
        self.server.enqueue(Reply.json(400, {"error": {"message": "bad request"}}))
        return {}, "error", ModelHTTPError, 1

    def bad_utf8(self) -> Any:
        self.server.enqueue(Reply(chunks=[oa_text("a"), b'data: {"x": "\xff"}\n\n']))
        return {}, "error", ModelStreamError, 1

    def idle(self) -> Any:
        self.server.enqueue(Reply(chunks=[oa_text("a")], stall_after=1))
        return {"model": self.quick}, "error", StreamTimeout, 1

    def cancel_mid_stream(self) -> Any:
        n = self.rng.randint(1, 8)
        at = self.rng.randint(1, n)
        self.server.enqueue(Reply(chunks=[oa_text(f"t{i}") for i in range(n)], stall_after=n))
        token = CancelToken()
        seen: List[str] = []
        on_text = lambda t: (seen.append(t), token.cancel() if len(seen) == at else None)  # noqa: E731
        return {"cancel_token": token, "on_text": on_text}, "cancelled", RunCancelled, 1

    def cancel_before_headers(self) -> Any:
        token = CancelToken()

        def respond(request: Any) -> Reply:
            self.server.responder = None
            token.cancel()   # the request was sent; its headers never come
            return Reply(chunks=[oa_text("never")], delay_before_headers=30)

        self.server.responder = respond
        return {"cancel_token": token}, "cancelled", RunCancelled, 1

    def cancel_in_tool(self) -> Any:
        self.server.enqueue(oa_tools_reply(("c1", "_tool", '{"mode": "cancel"}'), ("c2", "_tool", '{"mode": "ok"}')))
        return {}, "cancelled", RunCancelled, 1

    def handler_raises(self) -> Any:
        self.server.enqueue(Reply(chunks=[oa_text("a")], repeat_forever=oa_text("x"), delay_between=0.001))

        def on_text(text: str) -> None:
            raise KeyError("handler")

        return {"on_text": on_text}, "cancelled", KeyError, 1

    SCENARIOS = ("text", "tool", "retry", "cut", "http_error", "bad_utf8", "idle", "cancel_mid_stream",
                 "cancel_before_headers", "cancel_in_tool", "handler_raises")


def run_one(soak: Soak, name: str) -> Any:
    """Run one scenario; a description of what went wrong, or None."""
    requests_before = len(soak.server.requests)
    kwargs, expected_kind, expected_exc, expected_requests = getattr(soak, name)()
    kinds: List[str] = []
    stream = soak.agent.run_stream("go", on_event=lambda e: kinds.append(e.kind), **kwargs)
    error = None
    try:
        stream.result(timeout=15)
    except Exception as exc:  # noqa: BLE001 - compared with the expectation
        error = exc
    assert not isinstance(error, TimeoutError) or isinstance(error, StreamTimeout), f"{name}: run hung"
    terminal = [k for k in kinds if k in TERMINAL]
    problem = None
    if expected_kind != "cancelled" or expected_exc is not KeyError:
        if terminal != [expected_kind] or kinds[-1] != expected_kind:
            problem = f"terminal events {terminal}, expected [{expected_kind}]"
    elif terminal not in ([], ["cancelled"]):   # the handler failed: later events are not dispatched
        problem = f"terminal events {terminal} after a handler failure"
    if (error is None) != (expected_exc is None) or (expected_exc and not isinstance(error, expected_exc)):
        problem = f"{problem or ''} raised {error!r}, expected {expected_exc}"
    if not stream.wait(5):
        problem = "worker still running"
    elif getattr(stream._shared.terminal, "kind", None) != expected_kind:   # what the worker ended with
        problem = f"{problem or ''} the worker ended with {stream._shared.terminal!r}"
    sent = len(soak.server.requests) - requests_before
    if sent != expected_requests:
        problem = f"{problem or ''} {sent} requests, expected {expected_requests}"
    return problem


def session(names: List[str], rng: random.Random) -> Tuple[Counter, List[str], List[str]]:
    """Run ``names`` in order against a fresh server and agent, then tear both down."""
    outcomes: Counter = Counter()
    problems: List[str] = []
    with Server() as server:
        soak = Soak(server, rng)
        try:
            for i, name in enumerate(names):
                problem = run_one(soak, name)
                outcomes[name] += 1
                if problem:
                    problems.append(f"run {i} ({name}): {problem}")
        finally:
            soak.close()
    return outcomes, problems, list(server.errors) + list(server.leaked)


def soak_runs(count: int, seed: int) -> None:
    threads0, fds0 = baseline()
    rng = random.Random(seed)
    _, problems, errors = session(list(Soak.SCENARIOS) * 3, rng)   # warm up: imports, tokenizer, caches
    assert not problems and not errors, (problems, errors)
    wait_no_agentstream_threads(5)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    outcomes, problems, errors = session([rng.choice(Soak.SCENARIOS) for _ in range(count)], rng)
    elapsed = time.monotonic() - started
    wait_no_agentstream_threads(5)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"{count} runs in {elapsed:.1f} s; memory {grown / 1024:+.0f} KiB; {dict(outcomes)}")
    assert not problems, problems[:10]
    assert sum(outcomes.values()) == count and set(outcomes) == set(Soak.SCENARIOS), outcomes
    assert not errors, errors[:5]
    assert_back_to(threads0, fds0)
    assert grown < 256 * 1024, f"memory grew by {grown / 1024:.0f} KiB over {count} runs"


def test_soak_short():
    """The CI version: 150 runs."""
    soak_runs(150, seed=1234)


@pytest.mark.soak
@pytest.mark.timeout(300)
def test_soak_1000_runs():
    """``make soak``: 1,000 runs (bounded: well under 2 minutes)."""
    soak_runs(1000, seed=20240611)
