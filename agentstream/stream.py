"""AgentStream: the handle of a running agent.

Iterate it (``for event in stream``), or call ``result()``, or ``start()``
to consume on a background thread. The first of these claims the stream: it
has one consumer, and handlers always run on that thread, one at a time, in
event order. ``close()`` or ``cancel()`` from any other thread only cancels
(and ``close()`` waits for the worker); they never take events.
"""
from __future__ import annotations

import json
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Deque, Iterator, Optional

from ._cancel import CancelToken
from ._channel import EMPTY, END, Barrier, Batch
from ._dispatch import Dispatcher
from ._worker import RunShared, attach_to_handler_error, start_worker
from .events import Cancelled, Error, Event, RunComplete
from .exceptions import RunCancelled
from .result import RunResult

__all__ = ["AgentStream", "CancelToken"]

_TIMEOUT = object()


class AgentStream:
    """A run in progress. Created by ``Agent.run_stream``; don't build it yourself.

    Usage::

        with agent.run_stream("Weather in Paris?", on_text=print) as stream:
            result = stream.result()
    """

    def __init__(self, shared: RunShared, dispatcher: Dispatcher, unlink: Callable[[], None]) -> None:
        self._shared = shared
        self._dispatch = dispatcher
        self._lock = threading.Lock()
        self._consumer: Optional[int] = None  # ident of the consuming thread
        self._finished = False
        self._handler_error: Optional[BaseException] = None
        self._pending: Deque[Any] = deque()
        self._background: Optional[threading.Thread] = None
        shared.unlink = unlink   # the worker calls it when it ends (the finalizer must not)
        self._thread = start_worker(shared)
        # a weak reference: the registry must not keep ``shared`` alive, or a run error whose
        # traceback holds this stream (any ``result()`` that raised) would never be freed
        self._finalizer = weakref.finalize(self, _on_drop, weakref.ref(shared))

    # -- public properties --------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self._shared.cfg.run_id

    @property
    def text(self) -> str:
        """All answer text of the run so far (every step)."""
        return "".join(self._shared.state.text_chunks)

    @property
    def thinking(self) -> str:
        return "".join(self._shared.state.thinking_chunks)

    @property
    def done(self) -> bool:
        """True once the worker has finished (its terminal event may still be queued)."""
        return self._shared.done.is_set()

    @property
    def cancel_token(self) -> CancelToken:
        return self._shared.cancel

    def cancel(self) -> None:
        """Stop the run from any thread; the open HTTP response is aborted at once."""
        self._shared.cancel.set()

    # -- consuming ------------------------------------------------------------------
    def _claim(self, *, again: bool = False) -> None:
        """Become this stream's one consumer; ``again``: the same thread may go on
        consuming (``result()`` after a partial ``for`` loop)."""
        me = threading.get_ident()
        with self._lock:
            if self._background is not None or (
                    self._consumer is not None and not (again and self._consumer == me)):
                raise RuntimeError("an AgentStream can be consumed only once (it is already being consumed)")
            self._consumer = me

    def __iter__(self) -> Iterator[Event]:
        self._claim()  # the worker waits at each response's tool calls (its default) for this loop
        return self._iterate()

    def _iterate(self) -> Iterator[Event]:
        try:
            while True:
                event = self._next()
                if event is None:
                    return
                yield event
                if isinstance(event, (Error, Cancelled)):
                    self._drain_to_end()
                    raise self._run_error()
        finally:  # left early: break, an exception or Ctrl-C in the loop body, or here
            if not self._finished:
                self._cancel_and_drain()

    def _drain_to_end(self) -> None:
        """After the terminal event only END is left: take it, so the run is wrapped up."""
        while not self._finished and self._next(timeout=5.0) is not _TIMEOUT:
            pass

    def _next(self, timeout: Optional[float] = None) -> Any:
        """The next event after its handlers ran; None at the end; _TIMEOUT."""
        if self._pending:
            return self._deliver(self._pending.popleft())
        if self._finished:
            return None
        get = self._shared.channel.get
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            item = get(None if deadline is None else deadline - time.monotonic())
            if item is EMPTY:
                return _TIMEOUT
            if item is END:
                self._finish()
                return None
            kind = type(item)
            if kind is Barrier:
                item.handled.set()
                continue
            if kind is Batch:  # the events of one network read
                self._pending.extend(item)
                item = self._pending.popleft()
            return self._deliver(item)

    def _deliver(self, event: Any) -> Any:
        if not self._dispatch.empty and self._handler_error is None:
            try:
                self._dispatch(event)
            except BaseException as exc:
                self._handler_failed(exc)
                raise
        return event

    def _handler_failed(self, exc: BaseException) -> None:
        """Cancel, let the run end (no more handlers), and leave what it had on ``exc``."""
        self._handler_error = exc
        self.cancel()
        self._drain_to_end()
        if self._finished:
            attach_to_handler_error(exc, self._shared)

    def _finish(self) -> None:
        self._finished = True
        self._thread.join(5.0)

    def _cancel_and_drain(self, timeout: float = 5.0) -> None:
        """Cancel, then consume (and dispatch) until the terminal event."""
        self.cancel()
        deadline = time.monotonic() + timeout
        while not self._finished and time.monotonic() < deadline:
            try:
                if self._next(timeout=max(0.0, deadline - time.monotonic())) in (None, _TIMEOUT):
                    break
            except Exception:  # a handler failing while we drain: keep draining
                self._handler_error = None

    def _run_error(self) -> BaseException:
        if self._handler_error is not None:
            return self._handler_error
        error = self._shared.error
        return error if error is not None else RunCancelled("run ended without a result")

    def result(self, timeout: Optional[float] = None) -> RunResult:
        """Consume the rest (calling handlers) and return the result.

        Raises the run's error (``RunCancelled`` after a cancel, or the
        exception a handler raised). ``timeout`` (seconds) raises
        ``TimeoutError`` if the run has not finished by then; the run goes on.
        """
        if self._background is not None:
            try:
                self._background.join(timeout)
            except KeyboardInterrupt:
                self.cancel()
                self._background.join(5.0)
                raise
            if self._background.is_alive():
                raise TimeoutError(f"run {self.run_id} not finished after {timeout} s")
        else:
            self._claim(again=True)
            if not self._dispatch.watches_tool_calls:
                self._shared.sync_tool_calls = False   # nobody can see a call before its tool now
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                while not self._finished:
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if self._next(remaining) is _TIMEOUT:
                        raise TimeoutError(f"run {self.run_id} not finished after {timeout} s")
            except KeyboardInterrupt:
                self._cancel_and_drain()
                raise
        return self._outcome()

    def _outcome(self) -> RunResult:
        if self._handler_error is not None:
            raise self._handler_error
        shared = self._shared
        if not isinstance(shared.terminal, RunComplete):
            raise self._run_error()
        state = shared.state
        return RunResult(shared.output, list(state.messages), state.usage.copy(), self.run_id, state.new_from)

    def start(self, on_event: Optional[Callable[[Any], Any]] = None) -> "AgentStream":
        """Consume on a background thread (handlers run there); returns at once.

        ``on_event``, if given, is called for every event after the handlers
        (the notebook view uses it).
        """
        with self._lock:
            if self._consumer is not None or self._background is not None:
                raise RuntimeError("an AgentStream can be consumed only once (it is already being consumed)")
            if on_event is not None:
                self._dispatch.add_listener(on_event)
            self._shared.sync_tool_calls = self._dispatch.watches_tool_calls
            self._background = threading.Thread(target=self._consume_quietly, daemon=True,
                                                 name=f"agentstream-dispatch-{self.run_id[:8]}")
        self._background.start()
        return self

    def _consume_quietly(self) -> None:
        try:
            while not self._finished:
                self._next()
        except BaseException:  # the handler error is kept and raised by result()
            self._cancel_and_drain()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the worker has ended; True if it has. This does not consume:
        a run whose queue is full, or that waits for its tool calls to be seen,
        ends only when something consumes it (iteration, ``result()``, ``start()``)
        or cancels it."""
        return self._shared.done.wait(timeout)

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> "AgentStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Cancel if still running and wait for the worker.

        On the consuming thread (or when nothing consumes yet: closing then claims
        the stream) it also consumes what is left, so handlers see the ``Cancelled``
        event. From any other thread it never consumes: the consumer still gets
        every event, the terminal one last."""
        me = threading.get_ident()
        with self._lock:
            background, consumer = self._background, self._consumer
            if background is None and consumer is None:
                self._consumer = consumer = me
        if background is not None or consumer != me:
            if not self._shared.done.is_set():
                self.cancel()
            self._thread.join(5.0)
            if background is not None and background is not threading.current_thread():
                background.join(5.0)
            return
        if not self._finished:
            self._cancel_and_drain()
        self._thread.join(5.0)

    # -- notebook and web -------------------------------------------------------------------------------
    def display(self, **kwargs: Any) -> Any:
        """Render the run live in the Jupyter cell that calls this, with a Stop button
        (see ``agentstream.notebook.show``); returns at once."""
        from .notebook import show

        return show(self, **kwargs)

    def iter_sse(self, heartbeat: float = 15.0) -> Iterator[bytes]:
        """The events as ``text/event-stream`` bytes; closing the generator cancels the run."""
        self._claim()
        try:
            while True:
                try:
                    event = self._next(timeout=heartbeat)
                except Exception as exc:  # a handler failed: tell the client, then stop
                    yield _sse_frame("error", {"kind": "error", "message": str(exc)})
                    return
                if event is None:
                    return
                if event is _TIMEOUT:
                    yield b": heartbeat\n\n"
                    continue
                yield _sse_frame(event.kind, event.to_dict())
        finally:
            if not self._finished:
                self._cancel_and_drain()

    def __repr__(self) -> str:
        status = "done" if self.done else ("cancelling" if self._shared.cancel.is_set() else "running")
        return f"<AgentStream run_id={self.run_id!r} {status}>"


def _sse_frame(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode("utf-8")


def _on_drop(shared_ref: "weakref.ref[RunShared]") -> None:
    """The stream was garbage collected. This may run on any thread, in the middle of
    whatever it was doing (a cyclic GC): it takes no lock that thread could hold (see
    ``RunShared.abandon``); the worker unlinks the user's cancel token when it ends."""
    shared = shared_ref()   # None: the worker is gone too (it holds ``shared`` while it runs)
    if shared is not None and not shared.done.is_set():
        shared.abandon()

