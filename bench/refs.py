"""The hand-written references: the floor (raw socket) and requests + queue.Queue.

* ``Floor``: a raw socket, HTTP/1.1 chunked decoding, a line split,
  ``json.loads`` per event, nothing else (no thread, no queue, no objects).
* ``RequestsQueue``: what an expert writes by hand with requests: a worker
  thread reads ``resp.raw.read1``, splits lines, ``json.loads`` each event and
  puts the text on a ``queue.Queue``; the caller's thread calls ``on_text``.

Both also drive the tool loop (``tool_loop``) and can be cancelled from
another thread (socket shutdown, like agentstream's HTTP layer).
"""
from __future__ import annotations

import json
import queue
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import requests

from .payload import MODEL

TOOLS = [{"type": "function", "function": {"name": "step_tool", "description": "One step.", "parameters": {
    "type": "object", "properties": {"step": {"type": "integer"}}, "required": ["step"]}}}]
OnText = Callable[[str], Any]


def request_body(messages: Optional[List[Dict[str, Any]]] = None, tools: bool = False) -> bytes:
    body: Dict[str, Any] = {"model": MODEL, "messages": messages or [{"role": "user", "content": "Go."}],
                            "stream": True}
    if tools:
        body["tools"] = TOOLS
    return json.dumps(body).encode()


class Floor:
    """Raw-socket client; one keep-alive connection per instance."""

    name = "floor"

    def __init__(self) -> None:
        self.sock: Optional[socket.socket] = None
        self._addr: Tuple[str, int] = ("", 0)

    def _connect(self, url: str) -> Tuple[socket.socket, str]:
        parts = urlsplit(url)
        addr = (parts.hostname or "127.0.0.1", parts.port or 80)
        if self.sock is None or addr != self._addr:
            self.close()
            self.sock = socket.create_connection(addr)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._addr = addr
        return self.sock, parts.path

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def abort(self) -> None:
        """Cancel from another thread: the blocked recv returns at once."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def post(self, base_url: str, body: bytes, on_event: Callable[[Any], Any]) -> bool:
        """POST to ``{base_url}/chat/completions``; ``on_event(obj)`` per JSON event.

        Returns True when ``[DONE]`` arrived, False when the stream ended early.
        """
        sock, path = self._connect(base_url)
        sock.sendall(b"POST %s/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                     % (path.encode(), self._addr[0].encode(), self._addr[1], len(body), body))
        recv = sock.recv
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = recv(65536)
            if not data:
                self.close()
                return False
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        chunked = b"transfer-encoding: chunked" in head.lower()
        loads = json.loads
        carry = b""
        done = False
        while True:
            if chunked:  # decode every complete HTTP chunk in the buffer
                pieces = []
                pos = 0
                while True:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(buf[pos:eol], 16)
                    end = eol + 2 + size
                    if end + 2 > len(buf):
                        break
                    if size == 0:
                        done = True
                        break
                    pieces.append(buf[eol + 2:end])
                    pos = end + 2
                buf = buf[pos:]
                data = b"".join(pieces)
            else:
                data, buf = buf, b""
            if data:
                lines = (carry + data).split(b"\n")
                carry = lines.pop()
                for line in lines:
                    if line[:6] == b"data: " and line != b"data: [DONE]":
                        on_event(loads(line[6:]))
            if done:
                return True
            data = recv(65536)
            if not data:
                self.close()
                return not chunked
            buf += data

    def stream(self, base_url: str, on_text: OnText) -> str:
        parts: List[str] = []
        append = parts.append

        def on_event(obj: Any) -> None:
            choices = obj["choices"]
            if choices:
                text = choices[0]["delta"].get("content")
                if text:
                    append(text)
                    on_text(text)

        self.post(base_url, request_body(), on_event)
        return "".join(parts)

    def tool_loop(self, base_url: str, steps: int) -> int:
        """Tool call -> result -> next request until the server answers with text; returns the steps."""
        messages: List[Dict[str, Any]] = [{"role": "user", "content": "Go."}]
        done = 0
        while True:
            call: Dict[str, Any] = {"id": "", "name": "", "args": []}
            text: List[str] = []

            def on_event(obj: Any) -> None:
                for choice in obj["choices"]:
                    delta = choice["delta"]
                    if delta.get("content"):
                        text.append(delta["content"])
                    for tc in delta.get("tool_calls") or ():
                        call["id"] = tc.get("id") or call["id"]
                        fn = tc.get("function") or {}
                        call["name"] = fn.get("name") or call["name"]
                        if fn.get("arguments"):
                            call["args"].append(fn["arguments"])

            self.post(base_url, request_body(messages, tools=True), on_event)
            if not call["name"]:
                return done
            args = json.loads("".join(call["args"]))
            result = f"step {args['step']} done"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": "".join(call["args"])}}]})
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            done += 1


_END = object()


class RequestsQueue:
    """requests + read1 + json.loads + queue.Queue hand-off to the caller's thread."""

    name = "requests+queue"

    def __init__(self) -> None:
        self.session = requests.Session()
        self._response: Any = None
        self._aborted = False

    def close(self) -> None:
        self.session.close()

    def abort(self) -> None:
        self._aborted = True
        resp = self._response
        try:
            resp.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass

    def _worker(self, url: str, q: "queue.Queue[Any]") -> None:
        try:
            with self.session.post(url + "/chat/completions", data=request_body(),
                                   headers={"Content-Type": "application/json"}, stream=True,
                                   timeout=(10, 60)) as resp:
                self._response = resp
                resp.raise_for_status()
                read1 = resp.raw.read1
                loads = json.loads
                put = q.put
                carry = b""
                while True:
                    data = read1(65536)
                    if not data:
                        break
                    lines = (carry + data).split(b"\n")
                    carry = lines.pop()
                    for line in lines:
                        if line[:6] == b"data: " and line != b"data: [DONE]":
                            choices = loads(line[6:])["choices"]
                            if choices:
                                text = choices[0]["delta"].get("content")
                                if text:
                                    put(text)
        except Exception as exc:  # handed to the consumer (after an abort: just stop)
            if not self._aborted:
                q.put(exc)
        finally:
            self._response = None
            q.put(_END)

    def stream(self, base_url: str, on_text: OnText) -> str:
        q: "queue.Queue[Any]" = queue.Queue()
        self._aborted = False
        thread = threading.Thread(target=self._worker, args=(base_url, q), daemon=True)
        thread.start()
        parts: List[str] = []
        get = q.get
        error: Optional[BaseException] = None
        while True:
            item = get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                error = item
                continue
            parts.append(item)
            on_text(item)
        thread.join()
        if error is not None:
            raise error
        return "".join(parts)
