"""What the loopback server streams: chat-completions SSE chunks, and the text they carry.

Shared by the server process (to build the bytes) and the benchmarks (to check
the decoded text). Tokens cycle through ``WORDS`` (with non-ASCII ones, so a
wrong UTF-8 split shows up as wrong text); every chunk has the fields of a
real OpenAI chunk, so the JSON costs what a real one does.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Iterator, List, Optional

WORDS = [" The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ",",
         " café", " naïve", " —", " 日本語", " ok", " streaming", " tokens", " arrive", " one", " by",
         " one", ".", "\n", " Ünïcödé", " data", ": ", "[x]", " {ok}", " \"q\"", " back\\slash"]
CYCLE = 1000                     # the token sequence repeats after this many tokens
MODEL = "gpt-4o-mini-2024-07-18"
_HEAD = ('{"id":"chatcmpl-bench0000000000000000000001","object":"chat.completion.chunk",'
         '"created":1747148049,"model":"' + MODEL + '","service_tier":"default",'
         '"system_fingerprint":"fp_bench0001","choices":[{"index":0,"delta":')
_TAIL = ',"logprobs":null,"finish_reason":null}]}'


_TOKENS = [" Start"] + [WORDS[(j * 7 + j // len(WORDS)) % len(WORDS)] for j in range(1, CYCLE)]
_CYCLE_TEXT = "".join(_TOKENS)


def token(i: int) -> str:
    """Token ``i`` of a fast stream (periodic with ``CYCLE``)."""
    return _TOKENS[i % CYCLE]


def expected_text(n: int) -> str:
    """The text of a fast stream of ``n`` tokens."""
    full, rest = divmod(n, CYCLE)
    return _CYCLE_TEXT * full + "".join(_TOKENS[:rest])


def text_digest(n: int) -> str:
    """sha256 of ``expected_text(n)``, built one cycle at a time."""
    h = hashlib.sha256()
    cycle = _CYCLE_TEXT.encode("utf-8")
    full, rest = divmod(n, CYCLE)
    for _ in range(full):
        h.update(cycle)
    h.update("".join(_TOKENS[:rest]).encode("utf-8"))
    return h.hexdigest()


def text_length(n: int) -> int:
    """Length in characters of ``expected_text(n)``."""
    full, rest = divmod(n, CYCLE)
    return full * len(_CYCLE_TEXT) + len("".join(_TOKENS[:rest]))


def chunk_json(delta: Dict[str, Any], finish: Optional[str] = None) -> str:
    if finish is None:
        return _HEAD + json.dumps(delta, ensure_ascii=False, separators=(",", ":")) + _TAIL
    return _HEAD + json.dumps(delta, separators=(",", ":")) + \
        ',"logprobs":null,"finish_reason":"' + finish + '"}]}'


def content_event(text: str) -> bytes:
    return ("data: " + chunk_json({"content": text}) + "\n\n").encode("utf-8")


def role_event() -> bytes:
    return ("data: " + chunk_json({"role": "assistant", "content": "", "refusal": None}) + "\n\n").encode()


def finish_events(reason: str = "stop", completion_tokens: int = 0) -> bytes:
    usage = {"id": "chatcmpl-bench0000000000000000000001", "object": "chat.completion.chunk",
             "created": 1747148049, "model": MODEL, "choices": [],
             "usage": {"prompt_tokens": 12, "completion_tokens": completion_tokens,
                       "total_tokens": 12 + completion_tokens}}
    return ("data: " + chunk_json({}, reason) + "\n\ndata: " + json.dumps(usage, separators=(",", ":"))
            + "\n\ndata: [DONE]\n\n").encode()


def tool_call_events(step: int) -> List[bytes]:
    """A streamed tool call (id and name first, then the arguments in two fragments)."""
    call_id = f"call_bench{step:06d}"
    first = {"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": call_id, "type": "function", "function": {"name": "step_tool", "arguments": ""}}]}
    frag = [{"tool_calls": [{"index": 0, "function": {"arguments": '{"step": '}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": f"{step}}}"}}]}]
    return [("data: " + chunk_json(d) + "\n\n").encode() for d in [first] + frag]


def fast_events(n: int) -> Iterator[bytes]:
    """The SSE events of a fast stream of ``n`` tokens, in blocks (one bytes per event)."""
    yield role_event()
    for i in range(n):
        yield content_event(token(i))
    yield finish_events("stop", n)
