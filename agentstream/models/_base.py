"""The Model interface, and the neutral stream items every model yields.

A model translates one request into a stream of small neutral items
(``TextChunk``, ``ThinkingChunk``, ``ToolCallChunk``, ``UsageReport``,
``FinishReport``, ``ResponseInfo``). ``_accumulate.ResponseBuilder`` alone
turns them into public events and the final ``ModelResponse``, so every
provider behaves the same. Models know nothing of threads or queues; they
get a ``StreamContext`` with the cancel token and a retry callback.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from ..settings import ModelSettings
from ..usage import Usage

__all__ = [
    "FinishReport", "Model", "ModelRequestParameters", "ResponseInfo", "StreamContext",
    "StreamItem", "StreamReset", "TextChunk", "ThinkingChunk", "ToolCallChunk", "ToolDefinition", "UsageReport",
]


@dataclass(frozen=True)
class ToolDefinition:
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters_json_schema: Dict[str, Any]
    is_output: bool = False


@dataclass
class ModelRequestParameters:
    """Everything of one request besides the messages."""

    tools: List[ToolDefinition] = field(default_factory=list)
    output_tool: Optional[ToolDefinition] = None
    allow_text_output: bool = True

    @property
    def all_tools(self) -> List[ToolDefinition]:
        return self.tools + ([self.output_tool] if self.output_tool else [])

    def tool_choice(self, settings: ModelSettings, forced: Any = "required") -> Any:
        """``settings.tool_choice``, else ``forced`` (the provider's word for "call a tool")
        when the answer must come from a tool (no text output allowed), else None."""
        if settings.tool_choice is None and not self.allow_text_output:
            return forced
        return settings.tool_choice


@dataclass
class StreamContext:
    """What a model gets from the run besides the request.

    ``cancel``: the run's ``CancelToken`` (``add_callback`` to abort I/O).
    ``on_retry(attempt, delay, error)``: call before sleeping for a retry.
    ``output_started()``: True once any item of this response reached the
    user; from then on a failure must not be retried.
    """

    cancel: Any
    on_retry: Callable[[int, float, BaseException], None] = lambda attempt, delay, error: None
    output_started: Callable[[], bool] = lambda: False


# --- neutral stream items ----------------------------------------------------

@dataclass(frozen=True)
class TextChunk:
    text: str
    part_id: Any = "text"
    provider_id: Optional[str] = None   # the provider's item id (kept on the part)
    signature: Optional[str] = None     # opaque, sent back on the part (Gemini's thoughtSignature)


@dataclass(frozen=True)
class ThinkingChunk:
    text: str = ""
    part_id: Any = "thinking"
    signature: Optional[str] = None
    redacted_data: Optional[str] = None
    provider_id: Optional[str] = None
    details: Optional[Dict[str, Any]] = None   # kept on the part as provider_details (merged, first wins)


@dataclass(frozen=True)
class ToolCallChunk:
    """Part of a tool call. ``part_id`` keys the call (index, item id, ...);
    ``tool_name``/``tool_call_id`` are set from the first non-empty value;
    ``args`` is a JSON fragment to append, or a whole dict; ``provider_id`` the
    provider's item id when it is not the call id (kept on the part)."""

    part_id: Any
    tool_name: Optional[str] = None
    tool_call_id: Optional[str] = None
    args: Union[str, Dict[str, Any], None] = None
    provider_id: Optional[str] = None
    signature: Optional[str] = None     # opaque, sent back on the call (Gemini's thoughtSignature)


@dataclass(frozen=True)
class UsageReport:
    """The provider's usage so far for this response (the last one wins)."""

    usage: Usage


@dataclass(frozen=True)
class FinishReport:
    """Why the response ended (normalised, or the raw value when unknown)."""

    reason: Optional[str]


@dataclass(frozen=True)
class ResponseInfo:
    model_name: Optional[str] = None
    response_id: Optional[str] = None


@dataclass(frozen=True)
class StreamReset:
    """The response was cut after output and is sent again (``max_retries_after_output``):
    every item yielded before this one is void. Always yielded alone, never in a ``Batch``."""

    attempt: int
    delay: float
    error: Any = None


StreamItem = Union[TextChunk, ThinkingChunk, ToolCallChunk, UsageReport, FinishReport, ResponseInfo, StreamReset]


class Model(ABC):
    """A model: turns messages into a stream of neutral items.

    Subclasses implement ``stream``. It must stop promptly when
    ``ctx.cancel`` is set (checking it between items is enough for offline
    models; HTTP models also abort the open response through a callback).
    """

    #: provider name, e.g. "openai"
    system: str = "unknown"
    #: context window in tokens, or None when unknown
    context_window: Optional[int] = None

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model's name (without the provider prefix)."""

    @abstractmethod
    def stream(self, messages: List[Any], settings: ModelSettings,
               params: ModelRequestParameters, ctx: StreamContext) -> Iterator[StreamItem]:
        """Send one request and yield its items as they arrive.

        May yield a ``Batch`` (a list) of items instead of one item: all the
        items decoded from one network read, handed to the consumer at once.
        """

    def close(self) -> None:
        """Release resources (HTTP sessions this model created)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r})"
