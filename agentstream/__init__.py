"""agentstream: stream LLM agent runs — text, thinking, tool calls — from synchronous code.

Usage::

    from agentstream import Agent

    agent = Agent("openai:gpt-4o-mini", tools=[get_weather])
    for event in agent.run_stream("Weather in Paris?", on_text=print):
        ...
"""
import logging

from . import events
from .__version__ import __version__
from ._cancel import CancelToken
from ._run_context import RunContext
from .agent import Agent
from .exceptions import (AgentStreamError, AuthenticationError, ModelHTTPError, ModelRetry, ModelStreamError,
                         RateLimitError, RunCancelled, StreamTimeout, UnexpectedModelBehavior, UsageLimitExceeded,
                         UserError)
from .messages import (ModelMessage, ModelMessagesTypeAdapter, ModelRequest, ModelResponse, RetryPromptPart,
                       SystemPromptPart, TextPart, ThinkingPart, ToolCallPart, ToolReturnPart, UserPromptPart,
                       messages_from_json, messages_to_json)
from ._openai_format import messages_from_openai, messages_to_openai
from .result import RunResult
from .settings import Compression, ModelSettings, Timeout
from .stream import AgentStream
from .tools import Tool
from .usage import Usage, UsageLimits

__all__ = sorted([
    "Agent", "AgentStream", "AgentStreamError", "AuthenticationError", "CancelToken", "Compression",
    "ModelHTTPError", "ModelMessage", "ModelMessagesTypeAdapter", "ModelRequest", "ModelResponse",
    "ModelRetry", "ModelSettings", "ModelStreamError", "RateLimitError", "RetryPromptPart", "RunCancelled",
    "RunContext", "RunResult", "StreamTimeout", "SystemPromptPart", "TextPart", "ThinkingPart", "Timeout",
    "Tool", "ToolCallPart", "ToolReturnPart", "UnexpectedModelBehavior", "Usage", "UsageLimitExceeded",
    "UsageLimits", "UserError", "UserPromptPart", "__version__", "events", "messages_from_json",
    "messages_from_openai", "messages_to_json", "messages_to_openai",
])

logging.getLogger("agentstream").addHandler(logging.NullHandler())
