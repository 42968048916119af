"""The nc line format: every event rendered as the bytes an nc user reads, in
each variant, and cleaned whoever wrote the text."""

from __future__ import annotations

import time

import pytest

from chatd.core import events as ev
from chatd.wire import line
from chatd.wire.line import AWAY, ECHO, HERE, render


def _local(*when: int) -> float:
    """Seconds since the epoch of a time of day in this machine's time zone
    (what history shows times in)."""
    return time.mktime((*when, 0, 0, -1))  # type: ignore[arg-type]


AT = _local(2026, 12, 1, 10, 32, 0)  # 10:32 today
NOW = _local(2026, 12, 1, 15, 0, 0)
YESTERDAY = _local(2026, 11, 30, 23, 59, 0)
LAST_YEAR = _local(2025, 11, 30, 8, 5, 0)

CASES: list[tuple[ev.Event, str, bytes]] = [
    (ev.Said("#lobby", "bob", "hi"), HERE, b"<bob> hi\n"),
    (ev.Said("#games", "bob", "hi"), AWAY, b"[#games] <bob> hi\n"),
    (ev.Acted("#lobby", "bob", "waves"), HERE, b"* bob waves\n"),
    (ev.Acted("#games", "bob", "waves"), AWAY, b"[#games] * bob waves\n"),
    (ev.PrivateSaid("alice", "bob", "psst"), HERE, b"*alice* psst\n"),
    (ev.PrivateSaid("alice", "bob", "psst"), ECHO, b"-> *bob* psst\n"),
    (ev.Joined("#lobby", "bob", arrived=True), HERE, b"*** bob joined\n"),
    (ev.Joined("#lobby", "bob", arrived=True), AWAY, b"*** [#lobby] bob joined\n"),
    (ev.Joined("#games", "carol"), HERE, b"*** carol joined #games\n"),
    (ev.Joined("#games", "carol"), AWAY, b"*** [#games] carol joined\n"),
    (ev.Parted("#games", "carol", "bye"), HERE, b"*** carol left #games (bye)\n"),
    (ev.Parted("#games", "carol"), AWAY, b"*** [#games] carol left\n"),
    (
        ev.Kicked("#games", "bob", "alice", "spam"),
        HERE,
        b"*** bob was kicked from #games by alice (spam)\n",
    ),
    (
        ev.Kicked("#games", "bob", "", ""),
        AWAY,
        b"*** [#games] bob was kicked by a server operator\n",
    ),
    (ev.Quit("bob", "Quit: lunch"), HERE, b"*** bob left (Quit: lunch)\n"),
    (ev.Quit("bob", "Quit: lunch"), AWAY, b"*** bob left (Quit: lunch)\n"),  # no room of its own
    (ev.Renamed("bob", "robert"), HERE, b"*** bob is now known as robert\n"),
    (ev.TopicSet("#games", "chess", "alice"), HERE, b"*** alice set the topic of #games: chess\n"),
    (
        ev.TopicSet("#games", "chess", ""),
        AWAY,
        b"*** [#games] a server operator set the topic: chess\n",
    ),
    (ev.TopicSet("#games", "", "alice"), HERE, b"*** alice cleared the topic of #games\n"),
    (ev.Opped("#games", "bob", "alice", True), HERE, b"*** alice made bob an operator of #games\n"),
    (
        ev.Opped("#games", "bob", "alice", False),
        AWAY,
        b"*** [#games] alice removed bob as an operator\n",
    ),
    (ev.Notice("two\nlines"), HERE, b"*** two\n*** lines\n"),
    (ev.Notice("solved\nit", "#games"), AWAY, b"*** [#games] solved\n*** [#games] it\n"),
    (
        ev.Welcome("alice", "#lobby", 1),
        HERE,
        b"*** Welcome, alice! 1 user online (you); you are in #lobby. Type /help for commands.\n",
    ),
    (
        ev.Welcome("alice", "#lobby", 3),
        HERE,
        b"*** Welcome, alice! 3 users online; you are in #lobby. Type /help for commands.\n",
    ),
    (
        ev.RoomState("#games", "chess", ("alice", "bob"), frozenset({"alice"})),
        HERE,
        b"*** Topic of #games: chess\n*** 2 users in #games: @alice, bob\n",
    ),
    (
        ev.RoomState("#games", "", ("alice",), frozenset()),
        HERE,
        b"*** #games has no topic.\n*** 1 user in #games: alice\n",
    ),
    (
        ev.Members("#games", ("alice", "bob"), frozenset({"bob"})),
        HERE,
        b"*** 2 users in #games: alice, @bob\n",
    ),
    (
        ev.Greeting(),
        HERE,
        b"*** Welcome to chatd, a chat server for terminals.\n"
        rb"*** Choose a nickname (1-16 letters, digits or any of _-[]\^{}|`):" + b"\n",
    ),
    (ev.YouRenamed("bob", "robert"), HERE, b"*** You are now known as robert.\n"),
    (ev.Goodbye("bob"), HERE, b"*** Goodbye, bob.\n"),
    (ev.Closing("idle timeout"), HERE, b""),  # the notice before it said why
    (ev.PrivateSaid("bob", "alice", "waves", action=True), HERE, b"*bob* * bob waves\n"),
    (ev.Current("#games"), HERE, b"*** Now talking in #games.\n"),
    (ev.Current(""), HERE, b"*** You are in no room. /join #room to enter one.\n"),
    (ev.YouLeft("#games"), HERE, b"*** You left #games.\n"),
    (
        ev.YouLeft("#games", True, "alice", "spam"),
        HERE,
        b"*** You were kicked from #games by alice: spam\n",
    ),
    (
        ev.YouLeft("#games", True, "", ""),
        HERE,
        b"*** You were kicked from #games by a server operator.\n",
    ),
    # History: each kept line marked with its time, the date when not today.
    (ev.Replayed("#lobby", AT, ev.SAID, "bob", "hi", now=NOW), HERE, b"*** [10:32] <bob> hi\n"),
    (
        ev.Replayed("#games", YESTERDAY, ev.ACTED, "bob", "waves", now=NOW),
        AWAY,
        b"*** [#games] [Nov 30 23:59] * bob waves\n",
    ),
    (
        ev.Replayed("#lobby", LAST_YEAR, ev.TOPIC, "alice", "chess", now=NOW),
        HERE,
        b"*** [2025-11-30 08:05] alice set the topic: chess\n",
    ),
    (
        ev.Replayed("#lobby", AT, ev.TOPIC, "", "", now=NOW),
        HERE,
        b"*** [10:32] a server operator cleared the topic\n",
    ),
    (ev.Replayed("#lobby", AT, ev.NOTICED, "bob", "hi", now=NOW), HERE, b"*** [10:32] <bob> hi\n"),
    (
        ev.ReplayStart("#lobby", ev.MISSED, 14, AT, NOW),
        HERE,
        b"*** While you were away (since 10:32): 14 lines in #lobby.\n",
    ),
    (
        ev.ReplayStart("#games", ev.MISSED, 1, YESTERDAY, NOW),
        AWAY,
        b"*** [#games] While you were away (since Nov 30 23:59): 1 line in #games.\n",
    ),
    (ev.ReplayStart("#lobby", ev.RECENT, 3), HERE, b"*** Recent chat in #lobby (3 lines):\n"),
    (ev.ReplayStart("#lobby", ev.ASKED, 20), HERE, b"*** History of #lobby, the last 20 lines:\n"),
    (
        ev.ReplayEnd("#lobby", ev.MISSED, 100, 50, True, 150),
        HERE,
        b"*** End of what you missed in #lobby; 50 earlier lines not shown: /history 150.\n",
    ),
    (
        ev.ReplayEnd("#lobby", ev.MISSED, 100, 10000, False, 500),
        HERE,
        b"*** End of what you missed in #lobby;"
        b" 10000 or more earlier lines not shown: /history 500.\n",
    ),
    (ev.ReplayEnd("#lobby", ev.MISSED, 3), HERE, b"*** End of what you missed in #lobby.\n"),
    (ev.ReplayEnd("#lobby", ev.RECENT, 3), HERE, b"*** End of recent chat in #lobby.\n"),
    (ev.ReplayEnd("#lobby", ev.ASKED, 3), AWAY, b"*** [#lobby] End of history of #lobby.\n"),
]


