"""Bulk decoding of a chunked HTTP body: one socket read, every complete HTTP chunk in it.

``http.client`` returns one HTTP chunk per ``read1`` call (a Python-level round per SSE event
on a busy stream); ``_ChunkedReader`` reads http.client's buffered socket file itself.
``_chunked_reader(response)`` gives one for a chunked body without ``Content-Encoding``, or
None (then ``_http`` reads through urllib3's ``read1``) when http.client's private attributes
are not what it expects.

Layer: used by ``_http.py`` (and ``_http_errors.py`` for ``ChunkedBodyError``); imports only
the standard library -- no requests, nothing of agentstream.
"""
from __future__ import annotations

import http.client
from typing import Any, List, Optional

__all__ = ["ChunkedBodyError"]


class ChunkedBodyError(Exception):
    """A chunked body that broke off or is malformed (reported as ``connection_cut``)."""


def _chunked_reader(response: Any) -> Optional["_ChunkedReader"]:
    """A ``_ChunkedReader`` for this response, or None to read it through urllib3: not
    chunked, content-encoded, partly read already, or not the http.client response it expects."""
    raw = getattr(response, "raw", None)
    httpresp = getattr(raw, "_fp", None)
    if type(httpresp) is not http.client.HTTPResponse:   # (a subclass may read differently)
        return None
    fp = getattr(httpresp, "fp", None)
    if (not getattr(httpresp, "chunked", False) or getattr(httpresp, "chunk_left", 0) is not None
            or getattr(httpresp, "_method", None) == "HEAD" or not hasattr(fp, "read1")
            or not callable(getattr(httpresp, "_close_conn", None))
            or getattr(raw, "_fp_bytes_read", None) != 0
            or response.headers.get("content-encoding")):
        return None
    return _ChunkedReader(httpresp)


class _ChunkedReader:
    """Reads a chunked body from http.client's buffered socket file, decoding every complete
    HTTP chunk of a read at once (``http.client.HTTPResponse.read1`` returns one HTTP chunk a
    call: a Python-level round per SSE event on a busy stream).

    Decodes as http.client does: chunk extensions (``;...``) ignored, the 2 bytes after each
    chunk's data skipped, trailers read and discarded up to the blank line (or EOF), lines at
    most 64 KiB. After the last chunk it closes http.client's response (``_close_conn``), as
    http.client does, so the pooled connection can be reused.

    ``read()``: the data of the chunks completed so far (at least one byte), ``b""`` at the
    end of the body; ``ChunkedBodyError`` when the connection closed inside the body or a
    chunk size line is malformed. Socket errors and timeouts propagate.
    """

    __slots__ = ("_resp", "_fp", "_buf", "_left", "_skip", "_trailers", "_done", "_error")

    def __init__(self, httpresp: http.client.HTTPResponse) -> None:
        self._resp = httpresp
        self._fp = httpresp.fp
        self._buf = b""          # received, not yet decoded (at most a part of a line)
        self._left = 0           # data bytes of the current chunk still to come
        self._skip = 0           # bytes of the CRLF after the current chunk still to skip
        self._trailers = False   # after the last chunk: reading the trailer lines
        self._done = False
        self._error: Optional[ChunkedBodyError] = None   # raised once the data before it is out

    def read(self, size: int) -> bytes:
        if self._error is not None:
            raise self._error
        while True:
            out = self._decode() if self._buf else b""
            if out or self._done:
                return out
            data = self._fp.read1(size)
            if not data:
                if not self._trailers:
                    raise ChunkedBodyError("the connection closed inside a chunked body")
                self._finish()   # no blank line after the trailers: tolerated, as http.client does
                return b""
            self._buf = self._buf + data if self._buf else data

    def _decode(self) -> bytes:
        out: List[bytes] = []
        try:
            self._decode_into(out)
        except ChunkedBodyError as exc:
            if not out:
                raise
            self._error, self._buf = exc, b""   # the data decoded before the error first
        return out[0] if len(out) == 1 else b"".join(out)

    def _decode_into(self, out: List[bytes]) -> None:
        buf, pos, end = self._buf, 0, len(self._buf)
        left, skip = self._left, self._skip
        try:
            while pos < end:
                if left:
                    take = left if left <= end - pos else end - pos
                    out.append(buf[pos:pos + take])
                    pos += take
                    left -= take
                    if not left:
                        skip = 2
                    continue
                if skip:
                    take = skip if skip <= end - pos else end - pos
                    pos += take
                    skip -= take
                    continue
                eol = buf.find(b"\n", pos)
                if eol < 0:
                    if end - pos > _MAXLINE:
                        raise ChunkedBodyError("a chunk size or trailer line over 64 KiB")
                    break
                if eol + 1 - pos > _MAXLINE:
                    raise ChunkedBodyError("a chunk size or trailer line over 64 KiB")
                if self._trailers:
                    line, pos = buf[pos:eol + 1], eol + 1
                    if line == b"\r\n" or line == b"\n":
                        self._finish()
                        return
                    continue
                try:
                    size = int(buf[pos:eol], 16)   # as http.client: whitespace around it is fine
                except ValueError:
                    size = _chunk_size(buf[pos:eol + 1])   # an extension, or malformed
                if size < 0:
                    raise ChunkedBodyError(f"malformed chunk size line {bytes(buf[pos:eol + 1][:40])!r}")
                pos = eol + 1
                if not size:
                    self._trailers = True
                elif pos + size + 2 <= end:   # the whole chunk, and its CRLF, in this read
                    out.append(buf[pos:pos + size])
                    pos += size + 2
                else:
                    left = size
        finally:
            self._left, self._skip = left, skip
        self._buf = buf[pos:] if pos < end else b""

    def _finish(self) -> None:
        self._done = True
        self._buf = b""
        if self._resp.fp is not None:
            self._resp._close_conn()  # type: ignore[attr-defined]   # as http.client at the last chunk


_MAXLINE = 65536   # http.client's limit for a chunk size or trailer line


def _chunk_size(line: bytes) -> int:
    """The size in a chunk size line (extensions after ``;`` ignored), as http.client reads it."""
    semi = line.find(b";")
    text = line[:semi] if semi >= 0 else line
    try:
        size = int(text, 16)
    except ValueError:
        size = -1
    if size < 0:
        raise ChunkedBodyError(f"malformed chunk size line {bytes(line[:40])!r}")
    return size
