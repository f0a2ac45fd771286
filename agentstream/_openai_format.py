"""OpenAI chat-format histories to and from agentstream messages.

Most apps already store conversations as OpenAI chat messages (``{"role": ..., "content": ...}``).
``messages_from_openai`` turns such a list into ``ModelRequest`` / ``ModelResponse`` objects to
pass as ``message_history``; ``messages_to_openai`` writes a history back in that format (it is
the same mapping ``OpenAIChatModel`` sends, ``models.openai_chat.openai_messages``)::

    history = messages_from_openai(stored)          # stored: a list of dicts
    result = agent.run("And tomorrow?", message_history=history)
    stored = messages_to_openai(result.messages)

Roles: ``system`` and ``developer`` become a ``SystemPromptPart``; ``user`` a ``UserPromptPart``
(a string, or a list of ``text`` content parts, joined by newlines); ``assistant`` a
``ModelResponse`` (its text, and a ``ToolCallPart`` per ``tool_calls`` item, ``arguments`` a JSON
object string); ``tool`` a ``ToolReturnPart`` (its tool name from the assistant call it answers).
Consecutive non-assistant messages form one ``ModelRequest``. Bad input raises ``UserError``
naming the index and the problem.

Imported at the bottom of ``messages`` (which re-exports both); imports ``models.openai_chat``
only when ``messages_to_openai`` is called.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional

from .exceptions import UserError
from .messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, ToolCallPart, ToolReturnPart, \
    UserPromptPart

__all__ = ["messages_from_openai", "messages_to_openai"]

_ROLES = "system, developer, user, assistant, tool"


def messages_to_openai(messages: Iterable[Any]) -> List[Dict[str, Any]]:
    """A history as OpenAI chat messages (a list of JSON-safe dicts).

    What ``OpenAIChatModel`` would send: ``ThinkingPart``s and empty responses are left out,
    a tool result that failed is sent as ``"Error: ..."`` text, non-string tool results as JSON.
    """
    from .models.openai_chat import openai_messages

    return openai_messages(list(messages))


def messages_from_openai(messages: Iterable[Any]) -> List[Any]:
    """OpenAI chat messages (dicts, or objects with ``model_dump()``) as an agentstream history.

    Raises:
        UserError: an item that is not a valid chat message, e.g.
            ``messages[3] (tool): tool_call_id 'call_9' answers no earlier assistant tool call``.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
        raise UserError(f"messages_from_openai() takes a list of message dicts, got {type(messages).__name__}")
    out: List[Any] = []
    parts: List[Any] = []              # the ModelRequest being gathered
    names: Dict[str, str] = {}         # tool_call_id -> tool name, from the assistant messages so far

    def flush() -> None:
        if parts:
            out.append(ModelRequest(list(parts)))
            parts.clear()

    for index, item in enumerate(messages):
        message = _as_dict(item, index)
        role = message.get("role")
        where = f"messages[{index}] ({role})"
        if role in ("system", "developer"):
            parts.append(SystemPromptPart(_text(message.get("content"), where)))
        elif role == "user":
            parts.append(UserPromptPart(_text(message.get("content"), where)))
        elif role == "tool":
            if parts and not isinstance(parts[-1], ToolReturnPart):
                flush()  # a request sends its tool results first: keep the order as given
            parts.append(_tool_return(message, where, names))
        elif role == "assistant":
            flush()
            out.append(_response(message, where, names))
        elif role == "function":
            raise UserError(f"{where}: legacy 'function' messages are not supported; use 'tool' messages "
                            "with tool_call_id")
        else:
            raise UserError(f"messages[{index}]: unknown role {role!r} (expected one of: {_ROLES})")
    flush()
    return out


def _as_dict(item: Any, index: int) -> Mapping:
    if isinstance(item, Mapping):
        return item
    dump = getattr(item, "model_dump", None)  # the openai SDK's message objects
    if callable(dump):
        data = dump(exclude_none=True)
        if isinstance(data, Mapping):
            return data
    raise UserError(f"messages[{index}]: expected a dict with 'role' and 'content', got {type(item).__name__}")


def _text(content: Any, where: str, *, optional: bool = False) -> str:
    """A string, or the text of a list of content parts."""
    if isinstance(content, str):
        return content
    if content is None and optional:
        return ""
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("text", "refusal") and isinstance(part.get(kind), str):
                texts.append(part[kind])
            elif isinstance(part, str):
                texts.append(part)
            else:
                what = f"type {kind!r}" if kind else f"a {type(part).__name__}"
                raise UserError(f"{where}: content part {i} has {what}; only text parts are supported")
        return "\n".join(texts)
    raise UserError(f"{where}: 'content' must be a string or a list of text parts, got {type(content).__name__}")


def _tool_return(message: Mapping, where: str, names: Dict[str, str]) -> ToolReturnPart:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise UserError(f"{where}: missing 'tool_call_id' (the id of the assistant tool call it answers)")
    name = message.get("name") or names.get(call_id)
    if not isinstance(name, str) or not name:
        raise UserError(f"{where}: tool_call_id {call_id!r} answers no earlier assistant tool call")
    return ToolReturnPart(name, _text(message.get("content"), where), call_id)


def _response(message: Mapping, where: str, names: Dict[str, str]) -> ModelResponse:
    if message.get("function_call") is not None:
        raise UserError(f"{where}: legacy 'function_call' is not supported; use 'tool_calls'")
    text = _text(message.get("content"), where, optional=True) or _text(message.get("refusal"), where,
                                                                          optional=True)
    parts: List[Any] = [TextPart(text)] if text else []
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise UserError(f"{where}: 'tool_calls' must be a list, got {type(calls).__name__}")
    for i, call in enumerate(calls):
        part = _tool_call(call, f"{where}: tool_calls[{i}]")
        names[part.tool_call_id] = part.tool_name
        parts.append(part)
    return ModelResponse(parts)


def _tool_call(call: Any, where: str) -> ToolCallPart:
    if not isinstance(call, Mapping):
        raise UserError(f"{where} must be a dict, got {type(call).__name__}")
    if call.get("type", "function") != "function":
        raise UserError(f"{where} has type {call.get('type')!r}; only 'function' tool calls are supported")
    function = call.get("function")
    call_id = call.get("id")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
        raise UserError(f"{where} needs 'function': {{'name': ..., 'arguments': ...}}")
    if not isinstance(call_id, str) or not call_id:
        raise UserError(f"{where} ({function['name']}) has no 'id'")
    args, raw_args = _arguments(function.get("arguments"), where)
    return ToolCallPart(function["name"], args, call_id, raw_args=raw_args)


def _arguments(raw: Any, where: str) -> "tuple[Dict[str, Any], Optional[str]]":
    """(args, raw_args): a string that is not a JSON object is kept as the model wrote it
    (``ToolCallPart.raw_args``), so the history re-sends exactly that."""
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}, raw
        return (value, None) if isinstance(value, dict) else ({}, raw)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: 'arguments' must be a JSON object or a string, got {type(raw).__name__}")
    return raw, None
