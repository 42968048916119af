"""History on the IRC wire, sans-IO: a kept line is the line it was, stamped
with when it was said for a client with server-time, with the time in the
text for one without; a topic is told, not set; what is kept for an account
goes to its reader."""

from __future__ import annotations

import time
from dataclasses import dataclass

from chatd.core import events as ev
from chatd.wire.irc import IrcServer, IrcWire
from chatd.wire.irc_message import parse

AT = 1_795_000_000.5  # 2026-11-18T11:06:40.500Z
NOW = AT + 3600


@dataclass
class Reader:
    nick: str = "bob"
    ident: str = "~bob"


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines()


def _hhmm(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


def test_a_kept_line_with_server_time_carries_when_it_was_said() -> None:
    wire = IrcWire(Reader(), IrcServer(wall=lambda: NOW), server_time=True)
    [line] = _lines(wire.render(ev.Replayed("#lobby", AT, ev.SAID, "alice", "hi", "alice", NOW)))
    msg = parse(line)
    assert msg.tags == (("time", "2026-11-18T11:06:40.500Z"),)
    assert (msg.source, msg.command, msg.params) == (
        "alice!alice@chatd",
        "PRIVMSG",
        ("#lobby", "hi"),
    )


def test_without_server_time_the_time_is_in_the_text() -> None:
    wire = IrcWire(Reader(), IrcServer(wall=lambda: NOW))
    [line] = _lines(wire.render(ev.Replayed("#lobby", AT, ev.ACTED, "alice", "waves", "", NOW)))
    msg = parse(line)
    assert msg.tags == ()
    assert msg.params == ("#lobby", f"\x01ACTION [{_hhmm(AT)}] waves\x01")


def test_a_kept_topic_is_a_notice_not_a_topic_change() -> None:
    wire = IrcWire(Reader(), IrcServer(wall=lambda: NOW))
    [line] = _lines(wire.render(ev.Replayed("#lobby", AT, ev.TOPIC, "alice", "chess", "", NOW)))
    msg = parse(line)
    assert msg.command == "NOTICE" and msg.source is not None and msg.source.startswith("chatd!")
    assert msg.params == ("#lobby", f"[{_hhmm(AT)}] alice set the topic: chess")


def test_messages_kept_for_an_account_go_to_their_reader_between_notices() -> None:
    wire = IrcWire(Reader(), IrcServer(wall=lambda: NOW), server_time=True)
    start = parse(_lines(wire.render(ev.ReplayStart("", ev.HELD, 1, 0.0, NOW)))[0])
    assert (start.command, start.params) == (
        "NOTICE",
        ("bob", "1 private message while you were away:"),
    )
    kept = ev.Replayed("", AT, ev.PRIVATE, "carol", "psst", "~carol", NOW)
    msg = parse(_lines(wire.render(kept))[0])
    assert msg.params == ("bob", "psst") and msg.source == "carol!~carol@chatd"
    assert msg.tags == (("time", "2026-11-18T11:06:40.500Z"),)
    end = parse(_lines(wire.render(ev.ReplayEnd("", ev.HELD, 1)))[0])
    assert end.params == ("bob", "End of private messages kept for you.")
