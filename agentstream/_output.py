"""Output types: plain text, or a validated structured value.

For a structured ``output_type`` the model gets a ``final_result`` tool
whose arguments are the value; a plain-text answer is also accepted when it
is valid JSON for the type (providers' JSON mode). Validation failures go
back to the model as a retry prompt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from pydantic import TypeAdapter

from .exceptions import UserError
from .models._base import ToolDefinition

OUTPUT_TOOL_NAME = "final_result"


def _strip_titles(schema: Dict[str, Any]) -> Dict[str, Any]:
    schema = dict(schema)
    schema.pop("title", None)
    return schema


@dataclass
class OutputSchema:
    """How to get and validate the run's output."""

    output_type: Any = str
    tool_definition: Optional[ToolDefinition] = None
    wrapped: bool = False           # non-object types are sent as {"response": value}
    adapter: Optional[TypeAdapter] = None

    @classmethod
    def build(cls, output_type: Any) -> "OutputSchema":
        if output_type is str or output_type is None:
            return cls(str)
        try:
            adapter = TypeAdapter(output_type)
            schema = adapter.json_schema()
        except Exception as exc:  # pydantic raises several kinds for unsupported types
            raise UserError(f"output_type {output_type!r} is not supported by pydantic: {exc}") from exc
        wrapped = schema.get("type") != "object"
        if wrapped:
            schema = {"type": "object", "properties": {"response": schema}, "required": ["response"]}
        description = (getattr(output_type, "__doc__", None) or "").strip() if not wrapped else ""
        tool = ToolDefinition(OUTPUT_TOOL_NAME, description or "The final response, as structured data.",
                              _strip_titles(schema), is_output=True)
        return cls(output_type, tool, wrapped, adapter)

    @property
    def is_text(self) -> bool:
        return self.tool_definition is None

    @property
    def allow_text(self) -> bool:
        return True

    @property
    def tool_name(self) -> Optional[str]:
        return self.tool_definition.name if self.tool_definition else None

    def from_args(self, args: Dict[str, Any]) -> Any:
        assert self.adapter is not None
        if self.wrapped:
            if "response" not in args:
                raise ValueError("missing required argument 'response'")
            return self.adapter.validate_python(args["response"])
        return self.adapter.validate_python(args)

    def from_text(self, text: str) -> Any:
        if self.adapter is None:
            return text
        stripped = text.strip()
        if stripped.startswith("```"):  # ```json ... ``` fences
            stripped = stripped.split("\n", 1)[-1].rsplit("```", 1)[0]
        return self.adapter.validate_json(stripped)
