"""Models: the ``Model`` interface, offline models, and ``infer_model("provider:name")``."""
from __future__ import annotations

from typing import Any, Union

from ..settings import Timeout
from ._base import (FinishReport, Model, ModelRequestParameters, ResponseInfo, StreamContext, StreamItem,
                    TextChunk, ThinkingChunk, ToolCallChunk, ToolDefinition, UsageReport)
from .function import AgentInfo, FunctionModel
from .test import TestModel

__all__ = [
    "AgentInfo", "FinishReport", "FunctionModel", "Model", "ModelRequestParameters", "ResponseInfo",
    "StreamContext", "StreamItem", "TestModel", "TextChunk", "ThinkingChunk", "Timeout", "ToolCallChunk",
    "ToolDefinition", "UsageReport", "infer_model", "OpenAIChatModel", "AnthropicModel",
]


def infer_model(model: Union[str, Model]) -> Model:
    """A Model from an instance or a ``"provider:model"`` string (see ``KNOWN_PREFIXES``)."""
    if isinstance(model, Model):
        return model
    from ..exceptions import UserError

    if not isinstance(model, str):
        raise UserError(f"model must be a 'provider:model' string or a Model, got {type(model).__name__}")
    if model == "test":
        return TestModel()
    from ._registry import model_from_string

    return model_from_string(model)


def __getattr__(name: str) -> Any:  # lazy: HTTP models import requests only when used
    if name == "OpenAIChatModel":
        from .openai_chat import OpenAIChatModel

        return OpenAIChatModel
    if name == "AnthropicModel":
        from .anthropic import AnthropicModel

        return AnthropicModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
