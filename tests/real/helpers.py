"""Pieces shared by the real-server tests: model builders, fast back-off, a timed cancel."""
from __future__ import annotations

import time
from typing import Any, Dict, List

from agentstream import CancelToken, RunCancelled, Timeout
from agentstream.models.anthropic import AnthropicModel
from agentstream.models.openai_chat import OpenAIChatModel
from tests.faultkit import Outcome, drive

KEY = "sk-real-test-not-a-secret"
TIMEOUT = Timeout(connect=5, idle=20, total=60)
WEATHER = "sunny-and-21"   # what get_weather returns; fakellm's second-turn rule matches on it


def openai_model(root: str, name: str = "gpt-4o-mini", **kwargs: Any) -> OpenAIChatModel:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("timeout", TIMEOUT)
    return OpenAIChatModel(name, base_url=root + "/v1", **kwargs)


def anthropic_model(root: str, name: str = "claude-sonnet-4-5", **kwargs: Any) -> AnthropicModel:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("timeout", TIMEOUT)
    return AnthropicModel(name, base_url=root, **kwargs)


def fast_backoff(model: Any) -> Any:
    """Retry back-off of a few ms (a server's Retry-After still wins)."""
    model.retry_base, model.retry_max_delay = 0.01, 0.02
    return model


def cancel_after_deltas(agent: Any, prompt: str, deltas: int = 5, **kwargs: Any) -> Dict[str, Any]:
    """Run ``agent`` and cancel once ``deltas`` text deltas arrived (from the consuming thread).
    Returns the outcome and the seconds from the cancel to the ``Cancelled`` event."""
    token = CancelToken()
    marks: Dict[str, float] = {}
    texts: List[str] = []

    def on_text(text: str) -> None:
        texts.append(text)
        if len(texts) == deltas:
            marks["cancel"] = time.monotonic()
            token.cancel()

    def on_cancel(event: Any) -> None:
        marks["cancelled"] = time.monotonic()

    out: Outcome = drive(agent, prompt, cancel_token=token, on_text=on_text, on_cancel=on_cancel,
                         timeout=60, **kwargs)
    assert "cancel" in marks, f"only {len(texts)} text deltas arrived (events {out.kinds})"
    event = out.check_terminal("cancelled")
    assert isinstance(out.error, RunCancelled), repr(out.error)
    return {"out": out, "event": event, "latency": marks["cancelled"] - marks["cancel"], "texts": texts}
