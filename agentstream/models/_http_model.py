"""HTTPModel: the base of every model that streams SSE over HTTP (OpenAI, Anthropic, ...).

A subclass writes only ``build_request()`` (messages -> ``HTTPRequest``), ``new_translator()``
(one stateful, pure ``Translator`` per response: ``ServerSentEvent`` -> neutral items) and,
if its error bodies are unusual, ``error_from()``. ``stream()`` does the rest:

1. POST with ``stream=True`` through the model's session (``_http.open_response``);
2. check the status and content type before any SSE parsing (#22): a non-2xx status ->
   ``error_from``, naming the URL (``error.url``, scrubbed; a 404 hints at ``base_url``);
   ``application/json`` -> its error object as the mapped error, else a
   ``ModelStreamError`` saying the server did not stream; ``text/event-stream``,
   ``text/plain`` and a missing content type are parsed as SSE (lenient: non-SSE lines
   surface as stray lines, so an error text is reported, not dropped); any other type ->
   ``ModelStreamError`` naming it; a 2xx body without a single event says how many bytes
   came ("after 0 bytes") and how it starts;
3. feed the body to the translator and yield, per network read, its items (one item, or
   a ``list`` when a read completed several: one queue hand-off per read); a stray JSON line with an error object (#21) becomes a
   ``ModelStreamError`` carrying the provider's type and status;
4. retry (``_retry``) only the opening: everything up to the first output item (text,
   thinking, tool call) is read inside the retried attempt and buffered, so a retry never
   repeats anything the user saw; from the first output item on, an error ends the stream;
5. after a cancel, any failure is a cancel: the generator just returns (the loop then sees
   the token set and emits ``Cancelled``).

A ``base_url`` that no request could use, or that already ends in an endpoint path
(``/chat/completions``, ``/v1/messages``, ...: the model adds its own), is refused at
construction with a ``UserError`` naming the fix.

Error bodies are parsed, and error types mapped to statuses, in ``_errors.py``. The API key
is stripped of surrounding whitespace and refused (``UserError``, never showing it) if it holds
whitespace or control characters. No API key appears in an exception, repr or log: errors
raised here are scrubbed of it (also in its escaped ``repr`` form), and ``_http`` never
chains requests' exceptions (which keep the prepared request and its headers).

Layer: provider modules -> ``_http_model.py`` -> ``_http.py``; never imports a provider module
(``openai_chat``, ``anthropic``, their translators) or the agent loop.
"""
from __future__ import annotations

import logging
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]

import requests
from urllib.parse import urlsplit

from .. import _http, _retry
from .._abort import StreamAborted
from .._session import new_session
from .._channel import Batch
from .._sse import ServerSentEvent
from ..__version__ import __version__
from ..exceptions import AgentStreamError, ModelHTTPError, ModelStreamError, UserError
from ..settings import ModelSettings, Timeout
from ._base import (Model, ModelRequestParameters, StreamContext, StreamItem, StreamReset, TextChunk, ThinkingChunk,
                    ToolCallChunk)
from ._errors import error_status, http_error, in_band_error, parse_error_body
from ._registry import env_api_key

__all__ = ["HTTPModel", "HTTPRequest", "Translator"]

log = logging.getLogger("agentstream")

@dataclass
class HTTPRequest:
    """One request: where to POST and what. ``headers`` include auth (never logged)."""

    url: str
    json: Dict[str, Any]
    headers: Dict[str, str] = field(default_factory=dict, repr=False)


class Translator(Protocol):
    """Per-response, stateful, pure (no I/O): SSE events -> neutral stream items."""

    def translate(self, event: ServerSentEvent) -> List[StreamItem]:
        """Items for one event; raise ``ModelStreamError`` (with ``error_type``/``status``)
        for an in-band error event."""

    @property
    def done(self) -> bool:
        """True once the terminator was seen (``[DONE]``, ``message_stop``, ...)."""

    def finish(self) -> List[StreamItem]:
        """Items at the end; raise ``ModelStreamError`` if the stream was cut off."""


def _is_output(item: Any) -> bool:
    return isinstance(item, (ThinkingChunk, ToolCallChunk)) or (isinstance(item, TextChunk) and bool(item.text))


class _Opened:
    """The successful opening of a response: items read so far, and the rest to come."""

    def __init__(self, response: _http.OpenResponse, items: List[StreamItem],
                 rest: Iterator[List[StreamItem]]) -> None:
        self.response = response
        self.items = items
        self.rest = rest


