"""Streaming rows: throughput, token latency, concurrency (all against the loopback server)."""
from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from . import payload
from .server import LoopbackServer
from .stats import BenchError, Figure, Row, error_row, interleaved, percentile, run_rows

_STAMP = re.compile(r"\[(\d+):(\d+)\]")


def _impls(impls: Dict[str, Any], names: List[str], row: Row) -> Dict[str, Any]:
    out = {}
    for name in names:
        impl = impls.get(name)
        if isinstance(impl, str) or impl is None:
            row.notes[name] = impl or "not run"
        elif not hasattr(impl, "stream"):
            row.notes[name] = "no such operation"
        else:
            out[name] = impl
    return out


def _check_text(name: str, got: str, n: int) -> None:
    if got != payload.expected_text(n):
        raise BenchError(f"{name} decoded the wrong text ({len(got)} chars, expected "
                         f"{payload.text_length(n)})")


# -- throughput -----------------------------------------------------------------------------

def throughput(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    """µs per chunk for an ``n``-chunk fast stream; one table row per target."""
    rows: List[Row] = []
    results: Dict[str, Dict[str, Figure]] = {}
    notes: Dict[str, Dict[str, str]] = {}
    for framing, names in (("chunked", cfg["throughput_impls"]), ("close", cfg["throughput_close_impls"])):
        probe = Row(f"throughput.{framing}", "", "µs/chunk")
        chosen = _impls(impls, names, probe)
        errors: Dict[str, str] = {}
        fns: Dict[str, Callable[[], float]] = {}
        for name, impl in chosen.items():
            n = cfg["slow_n"] if name in cfg["slow_impls"] else cfg["n"]
            if name in cfg["slow_impls"]:
                probe.notes[name] = f"{n:,}-chunk streams (it is slow; µs/chunk does not depend on the length)"
            url = server.base_url(mode="fast", n=n, framing=framing)
            _check_text(name, impl.stream(url, _noop), n)   # warm-up + correctness
            fns[name] = _timed_stream(name, impl, url, n)
        samples = interleaved(fns, cfg["reps"], errors)
        results[framing] = {name: Figure.of(v) for name, v in samples.items()}
        notes[framing] = dict(probe.notes)
        notes[framing].update(errors)
    chunked, close = results["chunked"], results["close"]
    as_chunked = chunked.get("agentstream")
    specs = [("throughput.chunked.floor", "throughput, chunked (µs/chunk)", chunked, "floor",
              "agentstream / floor", "≤ 2.0", lambda r: r <= 2.0, False),
             ("throughput.close.floor", "throughput, close-delimited (µs/chunk)", close, "floor",
              "agentstream / floor", "≤ 2.0", lambda r: r <= 2.0, False),
             ("throughput.chunked.openai", "throughput vs openai SDK, chunked", chunked, "openai SDK",
              "openai SDK / agentstream", "≥ 10", lambda r: r >= 10.0, True),
             ("throughput.chunked.pydantic", "throughput vs pydantic-ai, chunked", chunked, "pydantic-ai",
              "pydantic-ai / agentstream", "≥ 30", lambda r: r >= 30.0, True)]
    for key, what, table, ref, label, target, ok, inverse in specs:
        framing = "close" if ".close." in key else "chunked"
        row = Row(key, what, "µs/chunk", cells=dict(table), notes=dict(notes[framing]),
                  ratio_label=label, target=target)
        mine, theirs = table.get("agentstream"), table.get(ref)
        if mine is None:
            row.error = notes[framing].get("agentstream", "agentstream did not run")
        elif theirs is None:
            row.notes.setdefault(ref, "not run")
        else:
            row.ratio = theirs.median / mine.median if inverse else mine.median / theirs.median
            row.passed = ok(row.ratio)
        rows.append(row)
    if as_chunked is not None:
        rows[0].extra["chunks"] = cfg["n"]
    return rows


def _noop(text: str) -> None:
    pass


def _timed_stream(name: str, impl: Any, url: str, n: int) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        text = impl.stream(url, _noop)
        elapsed = time.perf_counter() - started
        _check_text(name, text, n)
        return elapsed / n * 1e6
    return run


# -- token latency --------------------------------------------------------------------------

def latency(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    """Server send -> on_text, a token every ``ms``; p99 per repetition, median over repetitions."""
    rows = []
    for framing in ("chunked", "close"):
        key, what = f"latency.{framing}", f"token latency p99, {framing} (ms)"
        row = Row(key, what, "ms", ratio_label="agentstream p99", target="≤ 1 ms")
        try:
            chosen = _impls(impls, cfg["latency_impls"], row)
            url = server.base_url(mode="paced", n=cfg["latency_tokens"], ms=cfg["latency_ms"], framing=framing)
            fns = {name: _latency_run(name, impl, url, cfg["latency_tokens"], row)
                   for name, impl in chosen.items()}
            errors: Dict[str, str] = {}
            samples = interleaved(fns, cfg["latency_reps"], errors)
            row.notes.update(errors)
            row.cells = {name: Figure.of(v) for name, v in samples.items()}
            mine = row.cells.get("agentstream")
            if mine is None:
                row.error = errors.get("agentstream", "agentstream did not run")
            else:
                row.ratio = mine.median
                row.passed = mine.median <= 1.0
        except Exception as exc:
            row = error_row(key, what, exc)
        rows.append(row)
    return rows


def _latency_run(name: str, impl: Any, url: str, n: int, row: Row) -> Callable[[], float]:
    def run() -> float:
        seen: List[Any] = []
        record = seen.append
        clock = time.perf_counter_ns
        impl.stream(url, lambda text: record((clock(), text)))
        lat: List[float] = []
        index = 0
        for at, text in seen:
            for match in _STAMP.finditer(text):
                if int(match.group(1)) != index:
                    raise BenchError(f"{name}: token {match.group(1)} arrived where {index} was expected")
                index += 1
                lat.append((at - int(match.group(2))) / 1e6)
        if index != n:
            raise BenchError(f"{name}: {index} of {n} paced tokens arrived")
        row.extra.setdefault(f"{name}.p50_ms", []).append(round(percentile(lat, 50), 4))
        row.extra.setdefault(f"{name}.max_ms", []).append(round(max(lat), 4))
        return percentile(lat, 99)
    return run


# -- concurrency ----------------------------------------------------------------------------

def concurrency(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    """``streams`` simultaneous agentstream runs vs one, aggregate chunks per second."""
    key, what = "concurrency", f"concurrency: {cfg['streams']} streams, aggregate vs one (k chunks/s)"
    row = Row(key, what, "k chunks/s", ratio_label="aggregate / single", target="≥ 0.8, all complete")
    impl = impls.get("agentstream")
    if isinstance(impl, str) or impl is None:
        row.error = impl or "agentstream not available"
        return [row]
    try:
        n, streams = cfg["concurrency_n"], cfg["streams"]
        url = server.base_url(mode="fast", n=n, framing="chunked")
        _check_text("agentstream", impl.stream(url, _noop), n)

        def single() -> float:
            started = time.perf_counter()
            _check_text("agentstream", impl.stream(url, _noop), n)
            return n / (time.perf_counter() - started) / 1e3

        def many() -> float:
            return _concurrent(impl, url, n, streams) / 1e3

        errors: Dict[str, str] = {}
        samples = interleaved({"single": single, "aggregate": many}, cfg["concurrency_reps"], errors)
        if errors:
            raise BenchError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        one, agg = Figure.of(samples["single"]), Figure.of(samples["aggregate"])
        row.cells = {"agentstream": agg}
        row.extra = {"single_k_chunks_per_s": one.to_dict(), "aggregate_k_chunks_per_s": agg.to_dict(),
                     "streams": streams, "chunks_per_stream": n}
        row.notes["agentstream"] = f"one stream: {one.fmt(1)} k chunks/s"
        row.ratio = agg.median / one.median
        row.passed = row.ratio >= 0.8
    except Exception as exc:
        row = error_row(key, what, exc)
    return [row]


def _concurrent(impl: Any, url: str, n: int, streams: int) -> float:
    """Run ``streams`` streams at once (one thread each); aggregate chunks per second."""
    gate = threading.Barrier(streams + 1)
    failures: List[str] = []
    ends: List[float] = []

    def one() -> None:
        try:
            gate.wait(30)
            text = impl.stream(url, _noop)
            ends.append(time.perf_counter())
            if text != payload.expected_text(n):
                failures.append("wrong text")
        except Exception as exc:  # reported below
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, daemon=True) for _ in range(streams)]
    for thread in threads:
        thread.start()
    gate.wait(30)
    started = time.perf_counter()
    for thread in threads:
        thread.join(120)
    if failures or len(ends) != streams:
        raise BenchError(f"{len(ends)} of {streams} streams completed; failures: {failures[:3]}")
    return streams * n / (max(ends) - started)


def run_all(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any],
            only: Optional[List[str]] = None) -> List[Row]:
    return run_rows((("throughput", throughput), ("latency", latency), ("concurrency", concurrency)), server, impls, cfg, only)
