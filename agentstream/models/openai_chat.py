"""OpenAI Chat Completions, and the servers that speak it (Ollama, vLLM, Groq, ...).

``OpenAIChatModel`` builds the request (``build_request``) and hands each
response to an ``OpenAIChatTranslator`` (``_openai_stream.py``); the HTTP
work (requests, retries, timeouts, SSE) is ``HTTPModel``'s.

Usage::

    model = OpenAIChatModel("gpt-4o-mini")                        # OPENAI_API_KEY
    model = OpenAIChatModel("llama3.2", provider="ollama")        # http://localhost:11434/v1
    model = OpenAIChatModel("my-model", base_url="http://localhost:9000/v1", provider="custom")

The model's own reasoning goes back where the server needs it: DeepSeek's ``reasoning_content``
on tool-call turns (``send_reasoning``), OpenRouter's ``reasoning_details`` as they came.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Iterator, List, Optional, Union

from .. import _http
from ..exceptions import ModelHTTPError, UserError
from ..messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart, ThinkingPart,
                        ToolCallPart, ToolReturnPart, UserPromptPart, own_provider_data)
from ..settings import ModelSettings, Timeout
from ._base import ModelRequestParameters, StreamContext, StreamItem, ToolDefinition
from ._effort import EFFORTS, reasoning_effort
from ._http_model import HTTPModel, HTTPRequest
from ._openai_stream import OpenAIChatTranslator
from ._registry import PROVIDERS, env_api_key

__all__ = ["OpenAIChatModel", "openai_messages", "openai_tool"]

logger = logging.getLogger("agentstream")

#: ``json.dumps(value, ensure_ascii=False)`` without building an encoder per call
_dumps_unicode = json.JSONEncoder(ensure_ascii=False).encode


def openai_tool(tool: ToolDefinition) -> Dict[str, Any]:
    return {"type": "function", "function": {"name": tool.name, "description": tool.description or "",
                                             "parameters": tool.parameters_json_schema or {"type": "object"}}}


def _error_text(part: ToolReturnPart) -> str:
    text = part.content_text()
    return text if text.lower().startswith("error") else f"Error: {text}"


def _request_messages(message: ModelRequest) -> List[Dict[str, Any]]:
    tool_msgs: List[Dict[str, Any]] = []     # tool results must follow the assistant message at once
    other: List[Dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, SystemPromptPart):
            other.append({"role": "system", "content": part.content})
        elif isinstance(part, UserPromptPart):
            other.append({"role": "user", "content": part.content})
        elif isinstance(part, ToolReturnPart):
            content = _error_text(part) if part.is_error else part.content_text()
            tool_msgs.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": content})
        elif isinstance(part, RetryPromptPart):
            if part.tool_call_id:
                tool_msgs.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": part.model_text()})
            else:
                other.append({"role": "user", "content": part.model_text()})
    return tool_msgs + other


def _arguments(part: ToolCallPart) -> str:
    """The arguments as sent: the model's own text when it was not a JSON object."""
    return part.raw_args if part.raw_args is not None else _dumps_unicode(part.args)


def _reasoning_detail(part: ThinkingPart) -> Dict[str, Any]:
    """The ``reasoning_details`` entry a part was built from (``_openai_stream._detail_chunk``)."""
    entry = dict(part.provider_details or {})
    kind = entry.get("type")
    if kind == "reasoning.summary":
        entry["summary"] = part.content
    elif kind != "reasoning.encrypted" or part.content:
        entry["text"] = part.content
    if part.signature is not None:
        entry["signature"] = part.signature
    if part.redacted_data is not None:
        entry["data"] = part.redacted_data
    if part.provider_id is not None:
        entry["id"] = part.provider_id
    return entry


