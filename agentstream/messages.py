"""Messages as data: what is sent to the model and what comes back.

A conversation is a list of ``ModelRequest`` (parts we send) and
``ModelResponse`` (parts the model produced). Every type is a plain
dataclass with a literal discriminator, so a whole history round-trips
through JSON unchanged::

    data = messages_to_json(result.messages)
    history = messages_from_json(data)

Imports only ``usage`` from the package. OpenAI chat-format histories: ``agentstream.messages_from_openai``
/ ``messages_to_openai`` (in ``_openai_format``, which builds on the OpenAI provider).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Union

from pydantic import Field, TypeAdapter
from typing_extensions import Annotated, Literal

from .usage import Usage

__all__ = [
    "ModelMessage", "ModelRequest", "ModelResponse", "RetryPromptPart",
    "SystemPromptPart", "TextPart", "ThinkingPart", "ToolCallPart",
    "ToolReturnPart", "UserPromptPart", "messages_from_json", "messages_to_json",
    "ModelMessagesTypeAdapter",
]


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- request parts (what we send) -------------------------------------------

@dataclass
class SystemPromptPart:
    """A system prompt (static, or produced by a ``@agent.system_prompt`` function)."""

    content: str
    part_kind: Literal["system-prompt"] = "system-prompt"


@dataclass
class UserPromptPart:
    """What the user asked."""

    content: str
    part_kind: Literal["user-prompt"] = "user-prompt"


@dataclass
class ToolReturnPart:
    """The result of a tool call, sent back to the model.

    ``is_error`` marks a tool that raised (or was unknown, or was cancelled):
    ``content`` then holds the error text.
    """

    tool_name: str
    content: Any
    tool_call_id: str
    is_error: bool = False
    part_kind: Literal["tool-return"] = "tool-return"

    def content_text(self) -> str:
        """The content as the text a provider receives."""
        if isinstance(self.content, str):
            return self.content
        import json

        from pydantic_core import to_jsonable_python

        return json.dumps(to_jsonable_python(self.content, fallback=str), ensure_ascii=False)


@dataclass
class RetryPromptPart:
    """Asks the model to try again: invalid tool arguments, ``ModelRetry``, bad output.

    When ``tool_call_id`` is set it answers that tool call (providers get it
    as a tool result); otherwise it is sent as a user message.
    """

    content: str
    tool_name: Optional[str] = None
    tool_call_id: Optional[str] = None
    part_kind: Literal["retry-prompt"] = "retry-prompt"

    def model_text(self) -> str:
        return f"{self.content}\n\nFix the errors and try again."


RequestPart = Annotated[
    Union[SystemPromptPart, UserPromptPart, ToolReturnPart, RetryPromptPart],
    Field(discriminator="part_kind"),
]


@dataclass
class ModelRequest:
    """One message we send: system/user prompts, tool results, retry prompts."""

    parts: List[RequestPart]
    kind: Literal["request"] = "request"


# --- response parts (what the model produced) -------------------------------

@dataclass
class TextPart:
    """Text the model wrote. ``provider_id``: the provider's id of the item it came in
    (OpenAI Responses ``msg_...``), sent back where the provider pairs items by id."""

    content: str
    part_kind: Literal["text"] = "text"
    provider_id: Optional[str] = None
    #: opaque provider value sent back on this part (Gemini's ``thoughtSignature``)
    signature: Optional[str] = None


@dataclass
class ToolCallPart:
    """A tool call: ``tool_name``, ``args`` (a dict) and ``tool_call_id``.
    ``provider_id``: the provider's item id when it differs from the call id
    (OpenAI Responses ``fc_...``; the result goes back under ``tool_call_id``).
    ``raw_args``: the arguments exactly as the model sent them when they were not a JSON
    object (``args`` is then ``{}``); the history sends them back unchanged."""

    tool_name: str
    args: Dict[str, Any] = field(default_factory=dict)
    tool_call_id: str = ""
    part_kind: Literal["tool-call"] = "tool-call"
    provider_id: Optional[str] = None
    raw_args: Optional[str] = None
    #: opaque provider value sent back on this call (Gemini's ``thoughtSignature``)
    signature: Optional[str] = None


@dataclass
class ThinkingPart:
    """Reasoning the model showed. ``signature`` / ``redacted_data`` are opaque
    provider values that must be sent back unchanged (Anthropic; OpenAI Responses
    keeps its ``encrypted_content`` in ``signature``). ``provider_id``: the id of the
    provider's reasoning item (OpenAI Responses ``rs_...``). ``provider_details``: other opaque
    fields of the provider's reasoning entry, sent back with it (OpenRouter ``reasoning_details``:
    ``type``, ``format``, ``index``; the text, signature, encrypted ``data`` and ``id`` are in
    ``content``, ``signature``, ``redacted_data`` and ``provider_id``)."""

    content: str
    signature: Optional[str] = None
    redacted_data: Optional[str] = None
    part_kind: Literal["thinking"] = "thinking"
    provider_id: Optional[str] = None
    provider_details: Optional[Dict[str, Any]] = None


ResponsePart = Annotated[Union[TextPart, ToolCallPart, ThinkingPart], Field(discriminator="part_kind")]


@dataclass
class ModelResponse:
    """One response of the model.

    ``finish_reason`` is normalised (``stop``, ``length``, ``tool_calls``,
    ``content_filter``, ``cancelled``, ``error``) or the provider's raw value
    when unknown; ``usage`` is what the provider reported for it.
    ``provider_name`` names the kind of model that produced it; signatures, encrypted
    reasoning and item ids go back only to a model of the same kind.
    """

    parts: List[ResponsePart]
    model_name: Optional[str] = None
    #: the ``system`` of the model that produced it ("openai", "anthropic", "google", ...); a
    #: provider sends signatures and item ids back only to its own kind (None: unknown, sent)
    provider_name: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: Usage = field(default_factory=Usage)
    provider_response_id: Optional[str] = None
    timestamp: datetime = field(default_factory=_now)
    kind: Literal["response"] = "response"

    @property
    def text(self) -> str:
        return "".join(p.content for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> List[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]


ModelMessage = Annotated[Union[ModelRequest, ModelResponse], Field(discriminator="kind")]

ModelMessagesTypeAdapter: TypeAdapter = TypeAdapter(List[ModelMessage])
"""(De)serialises a whole history: ``ModelMessagesTypeAdapter.dump_json(messages)``."""


def messages_to_json(messages: List[Any]) -> bytes:
    """Serialise a history to JSON bytes."""
    return ModelMessagesTypeAdapter.dump_json(list(messages))


def messages_from_json(data: Union[str, bytes]) -> List[Any]:
    """Load a history written by ``messages_to_json``."""
    return ModelMessagesTypeAdapter.validate_json(data)


def messages_to_python(messages: List[Any]) -> List[Dict[str, Any]]:
    """A JSON-safe list of dicts for a history."""
    return ModelMessagesTypeAdapter.dump_python(list(messages), mode="json")


def own_provider_data(message: "ModelResponse", system: Optional[str]) -> bool:
    """Whether ``message``'s signatures and provider item ids may be sent to a model whose
    ``system`` is ``system``: only its own kind's (or when the producer is unknown)."""
    return message.provider_name is None or system is None or message.provider_name == system
