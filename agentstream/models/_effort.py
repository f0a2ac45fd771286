"""``ModelSettings.thinking_budget`` (tokens) -> the ``reasoning_effort`` level a server takes.

Shared by ``OpenAIChatModel`` (``reasoning_effort``) and ``OpenAIResponsesModel``
(``reasoning.effort``). The levels each Chat Completions provider accepts are in its
registry record (``_registry.Provider.efforts``).
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["EFFORTS", "reasoning_effort"]

#: OpenAI's levels, lowest first (``minimal``: the least reasoning a gpt-5 model does)
EFFORTS = ("minimal", "low", "medium", "high")


def reasoning_effort(budget: int, levels: Sequence[str] = EFFORTS) -> str:
    """The effort for a budget: 0 (or less) -> ``minimal``, up to 1024 -> ``low``, up to 8192
    -> ``medium``, more -> ``high``; a level the server does not take becomes the next higher
    one it does (else its highest), e.g. xAI's ``low``/``high``: ``medium`` -> ``high``."""
    wanted = 0 if budget <= 0 else 1 if budget <= 1024 else 2 if budget <= 8192 else 3
    ranked = [EFFORTS.index(level) for level in levels if level in EFFORTS]
    if not ranked:
        return EFFORTS[wanted]
    above = [rank for rank in ranked if rank >= wanted]
    return EFFORTS[min(above) if above else max(ranked)]
