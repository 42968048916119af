"""The IRC message codec: lines real clients send, the limits, what formatting
guarantees whatever the fields hold, and the text helpers (formatting codes,
CTCP, the case fold)."""

from __future__ import annotations

import re
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.wire import irc_message as irc
from chatd.wire.irc_message import (
    MAX_LINE_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_TAGS_BYTES,
    EmptyLine,
    InputTooLong,
    IrcParseError,
    Message,
    ctcp,
    ctcp_of,
    format_message,
    irc_fold,
    mask_match,
    parse,
    strip_formatting,
)

# -- parsing: what real clients send ---------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # irssi, weechat and HexChat all open with CAP LS 302, then NICK and USER
        (b"CAP LS 302", Message("CAP", ("LS", "302"))),
        (b"NICK alice", Message("NICK", ("alice",))),
        (b"USER alice 0 * :Alice Liddell", Message("USER", ("alice", "0", "*", "Alice Liddell"))),
        # irssi puts its host name and the server's address where RFC 2812 has mode and "*"
        (
            b"USER bob laptop 127.0.0.1 :Bob",
            Message("USER", ("bob", "laptop", "127.0.0.1", "Bob")),
        ),
        (b"PASS :hunter2", Message("PASS", ("hunter2",))),
        (b"CAP REQ :server-time", Message("CAP", ("REQ", "server-time"))),
        (b"CAP END", Message("CAP", ("END",))),
        (b"MODE alice +i", Message("MODE", ("alice", "+i"))),
        (b"PING chatd.local", Message("PING", ("chatd.local",))),
        (b"PONG :LAG1715000000123", Message("PONG", ("LAG1715000000123",))),
        (b"JOIN #lobby,#games", Message("JOIN", ("#lobby,#games",))),
        (b"JOIN 0", Message("JOIN", ("0",))),
        (b"PART #games :see you", Message("PART", ("#games", "see you"))),
        (b"PRIVMSG #lobby :hi there", Message("PRIVMSG", ("#lobby", "hi there"))),
        (b"PRIVMSG #lobby hi", Message("PRIVMSG", ("#lobby", "hi"))),
        (b"PRIVMSG #lobby ::-)", Message("PRIVMSG", ("#lobby", ":-)"))),
        (b"PRIVMSG #lobby :", Message("PRIVMSG", ("#lobby", ""))),
        (
            b"PRIVMSG #lobby :\x01ACTION waves\x01",
            Message("PRIVMSG", ("#lobby", "\x01ACTION waves\x01")),
        ),
        (b"NOTICE bob :\x01VERSION\x01", Message("NOTICE", ("bob", "\x01VERSION\x01"))),
        (b"QUIT :Leaving", Message("QUIT", ("Leaving",))),
        (b"QUIT", Message("QUIT")),
        (b"WHO #lobby", Message("WHO", ("#lobby",))),
        (b"game", Message("GAME")),  # /quote game: the verb is upper-cased
        (
            b":chatd.local 001 alice :Welcome to the chatd IRC Network, alice",
            Message("001", ("alice", "Welcome to the chatd IRC Network, alice"), "chatd.local"),
        ),
        (
            b":alice!alice@127.0.0.1 PRIVMSG #lobby :hi",
            Message("PRIVMSG", ("#lobby", "hi"), "alice!alice@127.0.0.1"),
        ),
    ],
)
def test_lines_real_clients_send(line: bytes, message: Message) -> None:
    assert parse(line) == message


def test_tags_with_escapes() -> None:
    # the IRCv3 spec's own example of raw and escaped characters in a value
    line = rb"@+example=raw+:=,escaped\:\s\\ :irc.example.com NOTICE #channel :Message"
    assert parse(line) == Message(
        "NOTICE", ("#channel", "Message"), "irc.example.com", (("+example", "raw+:=,escaped; \\"),)
    )
    assert parse(rb"@a=b\\and\nk;c=72\s45;d=gh\:764;e=\r foo").tags == (
        ("a", "b\\and\nk"),
        ("c", "72 45"),
        ("d", "gh;764"),
        ("e", "\r"),
    )


