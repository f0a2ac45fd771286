"""The table of providers, and the one place API keys are read from the environment.

``PROVIDERS`` (also exported as ``KNOWN_PREFIXES``) maps each prefix to a
``Provider`` record: which API serves it, its default base URL, the
environment variables for its key and base URL, and its quirks.
``agentstream models``, the README table and ``_infer.model_from_string`` read
the same data. A leaf: it imports no model class (they import it).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

from ..exceptions import UserError
from ._effort import EFFORTS

__all__ = ["KNOWN_PREFIXES", "PROVIDERS", "Provider", "env_api_key"]


def env_api_key(name: Optional[str]) -> Optional[str]:
    """The API key in the environment variable ``name``, or None (no name, unset or empty).
    The one place API keys are read from the environment; the value is never logged."""
    if not name:
        return None
    return os.environ.get(name) or None


@dataclass(frozen=True)
class Provider:
    """One model-string prefix.

    ``api`` is the wire format: ``"openai-chat"``, ``"openai-responses"``,
    ``"anthropic"``, ``"gemini"`` or ``"offline"``. ``base_url`` is the default (overridden by the
    ``base_url_env`` variable, then by an explicit ``base_url=``).
    ``key_required``: construction fails without a key. ``stream_usage``:
    send ``stream_options: {"include_usage": true}`` (gotcha #18).
    Chat Completions only: ``send_reasoning``: the model's own reasoning goes back as
    ``reasoning_content`` on the assistant messages that made tool calls (DeepSeek's
    thinking-with-tools mode answers 400 without it). ``thinking``: how
    ``ModelSettings.thinking_budget`` is sent: ``"effort"`` (``reasoning_effort``, one of
    ``efforts``), ``"openrouter"`` (``reasoning: {"max_tokens": ...}``), None (not sent).
    """

    prefix: str
    description: str
    api: str
    base_url: Optional[str] = None
    key_env: Optional[str] = None
    base_url_env: Optional[str] = None
    key_required: bool = False
    stream_usage: bool = True
    send_reasoning: bool = False
    thinking: Optional[str] = None
    efforts: Tuple[str, ...] = EFFORTS

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def resolve_base_url(self, explicit: Optional[str] = None) -> Optional[str]:
        """The explicit value, else the environment variable, else the default."""
        if explicit:
            return explicit
        if self.base_url_env and os.environ.get(self.base_url_env):
            return os.environ[self.base_url_env]
        return self.base_url


def _p(prefix: str, description: str, api: str, base_url: Optional[str], key_env: Optional[str],
       base_url_env: Optional[str], key_required: bool, **options: Any) -> Provider:
    return Provider(prefix, description, api, base_url, key_env, base_url_env, key_required, **options)


_EFFORT = {"thinking": "effort"}
_LOW_MEDIUM_HIGH = {"thinking": "effort", "efforts": ("low", "medium", "high")}   # no "minimal"


PROVIDERS: Dict[str, Provider] = {p.prefix: p for p in (
    _p("openai", "OpenAI Chat Completions", "openai-chat",
       "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL", True, **_EFFORT),
    _p("openai-responses", "OpenAI Responses API (also LM Studio, vLLM, Ollama via base_url)", "openai-responses",
       "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL", True),
    _p("anthropic", "Anthropic Messages", "anthropic",
       "https://api.anthropic.com", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", True),
    _p("google", "Google Gemini API (key: GEMINI_API_KEY, else GOOGLE_API_KEY)", "gemini",
       "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "GEMINI_BASE_URL", True),
    _p("gemini", "Google Gemini API (same as google:)", "gemini",
       "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "GEMINI_BASE_URL", True),
    _p("ollama", "Ollama (OpenAI-compatible /v1)", "openai-chat",
       "http://localhost:11434/v1", None, "OLLAMA_BASE_URL", False, **_LOW_MEDIUM_HIGH),
    _p("vllm", "vLLM OpenAI-compatible server", "openai-chat",
       "http://localhost:8000/v1", "VLLM_API_KEY", "VLLM_BASE_URL", False, **_LOW_MEDIUM_HIGH),
    _p("lmstudio", "LM Studio local server", "openai-chat",
       "http://localhost:1234/v1", None, "LMSTUDIO_BASE_URL", False),
    _p("llamacpp", "llama.cpp server", "openai-chat",
       "http://localhost:8080/v1", None, "LLAMACPP_BASE_URL", False),
    _p("openrouter", "OpenRouter", "openai-chat",
       "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", True, thinking="openrouter"),
    _p("groq", "Groq", "openai-chat",
       "https://api.groq.com/openai/v1", "GROQ_API_KEY", "GROQ_BASE_URL", True, **_LOW_MEDIUM_HIGH),
    _p("deepseek", "DeepSeek", "openai-chat",
       "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", True, send_reasoning=True,
       **_EFFORT),
    _p("xai", "xAI Grok", "openai-chat",
       "https://api.x.ai/v1", "XAI_API_KEY", "XAI_BASE_URL", True, thinking="effort", efforts=("low", "high")),
    _p("together", "Together AI", "openai-chat",
       "https://api.together.xyz/v1", "TOGETHER_API_KEY", "TOGETHER_BASE_URL", True),
    _p("test", "offline TestModel (no network)", "offline", None, None, None, False),
)}

#: prefix -> Provider (description, base_url, key_env, ...): the table behind ``agentstream models``.
KNOWN_PREFIXES = PROVIDERS
