"""Context-window accounting and compression, before every model request.

``ContextManager.prepare(messages, params, loop)`` runs after ``RequestStart``:

1. the Agent's history processors, in order (plain ``(ctx, messages) ->
   messages`` callables; ``compression.truncate`` / ``summarize`` processors
   also report what they did);
2. the run's ``Compression`` option: when the request passes ``threshold`` ×
   the context window (or ``target_tokens`` when the window is unknown), the
   history is compressed to ``target_tokens`` (default half the window);
3. emits ``ContextInfo`` for the request about to be sent (after any
   compression), then one ``ContextCompressed`` per compression.

Token counts come from ``tokens.TokenCounter`` (per-message cache, so a step
costs O(new messages)); the context window from ``_profiles.context_limit``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, List, Optional

from ._profiles import context_limit
from .compression import Compressor, Outcome, RunAccess, from_option
from .events import ContextCompressed, ContextInfo
from .exceptions import UserError
from .tokens import TokenCounter

log = logging.getLogger("agentstream")


class ContextManager:
    """Per-run context accounting: owns the run's ``TokenCounter``."""

    def __init__(self, model: Any, compression: Any = None,
                 history_processors: Optional[List[Callable[..., Any]]] = None) -> None:
        self.model = model
        self.compression = compression
        self.history_processors = list(history_processors or [])
        self.counter = TokenCounter(model)   # the encoding loads on first use, in the worker
        self.context_limit = context_limit(model)
        self._option: Optional[Compressor] = None
        if compression is not None:
            limit = self.context_limit
            if limit:
                trigger = int(compression.threshold * limit)
                target = min(compression.target_tokens or limit // 2, trigger)
            else:
                trigger = target = compression.target_tokens or 0
            if target > 0:
                self._option = from_option(compression, target, trigger)
            else:
                log.debug("compression disabled: the context window of %r is unknown and no "
                          "target_tokens was given", getattr(model, "model_name", model))

    def prepare(self, messages: List[Any], params: Any, loop: Any) -> List[Any]:
        original = messages
        tools = params.all_tools
        outcomes: List[Outcome] = []
        run = RunAccess(loop.cfg.model, loop.cfg.settings, loop.cancel, loop.state.usage)
        for processor in self.history_processors:
            if isinstance(processor, Compressor):
                outcome = processor.apply(list(messages), tools, self.counter, run)
                if outcome is not None:
                    outcomes.append(outcome)
                    messages = outcome.messages
            else:
                produced = processor(loop.ctx(), messages)
                if produced is None:
                    raise UserError(f"history processor {processor!r} returned None; it must return the messages")
                messages = list(produced)
            loop.checkpoint()
        if self._option is not None:
            outcome = self._option.apply(list(messages), tools, self.counter, run)
            if outcome is not None:
                outcomes.append(outcome)
                messages = outcome.messages
            loop.checkpoint()
        size = self.counter.measure(messages, tools)
        loop.state.request_tokens = size.tokens   # the usage estimate if the server reports none
        loop.emit(ContextInfo(estimated_tokens=size.tokens, request_bytes=size.request_bytes,
                              context_limit=self.context_limit, method=self.counter.method,
                              last_prompt_tokens=loop.state.last_prompt_tokens, message_count=size.messages))
        for o in outcomes:
            loop.emit(ContextCompressed(o.original_tokens, o.compressed_tokens, o.strategy,
                                        o.messages_before, o.messages_after))
        if messages is not original:
            _shift_new_from(loop.state, original, messages)
        return messages

    def close(self) -> None:
        """Drop the per-message cache (called when the run ends)."""
        self.counter.clear()


def _shift_new_from(state: Any, original: List[Any], messages: List[Any]) -> None:
    """Keep ``RunResult.new_messages()`` right after compression: ``new_from`` becomes the
    index after the last message that is an unchanged message from before this run (a
    message the compression made, e.g. a prompt merged with a summary, counts as new)."""
    new_from = getattr(state, "new_from", None)
    if new_from is None:
        return
    old_ids = {id(m) for m in original[:new_from]}
    last_old = max((i for i, m in enumerate(messages) if id(m) in old_ids), default=-1)
    state.new_from = last_old + 1