def test_tags_as_servers_and_clients_send_them() -> None:
    assert parse(
        b"@time=2024-05-01T12:00:00.000Z;msgid=abc :alice!alice@host PRIVMSG #lobby :hi"
    ) == Message(
        "PRIVMSG",
        ("#lobby", "hi"),
        "alice!alice@host",
        (("time", "2024-05-01T12:00:00.000Z"), ("msgid", "abc")),
    )
    assert parse(b"@+typing=active TAGMSG #lobby") == Message(
        "TAGMSG", ("#lobby",), tags=(("+typing", "active"),)
    )
    # a tag with no value and one with an empty value are the same thing
    assert parse(b"@c;h=;vendor.example/k=v CMD").tags == (
        ("c", ""),
        ("h", ""),
        ("vendor.example/k", "v"),
    )


def test_tag_escapes_odd_cases() -> None:
    assert parse(rb"@t=value\1 CMD").tags == (("t", "value1"),)  # unknown escape: the character
    assert parse(b"@t=value1\\ CMD").tags == (("t", "value1"),)  # a lone backslash at the end
    assert parse(rb"@t=value\\ntest CMD").tags == (("t", "value\\ntest"),)  # char at a time
    # a key given twice: the last one counts
    assert parse(b"@a=1;b=2;a=3 CMD").tags == (("b", "2"), ("a", "3"))
    # nothing to name: skipped, the rest kept
    assert parse(b"@;=x;k=v; CMD").tags == (("k", "v"),)
    assert parse(b"@ CMD") == Message("CMD")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # spaces: leading, doubled and trailing ones are tolerated; a trailing
        # param keeps its own
        (b"  NICK   alice  ", Message("NICK", ("alice",))),
        (b":src AWAY ", Message("AWAY", source="src")),
        (b":src  JOIN   #chan", Message("JOIN", ("#chan",), "src")),
        (
            b":coolguy foo bar baz :  asdf quux ",
            Message("FOO", ("bar", "baz", "  asdf quux "), "coolguy"),
        ),
        (b":coolguy PRIVMSG bar :lol :) ", Message("PRIVMSG", ("bar", "lol :) "), "coolguy")),
        (b"@a=b   :src   CMD x", Message("CMD", ("x",), "src", (("a", "b"),))),
        # as an old Unreal sent it
        (
            b":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters",
            Message(
                "432", ("#momo", "Erroneous Nickname: Illegal characters"), "gravel.mozilla.org"
            ),
        ),
        (
            b":services.esper.net MODE #foo-bar +o foobar  ",
            Message("MODE", ("#foo-bar", "+o", "foobar"), "services.esper.net"),
        ),
        # a tab is not a space
        (b":cool\tguy foo bar", Message("FOO", ("bar",), "cool\tguy")),
        # a "\r" the line splitter left (the client sent "\r\r\n")
        (b"NICK alice\r", Message("NICK", ("alice",))),
        (b"PRIVMSG #a :hi \r\r", Message("PRIVMSG", ("#a", "hi "))),
    ],
)
def test_spaces_and_sloppy_lines(line: bytes, message: Message) -> None:
    assert parse(line) == message


def test_at_most_fifteen_params_the_rest_joined_into_the_last() -> None:
    fourteen = " ".join(str(n) for n in range(1, 15))
    assert parse(f"CMD {fourteen} fifteen".encode()).params[-1] == "fifteen"
    message = parse(f"CMD {fourteen} 15 16  :x y ".encode())
    assert len(message.params) == 15
    assert message.params[-1] == "15 16  :x y"
    assert parse(f"CMD {fourteen} :15 16".encode()).params[-1] == "15 16"


