"""Feed hand-written SSE text through SSEDecoder + a translator + ResponseBuilder."""
from __future__ import annotations

import json
from typing import Any, Dict, List

from agentstream._accumulate import ResponseBuilder
from agentstream._sse import SSEDecoder
from agentstream.exceptions import ModelStreamError


def sse(*chunks: Any, done: bool = True) -> str:
    """``data: <json>`` events for each chunk (dicts are dumped), plus ``[DONE]``."""
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines)


def anthropic_sse(*events: Dict[str, Any], event_lines: bool = True) -> str:
    out = []
    for ev in events:
        head = f"event: {ev['type']}\n" if event_lines else ""
        out.append(f"{head}data: {json.dumps(ev)}\n\n")
    return "".join(out)


class Replay:
    """The outcome of one replay: items, public events, the builder."""

    def __init__(self, text: str, translator: Any, chunk_size: int = 0) -> None:
        raw = text.encode("utf-8")
        self.translator = translator
        self.builder = ResponseBuilder()
        self.items: List[Any] = []
        self.events: List[Any] = []
        self.error: Any = None
        decoder = SSEDecoder()
        pieces = [raw[i:i + chunk_size] for i in range(0, len(raw), chunk_size)] if chunk_size else [raw]
        try:
            for piece in pieces:
                for event in decoder.feed(piece):
                    self._take(translator.translate(event))
            for event in decoder.flush():
                self._take(translator.translate(event))
            self._take(translator.finish())
        except ModelStreamError as exc:   # kept for the test to check; `response` refuses it
            self.error = exc

    def _take(self, items: List[Any]) -> None:
        for item in items:
            self.items.append(item)
            self.events.extend(self.builder.feed(item))

    @property
    def response(self) -> Any:
        assert self.error is None, f"the replay failed: {self.error!r}"
        return self.builder.build()

    @property
    def partial(self) -> Any:
        return self.builder.build(partial=True)

    def calls(self) -> List[Any]:
        return [(c.tool_name, c.tool_call_id, c.args) for c in self.response.tool_calls]
