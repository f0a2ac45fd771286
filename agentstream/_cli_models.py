"""The CLI's models: the provider table as the CLI shows it, choosing a model when none is
given (``detect_model``: ``AGENTSTREAM_MODEL``, an API key in the environment, a local
OpenAI-compatible server found by ``probe_local_servers``, else offline) and ``--model``
specs (``resolve_model``).

Part of the command (``_cli.py``, which re-exports ``detect_model`` / ``probe_local_servers``);
imports only ``exceptions``, ``models`` and the standard library. Never imported by the
package, and never imports ``_cli.py``.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from .exceptions import UserError
from .models import Model

__all__ = ["DEFAULT_MODELS", "PROBE_TIMEOUT", "detect_model", "import_attr", "probe_local_servers",
           "provider_rows", "resolve_model"]

PROBE_TIMEOUT = 0.3
DEFAULT_MODELS = (("OPENAI_API_KEY", "openai:gpt-4o-mini"), ("ANTHROPIC_API_KEY", "anthropic:claude-haiku-4-5"))


# -- the provider table (defensive: values may be plain strings or richer records) -------------------
def _providers() -> Dict[str, Any]:
    from .models._registry import KNOWN_PREFIXES

    return dict(KNOWN_PREFIXES)


def _field(info: Any, name: str) -> Any:
    if isinstance(info, str):
        return info if name == "description" else None
    if isinstance(info, dict):
        return info.get(name)
    return getattr(info, name, None)


def _base_url(info: Any) -> Optional[str]:
    resolve = getattr(info, "resolve_base_url", None)
    if callable(resolve):
        return resolve()
    env = _field(info, "base_url_env")
    return (os.environ.get(env) if env else None) or _field(info, "base_url")


# -- choosing a model ------------------------------------------------------------------------------
def _local_candidates() -> List[Tuple[str, str]]:
    """(prefix, base URL) of the keyless OpenAI-compatible servers on this machine."""
    found = []
    for prefix, info in _providers().items():
        url = _base_url(info)
        if (url and _field(info, "api") in (None, "openai-chat") and not _field(info, "key_required")
                and urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1")):
            found.append((prefix, url.rstrip("/")))
    return found or [("ollama", "http://localhost:11434/v1")]


def _first_model(base_url: str, timeout: float) -> Optional[str]:
    """The first chat model a server lists at ``{base_url}/models``, or None."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only: never a proxy
    try:
        with opener.open(base_url + "/models", timeout=timeout) as response:
            if response.status != 200:
                return None
            data = json.loads(response.read(1_000_000).decode("utf-8"))
    except Exception:  # refused, timed out, not JSON: no server there
        return None
    ids = [m.get("id") for m in (data.get("data") or []) if isinstance(m, dict)] if isinstance(data, dict) else []
    ids = [i for i in ids if isinstance(i, str) and i]
    return next((i for i in ids if "embed" not in i.lower()), ids[0] if ids else None)


def probe_local_servers(candidates: Optional[Sequence[Tuple[str, str]]] = None,
                        timeout: float = PROBE_TIMEOUT) -> Optional[Tuple[str, str, str]]:
    """Ask every local server at once (each bounded by ``timeout``); the first in
    table order that lists a model wins: ``(prefix, model, base_url)`` or None."""
    candidates = list(candidates if candidates is not None else _local_candidates())
    if not candidates:
        return None
    with ThreadPoolExecutor(len(candidates), thread_name_prefix="agentstream-cli-probe") as pool:
        models = list(pool.map(lambda c: _first_model(c[1], timeout), candidates))
    for (prefix, url), model in zip(candidates, models):
        if model:
            return prefix, model, url
    return None


def detect_model(offline: Callable[[], Model]) -> Tuple[Union[str, Model], str]:
    """The model to use when none is given, and a line saying why."""
    chosen = os.environ.get("AGENTSTREAM_MODEL", "").strip()
    if chosen:
        return chosen, f"{chosen} (from AGENTSTREAM_MODEL)"
    for env, spec in DEFAULT_MODELS:
        if os.environ.get(env):
            return spec, f"{spec} ({env} is set)"
    local = probe_local_servers()
    if local:
        prefix, model, url = local
        return f"{prefix}:{model}", f"{prefix}:{model} (local server at {url})"
    return offline(), "offline model, no network (set OPENAI_API_KEY or ANTHROPIC_API_KEY, or start Ollama)"


def import_attr(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # the console script does not put the working directory on the path
        sys.path.insert(0, os.getcwd())
    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        value = getattr(value, part)
    return value


def resolve_model(spec: str) -> Union[str, Model]:
    """``provider:model`` stays a string; ``module:attr`` naming a Model (or a
    function returning one) in an importable module gives that Model."""
    prefix = spec.partition(":")[0].strip().lower()
    if prefix in _providers() or ":" not in spec:
        return spec
    try:
        value = import_attr(spec)
    except ModuleNotFoundError as exc:
        if exc.name != spec.partition(":")[0]:
            raise
        return spec  # not a module: let the registry say which prefixes exist
    except AttributeError as exc:
        raise UserError(f"--model {spec!r}: {exc}") from None
    if callable(value) and not isinstance(value, Model):
        value = value()
    if not isinstance(value, Model):
        raise UserError(f"--model {spec!r} names a {type(value).__name__}, not a Model")
    return value


def provider_rows() -> List[Dict[str, Any]]:
    """One dict per known prefix: what it is and what it needs."""
    rows = []
    for prefix, info in _providers().items():
        key_env = _field(info, "key_env")
        rows.append({
            "prefix": prefix if prefix == "test" else f"{prefix}:",
            "description": _field(info, "description") or "",
            "key_env": key_env,
            "key_required": bool(_field(info, "key_required")),
            "key_set": bool(key_env and os.environ.get(key_env)),
            "base_url": _base_url(info),
            "base_url_env": _field(info, "base_url_env"),
        })
    return rows
