"""Context accounting (in process, offline model) and memory (fresh processes)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from .server import LoopbackServer
from .stats import BenchError, Figure, Row, error_row, interleaved, run_rows

_PROSE = ("Streaming responses arrive as many small deltas; each one is decoded, turned into an "
          "event and handed to the consumer thread, which calls the user's handlers in order. ")


def _history(n: int) -> List[Any]:
    from agentstream.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    out: List[Any] = []
    for i in range(n):
        text = f"[{i}] " + _PROSE * (1 + i % 3)
        out.append(ModelRequest([UserPromptPart(text)]) if i % 2 == 0 else ModelResponse([TextPart(text)]))
    return out


def _context_run(history_len: int, steps: int, timings: List[float], info: Dict[str, Any]) -> float:
    """One run of ``steps`` tool steps after ``history_len`` messages of history; returns the
    median ContextManager.prepare time (µs) of steps 2..steps (step 1 is kept in ``info``)."""
    from agentstream import Agent
    from agentstream.messages import ToolCallPart
    from agentstream.models import FunctionModel

    def model_fn(messages: List[Any], agent_info: Any) -> Any:
        done = sum(1 for m in messages if type(m).__name__ == "ModelRequest"
                   and any(type(p).__name__ == "ToolReturnPart" for p in m.parts))
        if done < steps:
            return ToolCallPart("noop", {"i": done}, f"call_{done}")
        return "finished"

    def noop(i: int) -> str:
        """Do nothing.

        Args:
            i: the step.
        """
        return f"ok {i}"

    agent = Agent(FunctionModel(model_fn, model_name="gpt-4o-mini"), tools=[noop])
    del timings[:]
    methods: List[str] = []
    result = agent.run("Go on.", message_history=_history(history_len),
                       on_event=lambda e: methods.append(getattr(e, "method", "")) if e.kind == "context_info" else None)
    if result.output != "finished" or len(timings) != steps + 1:
        raise BenchError(f"context run: output {result.output!r}, {len(timings)} prepare calls "
                         f"for {steps + 1} requests")
    info.setdefault(f"first_step_us.h{history_len}", []).append(round(timings[0], 1))
    info["method"] = methods[-1] if methods else "?"
    rest = sorted(timings[1:])
    return rest[len(rest) // 2]


def context(server: Optional[LoopbackServer], impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    key = "context"
    what = f"context accounting per step, {cfg['context_long']} vs 2 messages (µs)"
    row = Row(key, what, "µs/step", ratio_label=f"{cfg['context_long']} msgs / 2 msgs", target="≤ 2.0")
    try:
        import agentstream._context as ctxmod

        manager = getattr(ctxmod, "ContextManager", None)
        if manager is None or not hasattr(manager, "prepare"):
            raise BenchError("agentstream._context.ContextManager.prepare not found (renamed?)")
        original = manager.prepare
        timings: List[float] = []

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                timings.append((time.perf_counter() - started) * 1e6)

        manager.prepare = timed
        try:
            info: Dict[str, Any] = {}
            steps, long = cfg["context_steps"], cfg["context_long"]
            _context_run(2, 2, timings, info)  # warm-up: imports, tokenizer load
            errors: Dict[str, str] = {}
            samples = interleaved({"2 msgs": lambda: _context_run(2, steps, timings, info),
                                   f"{long} msgs": lambda: _context_run(long, steps, timings, info)},
                                  cfg["context_reps"], errors)
        finally:
            manager.prepare = original
        if errors:
            raise BenchError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        short, big = Figure.of(samples["2 msgs"]), Figure.of(samples[f"{long} msgs"])
        row.cells = {"agentstream": big}
        row.notes["agentstream"] = (f"2 msgs: {short.fmt(1)} µs/step; counting method "
                                    f"{info.get('method')!r}; the first step (whole history) is not in "
                                    f"the ratio: {info.get(f'first_step_us.h{long}')} µs")
        row.extra = {"short_us": short.to_dict(), "long_us": big.to_dict(), **info}
        row.ratio = big.median / short.median
        row.passed = row.ratio <= 2.0
    except BenchError as exc:
        row.error = str(exc)
    except Exception as exc:
        row = error_row(key, what, exc)
    return [row]


def _memory_process(server: LoopbackServer, impl: str, tokens: int, runs: int,
                    cfg: Dict[str, Any]) -> Dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "bench.memory", "--impl", impl,
           "--url", server.base_url(mode="fast", n=tokens, framing="close"), "--tokens", str(tokens),
           "--runs", str(runs), "--run-url", server.base_url(mode="fast", n=50, framing="chunked"),
           "--run-tokens", "50"] + (["--patch", cfg["memory_patch"]] if cfg.get("memory_patch") else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=600,
                          env=dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", "")))
    if proc.returncode != 0:
        raise BenchError(f"bench.memory --impl {impl} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any]) -> List[Row]:
    tokens, runs = cfg["memory_tokens"], cfg["memory_runs"]
    rows = []
    peak = Row("memory.peak", f"memory: peak RSS growth, one {tokens:,}-token stream (MB)", "MB",
               ratio_label="growth / (3×text + 30 MB)", target="≤ 3×text + 30 MB", timing=False)
    growth = Row("memory.runs", f"memory: growth over {runs:,} runs (MB RSS; live objects)", "MB",
                 ratio_label="RSS growth MB", target="≤ 2 MB; < 1 object per 2 runs", timing=False)
    try:
        mine = _memory_process(server, "agentstream", tokens, runs, cfg)
        floor = _memory_process(server, "floor", tokens, 0, {})
        for name, data in (("agentstream", mine), ("floor", floor)):
            if not data["text_ok"]:
                raise BenchError(f"{name} decoded the wrong text in the memory stream")
            peak.cells[name] = Figure.of([data["peak_growth_mb"]])
        limit = 3 * mine["text_mb"] + 30
        peak.ratio = mine["peak_growth_mb"] / limit
        peak.passed = peak.ratio <= 1.0
        peak.target = f"≤ {limit:.1f} MB (3×{mine['text_mb']:.1f} + 30)"
        peak.notes["floor"] = "the floor keeps every delta in a list, then joins (informational)"
        peak.extra = {"agentstream": mine, "floor": floor}
        if mine.get("wrong_runs"):
            raise BenchError(f"{mine['wrong_runs']} of {runs} repeated runs decoded the wrong text")
        growth.cells["agentstream"] = Figure.of([mine["rss_growth_mb"]])
        growth.ratio = mine["rss_growth_mb"]
        counted = runs - max(1, runs // 10)
        growth.passed = (mine["rss_growth_mb"] <= 2.0 and mine["object_growth"] * 2 < max(counted, 2)
                         and mine["thread_growth"] <= 0)
        growth.notes["agentstream"] = (f"live objects {mine['after_first']['objects']} -> "
                                       f"{mine['after_all']['objects']}, threads {mine['after_first']['threads']}"
                                       f" -> {mine['after_all']['threads']} (after {max(1, runs // 10)} runs -> "
                                       f"after {runs})")
        growth.extra = {k: mine[k] for k in ("after_first", "after_all", "rss_growth_mb", "object_growth")}
    except BenchError as exc:
        peak.error = growth.error = str(exc)
    except Exception as exc:
        return [error_row("memory", "memory", exc)]
    rows += [peak, growth]
    return rows


def run_all(server: LoopbackServer, impls: Dict[str, Any], cfg: Dict[str, Any],
            only: Optional[List[str]] = None) -> List[Row]:
    return run_rows((("context", context), ("memory", memory)), server, impls, cfg, only)
