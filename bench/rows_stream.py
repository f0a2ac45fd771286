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
    """``streams`` simultaneous runs vs one, aggregate chunks per second, per implementation.

    agentstream shares one Agent between the threads (as an application would); the
    references get one instance (one connection) per stream. Each implementation's
    single and aggregate runs are interleaved with the others'. When the floor also
    loses throughput at ``streams`` streams, that part is the server / machine, so
    agentstream's ratio is also given relative to the floor's.
    """
    key, what = "concurrency", f"concurrency: {cfg['streams']} streams, aggregate vs one (k chunks/s)"
    row = Row(key, what, "k chunks/s", ratio_label="aggregate / single", target="≥ 0.8, all complete")
    impl = impls.get("agentstream")
    if isinstance(impl, str) or impl is None:
        row.error = impl or "agentstream not available"
        return [row]
    try:
        n, streams = cfg["concurrency_n"], cfg["streams"]
        url = server.base_url(mode="fast", n=n, framing="chunked")
        chosen = _impls(impls, cfg.get("concurrency_impls", ["agentstream"]), row)
        fns: Dict[str, Callable[[], float]] = {}
        owned: List[Any] = []       # reference instances made here, closed at the end
        for name, one in chosen.items():
            pool = [one] * streams if name == "agentstream" else [type(one)(type(one.ref)()) for _ in range(streams)]
            _check_text(name, pool[0].stream(url, _noop), n)
            _concurrent(pool, url, n, streams)            # warm-up: every connection open
            fns[f"{name}.single"] = _single(name, pool[0], url, n)
            fns[f"{name}.many"] = (lambda pool=pool: _concurrent(pool, url, n, streams) / 1e3)
            if pool[0] is not one:
                owned.extend(pool)
        errors: Dict[str, str] = {}
        try:
            samples = interleaved(fns, cfg["concurrency_reps"], errors)
        finally:
            for extra in owned:
                extra.close()
        if any(k.startswith("agentstream.") for k in errors):
            raise BenchError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        ratios: Dict[str, float] = {}
        for name in chosen:
            if f"{name}.single" in errors or f"{name}.many" in errors:
                row.notes[name] = "; ".join(v for k, v in errors.items() if k.startswith(name + "."))
                continue
            one, agg = Figure.of(samples[f"{name}.single"]), Figure.of(samples[f"{name}.many"])
            ratios[name] = agg.median / one.median
            row.cells[name] = agg
            row.extra[f"{name}.single_k_chunks_per_s"] = one.to_dict()
            row.extra[f"{name}.aggregate_k_chunks_per_s"] = agg.to_dict()
            row.notes[name] = f"one stream: {one.fmt(1)} k chunks/s; aggregate / single {ratios[name]:.2f}"
        row.extra.update({"streams": streams, "chunks_per_stream": n, "ratios": ratios})
        row.ratio = ratios["agentstream"]
        row.passed = row.ratio >= 0.8
        if "floor" in ratios:
            rel = row.extra["agentstream_vs_floor"] = ratios["agentstream"] / ratios["floor"]
            row.notes["agentstream"] += (f"; relative to the floor's ratio {rel:.2f} (agentstream ratio / floor "
                                         "ratio: the loss that is the library's, not the server's or machine's)")
    except Exception as exc:
        row = error_row(key, what, exc)
    return [row]


def _single(name: str, impl: Any, url: str, n: int) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        _check_text(name, impl.stream(url, _noop), n)
        return n / (time.perf_counter() - started) / 1e3
    return run


def _concurrent(pool: List[Any], url: str, n: int, streams: int) -> float:
    """Run ``streams`` streams at once (one thread each, ``pool[i]`` in thread i);
    aggregate chunks per second."""
    gate = threading.Barrier(streams + 1)
    failures: List[str] = []
    ends: List[float] = []

    def one(impl: Any) -> None:
        try:
            gate.wait(30)
            text = impl.stream(url, _noop)
            ends.append(time.perf_counter())
            if text != payload.expected_text(n):
                failures.append("wrong text")
        except Exception as exc:  # reported below
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(pool[i],), daemon=True) for i in range(streams)]
    for thread in threads:
        thread.start()
    gate.wait(30)
    started = time.perf_counter()
    for thread in threads:
        thread.join(120)
    if failures or len(ends) != streams:
        raise BenchError(f"{len(ends)} of {streams} streams completed; failures: {failures[:3]}")
    return streams * n / (max(ends) - started)


def ab_concurrency(server: LoopbackServer, patch: Callable[[], Callable[[], None]], reps: int, n: int,
                   framing: str, streams: int = 64) -> Dict[str, List[float]]:
    """bench.experiments: k chunks/s aggregate of ``streams`` agentstream streams (one shared
    Agent), without / with ``patch`` (apply() -> revert()), interleaved; the first pair is a warm-up."""
    from .sdks import AgentstreamImpl

    url, impl = server.base_url(mode="fast", n=n, framing=framing), AgentstreamImpl()
    times: Dict[str, List[float]] = {"base": [], "patched": []}
    for rep in range(reps + 1):
        for variant in ("base", "patched"):
            revert = patch() if variant == "patched" else (lambda: None)
            try:
                times[variant] += [_concurrent([impl] * streams, url, n, streams) / 1e3] if rep else []
            finally:
                revert()
    impl.close()
    return times


def run_all(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any],
            only: Optional[List[str]] = None) -> List[Row]:
    return run_rows((("throughput", throughput), ("latency", latency), ("concurrency", concurrency)), server, impls, cfg, only)
