"""The ``agentstream`` command: ``demo`` streams a real agent run to the terminal."""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from .agent import Agent
from .exceptions import RunCancelled
from .models import TestModel


def _demo_tools() -> List[Any]:
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
        """
        return f"{city}: 18°C, light rain"

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return [get_weather, add]


def _print_stream(agent: Agent, prompt: str) -> int:
    out = sys.stdout
    stream = agent.run_stream(
        prompt,
        on_text=lambda text: (out.write(text), out.flush()),
        on_thinking=lambda text: (out.write(f"\x1b[2m{text}\x1b[0m"), out.flush()),
        on_tool_call=lambda call: out.write(f"\n[tool] {call.tool_name}({call.args})\n"),
        on_tool_result=lambda ev: out.write(f"[result] {ev.tool_name} -> {ev.result!r}\n"),
    )
    try:
        result = stream.result()
    except (KeyboardInterrupt, RunCancelled):
        out.write(f"\n[cancelled] kept {len(stream.text)} characters\n")
        return 130
    u = result.usage
    out.write(f"\n[usage] requests={u.requests} tool_calls={u.tool_calls} input={u.input_tokens} "
              f"output={u.output_tokens} total={u.total_tokens}\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="agentstream")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="stream a demo agent run")
    demo.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    if args.command == "demo":
        model = args.model or TestModel(custom_output_text=None)
        print(f"agentstream demo — model: {model if isinstance(model, str) else 'offline TestModel'}")
        agent = Agent(model, system_prompt="You are a helpful, terse assistant.", tools=_demo_tools())
        return _print_stream(agent, "What's the weather in Paris, and what is 2 + 3?")
    return 2