@pytest.mark.parametrize(("event", "variant", "data"), CASES)
def test_each_event_renders_as_nc_reads_it(event: ev.Event, variant: str, data: bytes) -> None:
    assert render(event, variant) == data


def test_every_event_type_has_a_rendering() -> None:
    rendered = {type(event) for event, _, _ in CASES}
    assert rendered == set(ev.Event.__args__)  # type: ignore[attr-defined]


NASTY = "a\x1b[31mred\x07\nforged\r<root> x\u2028y"


@pytest.mark.parametrize(
    "event",
    [
        ev.Said("#a", "bob", NASTY),
        ev.PrivateSaid("bob", "carol", NASTY),
        ev.Parted("#a", "bob", NASTY),
        ev.Kicked("#a", "bob", "carol", NASTY),
        ev.TopicSet("#a", NASTY, "bob"),
        ev.Notice(NASTY, "#a"),
        ev.RoomState("#a", NASTY, ("bob",), frozenset()),
        ev.YouLeft("#a", True, "bob", NASTY),
        ev.Replayed("#a", AT, ev.SAID, "bob", NASTY, now=NOW),
        ev.Replayed("#a", AT, ev.TOPIC, "bob", NASTY, now=NOW),
    ],
)
@pytest.mark.parametrize("variant", [HERE, AWAY, ECHO])
def test_no_control_byte_and_no_unprefixed_line_leaves(event: ev.Event, variant: str) -> None:
    data = render(event, variant).decode()
    assert data.endswith("\n")
    for text in data[:-1].split("\n"):
        assert text.isprintable(), text
        assert text.startswith(("*** ", "<bob> ", "[#a] ", "*bob* ", "-> *carol* ")), text


def test_a_long_member_list_is_cut_into_prefixed_lines() -> None:
    members = tuple(f"user{i:03d}_long_name" for i in range(60))
    data = render(ev.RoomState("#big", "", members, frozenset()), HERE).decode()
    lines = data.splitlines()
    assert lines[1].startswith("*** 60 users in #big: user000_long_name, ")
    assert len(lines) > 3 and all(len(text) < line.MEMBERS_LINE_CHARS + 40 for text in lines)
    assert all(text.startswith("*** ") for text in lines)
