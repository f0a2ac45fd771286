"""Configuration value objects: ModelSettings, Timeout, Compression.

(``UsageLimits`` lives in ``usage``.) Leaf module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, List, Mapping, Optional, Union

from .exceptions import UserError

__all__ = ["Compression", "ModelSettings", "Timeout"]


def _number(owner: str, name: str, value: Any, *, allow_none: bool = True, low: float = 0.0,
            high: float = math.inf, strictly_positive: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UserError(f"{owner}.{name} must be a number, got {value!r}")
    if value < low or value > high or (strictly_positive and value <= 0):
        bound = f"> {low}" if strictly_positive else f"between {low} and {high}"
        raise UserError(f"{owner}.{name} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class Timeout:
    """HTTP timeouts, in seconds.

    ``connect``: to open the connection and get the response headers.
    ``idle``: longest wait between two bytes that carry content (keep-alive
    comments and pings do not reset it). ``total``: bound for a whole
    response (None: no bound).

    Usage::

        OpenAIChatModel("gpt-4o-mini", timeout=Timeout(connect=5, idle=30, total=300))
        OpenAIChatModel("gpt-4o-mini", timeout=30)   # same value for connect and idle
    """

    connect: Optional[float] = 10.0
    idle: Optional[float] = 60.0
    total: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("connect", "idle", "total"):
            _number("Timeout", name, getattr(self, name), strictly_positive=True)

    @classmethod
    def coerce(cls, value: Union["Timeout", float, int, None]) -> "Timeout":
        """Accept a Timeout, a number (connect and idle) or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(connect=float(value), idle=float(value))
        raise UserError(f"timeout must be a Timeout or a number of seconds, got {value!r}")


@dataclass(frozen=True)
class ModelSettings:
    """Settings sent with each model request; None means "provider default".

    ``extra_body`` is merged into the request JSON as is (for provider
    options agentstream does not name). A plain dict with these keys is
    accepted wherever ModelSettings is; an unknown key is an error.
    """

    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    stop: Optional[List[str]] = None
    seed: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    tool_choice: Optional[Any] = None
    parallel_tool_calls: Optional[bool] = None
    thinking_budget: Optional[int] = None
    extra_headers: Optional[Dict[str, str]] = field(default=None, repr=False)  # may hold keys
    extra_body: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise UserError(f"ModelSettings.max_tokens must be a positive int, got {self.max_tokens!r}")
        _number("ModelSettings", "temperature", self.temperature, high=2.0)
        _number("ModelSettings", "top_p", self.top_p, high=1.0)
        _number("ModelSettings", "presence_penalty", self.presence_penalty, low=-2.0, high=2.0)
        _number("ModelSettings", "frequency_penalty", self.frequency_penalty, low=-2.0, high=2.0)
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", [self.stop])
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise UserError(f"ModelSettings.seed must be an int, got {self.seed!r}")

    @classmethod
    def coerce(cls, value: Union["ModelSettings", Mapping[str, Any], None]) -> "ModelSettings":
        """Accept a ModelSettings, a dict of its fields, or None."""
        if value is None:
            return cls()
        if isinstance(value, ModelSettings):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise UserError(f"unknown model setting(s) {unknown}; known: {sorted(known)} "
                                "(put provider-specific options in extra_body)")
            return cls(**dict(value))
        raise UserError(f"model_settings must be a dict or ModelSettings, got {type(value).__name__}")

    def merge(self, other: Optional["ModelSettings"]) -> "ModelSettings":
        """These settings overridden by the non-None fields of ``other``."""
        if other is None:
            return self
        changes = {f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) is not None}
        return replace(self, **changes)


@dataclass(frozen=True)
class Compression:
    """Keep the history inside the model's context window.

    When the estimated request size passes ``threshold`` × the context
    window (or ``target_tokens`` when the window is unknown), the history
    is compressed to at most ``target_tokens`` (default: half the window).

    ``strategy``: ``"truncate"`` drops the oldest turns (never separating a
    tool call from its result); ``"summarize"`` asks the model to summarise
    the middle of the conversation and falls back to truncate.
    ``keep_first`` messages (the system prompt and first user prompt) and the
    last ``keep_last`` messages are always kept.

    Usage::

        agent.run_stream(prompt, compression=Compression("truncate", target_tokens=50_000))
    """

    strategy: str = "truncate"
    threshold: float = 0.8
    target_tokens: Optional[int] = None
    keep_first: int = 1
    keep_last: int = 4
    summary_prompt: Optional[str] = None

    def __post_init__(self) -> None:
        if self.strategy not in ("truncate", "summarize"):
            raise UserError(f"Compression.strategy must be 'truncate' or 'summarize', got {self.strategy!r}")
        _number("Compression", "threshold", self.threshold, allow_none=False, high=1.0, strictly_positive=True)
        if self.target_tokens is not None and (not isinstance(self.target_tokens, int) or self.target_tokens < 1):
            raise UserError(f"Compression.target_tokens must be a positive int, got {self.target_tokens!r}")
        if self.keep_first < 0 or self.keep_last < 0:
            raise UserError("Compression.keep_first and keep_last must be >= 0")
