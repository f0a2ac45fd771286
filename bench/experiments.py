"""A/B measurements of proposed library changes, applied as monkeypatches (never shipped).

    python -m bench.experiments [--reps 5] [--n 20000] [--only E1,E2]

Each experiment patches agentstream in this process only, then the stream (or
tool loop) is timed with and without the patch, interleaved (A B A B ...).
The patches are sketches of the changes proposed in the benchmark report;
they are correct for the loopback server's streams (checked: the decoded
text must match), not hardened for every server.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import payload
from .server import LoopbackServer

Patch = Callable[[], Callable[[], None]]   # apply() -> revert()


def _setattr(obj: Any, name: str, value: Any) -> Callable[[], None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    return lambda: setattr(obj, name, old)


def _chain(*reverts: Callable[[], None]) -> Callable[[], None]:
    def revert() -> None:
        for fn in reversed(reverts):
            fn()
    return revert


# -- E1: set the socket timeout only when it must change ------------------------------------

def e1_lazy_settimeout() -> Callable[[], None]:
    """_http.OpenResponse._settimeout: skip when the socket's timeout is already within
    [budget, budget*1.1 + 50 ms] (the budget is re-checked after every read anyway)."""
    from agentstream import _http

    original = _http.OpenResponse._settimeout

    def lazy(self: Any, seconds: Optional[float]) -> None:
        current = self._owner._timeout
        if seconds is not None and isinstance(current, float) and seconds <= current <= seconds * 1.1 + 0.05:
            return
        original(self, None if seconds is None else float(seconds))
    return _setattr(_http.OpenResponse, "_settimeout", lazy)


# -- E2: decode chunked transfer encoding in bulk ---------------------------------------------

class BulkChunkedReader:
    """read1() over http.client's socket buffer, decoding every complete HTTP chunk of one
    socket read at once (http.client returns one HTTP chunk per read1 call)."""

    def __init__(self, httpresp: Any) -> None:
        self.resp = httpresp
        self.fp = httpresp.fp
        self.buf = b""
        self.left = 0          # bytes of the current chunk (data and CRLF) still to come
        self.done = False

    def read1(self, n: int = 65536) -> bytes:
        while True:
            out = self._decode()
            if out or self.done:
                return out
            data = self.fp.read1(65536)
            if not data:
                raise ConnectionError("connection closed inside a chunked body")
            self.buf = self.buf + data if self.buf else data

    def _decode(self) -> bytes:
        buf, pos, out = self.buf, 0, []
        while True:
            if self.left:                                      # data + its CRLF still to come
                take = min(self.left, len(buf) - pos)
                data = min(take, self.left - 2)
                if data > 0:
                    out.append(buf[pos:pos + data])
                self.left -= take
                pos += take
                if self.left:
                    break
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)               # trailers end with an empty line
                if end < 0 and buf[eol:eol + 4] != b"\r\n\r\n":
                    break
                self.done = True
                self.resp.chunk_left = None
                self.resp._close_conn()                        # what http.client does at the end
                pos = len(buf)
                break
            self.left = size + 2
            pos = eol + 2
        self.buf = buf[pos:] if pos < len(buf) else b""
        return b"".join(out)


def e2_bulk_chunked() -> Callable[[], None]:
    """_http.OpenResponse: for a chunked, unencoded body read the socket buffer directly."""
    from agentstream import _http

    original = _http.OpenResponse.__init__

    def init(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        original(self, response, *args, **kwargs)
        httpresp = getattr(response.raw, "_fp", None)
        if getattr(httpresp, "chunked", False) and not response.headers.get("content-encoding") \
                and getattr(httpresp, "chunk_left", 0) is None and getattr(httpresp, "fp", None) is not None:
            self._read = BulkChunkedReader(httpresp).read1
    return _setattr(_http.OpenResponse, "__init__", init)


# -- E3: orjson for the chunk JSON --------------------------------------------------------------

class _OrjsonShim:
    def __init__(self) -> None:
        import orjson

        self.loads = orjson.loads
        self.dumps = json.dumps


def e3_orjson() -> Callable[[], None]:
    """models/_openai_stream.py: json.loads -> orjson.loads (optional extra)."""
    from agentstream.models import _openai_stream

    return _setattr(_openai_stream, "json", _OrjsonShim())


# -- E4: translator fast path for plain text chunks --------------------------------------------

_PLAIN = frozenset(("content", "role", "refusal"))


def e4_translator_fast_path() -> Callable[[], None]:
    """OpenAIChatTranslator.translate: one choice, delta of content/role/refusal only, no
    finish_reason/usage/error, model and id already seen, past the <think> check ->
    [TextChunk(content)] without the general walk."""
    from agentstream.models import _openai_stream
    from agentstream.models._base import TextChunk

    original = _openai_stream.OpenAIChatTranslator.translate

    def translate(self: Any, event: Any) -> List[Any]:
        if self._model is not None and self._id is not None and not self._done \
                and self._think.state == "text" and not event.stray and event.data[:1] == "{":
            chunk = _openai_stream.json.loads(event.data)   # looked up here, so E3 composes
            choices = chunk.get("choices")
            if type(choices) is list and len(choices) == 1 and chunk.get("usage") is None \
                    and not chunk.get("error") and "x_groq" not in chunk:
                choice = choices[0]
                if type(choice) is dict and choice.get("finish_reason") is None \
                        and choice.get("index", 0) in (0, None):
                    delta = choice.get("delta")
                    if type(delta) is dict and delta.keys() <= _PLAIN and not delta.get("refusal"):
                        content = delta.get("content")
                        if type(content) is str and content:
                            return [TextChunk(content)]
        return original(self, event)
    return _setattr(_openai_stream.OpenAIChatTranslator, "translate", translate)


# -- E6: requests without reading the environment per request ----------------------------------

def e6_no_trust_env() -> Callable[[], None]:
    """_http.new_session(): trust_env=False (proxies / CA bundle read once instead of per request)."""
    from agentstream.models import _http_model as _http   # where HTTPModel looks new_session up

    original = _http.new_session

    def new_session() -> Any:
        session = original()
        session.trust_env = False
        return session
    return _setattr(_http, "new_session", new_session)


# -- E7: send through the adapter with a request prepared once ---------------------------------

def e7_prepared_post() -> Callable[[], None]:
    """_http.open_response: instead of session.post() per request (environment, proxies, CA
    bundle, cookies, hooks, redirects resolved every time) prepare the request once per
    (url, headers) and per request copy it, set the JSON body and call adapter.send()."""
    import requests

    from agentstream.models import _http_model as _http   # where HTTPModel looks new_session up

    original_new = _http.new_session

    def post(self: Any, url: str, json: Any = None, headers: Any = None, stream: bool = False,
             timeout: Any = None, **kwargs: Any) -> Any:
        key = (url, tuple(sorted((headers or {}).items())))
        cache = self.__dict__.setdefault("_bench_prepared", {})
        cached = cache.get(key)
        if cached is None:
            settings = self.merge_environment_settings(url, {}, stream, None, None)
            prepared = self.prepare_request(requests.Request("POST", url, headers=headers, data=b"{}"))
            cached = cache[key] = (prepared, self.get_adapter(url), settings)
        prepared, adapter, settings = cached
        request = prepared.copy()
        request.prepare_body(None, None, json)
        return adapter.send(request, stream=stream, timeout=timeout, verify=settings["verify"],
                            cert=settings["cert"], proxies=settings["proxies"])

    def new_session() -> Any:
        session = original_new()
        session.post = post.__get__(session)  # type: ignore[method-assign]
        return session
    return _setattr(_http, "new_session", new_session)


# -- E8: convert each history message to the wire format once ----------------------------------

def e8_message_cache() -> Callable[[], None]:
    """models/openai_chat.openai_messages: cache each message's converted dicts by identity
    (messages are values; a run only appends), so a step converts only the new messages."""
    from agentstream.models import openai_chat

    original = openai_chat.openai_messages
    cache: Dict[int, Tuple[Any, List[Dict[str, Any]]]] = {}

    def openai_messages(messages: List[Any]) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for message in messages:
            hit = cache.get(id(message))
            if hit is None or hit[0] is not message:
                hit = cache[id(message)] = (message, original([message]))
            out.extend(hit[1])
        return out
    return _setattr(openai_chat, "openai_messages", openai_messages)


# -- E9: no hand-off for events nobody handles ----------------------------------------------------

def e9_skip_unhandled() -> Callable[[], None]:
    """agent.run() / result() with no handler for an event kind: the worker does not queue
    it (here: the bench's tool loop has no handlers, so nothing but the terminal event)."""
    from agentstream import _worker

    return _setattr(_worker.RunShared, "emit", lambda self, event, wait=False: None)


# -- E10: keep streamed text compact -------------------------------------------------------------

class CompactingList(list):
    """A list of str that joins its items into one every ``limit`` appends (in place)."""

    limit = 4096

    def append(self, item: Any) -> None:
        list.append(self, item)
        if len(self) >= self.limit:
            self[:] = ["".join(self)]


def e10_compact_text() -> Callable[[], None]:
    """RunState.text_chunks / thinking_chunks and ResponseBuilder's per-part fragment lists:
    join every 4096 fragments, so a long stream holds its text as a few large str instead
    of one small str object (~50-80 bytes) plus a list slot per delta."""
    from agentstream import _accumulate, _loop

    original_init = _loop.AgentLoop.__init__
    original_feed = _accumulate.ResponseBuilder.feed

    def init(self: Any, cfg: Any, state: Any, *args: Any, **kwargs: Any) -> None:
        state.text_chunks = CompactingList(state.text_chunks)
        state.thinking_chunks = CompactingList(state.thinking_chunks)
        original_init(self, cfg, state, *args, **kwargs)

    def feed(self: Any, item: Any) -> Any:
        out = original_feed(self, item)
        parts = self._text.get(getattr(item, "part_id", None))
        if parts is not None and len(parts) >= 4096:
            parts[:] = ["".join(parts)]
        return out
    return _chain(_setattr(_loop.AgentLoop, "__init__", init),
                  _setattr(_accumulate.ResponseBuilder, "feed", feed))


# -- G1: an application's setting, not a library change -------------------------------------

def g1_gc_threshold() -> Callable[[], None]:
    """gc.set_threshold(10000, 10, 10): fewer cycle-GC passes over the in-flight event objects.
    (E11, queueing a batch's TextDelta as str and making it at dispatch: +0-2 %, not kept.)"""
    old = gc.get_threshold()
    gc.set_threshold(10000, 10, 10)
    return lambda: gc.set_threshold(*old)


EXPERIMENTS: Dict[str, Tuple[str, Patch, str]] = {
    "E1": ("lazy socket timeout", e1_lazy_settimeout, "stream"),
    "E2": ("bulk chunked decoding", e2_bulk_chunked, "stream"),
    "E1+E2": ("E1 + E2", lambda: _chain(e1_lazy_settimeout(), e2_bulk_chunked()), "stream"),
    "E3": ("orjson", e3_orjson, "stream"),
    "E4": ("translator fast path", e4_translator_fast_path, "stream"),
    "E1-4": ("E1 + E2 + E3 + E4", lambda: _chain(e1_lazy_settimeout(), e2_bulk_chunked(), e3_orjson(),
                                                  e4_translator_fast_path()), "stream"),
    "E6": ("session.trust_env=False", e6_no_trust_env, "tool_loop"),
    "E7": ("prepared request + adapter", e7_prepared_post, "tool_loop"),
    "E8": ("message conversion cache", e8_message_cache, "tool_loop"),
    "E7+E8": ("E7 + E8", lambda: _chain(e7_prepared_post(), e8_message_cache()), "tool_loop"),
    "E9": ("skip unhandled events", e9_skip_unhandled, "tool_loop"),
    "G1": ("gc threshold 10000 (app)", g1_gc_threshold, "concurrency"),
    "all+E9": ("E1..E4 + E7 + E8 + E9", lambda: _chain(e1_lazy_settimeout(), e2_bulk_chunked(), e3_orjson(),
                                                      e4_translator_fast_path(), e7_prepared_post(),
                                                      e8_message_cache(), e9_skip_unhandled()), "tool_loop"),
    "all": ("E1..E4 + E7 + E8", lambda: _chain(e1_lazy_settimeout(), e2_bulk_chunked(), e3_orjson(),
                                                e4_translator_fast_path(), e7_prepared_post(),
                                                e8_message_cache()), "tool_loop"),
}


def measure(server: LoopbackServer, key: str, reps: int, n: int, framing: str) -> Dict[str, Any]:
    from .sdks import AgentstreamImpl

    label, patch, what = EXPERIMENTS[key]
    times: Dict[str, List[float]] = {"base": [], "patched": []}
    if what == "concurrency":
        return _measure_concurrency(server, key, label, patch, reps, n, framing)
    if what == "tool_loop":
        url = server.base_url(mode="tool", steps=50, framing=framing)
    else:
        url = server.base_url(mode="fast", n=n, framing=framing)
    for rep in range(reps + 1):
        for variant in ("base", "patched"):
            impl = AgentstreamImpl()          # a new session: E6 applies at session creation
            revert = patch() if variant == "patched" else (lambda: None)
            try:
                started = time.perf_counter()
                if what == "tool_loop":
                    if impl.tool_loop(url, 50) != 50:
                        raise AssertionError(f"{key}: the tool loop ran the wrong number of steps")
                    per = (time.perf_counter() - started) / 50 * 1e3
                else:
                    text = impl.stream(url, lambda t: None)
                    per = (time.perf_counter() - started) / n * 1e6
                    if text != payload.expected_text(n):
                        raise AssertionError(f"{key} ({variant}) decoded the wrong text")
            finally:
                revert()
                impl.close()
            if rep:  # the first pair is a warm-up (new connection, tokenizer load)
                times[variant].append(per)
    base, new = statistics.median(times["base"]), statistics.median(times["patched"])
    unit = "ms/step" if what == "tool_loop" else "µs/chunk"
    return {"key": key, "label": label, "framing": framing, "unit": unit, "base": base, "patched": new,
            "gain": base - new, "gain_pct": (base - new) / base * 100,
            "spread": {k: [min(v), max(v)] for k, v in times.items()}}


def _measure_concurrency(server: LoopbackServer, key: str, label: str, patch: Patch, reps: int, n: int,
                         framing: str) -> Dict[str, Any]:
    from .rows_stream import ab_concurrency

    times = ab_concurrency(server, patch, reps, min(n, 2000), framing)
    base, new = statistics.median(times["base"]), statistics.median(times["patched"])
    spread = {k: [round(min(v), 1), round(max(v), 1)] for k, v in times.items()}
    return {"key": key, "label": label, "framing": framing, "unit": "k chunk/s", "base": base, "patched": new,
            "gain": new - base, "gain_pct": (new - base) / base * 100, "spread": spread}


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description="A/B of proposed library changes")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--only", default="")
    parser.add_argument("--framing", default="chunked,close")
    args = parser.parse_args(argv)
    keys = [k for k in args.only.split(",") if k] or list(EXPERIMENTS)
    with LoopbackServer() as server:
        for key in keys:
            for framing in args.framing.split(","):
                if EXPERIMENTS[key][2] in ("tool_loop", "concurrency") and framing != "chunked":
                    continue
                r = measure(server, key, args.reps, args.n, framing)
                print(f"{r['key']:6} {r['label']:26} {framing:8} base {r['base']:8.2f}  patched {r['patched']:8.2f}"
                      f" {r['unit']:9} gain {r['gain']:7.2f} ({r['gain_pct']:5.1f}%)  spread {r['spread']}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
