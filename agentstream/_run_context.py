"""RunContext: what a tool (or dynamic system prompt) receives as its first argument.

Imports nothing from the rest of the package but messages and usage types.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, List, Optional, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from .messages import ModelMessage, Usage

DepsT = TypeVar("DepsT")


@dataclass
class RunContext(Generic[DepsT]):
    """Information about the current run, passed to tools that ask for it.

    Attributes:
        deps: the ``deps`` object given to ``run``/``run_stream``.
        run_id: the id of this run.
        cancel_token: the run's cancel token; long tools should check
            ``ctx.cancel_token.is_set()`` (or ``wait()`` on it) and stop early.
        usage: usage of the run so far.
        messages: the conversation so far (read it, don't change it).
        tool_name: the tool being called (None outside a tool).
        tool_call_id: the id the model gave this call (None outside a tool).
        retry: how many times this tool has been retried in this run so far.
        step: the number of the current model request (1-based).
    """

    deps: DepsT
    run_id: str
    cancel_token: Any
    usage: "Usage"
    messages: "List[ModelMessage]" = field(default_factory=list)
    tool_name: Optional[str] = None
    tool_call_id: Optional[str] = None
    retry: int = 0
    step: int = 0

    @property
    def cancelled(self) -> bool:
        """True once the run has been cancelled."""
        return bool(self.cancel_token.is_set())
