"""Usage accounting and usage limits.

Imports only ``exceptions`` from the package.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Optional

from .exceptions import UserError

__all__ = ["Usage", "UsageLimits"]


@dataclass
class Usage:
    """Token and request counts, of one response or of a whole run.

    ``total_tokens`` is input + output. ``details`` keeps provider extras
    (cache reads and writes, reasoning tokens, ...). ``estimated`` is True
    when part of the figures was estimated by agentstream because the
    server never reported them: a response cut short by a cancel or a
    dropped connection, or one that came without usage (the prompt from the
    request's ``ContextInfo.estimated_tokens``, the output from its length).
    ``tool_calls`` counts every call the run tried to execute, failed ones
    too (the tool raised, invalid arguments, an unknown tool); calls never
    run (cancelled, or answered after a final result) are not counted.
    """

    requests: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    details: Dict[str, int] = field(default_factory=dict)
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def add(self, other: "Usage") -> None:
        """Add ``other`` into this one (used to sum responses into a run)."""
        self.requests += other.requests
        self.tool_calls += other.tool_calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        for key, value in other.details.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.details[key] = self.details.get(key, 0) + value
        self.estimated = self.estimated or other.estimated

    def copy(self) -> "Usage":
        return replace(self, details=dict(self.details))

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["total_tokens"] = self.total_tokens
        return data


def _check_positive(name: str, value: Optional[int]) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise UserError(f"UsageLimits.{name} must be a non-negative int or None, got {value!r}")


@dataclass(frozen=True)
class UsageLimits:
    """Limits checked during a run; exceeding one raises ``UsageLimitExceeded``.

    ``request_limit`` is checked before each request, ``tool_calls_limit``
    before tools run, and the token limits after each response.

    Usage::

        agent.run("hi", usage_limits=UsageLimits(request_limit=5, total_tokens_limit=10_000))
    """

    request_limit: Optional[int] = 50
    tool_calls_limit: Optional[int] = None
    input_tokens_limit: Optional[int] = None
    output_tokens_limit: Optional[int] = None
    total_tokens_limit: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("request_limit", "tool_calls_limit", "input_tokens_limit",
                     "output_tokens_limit", "total_tokens_limit"):
            _check_positive(name, getattr(self, name))
