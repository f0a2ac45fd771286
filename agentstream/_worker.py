"""The worker thread: runs the agent loop and puts events on a bounded channel.

The worker never references the ``AgentStream`` (only this ``RunShared``),
so a dropped stream is garbage collected and its finalizer cancels the run.
The last two items it queues are always exactly one terminal event
(RunComplete / Error / Cancelled) and ``END``; those two bypass the bound,
and every wait of the worker (a full channel, a barrier) ends on a cancel,
so a worker can always finish, whatever the consumer does (or if there is none).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional

from ._cancel import CancelToken
from ._channel import END, Barrier, Channel
from ._loop import AgentLoop, CancelledRun, RunConfig, RunState, close_calls, estimate_output_tokens
from .events import Cancelled, Error, RunComplete
from .exceptions import RunCancelled
from .messages import ModelRequest
from .usage import Usage

log = logging.getLogger("agentstream")

__all__ = ["END", "RunShared", "attach_to_handler_error", "start_worker"]

QUEUE_SIZE = 256  # items: an event, or the batch of one network read (<= read_size of bytes)


class RunShared:
    """State shared by the worker and its stream."""

    def __init__(self, cfg: RunConfig, cancel: CancelToken) -> None:
        self.cfg = cfg
        self.cancel = cancel
        self.channel = Channel(QUEUE_SIZE)
        self.state = RunState()
        self.done = threading.Event()
        self.abandoned = False
        self.worker_ident: Optional[int] = None
        self.unlink: Callable[[], None] = _nothing   # detaches the user's cancel_token, at the end
        self.output: Any = None
        self.error: Optional[BaseException] = None
        self.terminal: Any = None
        # wait for the consumer to handle each response's ToolCallComplete events before its
        # tools run: on by default (the stream may be iterated, however late); turned off when
        # a consumer that cannot show them claims the stream (result()/start() with no
        # tool-call or event handler) and ignored once the stream was dropped
        self.sync_tool_calls = True

    def abandon(self) -> None:
        """The stream was dropped: stop, nobody will read the channel.

        Called by the stream's finalizer, which may run during a garbage collection on
        any thread, that thread holding any lock (the token's, the HTTP layer's). On the
        worker thread it only sets the flag: the worker, running Python code at that
        moment, cancels at its next hand-off. Elsewhere it sets the token: its lock is
        reentrant, and its callbacks (the run's connection shutdown) take only locks the
        worker holds, never this thread."""
        self.abandoned = True
        if threading.get_ident() != self.worker_ident:
            self.cancel.set()

    def _stop(self) -> bool:
        return self.abandoned or self.cancel.is_set()

    def _halt(self) -> CancelledRun:
        if self.abandoned:
            self.cancel.set()   # the flag may come from a finalizer on this thread: cancel from here
        return CancelledRun()

    # -- putting ----------------------------------------------------------------
    def emit(self, event: Any, wait: bool = False) -> None:
        """Hand ``event`` (or a ``Batch``) to the consumer; with ``wait``, also wait until
        the consumer has handled it (when ``sync_tool_calls``)."""
        if self.abandoned or not self.channel.put(event, self._stop):
            raise self._halt()
        if wait and self.sync_tool_calls and not self.abandoned:
            barrier = Barrier()
            if not self.channel.put(barrier, self._stop) or not barrier.wait(self._stop):
                raise self._halt()

    def force_put(self, item: Any) -> None:
        self.channel.force_put(item)


def _nothing() -> None:
    pass


def start_worker(shared: RunShared) -> threading.Thread:
    thread = threading.Thread(target=_main, args=(shared,), daemon=True,
                              name=f"agentstream-run-{shared.cfg.run_id[:8]}")
    thread.start()
    return thread


def _main(shared: RunShared) -> None:
    cfg, state, cancel = shared.cfg, shared.state, shared.cancel
    shared.worker_ident = threading.get_ident()
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
            try:
                shared.unlink()
            except Exception:  # detaching the user's token must not hide the run's outcome
                log.debug("run %s: unlinking the cancel token failed", cfg.run_id, exc_info=True)


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
    """Run usage plus the interrupted response's, estimated when the server sent none:
    its prompt from the request's ``ContextInfo.estimated_tokens``, its output from what arrived."""
    usage = state.usage.copy()
    builder = state.builder
    if builder is not None:
        estimate = estimate_output_tokens(builder)
        if builder.usage is not None:
            partial = builder.usage.copy()
            if builder.finish_reason is None:
                # reported before the response ended (Anthropic's message_start): its output
                # figure is provisional, so it is estimated from what arrived
                partial.output_tokens = max(partial.output_tokens, estimate)
                partial.estimated = True
        else:
            partial = Usage(output_tokens=estimate, estimated=True)
        if not partial.input_tokens and state.request_tokens:
            partial.input_tokens = state.request_tokens
            partial.estimated = True
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


def _attach_partial(exc: BaseException, shared: RunShared, reason: str = "error", overwrite: bool = True) -> None:
    for name, value in _partial(shared, reason).items():
        if name == "pending_tools" and not isinstance(exc, RunCancelled):
            continue
        if not overwrite and hasattr(exc, name):
            continue
        try:
            setattr(exc, name, value)
        except Exception:  # some exception types refuse attributes
            pass


def attach_to_handler_error(exc: BaseException, shared: RunShared) -> None:
    """A handler raised ``exc`` and the run has ended: put what the run had on it
    (``partial_text``, ``partial_thinking``, ``usage``, ``messages``, ``run_id``), keeping
    any attribute of those names the exception already has."""
    _attach_partial(exc, shared, "cancelled", overwrite=False)
