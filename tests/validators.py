"""A strict validator of the message rules providers enforce.

``validate_conversation(messages)`` raises ``AssertionError`` naming the first
rule a history breaks; ``conversation_problems(messages)`` lists them all.
The rules are the intersection of what OpenAI Chat Completions and the
Anthropic Messages API accept, so a history that passes is sendable to both:

1. the history is not empty and starts with a request (user side);
2. requests and responses alternate (no two of a kind in a row);
3. no message is empty;
4. tool call ids are non-empty and unique in the history;
5. every tool call of a response is answered exactly once in the request
   right after it (OpenAI: tool messages follow their assistant message;
   Anthropic: tool_result blocks in the next user message);
6. every tool result (a ``ToolReturnPart``, or a ``RetryPromptPart`` with a
   ``tool_call_id``) answers a call of the response right before it;
7. in a request, tool results come before any other user content
   (Anthropic rejects text before tool_result blocks);
8. (``require_request_last``) the history ends with a request, ready to send.
"""
from __future__ import annotations

from typing import Any, List, Sequence

from agentstream.messages import (ModelRequest, ModelResponse, RetryPromptPart, ToolCallPart, ToolReturnPart,
                                  UserPromptPart)

__all__ = ["conversation_problems", "is_tool_result", "validate_conversation"]


def is_tool_result(part: Any) -> bool:
    return isinstance(part, ToolReturnPart) or (isinstance(part, RetryPromptPart) and bool(part.tool_call_id))


def conversation_problems(messages: Sequence[Any], *, require_request_last: bool = True) -> List[str]:
    problems: List[str] = []
    if not messages:
        return ["the history is empty"]
    if not isinstance(messages[0], ModelRequest):
        problems.append(f"message 0 is a {type(messages[0]).__name__}, not a request")
    seen_ids: set = set()
    for i, message in enumerate(messages):
        if not isinstance(message, (ModelRequest, ModelResponse)):
            problems.append(f"message {i} is a {type(message).__name__}")
            continue
        if i and type(message) is type(messages[i - 1]):
            problems.append(f"messages {i - 1} and {i} are both {type(message).__name__}s")
        if not message.parts:
            problems.append(f"message {i} has no parts")
        if isinstance(message, ModelResponse):
            calls = [p for p in message.parts if isinstance(p, ToolCallPart)]
            for call in calls:
                if not call.tool_call_id:
                    problems.append(f"message {i}: tool call {call.tool_name!r} has no id")
                elif call.tool_call_id in seen_ids:
                    problems.append(f"message {i}: tool call id {call.tool_call_id!r} used twice")
                seen_ids.add(call.tool_call_id)
            if calls:
                nxt = messages[i + 1] if i + 1 < len(messages) else None
                answers = [p.tool_call_id for p in nxt.parts if is_tool_result(p)] \
                    if isinstance(nxt, ModelRequest) else []
                for call in calls:
                    count = answers.count(call.tool_call_id)
                    if count != 1:
                        problems.append(f"message {i}: tool call {call.tool_call_id!r} answered {count} times "
                                        "in the next request")
        else:
            prev = messages[i - 1] if i else None
            call_ids = {p.tool_call_id for p in prev.parts if isinstance(p, ToolCallPart)} \
                if isinstance(prev, ModelResponse) else set()
            other_seen = False
            for part in message.parts:
                if is_tool_result(part):
                    if part.tool_call_id not in call_ids:
                        problems.append(f"message {i}: tool result {part.tool_call_id!r} has no call in the "
                                        "response before it")
                    if other_seen:
                        problems.append(f"message {i}: tool result {part.tool_call_id!r} after user content")
                elif isinstance(part, (UserPromptPart, RetryPromptPart)):
                    other_seen = True
    if require_request_last and not isinstance(messages[-1], ModelRequest):
        problems.append("the history does not end with a request")
    return problems


def validate_conversation(messages: Sequence[Any], *, require_request_last: bool = True) -> None:
    """Raise AssertionError with every broken rule, or return None."""
    problems = conversation_problems(messages, require_request_last=require_request_last)
    if problems:
        raise AssertionError("invalid conversation:\n  " + "\n  ".join(problems))
