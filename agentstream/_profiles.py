"""Model profiles: context window and max output tokens of common models.

``profile_for(name)`` matches a model name as any provider spells it
(``gpt-4o-2024-08-06``, ``openai/gpt-4o``, ``claude-3-5-sonnet-latest``,
``anthropic/claude-3.5-sonnet``, ``llama3.1:8b``, ``Qwen/Qwen2.5-7B-Instruct``)
against a table of patterns, most specific first. ``context_limit(model)``
is what ``ContextInfo.context_limit`` reports: the model's own
``context_window`` attribute when set (it wins), else the profile's window,
else None. Figures are the vendors' published limits; for open-weight
models, the window of the released weights (a server may be configured
with less: set ``context_window=`` on the model then).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

__all__ = ["ModelProfile", "context_limit", "normalize_name", "profile_for"]


@dataclass(frozen=True)
class ModelProfile:
    """What agentstream knows about a model family."""

    context_window: int
    max_output: Optional[int] = None
    family: str = "other"          # "openai", "anthropic", "llama", "qwen", "deepseek", "mistral", ...
    encoding: Optional[str] = None  # tiktoken encoding name, for OpenAI models


_O200K, _CL100K = "o200k_base", "cl100k_base"

# (pattern searched in the normalised name, window, max output, family, encoding); first match wins.
_TABLE: List[Tuple[str, int, Optional[int], str, Optional[str]]] = [
    # --- OpenAI ---
    (r"^gpt-5(\.\d+)?-chat", 128_000, 16_384, "openai", _O200K),
    (r"^gpt-5", 400_000, 128_000, "openai", _O200K),
    (r"^gpt-4\.1", 1_047_576, 32_768, "openai", _O200K),
    (r"^gpt-4\.5", 128_000, 16_384, "openai", _O200K),
    (r"^(chatgpt-)?gpt-4o-mini", 128_000, 16_384, "openai", _O200K),
    (r"^(chatgpt-)?(gpt-)?4o", 128_000, 16_384, "openai", _O200K),
    (r"^o1-mini", 128_000, 65_536, "openai", _O200K),
    (r"^o1-preview", 128_000, 32_768, "openai", _O200K),
    (r"^o[134](-|$)", 200_000, 100_000, "openai", _O200K),
    (r"^gpt-oss", 131_072, 131_072, "openai", _O200K),
    (r"^gpt-4-(turbo|\d{4}-preview|vision)", 128_000, 4_096, "openai", _CL100K),
    (r"^gpt-4-32k", 32_768, 8_192, "openai", _CL100K),
    (r"^gpt-4($|-)", 8_192, 8_192, "openai", _CL100K),
    (r"^gpt-3\.5-turbo-instruct", 4_096, 4_096, "openai", _CL100K),
    (r"^gpt-3\.5", 16_385, 4_096, "openai", _CL100K),
    # --- Anthropic (names normalised to dashes: claude-3-5-sonnet, claude-sonnet-4-5) ---
    (r"^claude-(opus-4-5|4-5-opus)", 200_000, 64_000, "anthropic", None),
    (r"^claude-(opus-4|4-opus)", 200_000, 32_000, "anthropic", None),
    (r"^claude-(sonnet-4|4-sonnet|haiku-4|4-5-haiku|4-5-sonnet)", 200_000, 64_000, "anthropic", None),
    (r"^claude-3-7", 200_000, 64_000, "anthropic", None),
    (r"^claude-3-5", 200_000, 8_192, "anthropic", None),
    (r"^claude-3", 200_000, 4_096, "anthropic", None),
    (r"^claude-2", 100_000, 4_096, "anthropic", None),
    (r"^claude", 200_000, None, "anthropic", None),
    # --- Meta Llama ---
    (r"llama-?4-?scout", 10_000_000, None, "llama", None),
    (r"llama-?4", 1_000_000, None, "llama", None),
    (r"llama-?3-?[123]", 131_072, None, "llama", None),
    (r"llama-?3", 8_192, None, "llama", None),
    (r"llama-?2", 4_096, None, "llama", None),
    # --- Qwen ---
    (r"qwen-?2-5-?(turbo|1m)", 1_000_000, 8_192, "qwen", None),
    (r"qwen-?(plus|max|turbo|long)", 131_072, 8_192, "qwen", None),
    (r"qwq|qwen-?3", 131_072, None, "qwen", None),  # 32k native, 128k with YaRN (served default)
    (r"qwen-?2", 32_768, 8_192, "qwen", None),
    (r"qwen", 32_768, None, "qwen", None),
    # --- DeepSeek ---
    (r"deepseek-(reasoner|r1)", 128_000, 64_000, "deepseek", None),
    (r"deepseek-(chat|v3|v2|coder-v2)", 128_000, 8_192, "deepseek", None),
    (r"deepseek-coder", 16_384, None, "deepseek", None),
    # --- Mistral ---
    (r"codestral", 256_000, None, "mistral", None),
    (r"mixtral-8x22b", 65_536, None, "mistral", None),
    (r"mixtral", 32_768, None, "mistral", None),
    (r"(mistral-(large|medium|nemo)|open-mistral-nemo|ministral|pixtral|magistral)", 131_072, None,
     "mistral", None),
    (r"mistral-small-(3|24)", 131_072, None, "mistral", None),
    (r"mistral", 32_768, None, "mistral", None),
    # --- Google Gemini (normalised: gemini-2-5-flash); token counts are approximate ---
    (r"^gemini-3", 1_048_576, 65_536, "gemini", None),
    (r"^gemini-2-5", 1_048_576, 65_536, "gemini", None),
    (r"^gemini-2", 1_048_576, 8_192, "gemini", None),
    (r"^gemini-1-5-pro", 2_097_152, 8_192, "gemini", None),
    (r"^gemini-1-5", 1_048_576, 8_192, "gemini", None),
    (r"^gemini", 1_048_576, None, "gemini", None),
    # --- xAI Grok (normalised: grok-4-1-fast) ---
    (r"^grok-4(-\d+)?-fast", 2_000_000, None, "grok", None),
    (r"^grok-(4|code)", 256_000, None, "grok", None),
    (r"^grok-2-vision", 32_768, None, "grok", None),
    (r"^grok", 131_072, None, "grok", None),
    # --- a few other common open models ---
    (r"gemma-?3", 131_072, None, "gemma", None),
    (r"gemma", 8_192, None, "gemma", None),
    (r"phi-?4", 16_384, None, "phi", None),
]
_COMPILED = [(re.compile(p), ModelProfile(w, o, fam, enc)) for p, w, o, fam, enc in _TABLE]


def normalize_name(name: str) -> str:
    """Lower case, no provider prefix or route (``openai/``, ``anthropic:``), no
    Ollama tag (``:8b``), dots and underscores as dashes in Claude/Llama/Qwen
    version numbers, so every spelling of a model maps to one key."""
    name = (name or "").strip().lower()
    name = name.rsplit("/", 1)[-1]                     # openrouter / HF routes
    if ":" in name:                                    # "openai:gpt-4o" or "llama3.1:8b"
        head, _, tail = name.partition(":")
        name = tail if head in _PREFIXES else head
    name = name.replace("_", "-")
    if not re.match(r"(gpt|o\d|chatgpt)", name):       # keep gpt-4.1 / gpt-3.5 dots
        name = re.sub(r"(?<=\d)\.(?=\d)", "-", name)
    return name


_PREFIXES = {"openai", "openai-responses", "anthropic", "ollama", "vllm", "lmstudio", "llamacpp", "openrouter",
             "groq", "deepseek", "xai", "together", "google", "gemini", "test", "function"}


def profile_for(name: Optional[str]) -> Optional[ModelProfile]:
    """The profile of a model name, or None when the model is unknown."""
    if not name:
        return None
    key = normalize_name(name)
    for pattern, profile in _COMPILED:
        if pattern.search(key):
            return profile
    return None


def context_limit(model: Any) -> Optional[int]:
    """The context window of a Model: its ``context_window`` attribute wins,
    then the profile of its name; None when unknown."""
    explicit = getattr(model, "context_window", None)
    if explicit:
        return int(explicit)
    profile = profile_for(getattr(model, "model_name", None))
    return profile.context_window if profile is not None else None
