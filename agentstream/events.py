"""The events of a run, in the order a run emits them.

Each event is an immutable dataclass with a class-level ``kind`` string and
``to_dict()`` (JSON-safe, including ``"kind"``). A run emits::

    RunStart
    per step: RequestStart, ContextInfo, [ContextCompressed], [Retrying...],
              deltas (TextDelta / ThinkingDelta / ToolCallStart / ToolCallDelta)
              in arrival order, ResponseComplete,
              ToolCallComplete for each call, ToolExecuted for each call
    OutputReady, RunComplete      -- or exactly one Error / Cancelled instead

Imports only leaf modules (messages, usage).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Dict, List, Optional

from pydantic_core import to_jsonable_python

from .messages import messages_to_python
from .usage import Usage

__all__ = [
    "Cancelled", "ContextCompressed", "ContextInfo", "Error", "Event", "OutputReady",
    "RequestStart", "ResponseComplete", "Retrying", "RunComplete", "RunStart",
    "TERMINAL_EVENTS", "TextDelta", "ThinkingDelta", "ToolCallComplete", "ToolCallDelta",
    "ToolCallStart", "ToolExecuted",
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Usage):
        return value.to_dict()
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    return to_jsonable_python(value, fallback=repr)


@dataclass(frozen=True)
class Event:
    """Base of all events."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-safe dict of the event, with its ``kind``."""
        data: Dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = messages_to_python(value) if f.name == "messages" else _jsonable(value)
        return data


@dataclass(frozen=True)
class RunStart(Event):
    """The run started (the worker thread is running)."""

    kind: ClassVar[str] = "run_start"
    run_id: str


@dataclass(frozen=True)
class ContextInfo(Event):
    """Size of the request about to be sent.

    ``method`` says how tokens were counted (``"tiktoken"`` or ``"approx"``);
    ``last_prompt_tokens`` is the prompt size the provider reported for the
    previous request of this run (None before the first), to compare.
    """

    kind: ClassVar[str] = "context_info"
    estimated_tokens: int
    request_bytes: int
    context_limit: Optional[int] = None
    method: str = "approx"
    last_prompt_tokens: Optional[int] = None
    message_count: int = 0


@dataclass(frozen=True)
class ContextCompressed(Event):
    """The history was compressed before a request."""

    kind: ClassVar[str] = "context_compressed"
    original_tokens: int
    compressed_tokens: int
    strategy: str
    messages_before: int
    messages_after: int


@dataclass(frozen=True)
class RequestStart(Event):
    """A model request is about to be sent (``step`` is 1-based)."""

    kind: ClassVar[str] = "request_start"
    step: int


@dataclass(frozen=True)
class Retrying(Event):
    """A request failed and will be retried after ``delay`` seconds.

    ``reset=False``: it failed before any of its output was emitted. ``reset=True`` (only
    with ``max_retries_after_output``): it was cut after output, and the whole response
    starts again -- drop what this response showed so far (``stream.text`` already has).
    """

    kind: ClassVar[str] = "retrying"
    attempt: int
    delay: float
    error: Any = None
    reset: bool = False


@dataclass(frozen=True)
class TextDelta(Event):
    """A piece of answer text."""

    kind: ClassVar[str] = "text_delta"
    text: str


@dataclass(frozen=True)
class ThinkingDelta(Event):
    """A piece of the model's visible reasoning."""

    kind: ClassVar[str] = "thinking_delta"
    text: str


@dataclass(frozen=True)
class ToolCallStart(Event):
    """The model started a tool call."""

    kind: ClassVar[str] = "tool_call_start"
    tool_name: str
    tool_call_id: str


@dataclass(frozen=True)
class ToolCallDelta(Event):
    """A fragment of a tool call's JSON arguments."""

    kind: ClassVar[str] = "tool_call_delta"
    delta: str
    tool_call_id: str


@dataclass(frozen=True)
class ResponseComplete(Event):
    """A model response ended; ``usage`` is that response's."""

    kind: ClassVar[str] = "response_complete"
    step: int
    finish_reason: Optional[str]
    usage: Usage


@dataclass(frozen=True)
class ToolCallComplete(Event):
    """A tool call's arguments are complete (the tool has not run yet). ``raw_args``: the
    arguments as the model sent them when they were not a JSON object (``args`` is then ``{}``
    and the model is asked to retry), else None."""

    kind: ClassVar[str] = "tool_call_complete"
    tool_name: str
    tool_call_id: str
    args: Dict[str, Any]
    raw_args: Optional[str] = None


@dataclass(frozen=True)
class ToolExecuted(Event):
    """A tool ran (or failed, or was refused); ``result`` is what the model gets."""

    kind: ClassVar[str] = "tool_executed"
    tool_name: str
    tool_call_id: str
    success: bool
    error: Optional[str]
    result: Any


@dataclass(frozen=True)
class OutputReady(Event):
    """The final output (str, or an ``output_type`` instance)."""

    kind: ClassVar[str] = "output_ready"
    output: Any


@dataclass(frozen=True)
class RunComplete(Event):
    """The run finished successfully (terminal)."""

    kind: ClassVar[str] = "run_complete"
    run_id: str
    usage: Usage


@dataclass(frozen=True)
class Error(Event):
    """The run failed (terminal); ``error`` is the exception ``result()`` raises."""

    kind: ClassVar[str] = "error"
    message: str
    error: BaseException


@dataclass(frozen=True)
class Cancelled(Event):
    """The run was cancelled (terminal), with everything it had.

    ``messages`` is safe to reuse as ``message_history``: partial text is
    kept as a response and every tool call that did not run is answered
    with a synthetic "cancelled" tool result.
    """

    kind: ClassVar[str] = "cancelled"
    partial_text: str
    partial_thinking: str
    pending_tools: List[str]
    usage: Usage
    messages: List[Any] = field(default_factory=list)


TERMINAL_EVENTS = (RunComplete, Error, Cancelled)
