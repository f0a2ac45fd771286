"""``model_from_string("provider:model")``: the model class and settings for a prefix of the
table in ``_registry`` (the one place that imports every provider module, each only when used)."""
from __future__ import annotations

from typing import Any

from ..exceptions import UserError
from ._base import Model
from ._registry import PROVIDERS

__all__ = ["model_from_string"]


def _known() -> str:
    return ", ".join(f"{name}:" for name in PROVIDERS)


def model_from_string(spec: str, **kwargs: Any) -> Model:
    """A Model for ``"provider:model"``; extra keyword arguments go to the model class.

    Raises:
        UserError: unknown prefix, missing model name, or a missing API key.
    """
    if not isinstance(spec, str):
        raise UserError(f"model must be a 'provider:model' string, got {type(spec).__name__}")
    prefix, sep, name = spec.strip().partition(":")
    prefix = prefix.strip().lower()
    if prefix == "test":
        from .test import TestModel

        return TestModel(**kwargs)
    provider = PROVIDERS.get(prefix)
    if provider is None:
        hint = "" if sep else " (a model string looks like 'provider:model')"
        raise UserError(f"unknown model provider {prefix!r} in {spec!r}{hint}; known prefixes: {_known()}")
    name = name.strip()
    if not name:
        raise UserError(f"model string {spec!r} has no model name after {prefix + ':'!r}, "
                        f"e.g. '{prefix}:<model>'")
    if provider.api == "anthropic":
        from .anthropic import AnthropicModel

        return AnthropicModel(name, **kwargs)
    if provider.api == "gemini":
        from .gemini import GeminiModel

        return GeminiModel(name, **kwargs)
    if provider.api == "openai-responses":
        from .openai_responses import OpenAIResponsesModel

        return OpenAIResponsesModel(name, **kwargs)
    from .openai_chat import OpenAIChatModel

    return OpenAIChatModel(name, provider=prefix, **kwargs)
