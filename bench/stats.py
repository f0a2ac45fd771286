"""Figures (median with spread), interleaved repetitions, and the rows of the table."""
from __future__ import annotations

import math
import statistics
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

IMPLS = ["agentstream", "floor", "requests+queue", "openai SDK", "pydantic-ai"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """A median over repetitions, with the smallest and largest repetition."""

    median: float
    lo: float
    hi: float
    n: int
    samples: List[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Figure":
        values = list(samples)
        return cls(statistics.median(values), min(values), max(values), len(values), values)

    def fmt(self, digits: int = 2) -> str:
        if self.n == 1:
            return _num(self.median, digits)
        return f"{_num(self.median, digits)} [{_num(self.lo, digits)}–{_num(self.hi, digits)}]"

    def to_dict(self) -> Dict[str, Any]:
        return {"median": self.median, "min": self.lo, "max": self.hi, "n": self.n,
                "samples": [round(s, 6) for s in self.samples]}


def _num(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


class BenchError(Exception):
    """A benchmark failed or decoded the wrong text (CI fails on these)."""


def interleaved(fns: Dict[str, Callable[[], float]], reps: int,
                errors: Dict[str, str]) -> Dict[str, List[float]]:
    """Run A B C A B C ...; an implementation that raises is dropped (reason in ``errors``).

    A ``BenchError`` (wrong text) is re-raised: it fails the row, whoever raised it.
    """
    out: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            if name in errors:
                continue
            try:
                out[name].append(fn())
            except BenchError:
                raise
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
    return {name: values for name, values in out.items() if values}


@dataclass
class Row:
    """One line of the table."""

    key: str                               # stable id, e.g. "throughput.chunked"
    what: str                              # shown in the table
    unit: str
    cells: Dict[str, Figure] = field(default_factory=dict)
    notes: Dict[str, str] = field(default_factory=dict)    # impl -> why it has no figure
    ratio: Optional[float] = None
    ratio_label: str = ""
    target: str = ""
    passed: Optional[bool] = None          # None: not judged
    timing: bool = True                    # CI reports timing rows, does not fail on them
    error: Optional[str] = None            # the benchmark errored / wrong text
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if self.passed is None:
            return "—"
        return "pass" if self.passed else "FAIL"

    def to_dict(self) -> Dict[str, Any]:
        return {"key": self.key, "what": self.what, "unit": self.unit,
                "cells": {k: v.to_dict() for k, v in self.cells.items()}, "notes": self.notes,
                "ratio": self.ratio, "ratio_label": self.ratio_label, "target": self.target,
                "passed": self.passed, "status": self.status, "timing": self.timing,
                "error": self.error, "extra": self.extra}


def error_row(key: str, what: str, exc: BaseException) -> Row:
    traceback.print_exc()
    return Row(key, what, "", error=f"{type(exc).__name__}: {exc}", passed=False)


def run_rows(benchmarks: Any, server: Any, impls: Any, cfg: Any, only: Any = None) -> List["Row"]:
    """Run each ``(name, fn)`` benchmark (unless ``only`` excludes it); an error becomes an error row."""
    rows: List[Row] = []
    for name, fn in benchmarks:
        if only and name not in only:
            continue
        try:
            rows.extend(fn(server, impls, cfg))
        except BenchError as exc:
            rows.append(Row(name, name, "", error=str(exc), passed=False))
        except Exception as exc:
            rows.append(error_row(name, name, exc))
    return rows
