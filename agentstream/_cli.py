"""The ``agentstream`` command: ``run``, ``models`` and ``demo``.

``run`` streams one agent run to the terminal (or one JSON event per line
with ``--json``). The first Ctrl-C cancels the run and keeps what arrived;
a second one quits at once. Without ``--model`` the model is chosen by
``detect_model()``: ``AGENTSTREAM_MODEL``, then an API key in the
environment, then a local OpenAI-compatible server, else offline. ``--base-url`` /
``--api-key`` point a model at another server or key (the key is never printed).

On an error exit the error goes to stderr with the usage line (what the failed run used);
``--json`` adds ``messages`` (the history) to the ``run_complete`` line and ``usage`` /
``messages`` to the ``error`` line, as ``cancelled`` has them.

The model choice (provider table, local-server probing, ``--model`` specs) is in
``_cli_models.py``; ``detect_model`` and ``probe_local_servers`` stay importable from here. The
demo's tools and offline model are in ``_cli_demo.py``. Imports only the public package, ``models``
and those two; never imported by the package (only ``__main__`` runs it).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any, List, Optional, Sequence, Union

from ._cli_demo import DEMO_PROMPT, DEMO_SYSTEM, demo_tools, offline_demo_model
from ._cli_models import (detect_model, import_attr, model_with_endpoint, probe_local_servers, provider_rows,
                          resolve_model)
from .__version__ import __version__
from .agent import Agent
from .exceptions import AgentStreamError, RunCancelled, UserError
from .messages import messages_to_python
from .models import Model, TestModel

__all__ = ["detect_model", "main", "probe_local_servers"]

CANCEL_GRACE = 5.0  # seconds a cancelled run may take to stop before the CLI quits anyway
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def load_tools(specs: Sequence[str]) -> List[Any]:
    """Functions from ``module:func`` items (comma-separated, flag repeatable)."""
    tools = []
    for item in (s.strip() for spec in specs for s in spec.split(",")):
        if not item:
            continue
        if ":" not in item:
            raise UserError(f"--tools {item!r}: expected module:function")
        try:
            tool = import_attr(item)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"--tools {item!r}: {exc}") from None
        if not callable(tool) and not hasattr(tool, "function"):
            raise UserError(f"--tools {item!r} is a {type(tool).__name__}, not a function")
        tools.append(tool)
    return tools


# -- printing --------------------------------------------------------------------------------------
def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _usage_line(usage: Any, model_name: str, elapsed: float) -> str:
    est = " (estimated)" if getattr(usage, "estimated", False) else ""
    return (f"[usage] model={model_name} requests={usage.requests} tool_calls={usage.tool_calls} "
            f"input={usage.input_tokens} output={usage.output_tokens} total={usage.total_tokens}{est} "
            f"time={elapsed:.1f}s")


class TerminalPrinter:
    """Text as it arrives; thinking dimmed on a terminal (plain otherwise);
    tool calls, results and the closing usage on lines of their own."""

    def __init__(self, out: Any, color: bool, model_name: str) -> None:
        self.out, self.color, self.model_name = out, color, model_name
        self.started = time.monotonic()
        self.mode = ""            # "text" or "thinking" while inside a run of deltas
        self.at_line_start = True

    def _write(self, text: str, style: str = "") -> None:
        if not text:
            return
        self.out.write(f"\x1b[{style}m{text}\x1b[0m" if style and self.color else text)
        self.out.flush()
        self.at_line_start = text.endswith("\n")

    def line(self, text: str, style: str = "2") -> None:
        if not self.at_line_start:
            self._write("\n")
        self._write(text, style)
        self._write("\n")
        self.mode = ""

    def handle(self, event: Any) -> None:
        kind = event.kind
        if kind == "thinking_delta":
            if self.mode != "thinking":
                if not self.at_line_start:
                    self._write("\n")
                if not self.color:
                    self._write("[thinking] ")
                self.mode = "thinking"
            self._write(event.text, "2")
        elif kind == "text_delta":
            if self.mode == "thinking" and not self.at_line_start:
                self._write("\n")
            self.mode = "text"
            self._write(event.text)
        elif kind == "tool_call_complete":
            args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in event.args.items())
            self.line(f"[tool] {event.tool_name}({_short(args)})", "36")
        elif kind == "tool_executed":
            if event.success:
                self.line(f"[result] {event.tool_name} -> {_short(event.result)}", "36")
            else:
                self.line(f"[tool error] {event.tool_name}: {_short(event.error)}", "33")
        elif kind == "retrying":
            what = "response cut; sending it again (the text above is void)" if event.reset else "attempt"
            self.line(f"[retrying] {what} {event.attempt} in {event.delay:.1f}s: {_short(str(event.error))}")
        elif kind == "context_compressed":
            self.line(f"[context] compressed {event.original_tokens} -> {event.compressed_tokens} tokens "
                      f"({event.strategy})")
        elif kind == "run_complete":
            self.line(_usage_line(event.usage, self.model_name, time.monotonic() - self.started))
        elif kind == "cancelled":
            pending = f"; tools not run: {', '.join(event.pending_tools)}" if event.pending_tools else ""
            self.line(f"[cancelled] kept {len(event.partial_text)} characters of text{pending}", "33")
            self.line(_usage_line(event.usage, self.model_name, time.monotonic() - self.started))
        elif kind == "error" and not self.at_line_start:  # the message goes to stderr
            self._write("\n")


class JsonPrinter:
    """One ``to_dict()`` per line, for piping (``jq``, another program). The terminal lines
    carry what the run had: ``run_complete`` its ``messages`` (given by the caller),
    ``error`` the ``usage`` and ``messages`` the run's error carries."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def handle(self, event: Any, messages: Optional[List[Any]] = None) -> None:
        data = event.to_dict()
        if event.kind == "error":
            usage = getattr(event.error, "usage", None)
            data.setdefault("usage", usage.to_dict() if hasattr(usage, "to_dict") else None)
            messages = getattr(event.error, "messages", None) or []
        if messages is not None and "messages" not in data:
            data["messages"] = messages_to_python(messages)
        self.out.write(json.dumps(data, default=str) + "\n")
        self.out.flush()


