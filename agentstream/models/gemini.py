"""Gemini over the Gemini API (``POST {base_url}/v1beta/models/{name}:streamGenerateContent?alt=sse``).

``GeminiModel`` builds the request; ``_gemini_stream.GeminiTranslator`` reads the response;
``_gemini_schema.gemini_schema`` translates the tool schemas; ``HTTPModel`` does the HTTP (its
``error_from`` reads Gemini's ``{"error": {"code", "message", "status", "details"}}`` bodies and
takes a 429's ``RetryInfo.retryDelay`` as the retry delay). The key travels in the
``x-goog-api-key`` header, never in the URL (URLs end up in logs and errors).

The history is sent back as Gemini needs it: thought parts with their ``thoughtSignature``
(unsigned thoughts are dropped), text and function calls with the signature they came with,
tool results as ``functionResponse`` parts (``{"output": ...}`` or ``{"error": ...}``) matched
to the calls by name and in the calls' order; ids Gemini gave are sent back, ids made up
locally are not. Gemini 3 refuses a function call without a signature in the current turn,
so a call from elsewhere (another provider, a hand-written history) gets Google's documented
placeholder signature.

Usage::

    model = GeminiModel("gemini-2.5-flash")              # GEMINI_API_KEY, else GOOGLE_API_KEY
    agent = Agent(model, model_settings={"thinking_budget": 1024})   # thought summaries as thinking
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote

from .. import _http
from ..exceptions import AuthenticationError, ModelHTTPError, UserError
from ..messages import (own_provider_data, ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart, ThinkingPart,
                        ToolCallPart, ToolReturnPart, UserPromptPart)
from ..settings import ModelSettings, Timeout
from ._base import ModelRequestParameters, ToolDefinition
from ._gemini_schema import gemini_schema
from ._gemini_stream import GeminiTranslator, is_local_call_id
from ._http_model import HTTPModel, HTTPRequest
from ._registry import PROVIDERS, env_api_key

__all__ = ["DEFAULT_BASE_URL", "GeminiModel", "KEY_ENVS", "gemini_contents", "gemini_tool"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
#: Google's documented stand-in for a missing signature on a Gemini 3 function call
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
_GENERATION = (("max_tokens", "maxOutputTokens"), ("temperature", "temperature"), ("top_p", "topP"),
               ("seed", "seed"), ("presence_penalty", "presencePenalty"),
               ("frequency_penalty", "frequencyPenalty"))


def gemini_tool(tool: ToolDefinition) -> Dict[str, Any]:
    """A ``functionDeclaration`` (parameters in Gemini's schema subset)."""
    return {"name": tool.name, "description": tool.description or "",
            "parameters": gemini_schema(tool.parameters_json_schema)}


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)


def _function_response(name: str, call_id: str, response: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"name": name, "response": response}
    if not is_local_call_id(call_id):
        out["id"] = call_id
    return {"functionResponse": out}


def _request_parts(message: ModelRequest, system: List[Dict[str, Any]], names: Dict[str, str],
                   order: List[str]) -> List[Dict[str, Any]]:
    results: List[Tuple[str, Dict[str, Any]]] = []   # (call id, part): sorted to the calls' order
    other: List[Dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, SystemPromptPart):
            if part.content:
                system.append({"text": part.content})
        elif isinstance(part, UserPromptPart):
            content = part.content if isinstance(part.content, str) else str(_jsonable(part.content))
            if content:
                other.append({"text": content})
        elif isinstance(part, ToolReturnPart):
            name = part.tool_name or names.get(part.tool_call_id, "")
            response = ({"error": part.content_text()} if part.is_error
                        else {"output": part.content if isinstance(part.content, str) else _jsonable(part.content)})
            results.append((part.tool_call_id, _function_response(name, part.tool_call_id, response)))
        elif isinstance(part, RetryPromptPart):
            if part.tool_call_id:
                name = part.tool_name or names.get(part.tool_call_id, "")
                results.append((part.tool_call_id, _function_response(name, part.tool_call_id,
                                                                      {"error": part.model_text()})))
            else:
                other.append({"text": part.model_text()})
    rank = {call_id: i for i, call_id in enumerate(order)}
    results.sort(key=lambda item: rank.get(item[0], len(rank)))   # stable: unknown ids keep their order
    return [part for _, part in results] + other


def _response_parts(message: ModelResponse, placeholder: bool) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    own = own_provider_data(message, "google")   # another provider's signatures mean nothing here
    for part in message.parts:
        signature = part.signature if own else None
        if isinstance(part, ThinkingPart):
            if signature:   # an unsigned thought summary is not needed back
                out.append({"text": part.content, "thought": True, "thoughtSignature": signature})
        elif isinstance(part, TextPart):
            if part.content or signature:
                item: Dict[str, Any] = {"text": part.content}
                if signature:
                    item["thoughtSignature"] = signature
                out.append(item)
        elif isinstance(part, ToolCallPart):
            call: Dict[str, Any] = {"name": part.tool_name, "args": dict(part.args)}
            if not is_local_call_id(part.tool_call_id):
                call["id"] = part.tool_call_id
            item = {"functionCall": call}
            if signature:
                item["thoughtSignature"] = signature
            out.append(item)
    calls = [p for p in out if "functionCall" in p]
    if placeholder and calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = PLACEHOLDER_SIGNATURE
    return out


