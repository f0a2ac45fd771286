"""OpenAI Responses API (``POST {base_url}/responses``, streamed), and the servers that speak it
(LM Studio, vLLM, Ollama, OpenRouter, ... through ``base_url``).

``OpenAIResponsesModel`` builds the request; ``_responses_stream.ResponsesTranslator`` reads
the response; ``HTTPModel`` does the HTTP (its ``error_from`` reads OpenAI's error bodies).

Requests are stateless: ``store: false`` and ``include: ["reasoning.encrypted_content"]``, so
the whole history travels each time and reasoning models get their reasoning back:

* a ``ThinkingPart`` from this API (``provider_id`` = the reasoning item id) goes back as a
  ``reasoning`` item with its ``encrypted_content`` (kept in ``signature``) and summary;
  reasoning without ``encrypted_content`` (the raw ``reasoning_text`` of open servers, or a
  part cut short by a cancel) is sent back as ``content`` only with ``send_reasoning_text``;
* a reasoning item is sent only when an item of the same response follows it, and the
  ``msg_``/``fc_`` ids of the items after a sent reasoning item go with them (the API pairs
  them by id); without reasoning, no item ids are sent;
* a tool result is a ``function_call_output`` under the call's ``call_id``.

Usage::

    model = OpenAIResponsesModel("gpt-5-mini")                                  # OPENAI_API_KEY
    model = OpenAIResponsesModel("openai/gpt-oss-20b", base_url="http://localhost:1234/v1")
    agent = Agent("openai-responses:gpt-5-mini", model_settings={"thinking_budget": 4096})
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Union
from urllib.parse import urlsplit

from .. import _http
from ..exceptions import UserError
from ..messages import (own_provider_data, ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart, ThinkingPart,
                        ToolCallPart, ToolReturnPart, UserPromptPart)
from ..settings import ModelSettings, Timeout
from ._base import ModelRequestParameters, ToolDefinition
from ._effort import reasoning_effort
from ._http_model import HTTPModel, HTTPRequest
from ._registry import PROVIDERS, env_api_key
from ._responses_stream import ResponsesTranslator

__all__ = ["OpenAIResponsesModel", "reasoning_effort", "responses_input", "responses_tool"]

log = logging.getLogger("agentstream")

_dumps_unicode = json.JSONEncoder(ensure_ascii=False).encode


def responses_tool(tool: ToolDefinition) -> Dict[str, Any]:
    """A function tool. ``strict`` is off: our schemas need not meet strict mode's rules
    (the API's default would reject them)."""
    return {"type": "function", "name": tool.name, "description": tool.description or "",
            "parameters": tool.parameters_json_schema or {"type": "object", "properties": {}}, "strict": False}


def _error_text(part: ToolReturnPart) -> str:
    text = part.content_text()
    return text if text.lower().startswith("error") else f"Error: {text}"


def _request_items(message: ModelRequest, instructions: List[str]) -> List[Dict[str, Any]]:
    outputs: List[Dict[str, Any]] = []   # tool results first: they answer the calls just before
    other: List[Dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, SystemPromptPart):
            if part.content:
                instructions.append(part.content)
        elif isinstance(part, UserPromptPart):
            other.append({"role": "user", "content": part.content})
        elif isinstance(part, ToolReturnPart):
            output = _error_text(part) if part.is_error else part.content_text()
            outputs.append({"type": "function_call_output", "call_id": part.tool_call_id, "output": output})
        elif isinstance(part, RetryPromptPart):
            if part.tool_call_id:
                outputs.append({"type": "function_call_output", "call_id": part.tool_call_id,
                                "output": part.model_text()})
            else:
                other.append({"role": "user", "content": part.model_text()})
    return outputs + other


def _reasoning_item(group: List[ThinkingPart], send_text: bool) -> Optional[Dict[str, Any]]:
    """One reasoning item from the consecutive parts that share its id, or None if it cannot
    be sent (no encrypted content, and raw text is not sent)."""
    signature = next((p.signature for p in group if p.signature), None)
    texts = [p.content for p in group if p.content]
    if signature:
        return {"type": "reasoning", "id": group[0].provider_id, "encrypted_content": signature,
                "summary": [{"type": "summary_text", "text": t} for t in texts]}
    if send_text and texts:
        return {"type": "reasoning", "id": group[0].provider_id, "summary": [],
                "content": [{"type": "reasoning_text", "text": t} for t in texts]}
    return None


def _same_item(part: Any, first: ThinkingPart) -> bool:
    return isinstance(part, ThinkingPart) and part.provider_id == first.provider_id


def _response_items(message: ModelResponse, send_text: bool) -> List[Dict[str, Any]]:
    parts = list(message.parts)
    out: List[Dict[str, Any]] = []
    paired = False   # a reasoning item was sent: the items after it go with their ids
    own = own_provider_data(message, "openai")   # reasoning items and ids only from this API's kind
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(part, ThinkingPart):
            group = [part]   # the parts (summaries) of one reasoning item
            while part.provider_id and i + len(group) < len(parts) and _same_item(parts[i + len(group)], part):
                group.append(parts[i + len(group)])
            i += len(group)
            follows = i < len(parts) and not isinstance(parts[i], ThinkingPart)
            item = _reasoning_item(group, send_text) if own and part.provider_id and follows else None
            if item is not None:   # other providers' thinking, or reasoning no item follows: left out
                out.append(item)
                paired = True
            continue
        i += 1
        if isinstance(part, TextPart) and part.content:
            if paired and part.provider_id:
                out.append({"type": "message", "role": "assistant", "id": part.provider_id, "status": "completed",
                            "content": [{"type": "output_text", "text": part.content, "annotations": []}]})
            else:
                out.append({"role": "assistant", "content": part.content})
        elif isinstance(part, ToolCallPart):
            call: Dict[str, Any] = {"type": "function_call", "call_id": part.tool_call_id, "name": part.tool_name,
                                    "arguments": part.raw_args if part.raw_args is not None
                                    else _dumps_unicode(part.args)}
            if paired and part.provider_id:
                call["id"] = part.provider_id
            out.append(call)
    return out


def responses_input(messages: List[Any], send_reasoning_text: bool = False) -> Dict[str, Any]:
    """``{"instructions": str|None, "input": [...]}`` for a history (system prompts become
    ``instructions``)."""
    instructions: List[str] = []
    items: List[Dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            items.extend(_request_items(message, instructions))
        elif isinstance(message, ModelResponse):
            items.extend(_response_items(message, send_reasoning_text))
    return {"instructions": "\n\n".join(instructions) or None, "input": items}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        if choice == "any":
            return "required"
        return {"type": "function", "name": choice}
    return choice


class OpenAIResponsesModel(HTTPModel):
    """A model over the Responses API (``POST {base_url}/responses``, streamed).

    Args:
        name: e.g. ``"gpt-5-mini"``.
        base_url: API root with the version (default ``https://api.openai.com/v1``, or
            ``OPENAI_BASE_URL``); LM Studio, vLLM, Ollama: their ``.../v1``.
        api_key: default ``OPENAI_API_KEY``; required only for api.openai.com.
        send_reasoning_text: send reasoning without ``encrypted_content`` back as raw
            ``reasoning_text`` (for open servers that want their chain of thought back).
        Other arguments as ``OpenAIChatModel``.

    Raises:
        UserError: OpenAI's own API and no key given or set.
    """

    def __init__(self, name: str, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 session: Any = None, timeout: Union[Timeout, float, None] = None, max_retries: int = 2,
                 context_window: Optional[int] = None, *, send_reasoning_text: bool = False,
                 headers: Optional[Dict[str, str]] = None, read_size: int = 65536,
                 max_retries_after_output: int = 0) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError("OpenAIResponsesModel needs a model name, e.g. OpenAIResponsesModel('gpt-5-mini')")
        spec = PROVIDERS["openai-responses"]
        root = (spec.resolve_base_url(base_url) or "").rstrip("/")
        if api_key is None:
            api_key = env_api_key(spec.key_env)
        if not api_key and (urlsplit(root).hostname or "").endswith("api.openai.com"):
            raise UserError(f"no API key for openai-responses: set {spec.key_env} or pass api_key=")
        self._root = root
        self.provider = "openai-responses"
        self.api_key_env = spec.key_env
        self.send_reasoning_text = bool(send_reasoning_text)
        super().__init__(name, base_url=root, api_key=api_key, session=session, timeout=Timeout.coerce(timeout),
                         max_retries=max_retries, context_window=context_window, headers=headers,
                         read_size=read_size,
                         max_retries_after_output=max_retries_after_output)
        self.system = "openai"

    def __repr__(self) -> str:
        return f"OpenAIResponsesModel({self.model_name!r}, base_url={_http.safe_url(self._root)!r})"

    def build_request(self, messages: List[Any], settings: ModelSettings,
                      params: ModelRequestParameters) -> HTTPRequest:
        converted = responses_input(messages, self.send_reasoning_text)
        body: Dict[str, Any] = {"model": self.model_name, "input": converted["input"], "stream": True,
                                "store": False, "include": ["reasoning.encrypted_content"]}
        if converted["instructions"]:
            body["instructions"] = converted["instructions"]
        tools = params.all_tools
        if tools:
            body["tools"] = [responses_tool(t) for t in tools]
            choice = params.tool_choice(settings)
            if choice is not None:
                body["tool_choice"] = _tool_choice(choice)
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        if settings.max_tokens is not None:
            body["max_output_tokens"] = settings.max_tokens
        for key in ("temperature", "top_p"):
            value = getattr(settings, key)
            if value is not None:
                body[key] = value
        if settings.thinking_budget is not None:   # 0: the least reasoning the API allows ("minimal")
            body["reasoning"] = {"effort": reasoning_effort(settings.thinking_budget), "summary": "auto"}
        if settings.stop or settings.seed is not None:
            log.debug("the Responses API takes no stop sequences or seed: not sent")
        if settings.extra_body:
            body.update(settings.extra_body)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return HTTPRequest(url=f"{self._root}/responses", json=body, headers=headers)

    def new_translator(self) -> ResponsesTranslator:
        return ResponsesTranslator()