def test_invalid_utf8_is_read_as_latin1() -> None:
    # HexChat or mIRC set to Latin-1 / CP1252: the accented letters stay letters
    assert parse(b"PRIVMSG #lobby :caf\xe9 cr\xe8me").params[-1] == "café crème"
    assert parse("PRIVMSG #lobby :café 👋".encode()).params[-1] == "café 👋"
    # any bytes at all decode to something: the fallback cannot fail
    assert parse(b"PRIVMSG #a :" + bytes(range(0x80, 0x100))).params[-1] == bytes(
        range(0x80, 0x100)
    ).decode("latin-1")


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        (b"", EmptyLine, "an empty line"),
        (b"   \r", EmptyLine, "an empty line"),
        (b"@a=b", IrcParseError, "tags with no command after them"),
        (b"@a=b   ", IrcParseError, "tags with no command after them"),
        (b"@", IrcParseError, "tags with no command after them"),
        (b":alice!a@h", IrcParseError, 'a source (":alice!a@h") with no command after it'),
        (b"@t=1 :src  ", IrcParseError, 'a source (":src") with no command after it'),
        (b"PRIV!MSG #a :hi", IrcParseError, '"PRIV!MSG" is not a command'),
        (b"12 x", IrcParseError, '"12" is not a command'),
        (b"1234", IrcParseError, '"1234" is not a command'),
        (b"NICK2 alice", IrcParseError, '"NICK2" is not a command'),
        ("PRIVMSGé x".encode(), IrcParseError, '"PRIVMSGé" is not a command'),
        (b"PRIV\x07MSG x", IrcParseError, '"PRIVMSG" is not a command'),  # shown cleaned
        (b"A" * 40 + b"1 x", IrcParseError, '"' + "A" * 20 + '..." is not a command'),  # and short
        (b"PRIVMSG #a :hi\x00there", IrcParseError, "the line holds a NUL, CR or LF byte"),
        (b"PRIVMSG #a :hi\rQUIT", IrcParseError, "the line holds a NUL, CR or LF byte"),
        (b"PRIVMSG #a :hi\nQUIT", IrcParseError, "the line holds a NUL, CR or LF byte"),
    ],
)
def test_what_cannot_be_a_message(line: bytes, error: type[IrcParseError], reason: str) -> None:
    with pytest.raises(error) as caught:
        parse(line)
    assert type(caught.value) is error
    assert caught.value.reason.startswith(reason)
    assert "\n" not in str(caught.value)


# -- the limits ----------------------------------------------------------------------


def test_a_message_of_512_bytes_with_its_crlf_is_the_longest() -> None:
    head = b"PRIVMSG #lobby :"
    longest = head + b"x" * (MAX_MESSAGE_BYTES - 2 - len(head))
    assert len(parse(longest).params[-1]) == MAX_MESSAGE_BYTES - 2 - len(head)
    assert parse(longest + b"\r") == parse(longest)  # the CR is part of the CR LF
    with pytest.raises(InputTooLong) as caught:
        parse(longest + b"x")
    assert str(caught.value) == "the message is 513 bytes with its CR LF; IRC allows 512"
    # the limit is in bytes, not characters
    with pytest.raises(InputTooLong):
        parse(head + "é".encode() * 250)


def test_the_tags_have_8191_bytes_of_their_own() -> None:
    message = b"PRIVMSG #lobby :" + b"x" * (MAX_MESSAGE_BYTES - 2 - 16)
    tags = b"@k=" + b"v" * (MAX_TAGS_BYTES - 4) + b" "  # with its "@" and its space
    assert len(tags) == MAX_TAGS_BYTES
    parsed = parse(tags + message)
    assert parsed.tags == (("k", "v" * (MAX_TAGS_BYTES - 4)),)
    assert len(tags + message) == MAX_LINE_BYTES  # what the listener's input buffer must take
    with pytest.raises(InputTooLong) as caught:
        parse(b"@k=v" + tags[3:] + message)
    assert str(caught.value) == "the tags are 8192 bytes; IRCv3 allows 8191"
    with pytest.raises(InputTooLong):
        parse(b"@" + b"k" * MAX_TAGS_BYTES)  # no command, but too long first
    with pytest.raises(InputTooLong):
        parse(tags + message + b"x")


def test_input_too_long_is_a_parse_error_the_listener_can_tell_apart() -> None:
    # one except IrcParseError catches every fault of the peer's; the subclasses
    # say which ones get ERR_INPUTTOOLONG and which get nothing at all
    assert issubclass(InputTooLong, IrcParseError)
    assert issubclass(EmptyLine, IrcParseError)
    assert not issubclass(InputTooLong, EmptyLine)
    assert irc.ERR_INPUTTOOLONG == "417"