def _response_message(message: ModelResponse, system: Optional[str] = None, send_reasoning: bool = False,
                      send_details: bool = False) -> Optional[Dict[str, Any]]:
    text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
    calls = [{"id": p.tool_call_id, "type": "function",
              "function": {"name": p.tool_name, "arguments": _arguments(p)}}
             for p in message.parts if isinstance(p, ToolCallPart)]
    if not text and not calls:   # thinking-only or empty (cancelled) response: nothing to send
        return None
    # "content": "" with tool calls and no text: the spec allows null or no key, but
    # llama-cpp-python refuses null (HTTP 500) and its chatml-function-calling template fails
    # without the key (an empty 200); it and OpenAI accept "".
    out: Dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        out["tool_calls"] = calls
    if not (send_details or (send_reasoning and calls)):
        return out
    own = own_provider_data(message, system)
    thinking = [p for p in message.parts if isinstance(p, ThinkingPart)] if own else []
    if send_reasoning and calls:   # DeepSeek: on every tool-call turn or a 400; "" without (own) thinking
        out["reasoning_content"] = "".join(p.content for p in thinking)
    details = [_reasoning_detail(p) for p in thinking if p.provider_details and "type" in p.provider_details]
    if send_details and details:   # OpenRouter: back unchanged (signatures, encrypted reasoning)
        out["reasoning_details"] = details
    return out


