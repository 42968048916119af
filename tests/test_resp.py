"""chatd.wire.resp without sockets: replies however the bytes are cut, the
bound, a broken stream, commands packed, and redis:// URLs."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.wire.resp import (
    MAX_REPLY_BYTES,
    RedisAddress,
    ReplyError,
    RespError,
    RespReader,
    command,
    is_error,
    parse_url,
)


def plain(reply: object) -> object:
    """``reply`` with each error reply as ("error", message): exceptions
    compare by identity, and tests compare replies whole."""
    if isinstance(reply, list):
        return [plain(each) for each in reply]
    if is_error(reply):
        return ("error", str(reply))
    return reply


def read(*chunks: bytes, reader: RespReader | None = None) -> list[object]:
    """Every reply the chunks make, fed one at a time, replies taken after each."""
    reader = reader or RespReader()
    got: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)
        got += reader.replies()
    return [plain(each) for each in got]


def encode(reply: object) -> bytes:
    """``reply`` as Redis would send it (plain()'s form; bytes as bulk strings):
    written here, apart from hiredis, so the parser is checked against RESP itself."""
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if isinstance(reply, tuple):
        return b"-%s\r\n" % reply[1].encode()
    assert isinstance(reply, list)
    return b"*%d\r\n" % len(reply) + b"".join(encode(each) for each in reply)


#: Every kind of RESP2 reply, each as bytes and as plain() sees it parsed.
KINDS: list[tuple[bytes, object]] = [
    (b"+OK\r\n", b"OK"),
    (b"-ERR unknown command 'NOPE'\r\n", ("error", "ERR unknown command 'NOPE'")),
    (b":0\r\n", 0),
    (b":-42\r\n", -42),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"$6\r\nab\r\ncd\r\n", b"ab\r\ncd"),  # a bulk string holds CRLF as it is
    (b"$2\r\n\xff\xfe\r\n", b"\xff\xfe"),  # and bytes that are not UTF-8
    (b"*0\r\n", []),
    (b"*-1\r\n", None),
    (b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n", [1, [b"x"]]),
    (b"*2\r\n:1\r\n-ERR inner\r\n", [1, ("error", "ERR inner")]),
    (encode(b"x" * 5000), b"x" * 5000),
]
STREAM = b"".join(data for data, _ in KINDS)
EXPECTED = [parsed for _, parsed in KINDS]


def test_each_kind_of_reply() -> None:
    for data, parsed in KINDS:
        assert read(data) == [parsed], data


def test_the_same_replies_wherever_the_bytes_are_cut() -> None:
    for cut in range(len(STREAM) + 1):
        assert read(STREAM[:cut], STREAM[cut:]) == EXPECTED, cut


def test_the_same_replies_a_byte_at_a_time() -> None:
    assert read(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_replies_wait_for_the_rest_of_a_reply() -> None:
    reader = RespReader()
    reader.feed(b"+OK\r\n$5\r\nhel")
    assert reader.replies() == [b"OK"]
    assert reader.replies() == []
    reader.feed(b"lo\r\n")
    assert reader.replies() == [b"hello"]


def test_an_error_reply_is_returned_not_raised_also_inside_an_array() -> None:
    reader = RespReader()
    reader.feed(b"*3\r\n:1\r\n-WRONGTYPE Operation against a key\r\n$-1\r\n+OK\r\n")
    array, ok = reader.replies()
    assert isinstance(array, list)
    assert array[0] == 1 and array[2] is None
    assert is_error(array[1]) and isinstance(array[1], ReplyError)
    assert str(array[1]) == "WRONGTYPE Operation against a key"
    assert not is_error(ok) and ok == b"OK"
    assert not reader.failed  # an error reply is one command refused, not a broken stream


def test_pubsub_shapes_come_as_bytes() -> None:
    # as redis-server 6.2 sends them to a subscribed RESP2 connection
    data = (
        encode([b"subscribe", b"chatd:ev:{lobby}", 1])
        + encode([b"psubscribe", b"chatd:ev:*", 2])
        + encode([b"message", b"chatd:ev:{lobby}", b"\x00payload"])
        + encode([b"pmessage", b"chatd:ev:*", b"chatd:ev:{lobby}", b"p"])
        + b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    )
    assert read(data) == [
        [b"subscribe", b"chatd:ev:{lobby}", 1],
        [b"psubscribe", b"chatd:ev:*", 2],
        [b"message", b"chatd:ev:{lobby}", b"\x00payload"],
        [b"pmessage", b"chatd:ev:*", b"chatd:ev:{lobby}", b"p"],
        [b"pong", b""],
    ]


def assert_refuses(reader: RespReader) -> None:
    assert reader.failed
    with pytest.raises(RespError, match="failed earlier"):
        reader.feed(b"+OK\r\n")
    with pytest.raises(RespError, match="failed earlier"):
        reader.replies()


def test_more_than_the_bound_without_a_complete_reply_fails_the_reader() -> None:
    reader = RespReader(max_reply_bytes=100)
    reader.feed(b"$150\r\n" + b"x" * 90)  # 96 bytes buffered: under the bound
    assert reader.replies() == []
    reader.feed(b"x" * 10)
    with pytest.raises(RespError) as caught:
        reader.replies()
    assert "\n" not in str(caught.value) and "drop the connection" in str(caught.value)
    assert_refuses(reader)


def test_the_real_bound_holds_8_mib() -> None:
    assert MAX_REPLY_BYTES == 8 * 1024 * 1024
    reader = RespReader()
    big = b"$%d\r\n" % (2 * MAX_REPLY_BYTES)
    reader.feed(big + b"x" * (MAX_REPLY_BYTES - len(big)))
    assert reader.replies() == []
    reader.feed(b"x")
    with pytest.raises(RespError, match="without completing a reply"):
        reader.replies()


def test_a_complete_reply_may_be_larger_than_the_bound() -> None:
    # The bound is on bytes waiting for the rest of a reply; one read that
    # completes a reply is parsed, whatever its size.
    assert read(encode(b"x" * 200), reader=RespReader(max_reply_bytes=100)) == [b"x" * 200]


def test_bytes_that_are_not_resp_fail_the_reader() -> None:
    reader = RespReader()
    reader.feed(b"+OK\r\n?what\r\n")
    with pytest.raises(RespError) as caught:
        reader.replies()
    assert "\n" not in str(caught.value) and "not RESP" in str(caught.value)
    assert_refuses(reader)


@pytest.mark.parametrize("data", [b":12x\r\n", b"$abc\r\n", b"*2\r\n:1\r\n$-5\r\n"])
def test_bad_lengths_and_numbers_are_protocol_errors(data: bytes) -> None:
    reader = RespReader()
    reader.feed(data)
    with pytest.raises(RespError, match="not RESP"):
        reader.replies()


# -- any split of any replies ----------------------------------------------------------

_errors = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
    lambda text: ("error", "ERR " + text)
)
_replies = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=40) | _errors,
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


@given(st.lists(_replies, max_size=10), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_split_of_packed_replies_gives_the_same_list(
    replies: list[object], cuts: list[int]
) -> None:
    data = b"".join(encode(each) for each in replies)
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    chunks = [data[a:b] for a, b in pairwise(points)]
    assert read(*chunks) == replies


# -- command() -------------------------------------------------------------------------


def test_command_packs_str_bytes_and_numbers() -> None:
    assert command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert command("SET", "k", "v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert command("EXPIRE", b"k", 10) == b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n"
    assert command("INCRBY", "k", -3) == b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$2\r\n-3\r\n"
    assert command("ZADD", "z", 1.5, "m").endswith(b"$3\r\n1.5\r\n$1\r\nm\r\n")
    # str goes as UTF-8 (the length counts bytes); bytes as they are, CRLF and all
    assert (
        command("SET", "é", b"\r\n\xff")
        == b"*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$3\r\n\r\n\xff\r\n"
    )


def test_packed_commands_read_back_as_their_arguments() -> None:
    # A command is an array of bulk strings: the reader reads what was sent.
    assert read(command("HSET", "h", b"\x00", 7)) == [[b"HSET", b"h", b"\x00", b"7"]]


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("SET", "k", None), "argument 3 is None"),
        (("SET", "k", True), "argument 3 is bool"),
        (("SET", ["k"]), "argument 2 is list"),
        ((None,), "argument 1 is None"),
    ],
)
def test_command_refuses_other_types_naming_the_argument(
    args: tuple[object, ...], what: str
) -> None:
    with pytest.raises(ValueError) as caught:
        command(*args)  # type: ignore[arg-type]
    message = str(caught.value)
    assert what in message and "pass str, bytes, int or float" in message
    assert "\n" not in message


def test_command_never_shows_a_value_it_refuses() -> None:
    with pytest.raises(ValueError) as caught:
        command("AUTH", "s3cret", object())  # type: ignore[arg-type]
    assert "s3cret" not in str(caught.value)


def test_command_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least its name"):
        command()


# -- redis:// URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://localhost", RedisAddress("localhost")),
        ("redis://localhost/", RedisAddress("localhost")),
        ("REDIS://Redis.example:6380/2", RedisAddress("Redis.example", 6380, 2)),
        ("redis://10.0.0.5:6379/0", RedisAddress("10.0.0.5")),
        ("redis://[::1]", RedisAddress("::1")),
        ("redis://[::1]:6380/15", RedisAddress("::1", 6380, 15)),
        ("redis://:secret@h/0", RedisAddress("h", password="secret")),
        ("redis://:p%40ss%3Aw%2Frd@h", RedisAddress("h", password="p@ss:w/rd")),
        ("redis://:p@ss/w@h:7000", RedisAddress("h", 7000, password="p@ss/w")),  # up to the last @
        ("redis://chat:pw@h:6379/3", RedisAddress("h", 6379, 3, "chat", "pw")),
        ("redis://ch%61t:@h", RedisAddress("h", username="chat")),  # an ACL nopass user
        ("redis://:@h", RedisAddress("h")),
    ],
)
def test_parse_url(url: str, address: RedisAddress) -> None:
    assert parse_url(url) == address


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("rediss://:pw@h", "rediss:// (TLS) is not supported yet"),
        ("http://h", "must start with redis://"),
        ("localhost:6379", "must start with redis://"),
        ("", "must start with redis://"),
        ("redis://h:abc", "the port must be a number from 1 to 65535, not 'abc'"),
        ("redis://h:0", "the port must be a number from 1 to 65535, not '0'"),
        ("redis://:pw@h:65536/0", "the port must be a number from 1 to 65535, not '65536'"),
        ("redis://h:", "the port must be a number from 1 to 65535, not ''"),
        ("redis://h:+1", "the port must be a number"),
        ("redis://h/x", "the database must be a number like /0, not /x"),
        ("redis://h/-1", "the database must be a number like /0, not /-1"),
        ("redis://h/1/2", "the database must be a number like /0, not /1/2"),
        ("redis://h/0?timeout=1", "the database must be a number"),
        ("redis://", "the host is empty"),
        ("redis://:6379/0", "the host is empty"),
        ("redis://:pw@/0", "the host is empty"),
        ("redis://[]:6379", "the host is empty"),
        ("redis://::1", "an IPv6 address goes in brackets"),
        ("redis://[::1", "the IPv6 address has no closing ]"),
        ("redis://[::1]6379", "after the ] comes :port or /db"),
        ("redis://pw@h", "a login needs a colon"),
    ],
)
def test_parse_url_errors_are_one_clear_line(url: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_url(url)
    message = str(caught.value)
    assert why in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    ["redis://:hunter2@h:bad/0", "rediss://u:hunter2@h", "u:hunter2@h", "redis://u:hunter2@h/x"],
)
def test_parse_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_url(url)
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


def test_an_address_shows_no_password() -> None:
    address = parse_url("redis://chat:hunter2@[::1]:6380/2")
    for shown in (str(address), address.display, repr(address)):
        assert "hunter2" not in shown
    assert str(address) == "redis://chat:***@[::1]:6380/2"
    assert str(parse_url("redis://h")) == "redis://h:6379/0"
    assert str(parse_url("redis://:pw@h")) == "redis://:***@h:6379/0"


def test_hello_is_what_a_fresh_connection_sends_first() -> None:
    assert parse_url("redis://h").hello() == []
    assert parse_url("redis://h/0").hello() == []
    assert parse_url("redis://:pw@h").hello() == [command("AUTH", "pw")]
    assert parse_url("redis://chat:pw@h").hello() == [command("AUTH", "chat", "pw")]
    assert parse_url("redis://chat:@h").hello() == [command("AUTH", "chat", "")]
    assert parse_url("redis://h/3").hello() == [command("SELECT", 3)]
    assert parse_url("redis://:pw@h/3").hello() == [command("AUTH", "pw"), command("SELECT", 3)]
