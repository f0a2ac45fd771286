"""The worker thread: runs the agent loop and puts events on a bounded queue.

The worker never references the ``AgentStream`` (only this ``RunShared``),
so a dropped stream is garbage collected and its finalizer cancels the run.
The last two items it queues are always exactly one terminal event
(RunComplete / Error / Cancelled) and ``END``; those two bypass the queue
bound, so a worker can always finish, whatever the consumer does.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
from typing import Any, Dict, List, Optional

from ._cancel import CancelToken
from ._loop import AgentLoop, CancelledRun, RunConfig, RunState, close_calls
from .events import Cancelled, Error, RunComplete
from .exceptions import RunCancelled
from .messages import ModelRequest
from .usage import Usage

log = logging.getLogger("agentstream")

END = object()
QUEUE_SIZE = 256  # items: an event, or the batch of one network read (<= read_size of bytes)


class Barrier:
    """Queued after an event the worker must see handled before going on."""

    __slots__ = ("handled",)

    def __init__(self) -> None:
        self.handled = threading.Event()


class RunShared:
    """State shared by the worker and its stream."""

    def __init__(self, cfg: RunConfig, cancel: CancelToken) -> None:
        self.cfg = cfg
        self.cancel = cancel
        self.queue: "queue.Queue[Any]" = queue.Queue(QUEUE_SIZE)
        self.state = RunState()
        self.done = threading.Event()
        self.abandoned = False
        self.output: Any = None
        self.error: Optional[BaseException] = None
        self.terminal: Any = None
        # wait for the consumer to handle ToolCallComplete before tools run: set when
        # on_tool_call/on_event handlers exist or the stream is iterated
        self.sync_tool_calls = False

    def abandon(self) -> None:
        """The stream was dropped: stop, nobody will read the queue."""
        self.abandoned = True
        self.cancel.set()

    # -- putting ----------------------------------------------------------------
    def emit(self, event: Any, wait: bool = False) -> None:
        put = self.queue.put
        while True:
            try:
                put(event, timeout=0.1)
                break
            except queue.Full:
                if self.cancel.is_set():
                    raise CancelledRun() from None
        if wait and self.sync_tool_calls:
            barrier = Barrier()
            self.emit(barrier)
            while not barrier.handled.wait(0.1):
                if self.cancel.is_set():
                    raise CancelledRun()

    def force_put(self, item: Any) -> None:
        q = self.queue
        with q.mutex:
            q.queue.append(item)
            q.unfinished_tasks += 1
            q.not_empty.notify()


def start_worker(shared: RunShared) -> threading.Thread:
    thread = threading.Thread(target=_main, args=(shared,), daemon=True,
                              name=f"agentstream-run-{shared.cfg.run_id[:8]}")
    thread.start()
    return thread


def _main(shared: RunShared) -> None:
    cfg, state, cancel = shared.cfg, shared.state, shared.cancel
    terminal: Any = None
    try:
        shared.output = AgentLoop(cfg, state, shared.emit, cancel).run()
        terminal = RunComplete(cfg.run_id, state.usage.copy())
    except BaseException as exc:  # noqa: B902 - everything ends in exactly one terminal event
        if cancel.is_set() or isinstance(exc, CancelledRun):
            if not isinstance(exc, CancelledRun):
                log.debug("run %s: %r while cancelling", cfg.run_id, exc)
            terminal = _cancelled(shared)
        else:
            log.debug("run %s failed", cfg.run_id, exc_info=True)
            _attach_partial(exc, shared)
            shared.error = exc
            terminal = Error(str(exc) or type(exc).__name__, exc)
    finally:
        try:
            cfg.context.close() if hasattr(cfg.context, "close") else None
        finally:
            shared.terminal = terminal
            if not shared.abandoned:
                shared.force_put(terminal)
                shared.force_put(END)
            shared.done.set()


def history_so_far(state: RunState, reason: str = "cancelled") -> List[Any]:
    """The history at a cancel or error, valid to send again: the partial
    response kept (finish_reason ``reason``), and every tool call that did not run answered."""
    messages = list(state.messages)
    calls, done = state.pending_calls, state.done_results
    if state.builder is not None:
        partial = state.builder.build(partial=True)
        if partial.parts:
            partial.finish_reason = reason
            messages.append(partial)
            calls, done = partial.tool_calls, {}
    if calls:
        messages.append(ModelRequest(close_calls(calls, done)))
    return messages


def usage_so_far(state: RunState) -> Usage:
    """Run usage plus the interrupted response's, estimated when the server sent none."""
    usage = state.usage.copy()
    builder = state.builder
    if builder is not None:
        estimate = math.ceil((len(builder.text) + len(builder.thinking)) / 4)
        if builder.usage is not None:
            partial = builder.usage.copy()
            if builder.finish_reason is None:
                # reported before the response ended (Anthropic's message_start): its output
                # figure is provisional, so it is estimated from what arrived
                partial.output_tokens = max(partial.output_tokens, estimate)
                partial.estimated = True
        else:
            partial = Usage(output_tokens=estimate, estimated=True)
        partial.requests = 1
        usage.add(partial)
    return usage


def _partial(shared: RunShared, reason: str) -> Dict[str, Any]:
    """Everything a cancelled or failed run had, as RunCancelled / Cancelled fields."""
    state = shared.state
    pending = [c.tool_name for c in state.pending_calls if c.tool_call_id not in state.done_results]
    if state.builder is not None:
        pending += state.builder.tool_names()
    return {"partial_text": "".join(state.text_chunks), "partial_thinking": "".join(state.thinking_chunks),
            "pending_tools": pending, "usage": usage_so_far(state),
            "messages": history_so_far(state, reason), "run_id": shared.cfg.run_id}


def _cancelled(shared: RunShared) -> Cancelled:
    values = _partial(shared, "cancelled")
    shared.error = RunCancelled(**values)
    return Cancelled(values["partial_text"], values["partial_thinking"], values["pending_tools"],
                     values["usage"], values["messages"])


def _attach_partial(exc: BaseException, shared: RunShared) -> None:
    for name, value in _partial(shared, "error").items():
        if name == "pending_tools" and not isinstance(exc, RunCancelled):
            continue
        try:
            setattr(exc, name, value)
        except Exception:  # some exception types refuse attributes
            pass
