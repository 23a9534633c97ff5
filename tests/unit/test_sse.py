import pytest

from engine_clients._sse import SSEDecoder
from engine_clients.errors import MalformedResponseError


def decode(body: bytes, step: int | None = None) -> list[tuple[str, bytes]]:
    dec = SSEDecoder()
    chunks = [body] if step is None else [body[i : i + step] for i in range(0, len(body), step)]
    return [(e.event, e.data) for c in chunks for e in dec.feed(c)]


BODY = (
    b'data: {"a":1}\n\n'
    b'data:{"b":2}\r\n\r\n'  # no space, CRLF (TGI < 2.1)
    b": keep-alive\n\n"  # comment lines
    b"event: ping\ndata: x\n\n"
    b'error: {"code":500,"message":"boom"}\n\n'  # llama.cpp's error field
    b"data: line1\ndata: line2\n\n"
    b"id: 7\nretry: 10\ndata: [DONE]\n\n"
)
EXPECTED = [
    ("message", b'{"a":1}'),
    ("message", b'{"b":2}'),
    ("ping", b"x"),
    ("error", b'{"code":500,"message":"boom"}'),
    ("message", b"line1\nline2"),
    ("message", b"[DONE]"),
]


@pytest.mark.parametrize("step", [None, 1, 2, 3, 7, 64])
def test_framing_is_independent_of_chunk_boundaries(step: int | None) -> None:
    assert decode(BODY, step) == EXPECTED


def test_event_after_named_event_is_a_message_again() -> None:
    assert decode(b"event: x\ndata: 1\n\ndata: 2\n\n") == [("x", b"1"), ("message", b"2")]


def test_cut_frame_is_not_dispatched_and_is_reported_as_partial() -> None:
    dec = SSEDecoder()
    assert [e.data for e in dec.feed(b'data: {"a":1}\n\ndata: {"tok')] == [b'{"a":1}']
    assert dec.has_partial_event


def test_event_size_is_bounded() -> None:
    dec = SSEDecoder(max_event_bytes=100)
    with pytest.raises(MalformedResponseError):
        dec.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")


def test_unterminated_line_size_is_bounded() -> None:
    dec = SSEDecoder(max_event_bytes=100)
    with pytest.raises(MalformedResponseError):
        for _ in range(10):
            dec.feed(b"z" * 50)


def test_stream_size_is_bounded() -> None:
    dec = SSEDecoder(max_stream_bytes=1000)
    with pytest.raises(MalformedResponseError):
        for _ in range(100):
            dec.feed(b"data: 1234567890\n\n")
