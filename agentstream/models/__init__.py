"""Models: the ``Model`` interface, offline models, and ``infer_model("provider:name")``."""
from __future__ import annotations

from typing import Any, Union

from ..settings import Timeout
from .._channel import Batch
from ._base import (FinishReport, Model, ModelRequestParameters, ResponseInfo, StreamContext, StreamItem,
                    TextChunk, ThinkingChunk, ToolCallChunk, ToolDefinition, UsageReport)
from .function import AgentInfo, FunctionModel
from .test import TestModel

__all__ = [
    "AgentInfo", "Batch", "FinishReport", "FunctionModel", "Model", "ModelRequestParameters", "ResponseInfo",
    "StreamContext", "StreamItem", "TestModel", "TextChunk", "ThinkingChunk", "Timeout", "ToolCallChunk",
    "ToolDefinition", "UsageReport", "infer_model", "OpenAIChatModel", "AnthropicModel",
    "OpenAIResponsesModel", "GeminiModel",
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
    from ._infer import model_from_string

    return model_from_string(model)


def __getattr__(name: str) -> Any:  # lazy: HTTP models import requests only when used
    if name == "OpenAIChatModel":
        from .openai_chat import OpenAIChatModel

        return OpenAIChatModel
    if name == "AnthropicModel":
        from .anthropic import AnthropicModel

        return AnthropicModel
    if name == "OpenAIResponsesModel":
        from .openai_responses import OpenAIResponsesModel

        return OpenAIResponsesModel
    if name == "GeminiModel":
        from .gemini import GeminiModel

        return GeminiModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