def _append(contents: List[Dict[str, Any]], role: str, parts: List[Dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:   # Gemini wants the turns to alternate
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def gemini_contents(messages: List[Any], model_name: str = "") -> Dict[str, Any]:
    """``{"systemInstruction": {...} | None, "contents": [...]}`` for a history."""
    system: List[Dict[str, Any]] = []
    contents: List[Dict[str, Any]] = []
    names: Dict[str, str] = {}     # call id -> tool name
    order: List[str] = []          # call ids of the last model turn
    placeholder = model_name.rsplit("/", 1)[-1].lower().startswith("gemini-3")
    for message in messages:
        if isinstance(message, ModelRequest):
            _append(contents, "user", _request_parts(message, system, names, order))
        elif isinstance(message, ModelResponse):
            calls = message.tool_calls
            names.update((c.tool_call_id, c.tool_name) for c in calls)
            order = [c.tool_call_id for c in calls]
            _append(contents, "model", _response_parts(message, placeholder))
    return {"systemInstruction": {"parts": system} if system else None, "contents": contents}


def _tool_config(choice: Any) -> Optional[Dict[str, Any]]:
    if isinstance(choice, Mapping):
        return {"functionCallingConfig": dict(choice)}
    if not isinstance(choice, str):
        return None
    if choice in ("auto", "none"):
        return {"functionCallingConfig": {"mode": choice.upper()}}
    if choice in ("any", "required"):
        return {"functionCallingConfig": {"mode": "ANY"}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


class GeminiModel(HTTPModel):
    """A Gemini model over the Gemini API, streamed (see the module docstring).

    Args:
        name: e.g. ``"gemini-2.5-flash"`` (a leading ``models/`` is dropped).
        base_url: the API root (``https://generativelanguage.googleapis.com``; ``GEMINI_BASE_URL``);
            requests go to ``{base_url}/v1beta/models/{name}:streamGenerateContent?alt=sse``.
        api_key: default ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``; sent as ``x-goog-api-key``.
        Other arguments as ``OpenAIChatModel``.

    Settings: ``max_tokens`` -> ``maxOutputTokens``; ``thinking_budget`` -> ``thinkingConfig``
    (``thinkingBudget``, and ``includeThoughts`` unless 0) so thought summaries stream as
    thinking; ``extra_body["generationConfig"]`` is merged into the generation config.

    Raises:
        UserError: no key given or set, for Google's own endpoint.
    """

    def __init__(self, name: str, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 session: Any = None, timeout: Union[Timeout, float, None] = None, max_retries: int = 2,
                 context_window: Optional[int] = None, *, headers: Optional[Dict[str, str]] = None,
                 read_size: int = 65536,
                 max_retries_after_output: int = 0) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError("GeminiModel needs a model name, e.g. GeminiModel('gemini-2.5-flash')")
        name = name.strip()
        name = name[len("models/"):] if name.startswith("models/") else name
        root = (PROVIDERS["google"].resolve_base_url(base_url) or DEFAULT_BASE_URL).rstrip("/")
        for suffix in ("/v1beta", "/v1"):   # tolerate the versioned form
            if root.endswith(suffix):
                root = root[:-len(suffix)]
        key_env = next((env for env in KEY_ENVS if env_api_key(env)), KEY_ENVS[0])
        if api_key is None:
            api_key = env_api_key(key_env)
        if not api_key and root == DEFAULT_BASE_URL:
            raise UserError("no API key for google: set GEMINI_API_KEY (or GOOGLE_API_KEY) or pass api_key=")
        self._root = root
        self.provider = "google"
        self.api_key_env = key_env
        super().__init__(name, base_url=root, api_key=api_key, session=session, timeout=Timeout.coerce(timeout),
                         max_retries=max_retries, context_window=context_window, headers=headers,
                         read_size=read_size,
                         max_retries_after_output=max_retries_after_output)
        self.system = "google"

    def __repr__(self) -> str:
        return f"GeminiModel({self.model_name!r}, base_url={_http.safe_url(self._root)!r})"

    @property
    def url(self) -> str:
        """Where the requests go (holds no key)."""
        return f"{self._root}/v1beta/models/{quote(self.model_name, safe='-._')}:streamGenerateContent?alt=sse"

    def build_request(self, messages: List[Any], settings: ModelSettings,
                      params: ModelRequestParameters) -> HTTPRequest:
        converted = gemini_contents(messages, self.model_name)
        body: Dict[str, Any] = {"contents": converted["contents"]}
        if converted["systemInstruction"]:
            body["systemInstruction"] = converted["systemInstruction"]
        tools = params.all_tools
        if tools:
            body["tools"] = [{"functionDeclarations": [gemini_tool(t) for t in tools]}]
            choice = params.tool_choice(settings, forced="any")
            tool_config = _tool_config(choice)
            if tool_config:
                body["toolConfig"] = tool_config
        config: Dict[str, Any] = {}
        for ours, theirs in _GENERATION:
            value = getattr(settings, ours)
            if value is not None:
                config[theirs] = value
        if settings.stop:
            config["stopSequences"] = list(settings.stop)
        budget = settings.thinking_budget
        if budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget != 0}
        extra = dict(settings.extra_body or {})
        if isinstance(extra.get("generationConfig"), Mapping):
            config.update(extra.pop("generationConfig"))
        if config:
            body["generationConfig"] = config
        body.update(extra)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["x-goog-api-key"] = self._api_key
        return HTTPRequest(url=self.url, json=body, headers=headers)

    def new_translator(self) -> GeminiTranslator:
        return GeminiTranslator()

    def error_from(self, status: int, headers: Mapping[str, str], body: bytes) -> ModelHTTPError:
        """As ``HTTPModel.error_from``; Gemini answers a wrong key with 400 ``API_KEY_INVALID``:
        that is an ``AuthenticationError`` too."""
        error = super().error_from(status, headers, body)
        if status == 400 and type(error) is ModelHTTPError and b"API_KEY_INVALID" in body:
            error.__class__ = AuthenticationError
        return error
