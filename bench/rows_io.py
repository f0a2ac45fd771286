"""Cancel latency and tool-loop overhead (against the loopback server)."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .server import LoopbackServer
from .sdks import fire_after
from .stats import BenchError, Figure, Row, error_row, interleaved, percentile, run_rows

CANCEL_AFTER = 5          # tokens before the server stalls
CANCEL_DELAY = 0.02       # s between the 5th token and cancel(): the reader is blocked by then


def cancel(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    """5 tokens then silence; cancel() from another thread; time to the terminal event
    on the consumer, and to the server seeing the connection close."""
    event_ms: Dict[str, List[float]] = {}
    close_ms: Dict[str, List[float]] = {}
    notes: Dict[str, str] = {}
    failed: Dict[str, str] = {}
    chosen = {}
    for name in cfg["cancel_impls"]:
        impl = impls.get(name)
        if isinstance(impl, str) or impl is None:
            notes[name] = impl or "not run"
        else:
            chosen[name] = impl
    for name in cfg["cancel_slow_impls"]:
        if name in chosen and name == "openai SDK":
            notes[name] = (f"Stream.close() from another thread does not wake the blocked read; it ends at the "
                           f"read timeout ({chosen[name].CANCEL_READ_TIMEOUT:g} s here); "
                           f"{cfg['cancel_slow_trials']} trial(s)")
            if not cfg["cancel_slow_trials"]:
                del chosen[name]
    for trial in range(cfg["cancel_trials"]):
        for name, impl in chosen.items():
            if name in failed or (trial >= cfg["cancel_slow_trials"] and name in cfg["cancel_slow_impls"]):
                continue
            try:
                ev, cl = _cancel_trial(server, impl)
            except BenchError:
                raise
            except Exception as exc:
                notes[name] = failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            event_ms.setdefault(name, []).append(ev)
            if cl is not None:
                close_ms.setdefault(name, []).append(cl)
            else:
                notes[name] = "the server did not see the close within 3 s in some trials"
    rows = []
    for key, what, data, stat in (
            ("cancel.event.p50", "cancel → Cancelled event, p50 (ms)", event_ms, 50),
            ("cancel.event.max", "cancel → Cancelled event, max (ms)", event_ms, 100),
            ("cancel.close.p50", "cancel → server sees close, p50 (ms)", close_ms, 50),
            ("cancel.close.max", "cancel → server sees close, max (ms)", close_ms, 100)):
        limit = 1.0 if stat == 50 else 2.0
        row = Row(key, what, "ms", notes=dict(notes), ratio_label="agentstream",
                  target=f"≤ {limit:g} ms")
        for name, values in data.items():
            value = percentile(values, stat)
            # the cell shows the statistic; its spread is the trials' min-max
            row.cells[name] = Figure(value, min(values), max(values), len(values), values)
        mine = row.cells.get("agentstream")
        if mine is None:
            row.error = notes.get("agentstream", "agentstream did not run")
        else:
            row.ratio = mine.median
            row.passed = mine.median <= limit
        rows.append(row)
    return rows


def _cancel_trial(server: LoopbackServer, impl: Any) -> Any:
    sid = server.new_id()
    url = server.base_url(mode="stall", n=CANCEL_AFTER, id=sid, framing="chunked")
    seen = threading.Event()
    count = [0]

    def on_text(text: str) -> None:
        count[0] += 1
        if count[0] >= CANCEL_AFTER:
            seen.set()

    stamps: List[int] = []
    done_ns = impl.cancel_trial(url, on_text, fire_after(seen, CANCEL_DELAY, stamps))
    if not stamps:
        raise BenchError(f"{impl.name}: the stream ended before {CANCEL_AFTER} tokens arrived")
    if count[0] != CANCEL_AFTER:
        raise BenchError(f"{impl.name}: {count[0]} tokens arrived, expected {CANCEL_AFTER}")
    closed = server.closed_ns(sid)
    event = (done_ns - stamps[0]) / 1e6
    return event, (closed - stamps[0]) / 1e6 if closed is not None else None


def tool_loop(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    """``steps`` x (tool call -> result -> next request); per-step time, and agentstream's
    overhead = (its time - the floor's time) / steps (server time is in both)."""
    steps = cfg["tool_steps"]
    key, what = "tool_loop", f"tool loop, {steps} steps (ms/step)"
    row = Row(key, what, "ms/step", ratio_label="agentstream − floor, ms/step", target="≤ 1 ms")
    try:
        url = server.base_url(mode="tool", steps=steps, framing="chunked")
        fns: Dict[str, Callable[[], float]] = {}
        for name in cfg["tool_impls"]:
            impl = impls.get(name)
            if isinstance(impl, str) or impl is None:
                row.notes[name] = impl or "not run"
            elif not hasattr(impl, "tool_loop"):
                row.notes[name] = "no tool loop"
            else:
                _check_steps(name, impl.tool_loop(url, steps), steps)  # warm-up
                fns[name] = _timed_loop(name, impl, url, steps)
        errors: Dict[str, str] = {}
        samples = interleaved(fns, cfg["tool_reps"], errors)
        row.notes.update(errors)
        row.cells = {name: Figure.of(v) for name, v in samples.items()}
        mine, floor = row.cells.get("agentstream"), row.cells.get("floor")
        if mine is None or floor is None:
            row.error = errors.get("agentstream") or errors.get("floor") or "agentstream or floor did not run"
        else:
            row.ratio = mine.median - floor.median
            row.passed = row.ratio <= 1.0
            if "pydantic-ai" in row.cells:
                row.extra["pydantic-ai overhead ms/step"] = row.cells["pydantic-ai"].median - floor.median
    except BenchError as exc:
        row.error = str(exc)
    except Exception as exc:
        row = error_row(key, what, exc)
    return [row]


def _check_steps(name: str, got: int, steps: int) -> None:
    if got != steps:
        raise BenchError(f"{name}: the tool loop ran {got} steps, expected {steps}")


def _timed_loop(name: str, impl: Any, url: str, steps: int) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        got = impl.tool_loop(url, steps)
        elapsed = time.perf_counter() - started
        _check_steps(name, got, steps)
        return elapsed / steps * 1e3
    return run


def run_all(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any],
            only: Optional[List[str]] = None) -> List[Row]:
    return run_rows((("cancel", cancel), ("tool_loop", tool_loop)), server, impls, cfg, only)
