"""Small shared helpers for the core tests."""
from __future__ import annotations

import threading
from typing import Any, Callable, List

from agentstream import ToolCallPart
from agentstream.models import FunctionModel


def kinds(events: List[Any]) -> List[str]:
    return [e.kind for e in events]


def scripted(*responses: Any) -> FunctionModel:
    """A FunctionModel answering each request with the next scripted response
    (a list of items, a str, or a callable(messages, info))."""
    queue = list(responses)

    def fn(messages: List[Any], info: Any) -> Any:
        if not queue:
            raise AssertionError("model called more often than scripted")
        item = queue.pop(0)
        return item(messages, info) if callable(item) else item

    return FunctionModel(fn, model_name="scripted")


def call(name: str, args: Any = None, call_id: str = "") -> ToolCallPart:
    return ToolCallPart(name, args or {}, call_id or f"id_{name}")


class Gate:
    """A pair of events: the worker signals `reached`, then waits for `release`."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def pass_through(self, cancel: Any = None, timeout: float = 10.0) -> None:
        self.reached.set()
        if cancel is not None:
            # wake either on release or on cancel
            waited = 0.0
            while not self.release.is_set() and not cancel.is_set() and waited < timeout:
                cancel.wait(0.01)
                waited += 0.01
        else:
            self.release.wait(timeout)


def stalled_after(chunks: List[str], gate: Gate) -> Callable[..., Any]:
    """A model function that yields `chunks`, then blocks until cancelled."""

    def fn(messages: List[Any], info: Any) -> Any:
        for c in chunks:
            yield c
        gate.reached.set()
        info.cancel.wait(10)

    return fn
