"""TestModel: calls every tool once with schema-valid arguments, then answers.

No network, deterministic, streamed in small deltas: the model behind
``make demo`` when no provider is configured, and in tests.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Optional

from ..messages import ModelRequest, RetryPromptPart, ToolReturnPart
from ._base import ToolCallChunk
from .function import AgentInfo, FunctionModel

__all__ = ["TestModel"]


class TestModel(FunctionModel):
    """Offline model. First response: a call to every tool (or the output tool);
    next: ``custom_output_text`` or a JSON summary of the tool results.

    Args:
        custom_output_text: the final answer text.
        call_tools: "all", or a list of tool names to call.
        chunk_size: characters per text delta.
        custom_output_args: arguments for the output tool (structured output).
    """

    __test__ = False  # not a pytest class

    def __init__(self, custom_output_text: Optional[str] = None, *, call_tools: Any = "all",
                 chunk_size: int = 4, custom_output_args: Optional[Dict[str, Any]] = None,
                 model_name: str = "test", context_window: Optional[int] = None) -> None:
        super().__init__(self._respond, model_name=model_name, context_window=context_window)
        self.custom_output_text = custom_output_text
        self.call_tools = call_tools
        self.chunk_size = max(1, chunk_size)
        self.custom_output_args = custom_output_args
        self.system = "test"

    def _respond(self, messages: List[Any], info: AgentInfo) -> Iterator[Any]:
        last = messages[-1] if messages else None
        answered = isinstance(last, ModelRequest) and any(
            isinstance(p, (ToolReturnPart, RetryPromptPart)) for p in last.parts)
        calls = 0
        if not answered:
            tools = [t for t in info.tools if self.call_tools == "all" or t.name in self.call_tools]
            for tool in tools:
                yield ToolCallChunk(("tool", calls), tool.name, f"call_test_{calls}",
                                    json.dumps(generate_args(tool.parameters_json_schema)))
                calls += 1
            if calls:
                return
        if info.output_tool is not None:
            args = self.custom_output_args or generate_args(info.output_tool.parameters_json_schema)
            yield ToolCallChunk(("tool", calls), info.output_tool.name, "call_test_final", json.dumps(args))
            return
        text = self.custom_output_text
        if text is None:
            results = {p.tool_name: p.content for m in messages if isinstance(m, ModelRequest)
                       for p in m.parts if isinstance(p, ToolReturnPart)}
            text = json.dumps(results, default=str) if results else "success (no tool calls)"
        for i in range(0, len(text), self.chunk_size):
            yield text[i:i + self.chunk_size]


def generate_args(schema: Dict[str, Any], defs: Optional[Dict[str, Any]] = None) -> Any:
    """A value valid for a JSON schema (simple and deterministic)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return generate_args(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return generate_args(options[0], defs)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {name: generate_args(props[name], defs) for name in required if name in props}
    if kind == "array":
        return [generate_args(schema.get("items", {}), defs)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(0, int(schema.get("minimum", 0)))
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    if schema.get("format") == "date-time":
        return "2024-01-01T00:00:00Z"
    if schema.get("format") == "date":
        return "2024-01-01"
    return "a" * max(1, schema.get("minLength", 1))


__all__ += ["generate_args"]
