"""Memory of one long stream, and growth over many runs, in a fresh process.

    python -m bench.memory --impl agentstream --url URL --tokens 1000000 --runs 1000 --run-url URL2

Prints one JSON object: for the repeated runs (done first) the RSS and
live-object counts after the first tenth of the runs and at the end; then
``peak_growth_mb`` (peak RSS during the long stream
minus RSS just before it, sampled every 10 ms and checked against
``ru_maxrss``), ``text_mb`` (the text as one Python str, ``sys.getsizeof``),
``text_ok`` (sha256 of the text matches).
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import sys
import threading
import time
from typing import Any, Callable, Dict, List

from . import payload

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2 ** 20


class PeakSampler:
    """Samples RSS every ``interval`` seconds on a thread; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def _streamer(impl: str) -> Callable[[str], str]:
    if impl == "agentstream":
        from .sdks import AgentstreamImpl

        agentstream = AgentstreamImpl()
        return lambda url: agentstream.stream(url, _noop)
    from .refs import Floor

    floor = Floor()
    return lambda url: floor.stream(url, _noop)


def _noop(text: str) -> None:
    pass


def measure(impl: str, url: str, tokens: int, runs: int, run_url: str, run_tokens: int) -> Dict[str, Any]:
    """The repeated runs first (so the long stream's freed memory does not hide growth), then
    the long stream."""
    stream = _streamer(impl)
    stream(run_url)  # warm-up: imports, connection, first-use caches
    out: Dict[str, Any] = {"impl": impl, "tokens": tokens}
    if runs:
        out.update(_repeated(stream, run_url, run_tokens, runs))
    gc.collect()
    before = rss_mb()
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with PeakSampler() as sampler:
        text = stream(url)
    elapsed = time.perf_counter() - started
    max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = max(sampler.peak, max_after if max_after > max_before else 0.0)
    out.update({
        "seconds": elapsed, "rss_before_mb": before, "peak_mb": peak, "peak_growth_mb": peak - before,
        "text_mb": sys.getsizeof(text) / 2 ** 20, "text_utf8_mb": len(text.encode("utf-8")) / 2 ** 20,
        "text_ok": hashlib.sha256(text.encode("utf-8")).hexdigest() == payload.text_digest(tokens)})
    return out


def _repeated(stream: Callable[[str], str], url: str, tokens: int, runs: int) -> Dict[str, Any]:
    """RSS and live objects after the first tenth of ``runs`` and after all of them."""
    expected = payload.expected_text(tokens)
    first = max(1, runs // 10)
    marks: List[Dict[str, float]] = []
    wrong = 0
    for i in range(runs):
        if stream(url) != expected:
            wrong += 1
        if i + 1 in (first, runs):
            gc.collect()
            marks.append({"rss_mb": rss_mb(), "objects": len(gc.get_objects()),
                          "threads": threading.active_count()})
    return {"runs": runs, "run_tokens": tokens, "wrong_runs": wrong, "after_first": marks[0],
            "after_all": marks[-1], "rss_growth_mb": marks[-1]["rss_mb"] - marks[0]["rss_mb"],
            "object_growth": marks[-1]["objects"] - marks[0]["objects"],
            "thread_growth": marks[-1]["threads"] - marks[0]["threads"]}


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description="memory of one long stream and of repeated runs")
    parser.add_argument("--impl", default="agentstream", choices=["agentstream", "floor"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--runs", type=int, default=0)
    parser.add_argument("--run-url", required=True)
    parser.add_argument("--run-tokens", type=int, default=50)
    parser.add_argument("--patch", default="", help="apply bench.experiments patches first, e.g. e10_compact_text")
    args = parser.parse_args(argv)
    if args.patch:
        from . import experiments

        for name in args.patch.split(","):
            getattr(experiments, name)()
    result = measure(args.impl, args.url, args.tokens, args.runs, args.run_url, args.run_tokens)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
