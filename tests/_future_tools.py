"""Tool functions defined under ``from __future__ import annotations`` (string annotations)."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from agentstream._run_context import RunContext

if TYPE_CHECKING:  # never imported at runtime: the hint cannot be resolved
    import agentstream._run_context as rc


def with_ctx(ctx: RunContext[int], xs: List[int], label: Optional[str] = None) -> str:
    """Sum numbers.

    Args:
        xs: Numbers to add.
    """
    return f"{label}:{sum(xs) + ctx.deps}"


def with_hidden_ctx(ctx: rc.RunContext[int], n: int) -> int:
    """The RunContext annotation only exists for type checkers."""
    return n + ctx.deps


def without_ctx(n: int) -> int:
    return n * 2
