"""RunResult: what a finished run gives back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, List, TypeVar

from .messages import messages_to_json
from .usage import Usage

OutputT = TypeVar("OutputT")

__all__ = ["RunResult"]


@dataclass
class RunResult(Generic[OutputT]):
    """The output of a completed run, with its whole history and usage.

    ``messages`` can be passed as ``message_history`` to continue the
    conversation; ``new_messages()`` is only what this run added.
    """

    output: OutputT
    messages: List[Any]
    usage: Usage
    run_id: str
    new_from: int = field(default=0, repr=False)

    def new_messages(self) -> List[Any]:
        return self.messages[self.new_from:]

    def all_messages_json(self) -> bytes:
        return messages_to_json(self.messages)
