"""Anthropic Messages API (``POST {base_url}/v1/messages``, streamed).

``AnthropicModel`` builds the request; ``_anthropic_stream.AnthropicTranslator``
reads the response; ``HTTPModel`` does the HTTP (its ``error_from`` already
reads Anthropic's ``{"type": "error", "error": {"type", "message"}}`` bodies).

Usage::

    model = AnthropicModel("claude-sonnet-4-5")          # ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
    agent = Agent(model, model_settings={"thinking_budget": 2048})
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Union

from .. import _http
from ..exceptions import UserError
from ..messages import (own_provider_data, ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart, ThinkingPart,
                        ToolCallPart, ToolReturnPart, UserPromptPart)
from ..settings import ModelSettings, Timeout
from ._anthropic_stream import AnthropicTranslator
from ._base import ModelRequestParameters, ToolDefinition
from ._http_model import HTTPModel, HTTPRequest
from ._registry import PROVIDERS, env_api_key

__all__ = ["ANTHROPIC_VERSION", "AnthropicModel", "anthropic_messages", "DEFAULT_MAX_TOKENS"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
#: the key under which arguments that were not a JSON object are sent back in ``tool_use.input``
RAW_ARGS_KEY = "_raw_arguments"


def anthropic_tool(tool: ToolDefinition) -> Dict[str, Any]:
    return {"name": tool.name, "description": tool.description or "",
            "input_schema": tool.parameters_json_schema or {"type": "object", "properties": {}}}


def _request_blocks(message: ModelRequest) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []   # tool_result blocks must come first in a user message
    other: List[Dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, UserPromptPart) and part.content:
            other.append({"type": "text", "text": part.content})
        elif isinstance(part, ToolReturnPart):
            block: Dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_call_id,
                                     "content": part.content_text()}
            if part.is_error:
                block["is_error"] = True
            results.append(block)
        elif isinstance(part, RetryPromptPart):
            if part.tool_call_id:
                results.append({"type": "tool_result", "tool_use_id": part.tool_call_id,
                                "content": part.model_text(), "is_error": True})
            else:
                other.append({"type": "text", "text": part.model_text()})
    return results + other


def _tool_input(part: ToolCallPart) -> Dict[str, Any]:
    """The call's input; arguments that were not a JSON object go back as the model wrote them,
    under ``RAW_ARGS_KEY`` (``input`` must be an object)."""
    if part.raw_args is not None:
        return {RAW_ARGS_KEY: part.raw_args}
    return dict(part.args)


def _response_blocks(message: ModelResponse) -> List[Dict[str, Any]]:
    thinking: List[Dict[str, Any]] = []   # signed thinking goes back first, verbatim
    other: List[Dict[str, Any]] = []
    own = own_provider_data(message, "anthropic")   # another provider's signatures are refused
    for part in message.parts:
        if isinstance(part, ThinkingPart):
            if part.redacted_data and own:
                thinking.append({"type": "redacted_thinking", "data": part.redacted_data})
            elif part.signature and own:
                thinking.append({"type": "thinking", "thinking": part.content, "signature": part.signature})
            # unsigned thinking (another provider's) cannot be sent back
        elif isinstance(part, TextPart):
            if part.content:
                other.append({"type": "text", "text": part.content})
        elif isinstance(part, ToolCallPart):
            other.append({"type": "tool_use", "id": part.tool_call_id, "name": part.tool_name,
                          "input": _tool_input(part)})
    return thinking + other


def anthropic_messages(messages: List[Any]) -> Dict[str, Any]:
    """``{"system": str|None, "messages": [...]}`` for a history.

    System prompts go to the top-level ``system``; consecutive messages of the
    same role are merged, so roles alternate.
    """
    system: List[str] = []
    out: List[Dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            system.extend(p.content for p in message.parts if isinstance(p, SystemPromptPart) and p.content)
            role, blocks = "user", _request_blocks(message)
        elif isinstance(message, ModelResponse):
            role, blocks = "assistant", _response_blocks(message)
        else:
            continue
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            merged = out[-1]["content"] + blocks
            if role == "user":   # keep tool results ahead of text after merging
                merged = [b for b in merged if b["type"] == "tool_result"] + \
                         [b for b in merged if b["type"] != "tool_result"]
            out[-1]["content"] = merged
        else:
            out.append({"role": role, "content": blocks})
    return {"system": "\n\n".join(system) or None, "messages": out}


def _tool_choice(choice: Any, parallel: Optional[bool]) -> Optional[Dict[str, Any]]:
    if isinstance(choice, str):
        if choice in ("auto", "none", "any"):
            result: Optional[Dict[str, Any]] = {"type": choice}
        elif choice == "required":
            result = {"type": "any"}
        else:
            result = {"type": "tool", "name": choice}
    elif isinstance(choice, Mapping):
        result = dict(choice)
    else:
        result = None
    if parallel is False and (result is None or result.get("type") != "none"):
        result = dict(result or {"type": "auto"})
        result["disable_parallel_tool_use"] = True
    return result


class AnthropicModel(HTTPModel):
    """A Claude model over the Messages API.

    Args:
        name: e.g. ``"claude-sonnet-4-5"``.
        base_url: the API root (``https://api.anthropic.com``; ``ANTHROPIC_BASE_URL``);
            requests go to ``{base_url}/v1/messages``.
        api_key: default ``ANTHROPIC_API_KEY``.
        max_tokens: sent when the settings do not say (the API requires it).
        Other arguments as ``OpenAIChatModel``.

    Raises:
        UserError: no key given and ``ANTHROPIC_API_KEY`` not set.
    """

    def __init__(self, name: str, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 session: Any = None, timeout: Union[Timeout, float, None] = None, max_retries: int = 2,
                 context_window: Optional[int] = None, *, max_tokens: int = DEFAULT_MAX_TOKENS,
                 headers: Optional[Dict[str, str]] = None, read_size: int = 65536,
                 max_retries_after_output: int = 0) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError("AnthropicModel needs a model name, e.g. AnthropicModel('claude-sonnet-4-5')")
        spec = PROVIDERS["anthropic"]
        if api_key is None:
            api_key = env_api_key(spec.key_env)
        if not api_key:
            raise UserError(f"no API key for anthropic: set {spec.key_env} or pass api_key=")
        root = (spec.resolve_base_url(base_url) or "").rstrip("/")
        if root.endswith("/v1"):   # tolerate the versioned form
            root = root[:-3]
        self._root = root
        self.default_max_tokens = max_tokens
        self.provider = "anthropic"
        self.api_key_env = spec.key_env
        super().__init__(name, base_url=root, api_key=api_key, session=session, timeout=Timeout.coerce(timeout),
                         max_retries=max_retries, context_window=context_window, headers=headers,
                         read_size=read_size,
                         max_retries_after_output=max_retries_after_output)
        self.system = "anthropic"

    def __repr__(self) -> str:
        return f"AnthropicModel({self.model_name!r}, base_url={_http.safe_url(self._root)!r})"

    def build_request(self, messages: List[Any], settings: ModelSettings,
                      params: ModelRequestParameters) -> HTTPRequest:
        converted = anthropic_messages(messages)
        budget = settings.thinking_budget
        max_tokens = settings.max_tokens or (self.default_max_tokens + (budget or 0))
        body: Dict[str, Any] = {"model": self.model_name, "max_tokens": max_tokens,
                                "messages": converted["messages"], "stream": True}
        if converted["system"]:
            body["system"] = converted["system"]
        if budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        tools = params.all_tools
        if tools:
            body["tools"] = [anthropic_tool(t) for t in tools]
            choice = params.tool_choice(settings, forced=None if budget else "any")   # not forced with thinking
            tool_choice = _tool_choice(choice, settings.parallel_tool_calls)
            if tool_choice:
                body["tool_choice"] = tool_choice
        if settings.stop:
            body["stop_sequences"] = list(settings.stop)
        for key in ("temperature", "top_p"):
            value = getattr(settings, key)
            if value is not None:
                body[key] = value
        if settings.extra_body:
            body.update(settings.extra_body)
        headers = {"x-api-key": self._api_key or "", "anthropic-version": ANTHROPIC_VERSION,
                   "content-type": "application/json", "accept": "text/event-stream"}
        if settings.extra_headers:
            headers.update(settings.extra_headers)
        return HTTPRequest(url=f"{self._root}/v1/messages", json=body, headers=headers)

    def new_translator(self) -> AnthropicTranslator:
        return AnthropicTranslator()
