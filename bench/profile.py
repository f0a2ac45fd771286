"""cProfile of agentstream's streaming path, both threads (``python -m bench.profile``).

The worker thread is profiled by wrapping ``agentstream._worker._main`` in its
own ``cProfile.Profile``; the consumer (``on_text``, queue gets, dispatch) is
profiled on the main thread; the two are merged. Prints the top functions by
own time, per chunk.

    python -m bench.profile [--framing chunked|close] [--n 20000] [--top 25]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from typing import Any, List

from . import payload
from .server import LoopbackServer


def profile_stream(framing: str = "chunked", n: int = 20000, top: int = 25, what: str = "stream",
                   sort: str = "tottime") -> str:
    import agentstream._worker as worker
    from .sdks import AgentstreamImpl

    impl = AgentstreamImpl()
    worker_profiles: List[cProfile.Profile] = []
    original = worker._main

    def profiled_main(shared: Any) -> None:
        prof = cProfile.Profile()
        worker_profiles.append(prof)
        prof.runcall(original, shared)

    out = io.StringIO()
    with LoopbackServer() as server:
        if what == "tool_loop":
            url = server.base_url(mode="tool", steps=n, framing=framing)
            call: Any = lambda: impl.tool_loop(url, n)  # noqa: E731
        else:
            url = server.base_url(mode="fast", n=n, framing=framing)
            call = lambda: impl.stream(url, lambda t: None)  # noqa: E731
        call()  # warm-up (connection, imports)
        worker._main = profiled_main  # type: ignore[assignment]
        try:
            consumer = cProfile.Profile()
            started = time.perf_counter()
            text = consumer.runcall(call)
            elapsed = time.perf_counter() - started
        finally:
            worker._main = original  # type: ignore[assignment]
        impl.close()
    if what == "tool_loop":
        if text != n:
            raise AssertionError(f"the tool loop ran {text} steps, expected {n}")
    elif text != payload.expected_text(n):
        raise AssertionError("agentstream decoded the wrong text under the profiler")
    stats = pstats.Stats(consumer, stream=out)
    for prof in worker_profiles:
        stats.add(prof)
    unit = "step" if what == "tool_loop" else "chunk"
    out.write(f"agentstream {what}, n={n}, {framing}: {elapsed / n * 1e6:.1f} us/{unit} under cProfile "
              f"(both threads merged; tottime per {unit} in the last column)\n")
    col = 2 if sort == "tottime" else 3
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][col], reverse=True)[:top]  # type: ignore[attr-defined]
    out.write(f"{'ncalls':>9} {'tottime s':>10} {'cumtime s':>10} {'us/' + unit:>9}  function\n")
    for (filename, line, func), (cc, nc, tt, ct, _callers) in rows:
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        out.write(f"{nc:>9} {tt:>10.3f} {ct:>10.3f} {tt / n * 1e6:>9.2f}  {where}:{line}({func})\n")
    return out.getvalue()


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framing", default="chunked", choices=["chunked", "close"])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--what", default="stream", choices=["stream", "tool_loop"])
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumtime"])
    args = parser.parse_args(argv)
    sys.stdout.write(profile_stream(args.framing, args.n, args.top, args.what, args.sort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
