"""Adapters with one shape for agentstream, the openai SDK and pydantic-ai.

Each adapter has ``stream(base_url, on_text) -> text`` (one streamed
chat completion, ``on_text`` per delta on the caller's thread),
``cancel_trial(base_url, after, fire)`` (see ``bench.rows_io.cancel``) and,
where the library has tools, ``tool_loop(base_url, steps) -> steps``.
Clients and agents are built once per base URL (connection reuse), outside
the timed part after the first (warm-up) call.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .payload import MODEL

OnText = Callable[[str], Any]


def _now() -> int:
    return time.perf_counter_ns()


def _tool_result(step: int) -> str:
    return f"step {step} done"


class AgentstreamImpl:
    name = "agentstream"

    def __init__(self) -> None:
        from agentstream import Agent  # noqa: F401  (import errors surface here)

        self._agents: Dict[Any, Any] = {}

    def agent(self, base_url: str, tools: bool = False) -> Any:
        key = (base_url, tools)
        if key not in self._agents:
            from agentstream import Agent, UsageLimits
            from agentstream.models.openai_chat import OpenAIChatModel

            model = OpenAIChatModel(MODEL, base_url=base_url, api_key="bench-key", max_retries=0)
            self._agents[key] = Agent(model, tools=[step_tool] if tools else (),
                                      usage_limits=UsageLimits(request_limit=10_000))
        return self._agents[key]

    def stream(self, base_url: str, on_text: OnText) -> str:
        return self.agent(base_url).run("Go.", on_text=on_text).output

    def cancel_trial(self, base_url: str, on_text: OnText, fire: Callable[[Callable[[], None]], None]) -> int:
        """Start a run; ``fire(cancel)`` is called (in another thread) to cancel it;
        returns perf_counter_ns when the consumer got the Cancelled event."""
        from agentstream.exceptions import RunCancelled

        seen: List[int] = []
        stream = self.agent(base_url).run_stream("Go.", on_text=on_text,
                                                 on_cancel=lambda event: seen.append(_now()))
        fire(stream.cancel)
        try:
            stream.result(timeout=30)
        except RunCancelled:
            pass
        else:
            raise AssertionError("agentstream run was not cancelled")
        return seen[0]

    def tool_loop(self, base_url: str, steps: int) -> int:
        result = self.agent(base_url, tools=True).run("Go.")
        if result.output != " done":
            raise AssertionError(f"unexpected final output {result.output!r}")
        return sum(1 for e in result.messages if type(e).__name__ == "ModelResponse") - 1

    def close(self) -> None:
        for agent in self._agents.values():
            agent.model.close()


def step_tool(step: int) -> str:
    """One step of the loop.

    Args:
        step: the step number.
    """
    return _tool_result(step)


class OpenAISDKImpl:
    name = "openai SDK"
    CANCEL_READ_TIMEOUT = 2.0

    def __init__(self) -> None:
        import openai

        self._openai = openai
        self._clients: Dict[str, Any] = {}
        self._current: Any = None

    def client(self, base_url: str) -> Any:
        if base_url not in self._clients:
            self._clients[base_url] = self._openai.OpenAI(base_url=base_url, api_key="bench-key",
                                                          max_retries=0, timeout=30.0)
        return self._clients[base_url]

    def stream(self, base_url: str, on_text: OnText) -> str:
        parts: List[str] = []
        stream = self.client(base_url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Go."}], stream=True)
        self._current = stream
        for chunk in stream:
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    parts.append(text)
                    on_text(text)
        return "".join(parts)

    def cancel_trial(self, base_url: str, on_text: OnText, fire: Callable[[Callable[[], None]], None]) -> int:
        """The SDK's way: ``stream.close()`` from the other thread. It does not wake the
        blocked read, which ends at the read timeout (``CANCEL_READ_TIMEOUT`` here)."""
        client = self.client(base_url).with_options(timeout=self.CANCEL_READ_TIMEOUT)
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Go."}], stream=True)
        fire(stream.close)
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    on_text(chunk.choices[0].delta.content)
        except Exception:  # the closed response raises in the reading thread
            pass
        return _now()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class PydanticAIImpl:
    name = "pydantic-ai"

    def __init__(self) -> None:
        import pydantic_ai
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        self._pa = pydantic_ai
        self._model_cls, self._provider_cls = OpenAIChatModel, OpenAIProvider
        self._agents: Dict[Any, Any] = {}
        self.version = getattr(pydantic_ai, "__version__", "?")

    def agent(self, base_url: str, tools: bool = False) -> Any:
        key = (base_url, tools)
        if key not in self._agents:
            model = self._model_cls(MODEL, provider=self._provider_cls(base_url=base_url, api_key="bench-key"))
            self._agents[key] = self._pa.Agent(model, tools=[step_tool] if tools else [])
        return self._agents[key]

    def stream(self, base_url: str, on_text: OnText) -> str:
        parts: List[str] = []
        with self.agent(base_url).run_stream_sync("Go.") as result:
            for text in result.stream_text(delta=True, debounce_by=None):
                parts.append(text)
                on_text(text)
        return "".join(parts)

    def cancel_trial(self, base_url: str, on_text: OnText, fire: Callable[[Callable[[], None]], None]) -> int:
        token = self._pa.CancellationToken()
        fire(token.cancel)
        try:
            with self.agent(base_url).run_stream_sync("Go.", cancellation_token=token) as result:
                for text in result.stream_text(delta=True, debounce_by=None):
                    on_text(text)
        except self._pa.RunCancelled:
            return _now()
        raise AssertionError("pydantic-ai run was not cancelled")

    def tool_loop(self, base_url: str, steps: int) -> int:
        limits = self._pa.UsageLimits(request_limit=None)
        with self.agent(base_url, tools=True).run_stream_sync("Go.", usage_limits=limits) as result:
            text = "".join(result.stream_text(delta=True, debounce_by=None))
            messages = result.all_messages()
        if text != " done":
            raise AssertionError(f"unexpected final text {text!r}")
        return sum(1 for m in messages if type(m).__name__ == "ModelResponse") - 1

    def close(self) -> None:
        pass


class FloorImpl:
    """``refs.Floor`` / ``refs.RequestsQueue`` in the adapter shape."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.name = ref.name

    def stream(self, base_url: str, on_text: OnText) -> str:
        return self.ref.stream(base_url, on_text)

    def cancel_trial(self, base_url: str, on_text: OnText, fire: Callable[[Callable[[], None]], None]) -> int:
        fire(self.ref.abort)
        self.ref.stream(base_url, on_text)
        return _now()

    def tool_loop(self, base_url: str, steps: int) -> int:
        return self.ref.tool_loop(base_url, steps)

    def close(self) -> None:
        self.ref.close()