class HTTPModel(Model):
    """Base class for models that stream Server-Sent Events over HTTP (see the module docstring).

    Args:
        model_name: the provider's model name.
        base_url: API base (trailing ``/`` removed).
        api_key: the key; defaults to the ``api_key_env`` environment variable. Kept private.
        session: a ``requests.Session`` used for every request; by default the model makes one
            (and ``close()`` closes it). With a caller's session a cancel that comes before the
            response headers takes effect when they arrive (at most ``Timeout.connect``).
        timeout: ``Timeout`` or seconds (connect and idle); see ``Timeout``.
        max_retries: retries of a request that failed before any output (0: none).
        max_retries_after_output: times a response cut after output (connection cut, idle
            timeout, in-band overload) is sent again whole (0, the default: the error ends the
            run with the partial kept). The consumer first gets ``Retrying(reset=True)``.
        context_window: tokens, if known.
        headers: extra headers sent with every request (under the request's own).
        read_size: bytes per socket read.
    """

    system = "http"
    #: environment variable holding the key, e.g. "OPENAI_API_KEY"
    api_key_env: Optional[str] = None
    #: back-off: base and maximum delay (seconds), and the cap on a server-asked delay
    retry_base: float = 0.5
    retry_max_delay: float = 8.0
    retry_after_cap: float = 60.0
    #: seconds to wait for the end of the body after the terminator (for connection reuse)
    drain_grace: float = 0.1
    #: most bytes of an error body read
    error_body_limit: int = 65536

    def __init__(self, model_name: str, *, base_url: str, api_key: Optional[str] = None,
                 session: Optional[requests.Session] = None, timeout: Union[Timeout, float, None] = None,
                 max_retries: int = 2, context_window: Optional[int] = None,
                 headers: Optional[Dict[str, str]] = None, read_size: int = 65536,
                 max_retries_after_output: int = 0) -> None:
        if not isinstance(model_name, str) or not model_name:
            raise UserError("model_name must be a non-empty string")
        if not isinstance(base_url, str) or not base_url:
            raise UserError("base_url must be a non-empty string")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise UserError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if (isinstance(max_retries_after_output, bool) or not isinstance(max_retries_after_output, int)
                or max_retries_after_output < 0):
            raise UserError(f"max_retries_after_output must be an int >= 0, got {max_retries_after_output!r}")
        if isinstance(read_size, bool) or not isinstance(read_size, int) or read_size < 1:
            raise UserError(f"read_size must be a positive int, got {read_size!r}")
        if context_window is not None and (isinstance(context_window, bool) or not isinstance(context_window, int)
                                           or context_window < 1):
            raise UserError(f"context_window must be a positive int (tokens) or None, got {context_window!r}")
        _check_base_url(base_url)
        self._model_name = model_name
        self.base_url = base_url.rstrip("/")
        if api_key is None:
            api_key = env_api_key(self.api_key_env)
        self._api_key = _clean_key(api_key, self.api_key_env)
        self.timeout = Timeout.coerce(timeout)
        self._owns_session = session is None
        self._session = session if session is not None else new_session()
        self.max_retries = max_retries
        self.max_retries_after_output = max_retries_after_output
        self.context_window = context_window
        self._headers = dict(headers or {})
        self.read_size = read_size

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def session(self) -> requests.Session:
        return self._session

    def close(self) -> None:
        """Close the session if this model created it."""
        if self._owns_session:
            self._session.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._model_name!r}, base_url={_http.safe_url(self.base_url)!r})"

    # -- subclass hooks ----------------------------------------------------------------------
    @abstractmethod
    def build_request(self, messages: List[Any], settings: ModelSettings,
                      params: ModelRequestParameters) -> HTTPRequest:
        """The request for these messages (URL, JSON body, auth headers)."""

    @abstractmethod
    def new_translator(self) -> Translator:
        """A fresh translator for one response."""

    def error_from(self, status: int, headers: Mapping[str, str], body: bytes) -> ModelHTTPError:
        """The error for an HTTP error response (AuthenticationError for 401/403,
        RateLimitError for 429, else ModelHTTPError)."""
        return http_error(status, headers, body, self._model_name)

    def is_keepalive(self, event: ServerSentEvent) -> bool:
        """An event that only keeps the connection alive (Anthropic's ``ping``, also when a
        proxy dropped its ``event:`` line). It does not restart ``Timeout.idle``."""
        if event.event == "ping":
            return True
        data = event.data
        return len(data) < 64 and '"ping"' in data and data.replace(" ", "") == '{"type":"ping"}'

    def is_retryable(self, error: BaseException) -> bool:
        """Whether a request that failed before any output may be retried."""
        return _retry.is_retryable(error)

    # -- streaming -------------------------------------------------------------------------
    def stream(self, messages: List[Any], settings: ModelSettings, params: ModelRequestParameters,
               ctx: StreamContext) -> Iterator[StreamItem]:
        request = self.build_request(messages, settings, params)
        headers = {"Accept": "text/event-stream", "User-Agent": f"agentstream/{__version__}"}
        headers.update(self._headers)
        headers.update(request.headers)
        headers.update((settings.extra_headers or {}) if settings is not None else {})
        cancel = ctx.cancel
        wait = _retry.RetryAfterWait(self.retry_base, self.retry_max_delay, self.retry_after_cap)
        restarts = 0
        while True:
            try:
                opened = _retry.call_with_retries(
                    lambda: self._attempt(request, headers, cancel), max_retries=self.max_retries, cancel=cancel,
                    on_retry=ctx.on_retry, retryable=self.is_retryable, wait=wait)
            except Exception as exc:
                if _is_set(cancel):
                    return
                raise self._scrub(exc)
            if opened is None:
                return
            try:
                if opened.items:
                    yield _one_or_list(opened.items)
                for batch in opened.rest:
                    yield _one_or_list(batch)
                return
            except StreamAborted:
                return
            except Exception as exc:
                if _is_set(cancel):
                    return
                error = self._scrub(exc)
                if restarts >= self.max_retries_after_output or not self.is_retryable(error):
                    raise error
            finally:
                opened.response.close()
            # cut after output, and restarts allowed: the whole response again (point 9)
            restarts += 1
            delay = wait.delay_for(error, restarts)
            log.debug("response cut after output; sending it again (%d/%d) in %.2f s: %s",
                      restarts, self.max_retries_after_output, delay, error)
            yield StreamReset(restarts, delay, error)
            if cancel is None:
                time.sleep(delay)
            elif cancel.wait(delay):
                return

    def _attempt(self, request: HTTPRequest, headers: Dict[str, str], cancel: Any) -> Optional[_Opened]:
        try:
            return self._open(request, headers, cancel)
        except AgentStreamError as exc:  # scrubbed before tenacity, on_retry or a log sees it
            raise self._scrub(exc)

    def _open(self, request: HTTPRequest, headers: Dict[str, str], cancel: Any) -> Optional[_Opened]:
        """One attempt: send, check, read up to the first output item. None if cancelled."""
        if _is_set(cancel):
            return None
        response = _http.open_response(self._session, request.url, json_body=request.json, headers=headers,
                                       timeout=self.timeout, cancel=cancel, read_size=self.read_size)
        if response is None:
            return None
        items: List[StreamItem] = []
        checked = False
        try:
            self._check_response(response)
            checked = True
            rest = self._batches(response, self.new_translator())
            for batch in rest:
                items.extend(batch)
                if any(_is_output(item) for item in batch):
                    break
        except StreamAborted:
            response.close()
            return None
        except ModelStreamError as exc:
            response.close()
            if checked and response.eof and exc.error_type is None and exc.status is None:
                exc.error_type = "incomplete_stream"  # ended early, before any output: worth a retry
            raise
        except BaseException:
            response.close()
            raise
        return _Opened(response, items, rest)

    def _batches(self, response: _http.OpenResponse, translator: Translator) -> Iterator[List[StreamItem]]:
        """The items of each network read, as one list (the loop hands each to the consumer at
        once); items translated before an error in the same read are yielded first."""
        decoded = False
        for events in response.reads(keepalive=self.is_keepalive):
            decoded = True
            out: List[StreamItem] = []
            try:
                for event in events:
                    if event.stray:
                        raise self._stray_error(event)
                    out.extend(translator.translate(event))
                    if translator.done:
                        out.extend(translator.finish())
                        break
            except Exception:
                if out:
                    yield out
                raise
            if out:
                yield out
            if translator.done:
                response.drain(self.drain_grace)
                return
        try:
            final = translator.finish()
        except ModelStreamError as exc:
            raise _no_events_error(response, exc) if not decoded else exc
        if final:
            yield final

    def _check_response(self, response: _http.OpenResponse) -> None:
        """Status and content type, before any SSE parsing (#22)."""
        status, ctype = response.status, response.content_type
        if not 200 <= status < 300:
            raise self._at_url(self.error_from(status, response.headers, response.read_body(self.error_body_limit)),
                               response)
        if ctype == "text/event-stream" or ctype in ("", "text/plain"):
            return
        body = response.read_body(self.error_body_limit)
        if ctype == "application/json" or ctype.endswith("+json"):
            message, _etype, _code, data = parse_error_body(body)
            if isinstance(data, dict) and data.get("error"):
                raise self._at_url(self.error_from(error_status(data) or status, response.headers, body), response)
        snippet = body[:500].decode("utf-8", "replace")
        raise ModelStreamError(f"expected a text/event-stream response, got {ctype!r} "
                               f"(HTTP {status}, {len(body)} bytes): the server did not stream",
                               line=snippet)

    def _at_url(self, error: ModelHTTPError, response: _http.OpenResponse) -> ModelHTTPError:
        """``error`` naming the URL that answered (``safe_url``: no credentials, no query) as
        ``error.url`` and in its message; on a 404, with a hint at ``base_url``."""
        where = response.url
        if not where:
            return error
        error.url = where  # type: ignore[attr-defined]
        if error.status == 404:
            error.message += f" (check base_url={_http.safe_url(self.base_url)!r}: requests go to {where})"
        else:
            error.message += f" (POST {where})"
        error.args = (error.message,)
        return error

    def _stray_error(self, event: ServerSentEvent) -> ModelStreamError:
        """A non-SSE line in the body (#21): the provider's error if it is one."""
        message, etype, _code, data = parse_error_body(event.data)
        if isinstance(data, dict) and data.get("error"):
            return in_band_error(f"error in the stream: {message or etype or 'unknown error'}",
                                 data["error"], event.data)
        return ModelStreamError(f"the stream contained a line that is not Server-Sent Events "
                                f"(no 'data:' field): {event.data[:200]!r}", line=event.data)

    def _scrub(self, exc: BaseException) -> BaseException:
        """Remove the API key from an error's message and attributes (belt and braces)."""
        key = self._api_key
        if not key or len(key) < 8 or not isinstance(exc, AgentStreamError):
            return exc
        forms = {key, repr(key)[1:-1]}   # also as an escaped repr shows it
        for name in ("message", "body", "line"):
            value = getattr(exc, name, None)
            if isinstance(value, str) and _replace_all(value, forms) != value:
                setattr(exc, name, _replace_all(value, forms))
        exc.args = tuple(_replace_all(a, forms) if isinstance(a, str) else a for a in exc.args)
        return exc


