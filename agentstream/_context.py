"""Context-window accounting and compression (placeholder: sizes only).

``ContextManager.prepare`` runs before every request: it emits
``ContextInfo`` and, when needed, compresses the history (``ContextCompressed``).
"""
from __future__ import annotations

import json
from typing import Any, Callable, List, Optional

from .events import ContextInfo
from .messages import messages_to_json


class ContextManager:
    def __init__(self, model: Any, compression: Any = None,
                 history_processors: Optional[List[Callable[..., Any]]] = None) -> None:
        self.model = model
        self.compression = compression
        self.history_processors = list(history_processors or [])

    def prepare(self, messages: List[Any], params: Any, loop: Any) -> List[Any]:
        for processor in self.history_processors:
            messages = list(processor(loop.ctx(), messages))
        size = len(messages_to_json(messages)) + len(json.dumps([t.parameters_json_schema for t in params.all_tools]))
        loop.emit(ContextInfo(estimated_tokens=size // 4, request_bytes=size,
                              context_limit=getattr(self.model, "context_window", None),
                              method="approx", last_prompt_tokens=loop.state.last_prompt_tokens,
                              message_count=len(messages)))
        return messages