def build_impls(names: Optional[List[str]] = None) -> Dict[str, Any]:
    """name -> adapter, or name -> the reason it cannot run (a str)."""
    from .refs import Floor, RequestsQueue

    makers: Dict[str, Callable[[], Any]] = {
        "agentstream": AgentstreamImpl, "floor": lambda: FloorImpl(Floor()),
        "requests+queue": lambda: FloorImpl(RequestsQueue()), "openai SDK": OpenAISDKImpl,
        "pydantic-ai": PydanticAIImpl}
    out: Dict[str, Any] = {}
    for name, make in makers.items():
        if names is not None and name not in names:
            continue
        try:
            out[name] = make()
        except Exception as exc:  # ImportError and friends: skip the column, say why
            out[name] = f"skipped: {type(exc).__name__}: {exc}"
    return out


def fire_after(tokens_seen: threading.Event, delay: float, stamps: List[int]) -> Callable[[Callable[[], None]], None]:
    """A ``fire`` for ``cancel_trial``: in a new thread, wait for ``tokens_seen``,
    sleep ``delay`` (the reader is then blocked on the silent server), stamp, cancel."""
    def fire(cancel: Callable[[], None]) -> None:
        def run() -> None:
            if tokens_seen.wait(20):
                time.sleep(delay)
                stamps.append(_now())
                cancel()
        threading.Thread(target=run, daemon=True, name="bench-canceller").start()
    return fire