def _clean_key(key: Optional[str], env: Optional[str]) -> Optional[str]:
    """The key without surrounding whitespace (a key read from a file or a mounted secret often
    ends in a newline); ``UserError`` if it is not a string or still holds whitespace or control
    characters (requests would refuse the header and put its value in the message). The error
    names where the key came from, never the key."""
    if key is None:
        return None
    where = f"the {env} environment variable" if env and env_api_key(env) == key else "api_key="
    if not isinstance(key, str):
        raise UserError(f"the API key must be a string (from {where}), got {type(key).__name__}")
    key = key.strip()
    if not key:
        raise UserError(f"the API key is blank (from {where})")
    if any(c.isspace() or not c.isprintable() for c in key):
        raise UserError(f"the API key from {where} contains whitespace or control characters "
                        f"(a line break inside it?); check the value")
    return key


def _no_events_error(response: _http.OpenResponse, exc: ModelStreamError) -> ModelStreamError:
    """The error for a 2xx body that ended without a single event (the translator's says
    only "cut off"): how many bytes came, and how the body starts."""
    if not response.bytes_read:
        message = f"the server closed the response after 0 bytes (HTTP {response.status}, no events)"
    else:
        start = response.head.decode("utf-8", "replace").strip().splitlines()[0][:120] if response.head.strip() else ""
        message = (f"the response ended after {response.bytes_read} bytes without a single Server-Sent "
                   f"Event (HTTP {response.status}; it starts with {start!r})")
    return ModelStreamError(f"{message}: {exc.message}", line=exc.line, error_type=exc.error_type,
                            status=exc.status)