# -- formatting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (Message("PING", ("chatd.local",)), b"PING chatd.local\r\n"),
        (Message("PONG", ("chatd.local", "LAG1")), b"PONG chatd.local LAG1\r\n"),
        (
            Message("PRIVMSG", ("#lobby", "hi"), "alice!alice@127.0.0.1"),
            b":alice!alice@127.0.0.1 PRIVMSG #lobby hi\r\n",
        ),
        (Message("PRIVMSG", ("#lobby", "hi there")), b"PRIVMSG #lobby :hi there\r\n"),
        (Message("PRIVMSG", ("#lobby", ":-)")), b"PRIVMSG #lobby ::-)\r\n"),
        (Message("TOPIC", ("#lobby", "")), b"TOPIC #lobby :\r\n"),
        (Message("QUIT"), b"QUIT\r\n"),
        (Message("privmsg", ("#a", "hi")), b"PRIVMSG #a hi\r\n"),  # verbs go out upper-case
        (
            Message("001", ("alice", "Welcome to the chatd IRC Network, alice"), "chatd.local"),
            b":chatd.local 001 alice :Welcome to the chatd IRC Network, alice\r\n",
        ),
        (
            Message("353", ("alice", "=", "#lobby", "@alice bob"), "chatd.local"),
            b":chatd.local 353 alice = #lobby :@alice bob\r\n",
        ),
        (
            Message("PRIVMSG", ("#lobby", "café 👋")),
            "PRIVMSG #lobby :café 👋\r\n".encode(),
        ),
        (
            Message(
                "PRIVMSG",
                ("#lobby", "hi"),
                "a!a@h",
                (("time", "2024-05-01T12:00:00.000Z"), ("flag", "")),
            ),
            b"@time=2024-05-01T12:00:00.000Z;flag :a!a@h PRIVMSG #lobby hi\r\n",
        ),
        (
            Message("NOTICE", ("#c", "m"), tags=(("+example", "raw+:=,escaped; \\\r\n"),)),
            rb"@+example=raw+:=,escaped\:\s\\\r\n NOTICE #c m" + b"\r\n",
        ),
    ],
)
def test_format_cases(message: Message, line: bytes) -> None:
    assert format_message(message) == line


def test_nothing_a_field_holds_starts_another_line() -> None:
    evil = Message(
        "PRIVMSG",
        ("#lo\r\nbby", "hi\r\nQUIT :bye\x00"),
        "ali\nce!a@h",
        (("t\r\n", "a\x00b\r\n"),),
    )
    assert format_message(evil) == rb"@t=ab\r\n :alice!a@h PRIVMSG #lobby :hiQUIT :bye" + b"\r\n"
    # what the cleaning leaves decides the trailing form
    assert format_message(Message("PRIVMSG", ("#a", "\r\n"))) == b"PRIVMSG #a :\r\n"


def test_a_long_message_is_cut_in_its_last_param_on_a_character_boundary() -> None:
    source = "alice!alice@127.0.0.1"
    for char in ("x", "é", "€", "👋"):
        text = char * 600
        line = format_message(Message("PRIVMSG", ("#lobby", text), source))
        assert len(line) <= MAX_MESSAGE_BYTES
        assert len(line) > MAX_MESSAGE_BYTES - len(char.encode())  # as much as fits
        kept = parse(line[:-2]).params[-1]  # and it is valid UTF-8 (no latin-1 fallback)
        assert text.startswith(kept)
        assert line.decode("utf-8")
    # a param that needed no ":" gets one when it is cut, so it stays one param
    assert format_message(Message("PRIVMSG", ("#a", "x" * 600))).startswith(b"PRIVMSG #a :xxx")


def test_the_cut_leaves_the_tags_whole() -> None:
    tags = (("time", "2024-05-01T12:00:00.000Z"), ("msgid", "m" * 300))
    line = format_message(Message("PRIVMSG", ("#lobby", "y" * 600), "a!a@h", tags))
    section, _, message = line.partition(b" ")
    assert section == b"@time=2024-05-01T12:00:00.000Z;msgid=" + b"m" * 300
    assert len(message) == MAX_MESSAGE_BYTES
    assert parse(line[:-2]).tags == tags


