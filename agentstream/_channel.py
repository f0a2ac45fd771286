"""The hand-off between a run's worker and its one consumer.

A ``Channel`` is a small bounded FIFO. Its items are an event, a ``Batch``
(the events of one network read, handed over at once), a ``Barrier`` (the
worker waits until the consumer reached it) or ``END``. The worker's waits
(a full channel, a barrier) poll a ``stop()`` predicate, so they end on a
cancel even when nobody consumes; ``force_put`` ignores the bound, so the
terminal event and ``END`` can always be queued.

Nothing here runs callbacks or takes a lock from another object, and no wait
holds the channel's lock: a finalizer never needs it.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Optional

__all__ = ["Barrier", "Batch", "Channel", "EMPTY", "END"]

END = object()    # the last item: the worker has ended
EMPTY = object()  # ``Channel.get`` timed out
POLL = 0.1        # seconds between two looks at ``stop()`` while the worker waits


class Batch(list):
    """The items of one network read, handed over as one item (providers yield
    these, the loop turns them into a ``Batch`` of events)."""

    __slots__ = ()


class Barrier:
    """Queued after an event the worker must see handled before it goes on."""

    __slots__ = ("handled",)

    def __init__(self) -> None:
        self.handled = threading.Event()

    def wait(self, stop: Callable[[], bool]) -> bool:
        """Wait until the consumer reached this barrier; False once ``stop()`` is true."""
        while not self.handled.wait(POLL):
            if stop():
                return False
        return True


class Channel:
    """A bounded FIFO between one producer (the worker) and one consumer."""

    __slots__ = ("maxsize", "_items", "_lock", "_not_empty", "_not_full", "_getters", "_putters")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: Deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._getters = 0   # threads waiting in get(): notify only when someone waits
        self._putters = 0

    def put(self, item: Any, stop: Callable[[], bool]) -> bool:
        """Queue ``item``, waiting while the channel is full; False (not queued) once ``stop()``."""
        with self._lock:
            items = self._items
            if len(items) >= self.maxsize:
                self._putters += 1
                try:
                    while len(items) >= self.maxsize:
                        if stop():
                            return False
                        self._not_full.wait(POLL)
                finally:
                    self._putters -= 1
            items.append(item)
            if self._getters:
                self._not_empty.notify()
        return True

    def force_put(self, item: Any) -> None:
        """Queue ``item`` whatever the bound (the terminal event and ``END``)."""
        with self._lock:
            self._items.append(item)
            if self._getters:
                self._not_empty.notify()

    def get(self, timeout: Optional[float] = None) -> Any:
        """The next item, waiting up to ``timeout`` seconds (None: no bound); ``EMPTY`` on timeout."""
        with self._lock:
            items = self._items
            if not items:
                if timeout is not None and timeout <= 0:
                    return EMPTY
                deadline = None if timeout is None else time.monotonic() + timeout
                self._getters += 1
                try:
                    while not items:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            return EMPTY
                        self._not_empty.wait(remaining)
                finally:
                    self._getters -= 1
            item = items.popleft()
            if self._putters:
                self._not_full.notify()
            return item

    def qsize(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize
