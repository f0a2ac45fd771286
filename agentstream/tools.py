"""Tools: plain functions the model may call.

``Tool.from_function`` builds the JSON schema from the signature (pydantic)
and the descriptions from the docstring (Google, NumPy or Sphinx style).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from ._function_schema import FunctionSchema, ToolDefinitionError, function_schema
from ._run_context import RunContext
from .exceptions import UserError
from .models._base import ToolDefinition

__all__ = ["RunContext", "Tool"]


@dataclass
class Tool:
    """A function exposed to the model.

    ``max_retries``: how often invalid arguments or ``ModelRetry`` may be
    sent back to the model for this tool (None: the agent's ``retries``).
    """

    function: Callable[..., Any]
    schema: FunctionSchema
    max_retries: Optional[int] = None

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, takes_ctx: Optional[bool] = None,
                      name: Optional[str] = None, description: Optional[str] = None,
                      retries: Optional[int] = None) -> "Tool":
        if isinstance(function, Tool):
            return function
        try:
            schema = function_schema(function, name=name, description=description, takes_ctx=takes_ctx)
        except ToolDefinitionError as exc:
            raise UserError(str(exc)) from exc
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise UserError(f"retries for tool {schema.name!r} must be an int >= 0, got {retries!r}")
        return cls(function, schema, retries)

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def takes_ctx(self) -> bool:
        return self.schema.takes_ctx

    def definition(self) -> ToolDefinition:
        return ToolDefinition(self.schema.name, self.schema.description, self.schema.json_schema)


def tools_by_name(tools: Any) -> Dict[str, Tool]:
    """Index tools by name; duplicate names are an error."""
    result: Dict[str, Tool] = {}
    for item in tools or ():
        tool = Tool.from_function(item)
        if tool.name in result:
            raise UserError(f"duplicate tool name {tool.name!r}: each tool needs a unique name "
                            "(pass name=... to register one under another name)")
        result[tool.name] = tool
    return result
