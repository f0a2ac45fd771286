"""FunctionModel: a model driven by a local function (tests, demos, offline use).

The function gets the messages and an ``AgentInfo`` and returns (or yields):

* ``str`` — text (each yielded string is one delta),
* ``ToolCallPart`` — a whole tool call,
* ``ThinkingPart`` — thinking,
* ``Usage`` — the response's usage (else it is estimated, and flagged ``estimated``),
* any neutral item (``TextChunk``, ``ToolCallChunk``, ``FinishReport``, ...),
* or a whole ``ModelResponse``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional

from ..messages import ModelResponse, TextPart, ThinkingPart, ToolCallPart, messages_to_json
from ..settings import ModelSettings
from ..usage import Usage
from ._base import (FinishReport, Model, ModelRequestParameters, StreamContext, StreamItem, TextChunk,
                    StreamReset, ThinkingChunk, ToolCallChunk, ToolDefinition, UsageReport)

__all__ = ["AgentInfo", "FunctionModel"]

_ITEM_TYPES = (TextChunk, ThinkingChunk, ToolCallChunk, UsageReport, FinishReport, StreamReset)


@dataclass
class AgentInfo:
    """What a FunctionModel's function learns about the request."""

    tools: List[ToolDefinition]
    output_tool: Optional[ToolDefinition]
    allow_text_output: bool
    settings: ModelSettings
    cancel: Any
    model_name: str


def estimate_tokens(data: Any) -> int:
    """A rough token count (4 bytes a token) for offline models."""
    if isinstance(data, str):
        return math.ceil(len(data.encode("utf-8")) / 4)
    return math.ceil(len(data) / 4)


class FunctionModel(Model):
    """A model whose responses come from ``function(messages, info)``."""

    system = "function"

    def __init__(self, function: Callable[[List[Any], AgentInfo], Any], *, model_name: Optional[str] = None,
                 context_window: Optional[int] = None) -> None:
        if not callable(function):
            from ..exceptions import UserError

            raise UserError("FunctionModel needs a callable")
        self.function = function
        self._name = model_name or f"function:{getattr(function, '__name__', 'fn')}"
        self.context_window = context_window

    @property
    def model_name(self) -> str:
        return self._name

    def stream(self, messages: List[Any], settings: ModelSettings, params: ModelRequestParameters,
               ctx: StreamContext) -> Iterator[StreamItem]:
        info = AgentInfo(params.tools, params.output_tool, params.allow_text_output, settings, ctx.cancel,
                         self._name)
        produced = self.function(list(messages), info)
        if isinstance(produced, (str, ModelResponse)) or isinstance(produced, _ITEM_TYPES) \
                or isinstance(produced, (ToolCallPart, ThinkingPart, Usage)):
            produced = [produced]
        usage: Optional[Usage] = None
        finished = False
        out_chars = 0
        calls = 0
        for value in produced or ():
            if ctx.cancel.is_set():
                return
            for item in _items(value, calls):
                if isinstance(item, ToolCallChunk):
                    calls += 1
                    out_chars += len(json.dumps(item.args)) if isinstance(item.args, dict) else len(item.args or "")
                elif isinstance(item, (TextChunk, ThinkingChunk)):
                    out_chars += len(item.text)
                elif isinstance(item, UsageReport):
                    usage = item.usage
                    continue
                elif isinstance(item, FinishReport):
                    finished = True
                elif isinstance(item, StreamReset):   # what came before is void
                    usage, finished, out_chars, calls = None, False, 0, 0
                yield item
        if ctx.cancel.is_set():
            return
        if not finished:
            yield FinishReport("tool_calls" if calls else "stop")
        if usage is None:
            usage = Usage(input_tokens=estimate_tokens(messages_to_json(messages)),
                          output_tokens=math.ceil(out_chars / 4), estimated=True)
        yield UsageReport(usage)


def _items(value: Any, calls: int) -> Iterator[StreamItem]:
    if isinstance(value, str):
        yield TextChunk(value)
    elif isinstance(value, ToolCallPart):
        yield ToolCallChunk(("call", calls), value.tool_name, value.tool_call_id or None, dict(value.args))
    elif isinstance(value, ThinkingPart):
        yield ThinkingChunk(value.content, signature=value.signature, redacted_data=value.redacted_data)
    elif isinstance(value, Usage):
        yield UsageReport(value)
    elif isinstance(value, ModelResponse):
        for i, part in enumerate(value.parts):
            if isinstance(part, TextPart):
                yield TextChunk(part.content, part_id=("text", i))
            else:
                yield from _items(part, calls + i)
        if value.finish_reason:
            yield FinishReport(value.finish_reason)
        if value.usage.total_tokens:
            yield UsageReport(value.usage)
    elif isinstance(value, _ITEM_TYPES):
        yield value
    else:
        from ..exceptions import UserError

        raise UserError(f"FunctionModel function produced {type(value).__name__}; expected str, "
                        "ToolCallPart, ThinkingPart, Usage, ModelResponse or a stream item")