@pytest.mark.parametrize(
    "message",
    [
        Message(""),
        Message("PRIV MSG", ("#a", "hi")),
        Message("PRIVMSG\r\n", ("#a", "hi")),
        Message("12", ()),
        Message("PRIVMSG", ("", "hi")),  # an empty middle param
        Message("PRIVMSG", ("#a b", "hi")),  # a space in a middle param
        Message("PRIVMSG", ("\r\n", "hi")),  # empty once cleaned
        Message("PRIVMSG", (":x", "hi")),
        Message("PRIVMSG", ("#a", "hi"), "alice bob"),
        Message("PRIVMSG", ("#a", "hi"), tags=(("a key", "v"),)),
        Message("PRIVMSG", ("#a", "hi"), tags=(("a;b", "v"),)),
        Message("PRIVMSG", ("#a", "hi"), tags=(("a=b", "v"),)),
        Message("PRIVMSG", ("#a", "hi"), tags=(("", "v"),)),
        Message("005", tuple(f"T{n}" for n in range(16))),  # over MAX_PARAMS
        Message("PRIVMSG", ("#" + "a" * 600, "hi")),  # no room left for the last param
        Message("PRIVMSG", source="s" * 600),
    ],
)
def test_what_cannot_be_sent_is_our_bug(message: Message) -> None:
    with pytest.raises(ValueError) as caught:
        format_message(message)
    assert not isinstance(caught.value, IrcParseError)


def test_a_lone_surrogate_cannot_break_the_encoding() -> None:
    assert format_message(Message("PRIVMSG", ("#a", "x\ud800y"))) == b"PRIVMSG #a x?y\r\n"


# -- round trips and guarantees ---------------------------------------------------------

_VERBS = st.sampled_from(["PRIVMSG", "notice", "Join", "CAP", "X", "001", "433", "999"])
# Characters of every kind that matters here: the syntax ones, controls, and
# UTF-8 of two, three and four bytes (a fixed alphabet keeps hypothesis fast).
_CHARS = "aZ09#&!@.;=,\\+-_~\t\x01\x02\x03\x1b\x7f\x85é€👋\u2028"
_WORD = st.text(st.sampled_from(_CHARS), min_size=1, max_size=8)  # no space, no ":"
_MIDDLE = st.builds(
    lambda first, rest: first + rest, _WORD, st.text(st.sampled_from("a:"), max_size=2)
)
_TEXT = st.text(st.sampled_from(_CHARS + ": "), max_size=40)
_KEY = st.sampled_from(["time", "msgid", "+typing", "draft/label", "+example.com/Foo-2", "k"])
_TAGS = st.dictionaries(
    _KEY, st.text(st.sampled_from(_CHARS + ": \r\n"), max_size=12), max_size=3
).map(lambda tags: tuple(tags.items()))

clean_messages = st.builds(
    Message,
    command=_VERBS.map(str.upper),
    params=st.tuples(st.lists(_MIDDLE, max_size=10), st.lists(_TEXT, max_size=1)).map(
        lambda parts: (*parts[0], *parts[1])
    ),
    source=st.one_of(st.just(""), _WORD),
    tags=_TAGS,
)


# Each example of these builds a whole message draw by draw: 30 of each keep the
# file well under a second.
FEW: Final = settings(max_examples=30)


@FEW
@given(clean_messages)
def test_a_clean_message_comes_back_whole(message: Message) -> None:
    assert parse(format_message(message)[:-2]) == message


def _escaped(value: str) -> str:
    escapes: dict[str, str | int | None] = {
        "\\": "\\\\",
        ";": "\\:",
        " ": "\\s",
        "\r": "\\r",
        "\n": "\\n",
    }
    return value.translate(str.maketrans(escapes))


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """A line as a client might write it: any case, spare spaces, any params."""
    spaces = st.text(" ", min_size=1, max_size=3)
    parts = []
    tags = draw(_TAGS)
    if tags:
        parts.append("@" + ";".join(f"{k}={_escaped(v)}" for k, v in tags) + draw(spaces))
    if draw(st.booleans()):
        parts.append(":" + draw(_WORD) + draw(spaces))
    parts.append(draw(_VERBS))
    for param in draw(st.lists(_MIDDLE, max_size=17)):
        parts.append(draw(spaces) + param)
    if draw(st.booleans()):
        parts.append(draw(spaces) + ":" + draw(_TEXT))
    parts.append(draw(st.text(" ", max_size=2)))
    return "".join(parts).encode()


@FEW
@given(lines())
def test_formatting_what_was_parsed_says_the_same(line: bytes) -> None:
    try:
        message = parse(line)
    except InputTooLong:
        return
    assert parse(format_message(message)[:-2]) == message


def _safe(line: bytes) -> None:
    assert line.endswith(b"\r\n")
    body = line[:-2]
    assert b"\r" not in body and b"\n" not in body and b"\0" not in body
    line.decode("utf-8")
    message_part = body.partition(b" ")[2] if body.startswith(b"@") else body
    assert len(message_part) + 2 <= MAX_MESSAGE_BYTES


