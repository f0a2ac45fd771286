"""``agentstream demo``: its prompt, its two tools and the scripted offline model it falls back on.

Part of the command (``_cli.py``); imports only ``messages`` and ``models``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List

from .messages import ToolReturnPart
from .models import FunctionModel, ThinkingChunk, ToolCallChunk
from .models.test import generate_args

__all__ = ["DEMO_PROMPT", "DEMO_SYSTEM", "demo_tools", "offline_demo_model"]

DEMO_PROMPT = "What's the weather in Paris, and what is 2 + 3? Use the tools."
DEMO_SYSTEM = "You are a helpful, terse assistant. Use the tools when they help."


def demo_tools() -> List[Any]:
    def get_weather(city: str) -> str:
        """Current weather for a city (demo data).

        Args:
            city: City name, e.g. "Paris".
        """
        return f"{city}: 18°C, light rain"

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return [get_weather, add]


def _paced(text: str, cancel: Any, size: int = 3, delay: float = 0.015) -> Iterator[str]:
    for i in range(0, len(text), size):
        if cancel.wait(delay):
            return
        yield text[i:i + size]


def offline_demo_model() -> FunctionModel:
    """A scripted model (no network): thinks, calls the demo tools, then answers from their results."""
    demo_args: Dict[str, Dict[str, Any]] = {"get_weather": {"city": "Paris"}, "add": {"a": 2, "b": 3}}

    def respond(messages: List[Any], info: Any) -> Iterator[Any]:
        results = {p.tool_name: p.content for m in messages for p in getattr(m, "parts", ())
                   if isinstance(p, ToolReturnPart)}
        if not results and info.tools:
            for piece in _paced("Two questions: the weather and a sum. One tool each.", info.cancel, 6):
                yield ThinkingChunk(piece)
            for i, tool in enumerate(info.tools):
                args = demo_args.get(tool.name) or generate_args(tool.parameters_json_schema)
                yield ToolCallChunk(("call", i), tool.name, f"call_demo_{i}", json.dumps(args))
            return
        weather = results.get("get_weather", "unknown")
        total = results.get("add", "?")
        yield from _paced(f"Weather: {weather}. And 2 + 3 = {total}. "
                          "(This answer came from the offline demo model; set OPENAI_API_KEY or "
                          "ANTHROPIC_API_KEY, or start Ollama, to talk to a real one.)", info.cancel)

    return FunctionModel(respond, model_name="offline-demo")