def openai_messages(messages: List[Any], *, system: Optional[str] = None, send_reasoning: bool = False,
                    send_details: bool = False) -> List[Dict[str, Any]]:
    """The ``messages`` array for a history. Thinking is not sent back unless asked, and then
    only that of the responses of a model whose ``system`` is ``system``: ``send_reasoning`` puts
    it in ``reasoning_content`` on every assistant message that made tool calls (``""`` when it
    has none of its own: DeepSeek answers 400 without the field); ``send_details`` sends
    ``reasoning_details`` (OpenRouter) back as they came."""
    out: List[Dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            out.extend(_request_messages(message))
        elif isinstance(message, ModelResponse):
            item = _response_message(message, system, send_reasoning, send_details)
            if item is not None:
                out.append(item)
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        if choice == "any":
            return "required"
        return {"type": "function", "function": {"name": choice}}
    return choice


class OpenAIChatModel(HTTPModel):
    """A Chat Completions model (``POST {base_url}/chat/completions``, streamed).

    Args:
        name: the model name, e.g. ``"gpt-4o-mini"``.
        base_url: API root including the version (``https://api.openai.com/v1``);
            default from the provider's environment variable, else its usual URL.
        api_key: default from the provider's key variable (``OPENAI_API_KEY``, ...).
        session: a ``requests.Session`` used for every request.
        timeout: ``Timeout`` or seconds. max_retries: retries before any output.
        context_window: the model's window in tokens, if known.
        provider: a prefix of ``KNOWN_PREFIXES`` (``"ollama"``, ``"groq"``, ...) or any
            name for another compatible server (then ``base_url`` is required).
        stream_usage: send ``stream_options: {"include_usage": true}``; default per provider.
        send_reasoning: send the model's own thinking back as ``reasoning_content`` on the
            assistant messages that made tool calls (DeepSeek's thinking-with-tools mode; also
            vLLM / Ollama serving such models); default per provider (on for ``deepseek``).
            ``reasoning_details`` (OpenRouter) always go back as they came, unless False.

    ``ModelSettings.thinking_budget`` is sent as ``reasoning_effort`` (OpenAI, DeepSeek, xAI,
    Groq, vLLM, Ollama; a level the server takes) or OpenRouter's ``reasoning: {"max_tokens"}``;
    a ``reasoning_effort`` / ``reasoning`` key in ``extra_body`` wins.

    Raises:
        UserError: the provider needs a key and none was given or set.
    """

    def __init__(self, name: str, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 session: Any = None, timeout: Union[Timeout, float, None] = None, max_retries: int = 2,
                 context_window: Optional[int] = None, *, provider: str = "openai",
                 stream_usage: Optional[bool] = None, headers: Optional[Dict[str, str]] = None,
                 read_size: int = 65536,
                 max_retries_after_output: int = 0, send_reasoning: Optional[bool] = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError("OpenAIChatModel needs a model name, e.g. OpenAIChatModel('gpt-4o-mini')")
        spec = PROVIDERS.get(provider)
        if spec is not None and spec.api != "openai-chat":
            raise UserError(f"provider {provider!r} does not speak the Chat Completions API")
        url = spec.resolve_base_url(base_url) if spec else base_url
        if not url:
            raise UserError(f"unknown provider {provider!r}: pass base_url= (known providers: "
                            f"{', '.join(p for p, s in PROVIDERS.items() if s.api == 'openai-chat')})")
        key_env = spec.key_env if spec else None
        if api_key is None:
            api_key = env_api_key(key_env)
        if not api_key and spec is not None and spec.key_required:
            raise UserError(f"no API key for {provider}: set {key_env} or pass api_key=")
        self.provider = provider
        self.api_key_env = key_env
        self._root = url.rstrip("/")
        self.stream_usage = (spec.stream_usage if spec else True) if stream_usage is None else bool(stream_usage)
        self.send_reasoning = bool(spec and spec.send_reasoning) if send_reasoning is None else bool(send_reasoning)
        self._send_details = send_reasoning is not False
        self._thinking = spec.thinking if spec else None
        self._efforts = spec.efforts if spec else EFFORTS
        self._stream_options_rejected = False    # the server said no to stream_options (set once)
        self._lock = threading.Lock()
        super().__init__(name, base_url=self._root, api_key=api_key or None, session=session,
                         timeout=Timeout.coerce(timeout), max_retries=max_retries,
                         context_window=context_window, headers=headers, read_size=read_size,
                         max_retries_after_output=max_retries_after_output)
        self.system = provider

    def __repr__(self) -> str:
        url = _http.safe_url(self._root)
        return f"OpenAIChatModel({self.model_name!r}, provider={self.provider!r}, base_url={url!r})"

    # -- request ------------------------------------------------------------------
    def build_request(self, messages: List[Any], settings: ModelSettings,
                      params: ModelRequestParameters) -> HTTPRequest:
        history = openai_messages(messages, system=self.system, send_reasoning=self.send_reasoning,
                                  send_details=self._send_details)
        body: Dict[str, Any] = {"model": self.model_name, "messages": history, "stream": True}
        if self.stream_usage and not self._stream_options_rejected:
            body["stream_options"] = {"include_usage": True}
        tools = params.all_tools
        if tools:
            body["tools"] = [openai_tool(t) for t in tools]
            choice = params.tool_choice(settings)
            if choice is not None:
                body["tool_choice"] = _tool_choice(choice)
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        if settings.max_tokens is not None:
            body["max_completion_tokens" if self.provider == "openai" else "max_tokens"] = settings.max_tokens
        for key in ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(settings, key)
            if value is not None:
                body[key] = list(value) if key == "stop" else value
        if settings.thinking_budget is not None:
            self._thinking_budget(body, settings)
        if settings.extra_body:
            body.update(settings.extra_body)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if settings.extra_headers:
            headers.update(settings.extra_headers)
        return HTTPRequest(url=f"{self._root}/chat/completions", json=body, headers=headers)

    def _thinking_budget(self, body: Dict[str, Any], settings: ModelSettings) -> None:
        budget = settings.thinking_budget or 0
        if settings.extra_body and ("reasoning_effort" in settings.extra_body or "reasoning" in settings.extra_body):
            return   # the caller's own reasoning options, not mixed with ours
        if self._thinking == "openrouter":
            body["reasoning"] = {"max_tokens": budget} if budget > 0 else {"effort": "none"}
        elif self._thinking == "effort":
            body["reasoning_effort"] = reasoning_effort(budget, self._efforts)
        else:
            logger.debug("%s: no known reasoning option, thinking_budget not sent", self.provider)

    def new_translator(self) -> OpenAIChatTranslator:
        return OpenAIChatTranslator()

    def stream(self, messages: List[Any], settings: ModelSettings, params: ModelRequestParameters,
               ctx: StreamContext) -> Iterator[StreamItem]:
        """As ``HTTPModel.stream``; a 400/422 rejecting ``stream_options`` is retried once without
        it (#18), and later requests leave it out. The decision reads only this request's error,
        never state another run may have changed meanwhile (one model serves many threads)."""
        try:
            yield from super().stream(messages, settings, params, ctx)
        except ModelHTTPError as exc:
            text = f"{exc.body} {exc.message}"
            if not (self.stream_usage and exc.status in (400, 422) and "stream_options" in text
                    and not ctx.output_started()):
                raise
            logger.debug("%s rejected stream_options; retrying without it", self.provider)
            with self._lock:
                self._stream_options_rejected = True
            yield from super().stream(messages, settings, params, ctx)