@given(st.binary(max_size=700))
def test_any_bytes_parse_or_fail_cleanly_and_format_safely(raw: bytes) -> None:
    try:
        message = parse(raw)
    except IrcParseError as error:
        assert error.reason and "\n" not in error.reason
        return
    line = format_message(message)  # whatever parse gives, format can send
    _safe(line)
    again = parse(line[:-2])
    # Latin-1 read back as UTF-8 may be longer: only the last param can be cut
    assert (again.command, again.source, again.tags) == (
        message.command,
        message.source,
        message.tags,
    )
    assert again.params[:-1] == message.params[:-1]
    if message.params:
        assert message.params[-1].startswith(again.params[-1])


# Long text made cheaply: a short piece repeated, up to well past 512 bytes.
_LONG_TEXT = st.builds(
    lambda piece, times: piece * times,
    st.text(st.sampled_from(_CHARS + "\r\n\0 :"), max_size=8),
    st.integers(1, 120),
)


@given(st.integers(0, 60), st.text(st.sampled_from("xé€👋 "), min_size=1, max_size=4))
def test_every_cut_is_as_long_as_fits_and_on_a_character_boundary(shift: int, piece: str) -> None:
    text = piece * MAX_MESSAGE_BYTES
    line = format_message(Message("PRIVMSG", ("#" + "a" * shift, text), "alice!alice@host"))
    _safe(line)
    assert len(line) > MAX_MESSAGE_BYTES - 4  # a character is at most 4 bytes
    assert text.startswith(parse(line[:-2]).params[-1])


_ANY_TEXT = st.text(max_size=20) | _LONG_TEXT
_DIRTY_WORD = st.builds(
    lambda word, junk: junk + word + junk, _MIDDLE, st.text(st.sampled_from("\r\n\0"), max_size=2)
)


@FEW
@given(
    st.builds(
        Message,
        command=_VERBS,
        params=st.tuples(st.lists(_DIRTY_WORD, max_size=5), st.lists(_ANY_TEXT, max_size=1)).map(
            lambda parts: (*parts[0], *parts[1])
        ),
        source=st.one_of(st.just(""), _DIRTY_WORD),
        tags=st.dictionaries(_KEY, _ANY_TEXT, max_size=2).map(lambda t: tuple(t.items())),
    )
)
def test_format_never_sends_a_break_or_more_than_512_bytes(message: Message) -> None:
    _safe(format_message(message))


# -- formatting codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("plain text, ok", "plain text, ok"),
        ("\x02bold\x02 and \x1ditalic\x1d", "bold and italic"),
        (
            "\x1funder\x1f \x1estruck\x1e \x11mono\x11 \x16rev\x16 done\x0f",
            "under struck mono rev done",
        ),
        ("\x0304red\x03 text", "red text"),
        ("\x034red", "red"),
        ("\x0304,12red on blue", "red on blue"),
        ("\x034,2x", "x"),
        ("\x0399,99default", "default"),
        ("\x03123", "3"),  # two digits at most: the third is text
        ("\x0304,123", "3"),
        ("\x035,text", ",text"),  # a comma with no digit after it is text
        ("\x03,5x", ",5x"),  # \x03 alone resets; the rest is text
        ("\x04FF0000red\x04", "red"),
        ("\x04ff0000,00FF00x", "x"),
        ("\x04FF00 short", "FF00 short"),  # not six hex digits: \x04 alone
        ("\x04123456,12 x", ",12 x"),
        ("100% \x02[ok]\x0f ~/x", "100% [ok] ~/x"),
        ("héllo \x02wörld\x02 👋", "héllo wörld 👋"),
        ("\x01ACTION waves\x01", "\x01ACTION waves\x01"),  # not formatting: left for CTCP
    ],
)
def test_strip_formatting(text: str, clean: str) -> None:
    assert strip_formatting(text) == clean


@given(st.text(st.sampled_from("ab,09F\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f"), max_size=50))
def test_no_formatting_code_survives(text: str) -> None:
    assert not re.search(r"[\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f]", strip_formatting(text))


