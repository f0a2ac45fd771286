"""CancelToken: a threading.Event that can also run callbacks when set.

The callbacks are how a cancel reaches the HTTP layer at once: the model
registers "shut this socket down" while a response is open, so a read
blocked on a silent server returns immediately.
"""
from __future__ import annotations

import logging
import threading
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
        self._cb_lock = threading.Lock()

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
                done: threading.Event, poll: float = 0.02) -> Callable[[], None]:
    """Make ``target`` fire when ``source`` is set; returns an unlink function.

    A ``CancelToken`` source notifies at once through a callback. A plain
    ``threading.Event`` cannot notify, so a small watcher thread polls it
    every ``poll`` seconds until ``done`` is set (the run ended).
    """
    if source is None:
        return lambda: None
    if isinstance(source, CancelToken):
        return source.add_callback(target.set)
    if not hasattr(source, "wait") or not hasattr(source, "is_set"):
        raise TypeError(f"cancel_token must be a CancelToken or threading.Event, got {type(source).__name__}")

    def watch() -> None:
        while not done.is_set() and not target.is_set():
            if source.wait(poll):
                target.set()
                return

    thread = threading.Thread(target=watch, name="agentstream-cancel-watch", daemon=True)
    thread.start()

    def unlink() -> None:
        if thread is not threading.current_thread():
            thread.join(1.0)

    return unlink
