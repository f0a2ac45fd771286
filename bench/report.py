"""The table: text for the terminal, Markdown and JSON for ``bench/results/``."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any, Dict, List

from .stats import IMPLS, Row

HEADERS = ["what"] + IMPLS + ["ratio", "target", "result"]


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return "—"
    value = row.ratio
    text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} ({row.ratio_label})" if row.ratio_label else text


def cells(row: Row) -> List[str]:
    out = [row.what]
    for name in IMPLS:
        fig = row.cells.get(name)
        if fig is not None:
            out.append(fig.fmt())
        elif name in row.notes and (row.notes[name].startswith("skipped") or "Error" in row.notes[name]):
            out.append("n/a*")
        else:
            out.append("")
    out += [_ratio(row), row.target, row.status + (f": {row.error}" if row.error else "")]
    return out


def text_table(rows: List[Row]) -> str:
    table = [HEADERS] + [cells(r) for r in rows]
    widths = [min(max(len(line[i]) for line in table), 60) for i in range(len(HEADERS))]
    lines = []
    for k, line in enumerate(table):
        lines.append("  ".join(c[:60].ljust(widths[i]) for i, c in enumerate(line)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: List[Row]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(esc(c) for c in cells(r)) + " |" for r in rows]
    return "\n".join(out)


def notes(rows: List[Row]) -> List[str]:
    """One line per distinct (implementation, note); rows of one group are folded into ``group.*``."""
    seen: Dict[Any, List[str]] = {}
    for row in rows:
        for name, note in row.notes.items():
            seen.setdefault((name, note), []).append(row.key)
    out = []
    for (name, note), keys in seen.items():
        groups = sorted({k.split(".")[0] for k in keys})
        where = ", ".join(g + (".*" if sum(1 for k in keys if k.split(".")[0] == g) > 1 else "")
                          for g in groups) if len(keys) > 1 else keys[0]
        out.append(f"{where} / {name}: {note}")
    return out


def environment(mode: str, seconds: float) -> Dict[str, Any]:
    versions: Dict[str, str] = {}
    for module in ("agentstream", "requests", "urllib3", "openai", "pydantic_ai", "orjson"):
        try:
            mod = __import__(module)
            versions[module] = str(getattr(mod, "__version__", "?"))
        except Exception:
            versions[module] = "not installed"
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"mode": mode, "seconds": round(seconds, 1), "loadavg_end": load, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "versions": versions}


def write(rows: List[Row], env: Dict[str, Any], out_dir: str, name: str) -> List[str]:
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, f"{name}.md")
    rst_path = os.path.join(out_dir, f"{name}.rst")
    json_path = os.path.join(out_dir, f"{name}.json")
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    lines = [f"# agentstream benchmarks ({env['mode']})", "",
             f"{env['date']} · Python {env['python']} · {env['platform']} · {env['cpus']} CPUs · "
             f"{env['seconds']} s · load average at the end {env.get('loadavg_end')}", "", versions, "",
             "Each figure: median over interleaved repetitions [min–max]. Cancel rows: the statistic over "
             "trials [min–max]. `n/a*`: see the notes.", "", markdown_table(rows), ""]
    extra = notes(rows)
    if extra:
        lines += ["Notes:", ""] + [f"* {n}" for n in extra] + [""]
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"environment": env, "rows": [r.to_dict() for r in rows]}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(rst_path, "w", encoding="utf-8") as f:
        f.write(rst_table(rows, env))
    return [md_path, json_path, rst_path]


def rst_table(rows: List[Row], env: Dict[str, Any]) -> str:
    """The table as an RST ``list-table`` (included by ``docs/performance.rst``)."""
    def esc(text: str) -> str:
        return text.replace("*", "\\*").replace("|", "\\|") or ".."
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    out = [f"Last run: {env['date']}, ``{env['mode']}`` mode, Python {env['python']}, {env['cpus']} CPUs, "
           f"{env['seconds']} s, load average at the end {env.get('loadavg_end')} ({versions}).", "",
           ".. list-table::", "   :header-rows: 1", ""]
    for line in [HEADERS] + [cells(r) for r in rows]:
        out.append("   * - " + esc(line[0]))
        out += [f"     - {esc(c)}" for c in line[1:]]
    extra = notes(rows)
    if extra:
        out += ["", "Notes:", ""] + [f"* {esc(n)}" for n in extra]
    return "\n".join(out) + "\n"
