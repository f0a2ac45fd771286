"""History compression: keep a conversation inside the context window.

Two strategies, usable as the ``compression=Compression(...)`` run option or
as history processors on the Agent::

    from agentstream import compression
    agent = Agent(model, history_processors=[compression.truncate(target_tokens=50_000)])
    agent = Agent(model, history_processors=[compression.summarize(target_tokens=50_000)])

A processor is a callable ``(ctx, messages) -> messages``; these two also
let the run emit ``ContextCompressed``. They act only when the request
passes ``trigger_tokens`` (default: ``target_tokens``).

* ``truncate`` drops the oldest messages after the first ``keep_first``
  (the system prompt and first user prompt) until the request fits
  ``target_tokens``, keeping at least the last ``keep_last``. A cut is made
  only where the result stays a valid conversation for every provider: it
  starts with a request, requests and responses alternate, every tool call
  keeps its results and no result loses its call.
* ``summarize`` asks the model (``model.complete``: not streamed, the run's
  settings, no tools, the run's cancel token) to summarise the messages
  between the first ``keep_first`` and the last ``keep_last``, and puts the
  summary in their place as a user prompt starting with
  ``SUMMARY_PREFIX``, merged into a neighbouring request so roles still
  alternate. It falls back to truncate (strategy ``"summarize->truncate"``)
  when the request fails or is empty, or when there is too little to
  summarise; if the result is still over target it is truncated too
  (``"summarize+truncate"``). A cancel during the summary ends the run as
  cancelled. The summary request's usage is added to the run's usage.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from .exceptions import UserError
from .messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart, ThinkingPart,
                       ToolCallPart, ToolReturnPart, UserPromptPart)
from .tokens import TokenCounter

__all__ = ["Compressor", "Outcome", "SUMMARY_PREFIX", "Summarize", "Truncate", "summarize", "truncate",
           "tool_call_boundaries"]

log = logging.getLogger("agentstream")

SUMMARY_PREFIX = "[Summary of earlier conversation]: "
DEFAULT_SUMMARY_PROMPT = (
    "You compress conversations. Summarise the conversation excerpt below so that an assistant can "
    "continue the conversation without it: keep facts, decisions, names, numbers, tool results that "
    "still matter and open questions. Write only the summary, in the conversation's language.")
MAX_PART_CHARS = 4000  # per part in the transcript sent for summary


@dataclass(frozen=True)
class Outcome:
    """What a compression did (becomes ``ContextCompressed``)."""

    messages: List[Any]
    original_tokens: int
    compressed_tokens: int
    strategy: str
    messages_before: int
    messages_after: int


@dataclass
class RunAccess:
    """What a summary needs from the run: model, settings, cancel token, usage."""

    model: Any = None
    settings: Any = None
    cancel: Any = None
    usage: Any = None


def _is_result(part: Any) -> bool:
    return isinstance(part, ToolReturnPart) or (isinstance(part, RetryPromptPart) and bool(part.tool_call_id))


def tool_call_boundaries(messages: Sequence[Any]) -> List[bool]:
    """``allowed[p]``: may the history be cut between ``messages[p-1]`` and
    ``messages[p]`` without separating a tool call from its result?"""
    allowed = [True] * (len(messages) + 1)
    open_calls = {}
    for i, message in enumerate(messages):
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, ToolCallPart):
                    open_calls[part.tool_call_id] = i
        elif isinstance(message, ModelRequest):
            for part in message.parts:
                if _is_result(part):
                    j = open_calls.get(part.tool_call_id)
                    if j is not None:
                        for p in range(j + 1, i + 1):
                            allowed[p] = False
    return allowed


def _head_end(messages: Sequence[Any], allowed: List[bool], keep_first: int) -> int:
    a = min(keep_first, len(messages))
    while a < len(messages) and not allowed[a]:
        a += 1
    return a


def _truncate(messages: List[Any], counter: TokenCounter, tools: Sequence[Any], target: int,
              keep_first: int, keep_last: int) -> Optional[List[Any]]:
    """Drop the oldest droppable block; None when nothing can be dropped."""
    n = len(messages)
    allowed = tool_call_boundaries(messages)
    a = _head_end(messages, allowed, keep_first)
    tail_start = max(a, n - max(keep_last, 1))
    prev = messages[a - 1] if a > 0 else None
    total = counter.count(messages, tools)
    dropped, best = 0, None
    for b in range(a + 1, tail_start + 1):
        dropped += counter.message_tokens(messages[b - 1])
        nxt = messages[b]
        if not allowed[b] or (isinstance(nxt, ModelResponse) if prev is None else type(prev) is type(nxt)):
            continue
        best = b
        if total - dropped <= target:
            break
    return None if best is None else messages[:a] + messages[best:]


class Compressor:
    """Base of ``Truncate`` and ``Summarize``: a history processor that
    compresses when the request passes ``trigger_tokens``."""

    strategy = "compress"

    def __init__(self, target_tokens: int, *, trigger_tokens: Optional[int] = None, keep_first: int = 1,
                 keep_last: int = 4, model: Any = None) -> None:
        if not isinstance(target_tokens, int) or target_tokens < 1:
            raise UserError(f"target_tokens must be a positive int, got {target_tokens!r}")
        if keep_first < 0 or keep_last < 0:
            raise UserError("keep_first and keep_last must be >= 0")
        self.target_tokens = target_tokens
        self.trigger_tokens = trigger_tokens if trigger_tokens is not None else target_tokens
        self.keep_first, self.keep_last = keep_first, keep_last
        self.model = model
        self._counter: Optional[TokenCounter] = None   # standalone calls only; runs bring their own
        self._lock = threading.Lock()

    def __call__(self, ctx: Any, messages: List[Any]) -> List[Any]:
        """The history-processor form (no event; the run's model for summaries
        only when used through the Agent)."""
        run = RunAccess(self.model, None, getattr(ctx, "cancel_token", None), getattr(ctx, "usage", None))
        with self._lock:
            if self._counter is None:
                self._counter = TokenCounter(self.model)
            outcome = self.apply(list(messages), (), self._counter, run)
        return outcome.messages if outcome is not None else list(messages)

    def apply(self, messages: List[Any], tools: Sequence[Any], counter: TokenCounter,
              run: RunAccess, *, force: bool = False) -> Optional[Outcome]:
        """Compress when over ``trigger_tokens`` (or when ``force``); None when nothing changed."""
        before = counter.count(messages, tools)
        if not force and before <= self.trigger_tokens:
            return None
        result, strategy = self._compress(messages, tools, counter, run)
        if result is None:
            log.debug("compression (%s): nothing can be dropped", self.strategy)
            return None
        after = counter.count(result, tools)
        return Outcome(result, before, after, strategy, len(messages), len(result))

    def _compress(self, messages: List[Any], tools: Sequence[Any], counter: TokenCounter,
                  run: RunAccess) -> Tuple[Optional[List[Any]], str]:
        raise NotImplementedError

    def _truncate(self, messages: List[Any], tools: Sequence[Any], counter: TokenCounter) -> Optional[List[Any]]:
        return _truncate(messages, counter, tools, self.target_tokens, self.keep_first, self.keep_last)


class Truncate(Compressor):
    """Drops the oldest messages (see the module doc)."""

    strategy = "truncate"

    def _compress(self, messages: List[Any], tools: Sequence[Any], counter: TokenCounter,
                  run: RunAccess) -> Tuple[Optional[List[Any]], str]:
        return self._truncate(messages, tools, counter), "truncate"


class Summarize(Compressor):
    """Replaces the middle of the conversation by a model-written summary."""

    strategy = "summarize"

    def __init__(self, target_tokens: int, *, summary_prompt: Optional[str] = None, settings: Any = None,
                 min_messages: int = 2, **kw: Any) -> None:
        super().__init__(target_tokens, **kw)
        self.summary_prompt = summary_prompt or DEFAULT_SUMMARY_PROMPT
        self.settings = settings
        self.min_messages = min_messages

    def _compress(self, messages: List[Any], tools: Sequence[Any], counter: TokenCounter,
                  run: RunAccess) -> Tuple[Optional[List[Any]], str]:
        fallback = "summarize->truncate"
        span = self._middle(messages)
        if span is None:
            return self._truncate(messages, tools, counter), fallback
        a, t = span
        text = self._summary(messages[a:t], run)
        if not text:
            return self._truncate(messages, tools, counter), fallback
        result = _splice(messages, a, t, UserPromptPart(SUMMARY_PREFIX + text))
        if counter.count(result, tools) > self.target_tokens:
            return (self._truncate(result, tools, counter) or result), "summarize+truncate"
        return result, "summarize"

    def _middle(self, messages: List[Any]) -> Optional[Tuple[int, int]]:
        """[a, t): the messages to summarise, or None when too few."""
        n = len(messages)
        allowed = tool_call_boundaries(messages)
        a = _head_end(messages, allowed, self.keep_first)
        prev = messages[a - 1] if a > 0 else None
        for t in range(n - max(self.keep_last, 1), a, -1):
            if allowed[t] and not (isinstance(prev, ModelRequest) and isinstance(messages[t], ModelRequest)):
                return (a, t) if t - a >= self.min_messages else None
        return None

    def _summary(self, middle: List[Any], run: RunAccess) -> str:
        from ._loop import CancelledRun
        from ._accumulate import complete_response
        from .models._base import ModelRequestParameters, StreamContext
        from .settings import ModelSettings

        model = self.model or run.model
        if model is None:
            raise UserError("summarize() used outside an agent run needs model=...")
        cancel = run.cancel if run.cancel is not None else _NeverCancelled()
        settings = self.settings or run.settings or ModelSettings()
        settings = dataclasses.replace(settings, tool_choice=None, parallel_tool_calls=None)
        request = [ModelRequest([SystemPromptPart(self.summary_prompt), UserPromptPart(transcript(middle))])]
        if cancel.is_set():
            raise CancelledRun()
        try:
            response = complete_response(model, request, settings, ModelRequestParameters([], None, True),
                                         StreamContext(cancel=cancel))
        except Exception as exc:
            if cancel.is_set():
                raise CancelledRun() from exc
            log.warning("summary request failed (%s: %s); truncating instead", type(exc).__name__, exc)
            return ""
        if cancel.is_set():
            raise CancelledRun()
        if run.usage is not None:
            usage = response.usage.copy()
            usage.requests = 1
            run.usage.add(usage)
        return response.text.strip()


class _NeverCancelled:
    def is_set(self) -> bool:
        return False

    def wait(self, timeout: Optional[float] = None) -> bool:
        return False


def _splice(messages: List[Any], a: int, t: int, summary: UserPromptPart) -> List[Any]:
    """``messages[:a] + messages[t:]`` with the summary merged so roles alternate."""
    head, tail = list(messages[:a]), list(messages[t:])
    prev = head[-1] if head else None
    nxt = tail[0]
    if isinstance(prev, ModelRequest) and isinstance(nxt, ModelResponse):
        head[-1] = ModelRequest(list(prev.parts) + [summary])
    elif isinstance(nxt, ModelRequest):   # prev is a response, or nothing
        parts = list(nxt.parts)
        tail[0] = ModelRequest(parts + [summary] if any(_is_result(p) for p in parts) else [summary] + parts)
    else:                                 # response then response, or a response first
        head.append(ModelRequest([summary]))
    return head + tail


def _clip(text: str) -> str:
    return text if len(text) <= MAX_PART_CHARS else text[:MAX_PART_CHARS] + " [...]"


def transcript(messages: Sequence[Any]) -> str:
    """The messages as plain text for the summariser (tool calls and results inline)."""
    lines: List[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, SystemPromptPart):
                lines.append(f"System: {_clip(part.content)}")
            elif isinstance(part, UserPromptPart):
                lines.append(f"User: {_clip(str(part.content))}")
            elif isinstance(part, ToolReturnPart):
                lines.append(f"Tool result ({part.tool_name}): {_clip(part.content_text())}")
            elif isinstance(part, RetryPromptPart):
                lines.append(f"Retry request: {_clip(part.content)}")
            elif isinstance(part, TextPart):
                lines.append(f"Assistant: {_clip(part.content)}")
            elif isinstance(part, ToolCallPart):
                args = json.dumps(part.args, ensure_ascii=False, default=str)
                lines.append(f"Assistant called {part.tool_name}({_clip(args)})")
            elif isinstance(part, ThinkingPart) and part.content:
                lines.append(f"Assistant (thinking): {_clip(part.content)}")
    return "\n".join(lines)


def truncate(target_tokens: int, *, trigger_tokens: Optional[int] = None, keep_first: int = 1,
             keep_last: int = 4, model: Any = None) -> Truncate:
    """A history processor that drops the oldest messages to fit ``target_tokens``
    (``model``: counts with its tokenizer when used outside an agent run)."""
    return Truncate(target_tokens, trigger_tokens=trigger_tokens, keep_first=keep_first, keep_last=keep_last,
                    model=model)


def summarize(target_tokens: int, *, trigger_tokens: Optional[int] = None, keep_first: int = 1,
              keep_last: int = 4, model: Any = None, summary_prompt: Optional[str] = None,
              settings: Any = None) -> Summarize:
    """A history processor that summarises the middle of the conversation
    (``model``: the summariser; default the run's model)."""
    return Summarize(target_tokens, trigger_tokens=trigger_tokens, keep_first=keep_first, keep_last=keep_last,
                     model=model, summary_prompt=summary_prompt, settings=settings)


def from_option(option: Any, target_tokens: int, trigger_tokens: int) -> Compressor:
    """The compressor of a ``Compression`` run option."""
    if option.strategy == "summarize":
        return Summarize(target_tokens, trigger_tokens=trigger_tokens, keep_first=option.keep_first,
                         keep_last=option.keep_last, summary_prompt=option.summary_prompt)
    return Truncate(target_tokens, trigger_tokens=trigger_tokens, keep_first=option.keep_first,
                    keep_last=option.keep_last)
