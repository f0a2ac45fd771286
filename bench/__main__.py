"""``python -m bench``: the whole suite, one table (``make bench`` / ``make bench-quick``).

    python -m bench                 # full suite (< 5 min on 2 cores) -> bench/results/latest.*
    python -m bench --quick         # reduced (< 1 min)                -> bench/results/quick.*
    python -m bench --only throughput,cancel --impls agentstream,floor

Exit status: 1 if a benchmark errored or decoded the wrong text; with
``--ci`` also if a non-timing row (memory) missed its target; with
``--strict`` if any row missed its target. Timing rows are otherwise only
reported (machines are noisy).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List

from . import report, rows_io, rows_local, rows_stream
from .server import LoopbackServer
from .stats import IMPLS, Row

ALL = IMPLS
FULL: Dict[str, Any] = {
    "n": 20000, "slow_n": 5000, "slow_impls": ["pydantic-ai"], "reps": 5,
    "throughput_impls": ALL, "throughput_close_impls": ["agentstream", "floor", "requests+queue"],
    "latency_impls": ALL, "latency_tokens": 100, "latency_ms": 20, "latency_reps": 3,
    "cancel_impls": ALL, "cancel_trials": 15, "cancel_slow_impls": ["openai SDK"], "cancel_slow_trials": 1,
    "tool_impls": ["agentstream", "floor", "pydantic-ai"], "tool_steps": 50, "tool_reps": 5,
    "context_long": 500, "context_steps": 20, "context_reps": 5,
    "memory_tokens": 1_000_000, "memory_runs": 1000,
    "streams": 64, "concurrency_n": 2000, "concurrency_reps": 3,
    "concurrency_impls": ["agentstream", "floor", "requests+queue"],
}
QUICK: Dict[str, Any] = dict(
    FULL, n=5000, slow_n=1000, reps=3,
    latency_impls=["agentstream", "floor", "requests+queue"], latency_tokens=40, latency_reps=2,
    cancel_trials=6, cancel_slow_trials=0, tool_reps=2, context_steps=10, context_reps=3,
    memory_tokens=100_000, memory_runs=200, concurrency_n=500, concurrency_reps=2)
GROUPS = ["throughput", "latency", "cancel", "tool_loop", "context", "memory", "concurrency"]


def run(cfg: Dict[str, Any], only: List[str], impl_names: List[str]) -> List[Row]:
    from .sdks import build_impls

    impls = build_impls(impl_names)
    for name in IMPLS:
        if name not in impls:
            impls[name] = "not selected (--impls)"
    for name, impl in impls.items():
        if isinstance(impl, str):
            print(f"[bench] {name}: {impl}", file=sys.stderr)
    rows: List[Row] = []
    with LoopbackServer() as server:
        for group in GROUPS:
            if only and group not in only:
                continue
            started = time.perf_counter()
            module = rows_stream if group in ("throughput", "latency", "concurrency") else \
                rows_io if group in ("cancel", "tool_loop") else rows_local
            new = module.run_all(server, impls, cfg, [group])
            rows.extend(new)
            print(f"[bench] {group}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for impl in impls.values():
        if not isinstance(impl, str):
            try:
                impl.close()
            except Exception:
                pass
    order = {g: i for i, g in enumerate(GROUPS)}
    rows.sort(key=lambda r: order.get(r.key.split(".")[0], 99))
    return rows


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 1 min)")
    parser.add_argument("--only", default="", help=f"comma-separated groups of {GROUPS}")
    parser.add_argument("--impls", default="", help=f"comma-separated implementations of {IMPLS}")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--name", default="", help="results file name (default latest / quick)")
    parser.add_argument("--ci", action="store_true", help="also fail when a non-timing row misses its target")
    parser.add_argument("--strict", action="store_true", help="fail when any row misses its target")
    parser.add_argument("--patch", default="", help="development only: apply bench.experiments patches "
                        "(e.g. e2_bulk_chunked,e10_compact_text) to agentstream first")
    args = parser.parse_args(argv)
    only = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in only if g not in GROUPS]
    if unknown:
        parser.error(f"unknown groups {unknown}; known: {GROUPS}")
    impl_names = [i.strip() for i in args.impls.split(",") if i.strip()] or list(IMPLS)
    cfg = dict(QUICK if args.quick else FULL)
    if args.patch:
        from . import experiments

        for patch in args.patch.split(","):
            getattr(experiments, patch)()
        cfg["memory_patch"] = args.patch
        print(f"[bench] patched agentstream with {args.patch} (not the shipped code)", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > (os.cpu_count() or 1) * 0.5:
        print(f"[bench] warning: load average {load:.2f} on {os.cpu_count()} CPUs before the run: "
              "timings will be noisy", file=sys.stderr)
    started = time.perf_counter()
    rows = run(cfg, only, impl_names)
    mode = ("quick" if args.quick else "full") + (f", patched: {args.patch}" if args.patch else "")
    env = report.environment(mode, time.perf_counter() - started)
    print()
    print(report.text_table(rows))
    for note in report.notes(rows):
        print(f"  * {note}")
    name = args.name or ("quick" if args.quick else "latest")
    paths = report.write(rows, env, args.out, name)
    print(f"\n[bench] {env['seconds']} s; wrote {', '.join(os.path.relpath(p) for p in paths)}")
    errors = [r for r in rows if r.error]
    missed = [r for r in rows if r.passed is False and not r.error]
    hard = [r for r in missed if not r.timing]
    print(f"[bench] {len(rows)} rows: {sum(1 for r in rows if r.passed)} pass, {len(missed)} miss their target "
          f"({len(hard)} non-timing), {len(errors)} errors")
    if errors or (args.strict and missed) or (args.ci and hard):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