# -- CTCP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("\x01ACTION waves\x01", ("ACTION", "waves")),
        ("\x01ACTION waves at bob\x01", ("ACTION", "waves at bob")),
        ("\x01ACTION waves", ("ACTION", "waves")),  # no closing \x01, as some clients send
        ("\x01action waves\x01", ("ACTION", "waves")),
        ("\x01VERSION\x01", ("VERSION", "")),
        ("\x01PING 1715000000 123\x01", ("PING", "1715000000 123")),
        ("\x01ACTION \x01", ("ACTION", "")),
        ("\x01\x01", None),
        ("\x01", None),
        ("\x01 x\x01", None),
        ("hi \x01ACTION x\x01", None),
        ("plain", None),
        ("", None),
    ],
)
def test_ctcp_of(text: str, parsed: tuple[str, str] | None) -> None:
    assert ctcp_of(text) == parsed


def test_ctcp() -> None:
    assert ctcp("ACTION", "waves") == "\x01ACTION waves\x01"
    assert ctcp("version", "chatd 0.1.0") == "\x01VERSION chatd 0.1.0\x01"
    assert ctcp("VERSION") == "\x01VERSION\x01"
    assert ctcp("PING", "x\x01PRIVMSG") == "\x01PING xPRIVMSG\x01"  # one CTCP, whatever it holds
    assert ctcp_of(ctcp("PING", "123 456")) == ("PING", "123 456")


# -- case fold and numerics --------------------------------------------------------------


def test_irc_fold_is_ascii_casemapping() -> None:
    assert irc.CASEMAPPING == "ascii"
    assert irc_fold("Alice") == "alice"
    assert irc_fold("#Lobby") == "#lobby"
    assert irc_fold("BOB_-1") == "bob_-1"
    # ascii, not rfc1459: []\^ are not the upper case of {}|~
    assert irc_fold("[x]\\^") == "[x]\\^"
    # only A-Z: what lower() would do to other letters is not part of ascii
    assert irc_fold("ÄB") == "Äb"
    assert irc_fold("İX") == "İx"


@pytest.mark.parametrize(
    ("mask", "name", "matches"),
    [
        ("*", "alice", True),
        ("coolni*", "coolNick", True),
        ("COOLNICK", "coolnick", True),
        ("c?ol*k", "cOolNick", True),
        ("*k", "coolNick", True),
        ("a*b*c", "aXbYc", True),
        ("**", "", True),
        ("*x", "coolNick", False),
        ("a*", "ba", False),
        ("?", "", False),
        ("alice", "alice2", False),
        ("[a]*", "[A]x", True),  # brackets are characters, not a class
        ("*a" * 250 + "b", "a" * 16, False),  # many stars: still a quick no
    ],
)
def test_mask_match(mask: str, name: str, matches: bool) -> None:
    assert mask_match(mask, name) is matches


def _numerics() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(irc).items()
        if name.startswith(("RPL_", "ERR_")) and isinstance(value, str)
    }


def test_numerics_are_distinct_three_digit_codes() -> None:
    numerics = _numerics()
    assert all(re.fullmatch(r"[0-9]{3}", code) for code in numerics.values())
    assert len(set(numerics.values())) == len(numerics)
    # the ones the listener's registration, errors and limits hang on
    assert (irc.RPL_WELCOME, irc.RPL_ISUPPORT, irc.RPL_NAMREPLY) == ("001", "005", "353")
    assert (irc.ERR_NICKNAMEINUSE, irc.ERR_NOTREGISTERED, irc.ERR_ALREADYREGISTERED) == (
        "433",
        "451",
        "462",
    )
    wanted = {"001", "002", "003", "004", "005", "221", "251", "252", "253", "254", "255"}
    wanted |= {"265", "266", "301", "311", "312", "313", "314", "315", "317", "318", "319"}
    wanted |= {"321", "322", "323", "324", "331", "332", "333", "341", "352", "353", "366"}
    wanted |= {"372", "375", "376", "401", "403", "404", "411", "412", "417", "421", "422"}
    wanted |= {"431", "432", "433", "441", "442", "451", "461", "462", "472", "482", "501", "502"}
    assert wanted <= set(numerics.values())


def test_a_numeric_formats_as_servers_send_it() -> None:
    line = format_message(
        Message(irc.ERR_NICKNAMEINUSE, ("*", "alice", "Nickname is already in use"), "chatd.local")
    )
    assert line == b":chatd.local 433 * alice :Nickname is already in use\r\n"
