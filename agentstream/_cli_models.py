"""The CLI's models: the provider table as the CLI shows it, choosing a model when none is
given (``detect_model``: ``AGENTSTREAM_MODEL``, an API key in the environment, a local
OpenAI-compatible server found by ``probe_local_servers``, else offline), ``--model``
specs (``resolve_model``) and ``--base-url`` / ``--api-key`` (``model_with_endpoint``).

Part of the command (``_cli.py``, which re-exports ``detect_model`` / ``probe_local_servers``);
imports only ``exceptions``, ``models``, ``_http.safe_url`` and the standard library. Never
imported by the package, and never imports ``_cli.py``. An API key is never printed.
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
from .models._registry import env_api_key

__all__ = ["DEFAULT_MODELS", "PROBE_TIMEOUT", "detect_model", "import_attr", "model_with_endpoint",
           "probe_local_servers", "provider_rows", "resolve_model"]

PROBE_TIMEOUT = 0.3
BASE_URL_PROBE_TIMEOUT = 5.0  # --base-url without --model: the server named was asked for, so wait longer
DEFAULT_MODELS = (("OPENAI_API_KEY", "openai:gpt-4o-mini"), ("ANTHROPIC_API_KEY", "anthropic:claude-haiku-4-5"),
                  ("GEMINI_API_KEY", "google:gemini-2.5-flash"), ("GOOGLE_API_KEY", "google:gemini-2.5-flash"))


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


def _first_model(base_url: str, timeout: float, api_key: Optional[str] = None) -> Optional[str]:
    """The first chat model a server lists at ``{base_url}/models``, or None."""
    import urllib.request

    loopback = urlsplit(base_url).hostname in ("localhost", "127.0.0.1", "::1")
    handlers = [urllib.request.ProxyHandler({})] if loopback else []  # loopback: never a proxy
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(base_url + "/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with opener.open(request, timeout=timeout) as response:
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
        if env_api_key(env):
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


def model_with_endpoint(spec: Optional[str], base_url: Optional[str],
                        api_key: Optional[str]) -> Tuple[Model, str]:
    """The model for ``--model`` (maybe None) with ``--base-url`` / ``--api-key`` (at least one
    given), and a line saying which model (the URL without credentials, never the key).

    ``PREFIX:MODEL`` gets them as ``base_url=`` / ``api_key=``; a bare model name, or no
    ``--model`` at all (the first model ``{base_url}/models`` lists), is an OpenAI-compatible
    server at ``--base-url``.
    """
    from ._http import safe_url
    from .models import OpenAIChatModel
    from .models._infer import model_from_string

    options = {k: v for k, v in (("base_url", base_url), ("api_key", api_key)) if v}
    flags = " and ".join(f"--{k.replace('_', '-')}" for k in options)
    if spec is None:
        if not base_url:
            raise UserError("--api-key needs --model PREFIX:MODEL or --base-url")
        root = base_url.rstrip("/")
        name = _first_model(root, BASE_URL_PROBE_TIMEOUT, api_key)
        if name is None:
            raise UserError(f"--base-url {safe_url(root)}: no model listed at {safe_url(root)}/models; "
                            "name one with --model")
        return (OpenAIChatModel(name, base_url=root, api_key=api_key, provider="custom"),
                f"{name} (listed at {safe_url(root)}/models)")
    resolved = resolve_model(spec)
    if isinstance(resolved, Model) or spec.partition(":")[0].strip().lower() == "test":
        raise UserError(f"{flags} apply to PREFIX:MODEL models, not to --model {spec!r}")
    where = f"{spec} at {safe_url(base_url)}" if base_url else spec
    if ":" not in spec:
        if not base_url:
            raise UserError(f"--model {spec!r} with --api-key needs a prefix (e.g. openai:{spec}) or --base-url")
        return OpenAIChatModel(spec.strip(), base_url=base_url, api_key=api_key, provider="custom"), where
    return model_from_string(spec, **options), where


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
            "key_set": bool(env_api_key(key_env)),
            "base_url": _base_url(info),
            "base_url_env": _field(info, "base_url_env"),
        })
    return rows
