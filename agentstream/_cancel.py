"""CancelToken: a threading.Event that can also run callbacks when set.

The callbacks are the one cancel mechanism: the model registers "shut this
socket down" (``_abort.ConnectionOwner``) while a request is open, so a read
blocked on a silent server, or a connect, returns immediately.

A plain ``threading.Event`` given as ``cancel_token`` cannot call back, so
``link_cancel`` has it watched: one shared thread for the whole process
("agentstream-cancel-watch") polls every linked event, starts with the first
link and ends when no link is left -- never one thread per run.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, List, Optional

__all__ = ["CancelToken", "link_cancel"]

log = logging.getLogger("agentstream")


class CancelToken(threading.Event):
    """A cancel flag with the interface of ``threading.Event``.

    ``set()`` and ``cancel()`` are the same. One token may govern several
    runs. ``add_callback(fn)`` runs ``fn()`` when the token is set (at once
    if it already is) and returns a function that removes it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: List[Callable[[], None]] = []
        # reentrant: a stream's finalizer may run (cyclic GC) on a thread that holds this
        # lock and set the token; set() then returns early or runs on, never deadlocks
        self._cb_lock = threading.RLock()

    @property
    def cancelled(self) -> bool:
        return self.is_set()

    def cancel(self) -> None:
        self.set()

    def set(self) -> None:
        with self._cb_lock:
            if self.is_set():
                return
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a failing callback must not stop the others
                log.debug("cancel callback failed", exc_info=True)

    def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._cb_lock:
            if not self.is_set():
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        callback()
        return lambda: None

    def _remove(self, callback: Callable[[], None]) -> None:
        with self._cb_lock:
            try:
                self._callbacks.remove(callback)
            except ValueError:
                pass


def link_cancel(source: Optional[threading.Event], target: CancelToken,
                done: threading.Event) -> Callable[[], None]:
    """Make ``target`` fire when ``source`` is set, until ``done`` is set (the run ended);
    returns an unlink function.

    A ``CancelToken`` source notifies at once through a callback. A plain
    ``threading.Event`` is polled (every ``_Watcher.poll`` s) by the shared watcher thread.
    """
    if source is None:
        return lambda: None
    if isinstance(source, CancelToken):
        return source.add_callback(target.set)
    if not hasattr(source, "wait") or not hasattr(source, "is_set"):
        raise TypeError(f"cancel_token must be a CancelToken or threading.Event, got {type(source).__name__}")
    return _WATCHER.add(_Link(source, target, done))


class _Link:
    __slots__ = ("source", "target", "done", "dead")

    def __init__(self, source: threading.Event, target: CancelToken, done: threading.Event) -> None:
        self.source, self.target, self.done = source, target, done
        self.dead = False   # unlinked (a plain attribute write: safe from a finalizer)

    def live(self) -> bool:
        return not (self.dead or self.done.is_set() or self.target.is_set())


class _Watcher:
    """The one thread that watches every linked plain ``threading.Event``."""

    poll = 0.02

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._links: List[_Link] = []
        self._thread: Optional[threading.Thread] = None

    def add(self, link: _Link) -> Callable[[], None]:
        with self._lock:
            self._links.append(link)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agentstream-cancel-watch", daemon=True)
                self._thread.start()
        return lambda: self._unlink(link)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._links = links = [link for link in self._links if link.live()]
                if not links:
                    self._thread = None
                    return
            for link in links:
                if link.source.is_set() and link.live():
                    link.target.set()   # runs the run's callbacks (socket shutdowns) here
            time.sleep(self.poll)

    def _unlink(self, link: _Link) -> None:
        """Unlink; if it was the last link, wait (bounded) for the watcher to end. Never
        blocks for long: it may run from a finalizer, on any thread (the watcher's too)."""
        link.dead = True
        thread = self._thread
        if thread is None or thread is threading.current_thread() or not self._lock.acquire(timeout=0.05):
            return
        try:
            last = not any(other.live() for other in self._links)
        finally:
            self._lock.release()
        if last:
            thread.join(1.0)


_WATCHER = _Watcher()