# -- Ctrl-C ----------------------------------------------------------------------------------------
def _hard_exit(code: int) -> None:
    """Quit now: a stuck tool or server must not keep the process alive."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


class Interrupts:
    """While active, the first SIGINT cancels the run (its ``Cancelled`` event is
    printed as usual), a second one, or a cancel that takes over
    ``CANCEL_GRACE`` seconds, quits at once with status 130."""

    def __init__(self, stream: Any, err: Any) -> None:
        self.stream, self.err = stream, err
        self.count = 0
        self.previous: Any = None
        self.timer: Optional[threading.Timer] = None

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _say(self, text: str) -> None:
        try:
            self.err.write(text)
            self.err.flush()
        except (OSError, RuntimeError, ValueError):  # a closed or busy stderr must not stop the exit
            pass

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count > 1:
            self._say("\n[interrupted] quitting\n")
            _hard_exit(EXIT_INTERRUPTED)
        self._say("\n[cancelling] press Ctrl-C again to quit\n")
        self.stream.cancel()
        self.timer = threading.Timer(CANCEL_GRACE, self._give_up)
        self.timer.daemon = True
        self.timer.start()

    def _give_up(self) -> None:
        self._say(f"\n[interrupted] the run did not stop within {CANCEL_GRACE:.0f} s; quitting\n")
        _hard_exit(EXIT_INTERRUPTED)


# -- running ---------------------------------------------------------------------------------------
def stream_to_terminal(agent: Agent, prompt: str, as_json: bool, out: Any = None, err: Any = None) -> int:
    """Run ``prompt``, print it live; the exit status (0, 1 error, 130 cancelled).
    A failed run's error and usage line go to ``err``."""
    out = out or sys.stdout
    err = err or sys.stderr
    color = _use_color(out)
    model_name = agent.model.model_name
    printer = JsonPrinter(out) if as_json else TerminalPrinter(out, color, model_name)
    started = time.monotonic()
    stream = agent.run_stream(prompt)
    with stream, Interrupts(stream, err) as interrupts:
        try:
            complete = None
            for event in stream:
                if as_json and event.kind == "run_complete":
                    complete = event  # printed with the history once the stream has ended
                    continue
                printer.handle(event)
            if complete is not None:
                printer.handle(complete, messages=stream.result().messages)
        except RunCancelled:
            return EXIT_INTERRUPTED if interrupts.count else EXIT_ERROR
        except BrokenPipeError:  # the reader went away (`| head`): stop the run quietly
            stream.cancel()
            _silence_stdout()
            return EXIT_ERROR
        except Exception as exc:  # the run failed (its Error event is printed) or printing did
            err.write(f"agentstream: error: {str(exc) or type(exc).__name__}\n")
            usage = getattr(exc, "usage", None)  # set on every error that ends a run
            if usage is not None:
                err.write(_usage_line(usage, model_name, time.monotonic() - started) + "\n")
            return EXIT_ERROR
    return EXIT_OK


