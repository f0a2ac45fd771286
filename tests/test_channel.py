"""The worker -> consumer channel: bounded put that gives up on stop, force_put past the bound,
get with a timeout, barriers that end on stop."""
from __future__ import annotations

import threading
import time

from agentstream._channel import EMPTY, Barrier, Batch, Channel


def test_put_waits_while_full_and_gives_up_once_stopped():
    channel = Channel(2)
    stop = threading.Event()
    assert channel.put(1, stop.is_set) and channel.put(2, stop.is_set) and channel.full()
    outcome = []
    putter = threading.Thread(target=lambda: outcome.append(channel.put(3, stop.is_set)))
    putter.start()
    putter.join(0.3)
    assert putter.is_alive()            # waits for room
    stop.set()
    putter.join(2)
    assert outcome == [False] and channel.qsize() == 2


def test_put_goes_on_when_the_consumer_makes_room():
    channel = Channel(1)
    channel.put("a", lambda: False)
    putter = threading.Thread(target=channel.put, args=("b", lambda: False))
    putter.start()
    assert channel.get(2) == "a"
    putter.join(2)
    assert not putter.is_alive() and channel.get(2) == "b"


def test_force_put_ignores_the_bound_and_wakes_a_getter():
    channel = Channel(1)
    channel.put("event", lambda: False)
    channel.force_put("terminal")
    assert channel.qsize() == 2
    assert [channel.get(1), channel.get(1)] == ["event", "terminal"]
    got = []
    getter = threading.Thread(target=lambda: got.append(channel.get(5)))
    getter.start()
    channel.force_put("end")
    getter.join(2)
    assert got == ["end"]


def test_get_times_out_with_empty():
    channel = Channel(4)
    start = time.monotonic()
    assert channel.get(0.05) is EMPTY and channel.get(0) is EMPTY
    assert time.monotonic() - start < 1.0


def test_barrier_ends_when_handled_or_stopped():
    handled = Barrier()
    handled.handled.set()               # the consumer reached it
    assert handled.wait(lambda: False) is True
    stopped = Barrier()
    assert stopped.wait(lambda: True) is False


def test_batch_is_a_list_of_its_own_type():
    batch = Batch([1, 2])
    assert batch == [1, 2] and type(batch) is Batch and type([1, 2]) is not Batch
    assert not hasattr(batch, "__dict__")   # __slots__: no per-batch dict
