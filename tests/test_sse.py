"""Tests for agentstream._sse: the incremental SSE byte-stream decoder."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agentstream._sse import SSEDecodeError, SSEDecoder, ServerSentEvent

E = ServerSentEvent


def stray(line: str, id=None) -> ServerSentEvent:
    return E(event="stray", data=line, id=id, stray=True)


# Gotchas (../shared/notes/streaming-gotchas.md) each fixture covers, fed whole, split at
# every offset and byte by byte: #2 crlf / mixed-endings (CRLF straddling reads), #3 and #4
# unicode-separators-not-split (decode per complete line; split UTF-8), #5 crlf, #6 no-space,
# #7 multiline-json, #8 comments / no-data-no-dispatch, #9 unterminated-last-event,
# #21 stray-json-error / stray-inside-event.
# name, raw bytes, events from feed(), events from flush(), ended_cleanly (before and after
# flush), content_lines, comment_lines
FIXTURES = [
    ("lf", b"data: hello\n\n", [E(data="hello")], [], True, 1, 0),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [E(data="a"), E(data="b")], [], True, 2, 0),
    ("cr", b"data: a\r\rdata: b\r\r", [E(data="a"), E(data="b")], [], True, 2, 0),
    ("mixed-endings", b"data: a\r\ndata: b\rdata: c\n\n", [E(data="a\nb\nc")], [], True, 3, 0),
    ("multiline-json", b'data: {\ndata:  "a": 1\ndata: }\n\n', [E(data='{\n "a": 1\n}')], [],
     True, 3, 0),
    ("no-space", b'data:{"x":1}\n\ndata:  two\n\n', [E(data='{"x":1}'), E(data=" two")], [],
     True, 2, 0),
    ("comments", b": ping\n:\n: keep-alive\ndata: x\n\n: OPENROUTER PROCESSING\n",
     [E(data="x")], [], True, 1, 4),
    ("event-and-id", b"event: foo\nid: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
     [E("foo", "a", "1"), E("message", "b", "1"), E("message", "c", "")], [], True, 6, 0),
    ("empty-event-field", b"event:\ndata: a\n\n", [E(data="a")], [], True, 2, 0),
    ("id-with-nul-ignored", b"id: 1\n\ndata: a\n\nid: x\x00y\ndata: b\n\n",
     [E(data="a", id="1"), E(data="b", id="1")], [], True, 4, 0),
    ("retry", b"retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\nretry: \xd9\xa1\ndata: c\n\n",
     [E(data="a", retry=1500), E(data="b", retry=1500), E(data="c", retry=1500)], [], True, 6, 0),
    ("unicode-separators-not-split",
     'data: {"t":"a\u2028b\u0085c\u2029 ✅ 入 café"}\n\n'.encode(),
     [E(data='{"t":"a\u2028b\u0085c\u2029 ✅ 入 café"}')], [], True, 1, 0),
    ("no-data-no-dispatch", b"event: foo\n\nid: 7\n\n: c\n\nretry: 5\n\n", [], [], True, 3, 1),
    ("empty-data-line-dispatches", b"data\n\ndata:\n\ndata:\ndata:\n\n",
     [E(data=""), E(data=""), E(data="\n")], [], True, 4, 0),
    ("unknown-field-ignored", b"foo: bar\nerror\ndata: a\n\n", [E(data="a")], [], True, 3, 0),
    # WHATWG: the field name of " data: x" is " data" (unknown, ignored), as for any unknown field
    ("leading-space-field-ignored", b" data: x\n\tevent: y\nx-trace: a:b\ndata: a\n\n", [E(data="a")], [],
     True, 4, 0),
    ("stray-json-error", b'{"error":{"code":400,"type":"exceed_context_size_error"}}\n',
     [stray('{"error":{"code":400,"type":"exceed_context_size_error"}}')], [], True, 1, 0),
    ("stray-inside-event", b'data: a\n{"error": 1}\n[DONE]\nInternal Server Error\n\n',
     [stray('{"error": 1}'), stray("[DONE]"), stray("Internal Server Error"), E(data="a")],
     [], True, 4, 0),
    ("bom", b"\xef\xbb\xbfdata: a\n\n", [E(data="a")], [], True, 1, 0),
    ("bom-only-first-line", b"data: a\n\n\xef\xbb\xbfdata: b\n\n",
     [E(data="a"), stray("\ufeffdata: b")], [], True, 2, 0),
    ("unterminated-last-event", b'data: {"type":"message_stop"}', [],
     [E(data='{"type":"message_stop"}')], False, 1, 0),
    ("single-newline-at-eof", b"event: e\ndata: x\n", [], [E("e", "x")], False, 2, 0),
    ("unterminated-stray", b"data: a\n\n{\"error\":1}", [E(data="a")], [stray('{"error":1}')],
     False, 2, 0),
]
IDS = [f[0] for f in FIXTURES]


def run(pieces):
    dec = SSEDecoder()
    fed = []
    for p in pieces:
        fed.extend(dec.feed(p))
    clean_before = dec.ended_cleanly
    flushed = dec.flush()
    return dec, fed, flushed, clean_before


def check(fixture, pieces):
    _, raw, want_fed, want_flush, clean, content, comments = fixture
    dec, fed, flushed, clean_before = run(pieces)
    assert fed == want_fed
    assert flushed == want_flush
    assert (dec.content_lines, dec.comment_lines) == (content, comments)
    assert (clean_before, dec.ended_cleanly) == (clean, clean)


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_whole(fixture):
    check(fixture, [fixture[1]])


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_every_split_point(fixture):
    raw = fixture[1]
    for i in range(len(raw) + 1):
        check(fixture, [raw[:i], raw[i:]])


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_one_byte_pieces(fixture):
    raw = fixture[1]
    check(fixture, [raw[i:i + 1] for i in range(len(raw))])


def test_crlf_straddling_feeds_adds_no_blank_line():
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n") == []  # the LF completes the CRLF, it is not a blank line
    assert dec.feed(b"data: b\r") == []
    assert dec.feed(b"\ndata: c\r\n\r") == [E(data="a\nb\nc")]
    assert dec.feed(b"\n") == []
    assert dec.feed(b"data: d\r\n\r\n") == [E(data="d")]
    assert dec.ended_cleanly


def test_multibyte_char_split_across_feeds():
    raw = 'data: {"t":"✅入"}\n\n'.encode()
    cut = raw.index("✅".encode()) + 1
    dec = SSEDecoder()
    assert dec.feed(raw[:cut]) == []
    (ev,) = dec.feed(raw[cut:])
    assert ev.json() == {"t": "✅入"}


def test_invalid_utf8_raises_with_line():
    dec = SSEDecoder()
    with pytest.raises(SSEDecodeError) as ei:
        dec.feed(b"data: ok\n\ndata: \xff\xfe bad\n\n")
    assert isinstance(ei.value, ValueError)
    assert ei.value.line == b"data: \xff\xfe bad"


def test_invalid_utf8_in_pending_line_raises_at_flush():
    dec = SSEDecoder()
    assert dec.feed(b"data: \xe2\x9c") == []  # truncated character: fine until the line ends
    with pytest.raises(SSEDecodeError):
        dec.flush()


def test_offending_line_truncated_to_200_bytes():
    with pytest.raises(SSEDecodeError) as ei:
        SSEDecoder().feed(b"data: " + b"x" * 500 + b"\xff\n")
    assert ei.value.line == (b"data: " + b"x" * 500)[:200]


def test_comments_are_not_decoded_or_counted_as_content():
    dec = SSEDecoder()
    assert dec.feed(b": \xff binary keep-alive\n: ping\n") == []
    assert (dec.content_lines, dec.comment_lines) == (0, 2)
    dec.feed(b"data: x\n")
    assert (dec.content_lines, dec.comment_lines) == (1, 2)


def test_event_objects_behave_like_the_dataclass():
    (ev,) = SSEDecoder().feed(b'event: e\nid: 3\nretry: 9\ndata: {"a": [1]}\n\n')
    assert ev == E("e", '{"a": [1]}', "3", 9, False)
    assert hash(ev) == hash(E("e", '{"a": [1]}', "3", 9, False))
    assert repr(ev) == repr(E("e", '{"a": [1]}', "3", 9, False))
    assert dataclasses.asdict(ev) == {"event": "e", "data": '{"a": [1]}', "id": "3",
                                      "retry": 9, "stray": False}
    assert ev.json() == {"a": [1]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.data = "x"  # type: ignore[misc]
    with pytest.raises(json.JSONDecodeError):
        E(data="[DONE").json()


def test_flush_resets_but_keeps_last_id_and_ended_cleanly_recovers():
    dec = SSEDecoder()
    assert dec.ended_cleanly
    assert dec.feed(b"id: 5\ndata: a") == []
    assert not dec.ended_cleanly
    assert dec.flush() == [E(data="a", id="5")]
    assert not dec.ended_cleanly
    assert dec.flush() == []  # nothing pending any more
    assert dec.feed(b"\xef\xbb\xbfdata: b\n\n") == [E(data="b", id="5")]  # new stream: BOM ok
    assert dec.ended_cleanly
    assert dec.flush() == [] and dec.ended_cleanly


def test_empty_feed_is_a_no_op():
    dec = SSEDecoder()
    assert dec.feed(b"") == [] and dec.ended_cleanly
    assert dec.flush() == []


@pytest.mark.timeout(10)
@pytest.mark.parametrize("piece", [65536, 128])  # tiny pieces: O(n^2) re-joins time out
def test_ten_megabyte_event_in_pieces(piece):
    body = ('{"text":"' + "é✅x" * (10 * 1024 * 1024 // 6) + '"}').encode()
    raw = b"data: " + body + b"\r\n\r\n"
    dec = SSEDecoder()
    events = []
    for i in range(0, len(raw), piece):
        events.extend(dec.feed(raw[i:i + piece]))
    assert len(events) == 1
    assert events[0].data == body.decode()
    assert dec.ended_cleanly and dec.flush() == []


@pytest.mark.timeout(10)
def test_many_small_events_in_large_reads():
    one = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    raw = one * 20000
    dec = SSEDecoder()
    events = []
    for i in range(0, len(raw), 65536):
        events.extend(dec.feed(raw[i:i + 65536]))
    assert len(events) == 20000
    assert all(e.data == one[6:-2].decode() for e in events)


def test_max_event_bytes_single_line():
    ok = b"data: " + b"x" * 94  # exactly 100 bytes
    assert SSEDecoder(100).feed(ok + b"\n\n") == [E(data="x" * 94)]
    with pytest.raises(SSEDecodeError):
        SSEDecoder(100).feed(ok + b"y\n\n")  # complete line in one chunk
    dec = SSEDecoder(100)
    dec.feed(ok[:60])
    with pytest.raises(SSEDecodeError) as ei:
        dec.feed(ok[60:] + b"y")  # growing unterminated line
    assert ei.value.line.startswith(b"data: xxx")


def test_max_event_bytes_many_data_lines():
    dec = SSEDecoder(100)
    assert dec.feed(b"data: 123456789\n" * 6) == []  # 6 * 15 bytes = 90: still fine
    with pytest.raises(SSEDecodeError):
        dec.feed(b"data: 123456789\n")
    dec = SSEDecoder(100)
    assert dec.feed(b"data: 123456789\n\n" * 20) == [E(data="123456789")] * 20  # per event


# --- what a reader needs: public, not the decoder's internals --------------------------------

def test_events_before_a_bad_line_come_with_the_error():
    dec = SSEDecoder()
    with pytest.raises(SSEDecodeError) as ei:
        dec.feed(b"data: a\n\ndata: b\n\ndata: \xff\n\ndata: c\n\n")
    assert ei.value.events == [E(data="a"), E(data="b")]


@pytest.mark.parametrize("raw", [b"data: a\n\n" + b"data: " + b"x" * 200 + b"\n\n",   # an overlong line
                                 b"data: a\n\n" + b"data: " + b"x" * 200])                 # an overlong tail
def test_events_before_an_overlong_line_come_with_the_error(raw):
    with pytest.raises(SSEDecodeError) as ei:
        SSEDecoder(100).feed(raw)
    assert ei.value.events == [E(data="a")]


def test_pending_content_and_open_event():
    dec = SSEDecoder()
    assert not dec.pending_content and dec.open_event is None
    dec.feed(b": keep-alive comm")
    assert not dec.pending_content          # a comment being received is not content
    dec.feed(b"ent\nevent: ping\n")
    assert dec.open_event == "ping" and not dec.pending_content
    dec.feed(b"data: {\"type\": \"pi")
    assert dec.pending_content
    dec.feed(b"ng\"}\n\n")
    assert dec.open_event is None and not dec.pending_content
    dec.feed(b"data: x\n")
    assert dec.open_event == ""             # an event without an event: line yet


@pytest.mark.parametrize("body", [b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n",
                                  b'{"detail": "Not Found"}\n', b"Internal Server Error\n"])
def test_a_body_that_is_not_an_event_stream_is_reported(body):
    dec = SSEDecoder()
    events = dec.feed(body) + dec.flush()
    assert events and events[0].stray and events[0].data == body.split(b"\n")[0].decode()
