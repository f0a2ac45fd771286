"""Plain ``threading.Event`` cancel tokens: one watcher thread for the whole process.

A ``CancelToken`` reaches a run through a callback; a plain Event cannot call back, so it is
polled -- by one shared thread ("agentstream-cancel-watch"), however many runs are open,
which ends when none is left.
"""
from __future__ import annotations

import threading
from typing import List

import pytest

from agentstream import Agent, RunCancelled
from agentstream._cancel import CancelToken, link_cancel
from agentstream.models import FunctionModel

from .conftest import wait_no_agentstream_threads
from .helpers import Gate, stalled_after

WATCHER = "agentstream-cancel-watch"


def watchers() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WATCHER]


def test_twenty_runs_with_plain_events_share_one_watcher(no_thread_leak):
    gates = [Gate() for _ in range(20)]
    events = [threading.Event() for _ in gates]
    streams = [Agent(FunctionModel(stalled_after(["x"], gate))).run_stream("x", cancel_token=event)
               for gate, event in zip(gates, events)]
    try:
        assert all(gate.reached.wait(5) for gate in gates)
        assert len(watchers()) == 1
        events[3].set()   # one run cancelled: only that one
        with pytest.raises(RunCancelled):
            streams[3].result(timeout=5)
        assert not any(s.done for i, s in enumerate(streams) if i != 3)
        assert len(watchers()) == 1
        for event in events:
            event.set()
        for stream in streams:
            with pytest.raises(RunCancelled):
                stream.result(timeout=5)
    finally:
        for event in events:
            event.set()
        for stream in streams:
            stream.close()
    assert not wait_no_agentstream_threads(), "the watcher outlived the runs"


def test_watcher_ends_when_the_last_link_goes_and_restarts_for_a_new_one():
    done = threading.Event()
    targets = [CancelToken() for _ in range(3)]
    sources = [threading.Event() for _ in targets]
    unlinks = [link_cancel(source, target, done) for source, target in zip(sources, targets)]
    assert len(watchers()) == 1
    sources[1].set()
    assert targets[1].wait(2) and not targets[0].is_set() and not targets[2].is_set()
    for unlink in unlinks:
        unlink()   # the last one waits (bounded) for the watcher to end
    assert watchers() == []
    again = CancelToken()
    unlink = link_cancel(sources[1], again, threading.Event())   # already set: fires on the first poll
    assert again.wait(2)
    unlink()
    assert not wait_no_agentstream_threads(2)


def test_a_cancel_token_needs_no_watcher():
    source, target = CancelToken(), CancelToken()
    unlink = link_cancel(source, target, threading.Event())
    assert watchers() == []
    source.cancel()
    assert target.is_set()
    unlink()


def test_not_an_event_is_refused():
    with pytest.raises(TypeError, match="cancel_token"):
        link_cancel(object(), CancelToken(), threading.Event())   # type: ignore[arg-type]