#: endpoint paths a base_url must not end in (the model adds its own)
_ENDPOINTS = ("/chat/completions", "/v1/messages", "/messages", "/completions", "/responses")


def _check_base_url(url: str) -> None:
    """Refuse a base URL no request could use, at construction rather than at the first request."""
    shown = _http.safe_url(url)   # never show credentials or a query
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise UserError(f"base_url {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        guess = "http://" + shown
        hint = f" (did you mean {guess!r}?)" if "://" not in url and not url.startswith(("http:", "https:")) \
            and " " not in url and urlsplit(guess).hostname else ""
        raise UserError(f"base_url must be an http:// or https:// URL with a host, such as "
                        f"'https://api.openai.com/v1', got {shown!r}{hint}")
    path = parts.path.rstrip("/")
    for endpoint in _ENDPOINTS:
        if path.lower().endswith(endpoint):
            root = shown.rstrip("/")[:-len(endpoint)]
            raise UserError(f"base_url {shown!r} ends in the endpoint path {endpoint!r}; give the API root "
                            f"instead (base_url={root!r}): the model adds the endpoint to it")


def _replace_all(text: str, forms: Any) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, "***")
    return text


def _one_or_list(batch: List[StreamItem]) -> Any:
    return batch[0] if len(batch) == 1 else Batch(batch)


def _is_set(cancel: Any) -> bool:
    return cancel is not None and cancel.is_set()
