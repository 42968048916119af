from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.core.buffers import OVERLONG, InputBuffer, OutputBuffer, Overlong

Lines = list[bytes | Overlong]


def take_all(buf: InputBuffer) -> Lines:
    out: Lines = []
    while (line := buf.next_line()) is not None:
        out.append(line)
    return out


def feed(buf: InputBuffer, data: bytes) -> Lines:
    buf.feed(data)
    return take_all(buf)


def test_lines_split_on_newline_and_drop_one_trailing_cr() -> None:
    buf = InputBuffer(100)
    assert feed(buf, b"hello\r\nwor") == [b"hello"]
    assert feed(buf, b"ld\n\nx\r\r\n") == [b"world", b"", b"x\r"]
    assert len(buf) == 0


def test_lines_wait_in_the_buffer_until_taken() -> None:
    buf = InputBuffer(100)
    buf.feed(b"one\ntwo\nthr")
    assert buf.next_line() == b"one"
    buf.feed(b"ee\n")
    assert take_all(buf) == [b"two", b"three"]
    assert buf.next_line() is None


def test_overlong_line_is_reported_once_and_skipped_to_its_newline() -> None:
    buf = InputBuffer(8)
    assert feed(buf, b"123456789\nok\n") == [OVERLONG, b"ok"]
    # Arriving in pieces, an overlong line is reported as soon as it passes the
    # limit, and its bytes are never kept.
    assert feed(buf, b"0123456789") == [OVERLONG]
    assert len(buf) == 0
    assert feed(buf, b"abcdefgh" * 100) == []
    assert len(buf) == 0
    assert feed(buf, b"still the long line\nnext\n") == [b"next"]


def test_overlong_lines_keep_their_place_among_lines_not_yet_taken() -> None:
    buf = InputBuffer(4)
    buf.feed(b"a\nb\n123456")
    buf.feed(b"789\nc\n12345678")
    assert len(buf) == len(b"a\nb\nc\n")  # the overlong bytes were never kept
    assert take_all(buf) == [b"a", b"b", OVERLONG, b"c", OVERLONG]


def test_line_of_exactly_the_limit_passes_with_or_without_cr() -> None:
    buf = InputBuffer(4)
    assert feed(buf, b"abcd\nabcd\r\nabcde\n") == [b"abcd", b"abcd", OVERLONG]
    assert feed(buf, b"abcd\r") == []
    assert feed(buf, b"\n") == [b"abcd"]


def test_memory_stays_bounded_without_any_newline() -> None:
    buf = InputBuffer(1024)
    for _ in range(1000):
        buf.feed(b"x" * 4096)
        assert len(buf) <= 1025
    assert take_all(buf) == [OVERLONG]


def _feed_in_chunks(data: bytes, cuts: list[int], takes: list[bool], limit: int) -> Lines:
    """Feed ``data`` cut at ``cuts``; after chunk i take every line if takes[i]."""
    buf = InputBuffer(limit)
    out: Lines = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for i, point in enumerate([*points, len(data)]):
        buf.feed(data[start:point])
        start = point
        if i < len(takes) and takes[i]:
            out += take_all(buf)
    return out + take_all(buf)


@given(
    data=st.binary(max_size=400).map(lambda b: b.replace(b"Z", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=20),
    takes=st.lists(st.booleans(), max_size=21),
    limit=st.integers(min_value=1, max_value=40),
)
def test_any_chunking_and_any_reading_pace_give_the_same_lines(
    data: bytes, cuts: list[int], takes: list[bool], limit: int
) -> None:
    assert _feed_in_chunks(data, cuts, takes, limit) == _feed_in_chunks(data, [], [], limit)


@given(
    data=st.binary(max_size=400).map(lambda b: b.replace(b"Z", b"\n")),
    limit=st.integers(min_value=1, max_value=40),
)
def test_lines_are_what_was_sent(data: bytes, limit: int) -> None:
    expected: Lines = []
    *lines, tail = data.split(b"\n")
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        expected.append(line if len(line) <= limit else OVERLONG)
    if len(tail) > limit + 1:  # unterminated, yet already too long: said at once
        expected.append(OVERLONG)
    assert feed(InputBuffer(limit), data) == expected


def test_output_buffer_keeps_order_across_partial_sends() -> None:
    out = OutputBuffer(limit=100)
    shared = b"hello\n"
    assert out.append(shared) and out.append(b"world\n")
    assert len(out) == 12
    out.consume(3)
    assert b"".join(bytes(c) for c in out.peek(10)) == b"lo\nworld\n"
    out.consume(4)
    assert b"".join(bytes(c) for c in out.peek(10)) == b"orld\n"
    assert shared == b"hello\n"  # the shared bytes object was never touched
    out.consume(5)
    assert len(out) == 0 and out.peek(10) == []


def test_output_buffer_refuses_past_its_limit_and_keeps_what_it_had() -> None:
    out = OutputBuffer(limit=10)
    assert out.append(b"12345678")
    assert not out.append(b"abc")
    assert len(out) == 8
    assert out.append(b"ab")


def test_peek_caps_the_number_of_chunks() -> None:
    out = OutputBuffer(limit=1000)
    for i in range(10):
        out.append(bytes([48 + i]))
    assert [bytes(c) for c in out.peek(3)] == [b"0", b"1", b"2"]