def _use_color(out: Any) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# -- commands --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    model: Union[str, Model]
    if args.base_url or args.api_key:
        model, why = model_with_endpoint(args.model, args.base_url, args.api_key)
        if not args.model:  # the server chose it: say which
            sys.stderr.write(f"agentstream: using {why}\n")
    elif args.model:
        model = resolve_model(args.model)
    else:
        model, why = detect_model(TestModel)
        if isinstance(model, Model):
            sys.stderr.write(f"agentstream: using the {why}\n")
    agent = Agent(model, system_prompt=args.system or (), tools=load_tools(args.tools or []))
    return stream_to_terminal(agent, args.prompt, args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.base_url or args.api_key:
        model, why = model_with_endpoint(args.model, args.base_url, args.api_key)
    elif args.model:
        model, why = resolve_model(args.model), args.model
    else:
        model, why = detect_model(offline_demo_model)
    print(f"agentstream demo - model: {why}")
    print(f"> {DEMO_PROMPT}\n", flush=True)
    agent = Agent(model, system_prompt=DEMO_SYSTEM, tools=demo_tools())
    return stream_to_terminal(agent, DEMO_PROMPT, args.json)


def cmd_models(args: argparse.Namespace) -> int:
    rows = provider_rows()
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    table = [("PREFIX", "DESCRIPTION", "API KEY", "BASE URL")]
    for r in rows:
        if r["key_env"]:
            key = f"{r['key_env']} ({'set' if r['key_set'] else 'not set'}{'' if r['key_required'] else ', optional'})"
        else:
            key = "-"
        url = r["base_url"] or "-"
        if r["base_url_env"]:
            url += f"  (${r['base_url_env']})"
        table.append((r["prefix"], r["description"], key, url))
    table.append(("module:attr", "a Model object from an importable module (--model only)", "-", "-"))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    print("\nUse as --model PREFIX:MODEL, e.g. openai:gpt-4o-mini, ollama:llama3.2. Without --model: "
          "$AGENTSTREAM_MODEL, else an API key found in the environment, else a local server, else offline.")
    return EXIT_OK


def _endpoint_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", metavar="URL", help=(
        "API root of the server, e.g. http://localhost:8080/v1 (overrides the prefix's base URL variable); "
        "with no --model, or a model name without a prefix, an OpenAI-compatible server "
        "(no --model: the first model its /models lists)"))
    parser.add_argument("--api-key", metavar="KEY", help=(
        "API key for the model (overrides its key variable). Command-line flags are visible to other "
        "users in `ps` and kept in shell history: prefer the provider's variable, e.g. OPENAI_API_KEY. "
        "Never printed."))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentstream", description="Stream LLM agent runs in the terminal.")
    parser.add_argument("--version", action="version", version=f"agentstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="stream one agent run", description=(
        "Stream an agent run: text live, thinking dimmed, tool calls and results on their own lines, then "
        "usage. Ctrl-C once cancels and keeps what arrived; twice quits."))
    run.add_argument("prompt")
    run.add_argument("--model", help="PREFIX:MODEL (see `agentstream models`) or module:attr naming a Model")
    run.add_argument("--system", help="system prompt")
    run.add_argument("--tools", action="append", metavar="MODULE:FUNC,...",
                     help="tool functions to import, comma-separated (repeatable)")
    run.add_argument("--json", action="store_true", help="print one JSON event per line")
    _endpoint_flags(run)
    models = sub.add_parser("models", help="list the model prefixes and what each needs")
    models.add_argument("--json", action="store_true", help="one JSON object per line")
    demo = sub.add_parser("demo", help="stream a demo run (a real provider if configured, else offline)")
    demo.add_argument("--model", default=None)
    demo.add_argument("--json", action="store_true", help="print one JSON event per line")
    _endpoint_flags(demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"run": cmd_run, "models": cmd_models, "demo": cmd_demo}[args.command]
    try:
        return command(args)
    except (UserError, AgentStreamError) as exc:
        sys.stderr.write(f"agentstream: error: {exc}\n")
        return EXIT_USAGE if isinstance(exc, UserError) else EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C outside a run (while starting up)
        sys.stderr.write("\n[interrupted]\n")
        return EXIT_INTERRUPTED
