"""Error messages and causes for the HTTP layer: scrubbed URLs, requests errors -> ours.

``safe_url`` is the one place URLs are scrubbed for messages and logs (no credentials, no
query, no fragment); ``scrub_urls`` does the same inside an error text. ``map_open_error``
turns a requests error raised while opening a response into ours; ``clean_cause`` gives what
to chain to it instead of the requests / urllib3 exception, which keeps the prepared request
(``Authorization`` header included): a fresh copy of the root ``OSError``, or nothing.

Layer: used by ``_http.py``; imports ``_chunked``, ``_sse`` and ``exceptions``, requests and
the standard library.
"""
from __future__ import annotations

import re
import socket
from typing import List, Optional
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from ._chunked import ChunkedBodyError
from ._sse import SSEDecodeError
from .exceptions import ModelStreamError, StreamTimeout, UserError

__all__ = ["clean_cause", "describe_error", "is_timeout", "map_open_error", "safe_url", "scrub_urls", "secs"]


_QUERY = re.compile(r"\?[^\s'\")]+")
_USERINFO = re.compile(r"(//)[^/@\s]*@")


def safe_url(url: str) -> str:
    """``url`` without credentials, query string or fragment (for messages and logs)."""
    text = _USERINFO.sub(r"\1", str(url))
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        if ":" in host:   # IPv6
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
        if parts.scheme and host:
            return f"{parts.scheme}://{host}{parts.path}"
    except ValueError:
        pass
    return re.split(r"[?#]", text, maxsplit=1)[0]


def scrub_urls(text: str) -> str:
    """``text`` (an error message) with the query strings of URLs in it replaced by ``?…``."""
    return _QUERY.sub("?…", _USERINFO.sub(r"\1", text))


def describe_error(exc: BaseException) -> str:
    """The root cause of a requests/urllib3 error, without URLs' query strings."""
    chain = _chain(exc)
    for e in reversed(chain):
        if isinstance(e, OSError) and e.strerror:
            return f"{e.strerror} (errno {e.errno})" if e.errno else str(e.strerror)
    last = chain[-1]
    return scrub_urls(f"{type(last).__name__}: {last}" if str(last) else type(last).__name__)


def _chain(exc: BaseException) -> List[BaseException]:
    """``exc`` and what it wraps (``reason``, an exception in ``args``, ``__cause__``)."""
    chain = [exc]
    for _ in range(8):
        e = chain[-1]
        reason = getattr(e, "reason", None)
        args = [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        nxt = reason if isinstance(reason, BaseException) else (args[0] if args else e.__cause__)
        if nxt is None or any(nxt is c for c in chain):
            break
        chain.append(nxt)
    return chain


def clean_cause(exc: BaseException) -> Optional[BaseException]:
    """What to chain to our error instead of ``exc``: a fresh copy of its root ``OSError``
    (type, errno, text; no traceback, request or response), else None."""
    for e in reversed(_chain(exc)):
        if isinstance(e, (ChunkedBodyError, SSEDecodeError)):
            return type(e)(str(e))
        if isinstance(e, OSError) and type(e).__module__ in _PLAIN_MODULES:   # not requests' (OSError too)
            try:
                return type(e)(e.errno, e.strerror) if e.errno else type(e)(*[a for a in e.args if isinstance(a, str)])
            except Exception:
                return OSError(e.errno, e.strerror)
    return None


_PLAIN_MODULES = frozenset({"builtins", "socket", "ssl"})


def map_open_error(exc: requests.RequestException, url: str, connect: Optional[float],
                   header_wait: Optional[float], kind: str) -> Exception:
    """Ours for a requests error raised before the headers (see ``_http``'s module docstring)."""
    where = safe_url(url)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return StreamTimeout(f"could not connect to {where} within {secs(connect)} (Timeout.{kind})",
                             kind=kind, seconds=connect)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return StreamTimeout(f"no response headers from {where} within {secs(header_wait)} "
                             f"(Timeout.{kind})", kind=kind, seconds=header_wait)
    if isinstance(exc, requests.exceptions.InvalidHeader):   # its message holds the value (a key?)
        return UserError(f"invalid request to {where}: a header value has leading or trailing "
                         f"whitespace, a line break or another character HTTP does not allow "
                         f"(check the API key and headers=)")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidJSONError)):
        return UserError(f"invalid request to {where}: {describe_error(exc)}")
    return ModelStreamError(f"connection to {where} failed: {describe_error(exc)}",
                            error_type="connection_error")


def secs(seconds: Optional[float]) -> str:
    """``seconds`` for a message ("2.5 s"); a timeout without a setting says so."""
    return f"{seconds:g} s" if seconds is not None else "the socket's timeout"


def is_timeout(exc: BaseException) -> bool:
    """Whether a read error is a timeout (urllib3's, the socket's or requests')."""
    return isinstance(exc, (ReadTimeoutError, socket.timeout, requests.exceptions.Timeout))
