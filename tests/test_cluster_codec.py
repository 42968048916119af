"""The cluster's log entries: what one node writes, every node reads back the
same; what does not fit is refused whole, with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.cluster import codec
from chatd.cluster.codec import EVERYONE, ROOM, SHARING, USER, BadEntry, Broadcast, Entry
from chatd.core import events as ev


def _entry() -> Entry:
    return Entry(
        "node-a:7777",
        3,
        changes=[
            ["arrive", 1, "alice", "alice", "line", 1_700_000_000.5],
            ["join", 1, "#lobby", False],
            ["op", "node-b", 4, "#rust", True],
            ["seen", "alice", "#lobby", 65536 * 9 + 2, 1_700_000_000.5],
            ["held", "Bob", 1_700_000_000.5, "alice", "al", "psst", False, True],
            ["taken", "Bob"],
            [
                "sync",
                "node-a:7777",
                [[1, "alice", "al", "irc", 1.0, [["#lobby", False]]]],
                [],
                True,
                True,
            ],
        ],
        broadcasts=[
            Broadcast(ROOM, "#lobby", ev.Said("#lobby", "alice", "héllo\x1b[31m", "al", True), 1),
            Broadcast(SHARING, ["#a", "#b"], ev.Quit("alice", "Quit: bye", "al"), 1),
            Broadcast(EVERYONE, None, ev.Notice("Announcement: hi"), 0),
            Broadcast(USER, ["node-b", 7], ev.PrivateSaid("alice", "bob", "psst", "al"), 1),
            Broadcast(ROOM, "#x", ev.Opped("#x", "bob", "alice", False, "al"), 0),
        ],
        requests=[["kick", "node-b", 7, "#x", "alice", "al", "spam"], ["close", "node-b", 7, ""]],
        at=1_700_000_000.25,
    )


def test_an_entry_reads_back_as_it_was_written() -> None:
    entry = _entry()
    assert codec.decode(codec.encode(entry)) == entry
    assert codec.decode(codec.encode(entry).encode()) == entry  # as Redis hands it back


def test_an_empty_entry_is_false_and_a_full_one_true() -> None:
    assert not Entry("a", 0)
    assert _entry()


@given(st.text(), st.text(), st.booleans())
def test_any_text_survives_the_trip(nick: str, text: str, notice: bool) -> None:
    b = Broadcast(ROOM, "#r", ev.Said("#r", nick, text, "", notice), 0)
    assert codec.decode(codec.encode(Entry("n", 1, broadcasts=[b]))).broadcasts == [b]


def _with(**fields: object) -> str:
    data = json.loads(codec.encode(_entry()))
    data.update(fields)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"\xff", "not JSON"),
        ("[1]", "not an object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
        (_with(o=""), "no origin"),
        (_with(n=True), "no serial"),
        (_with(t="noon"), "not seconds since the epoch"),
        (_with(t=-1), "not seconds since the epoch"),
        (_with(c=[["seen", "al", "#x", 1.5, 0.0]]), "change 'seen' has the wrong arguments"),
        (_with(c={}), "must be lists"),
        (_with(c=[["teleport", 1]]), "unknown change 'teleport'"),
        (_with(c=[["gone", "1"]]), "change 'gone' has the wrong arguments"),
        (_with(c=[["gone", True]]), "change 'gone' has the wrong arguments"),
        (_with(c=[["join", 1, "#x"]]), "change 'join' has the wrong arguments"),
        (_with(c=[[]]), "a change is not"),
        (_with(q=[["format", "disk"]]), "unknown request"),
        (_with(b=[["r", "#x", 0, "Welcome", "al", "#x", 1, 1]]), "unknown event 'Welcome'"),
        (_with(b=[["r", "#x", 0, "Said", "#x", "al"]]), "event Said has the wrong fields"),
        (_with(b=[["r", "#x", 0, "Said", "#x", "al", 5, "", False]]), "wrong fields"),
        (_with(b=[["z", "#x", 0, "Said", "#x", "al", "hi", "", False]]), "unknown audience"),
        (_with(b=[["u", "bob", 0, "Notice", "hi", ""]]), "audience 'u' with the wrong target"),
        (_with(b=[["r", "#x", "0", "Notice", "hi", ""]]), "exclude is not an id"),
        (_with(c=[["sync", "a", [[1, "al"]], [], True, True]]), "malformed user"),
        (_with(c=[["sync", "a", [], [["#x"]], True, True]]), "malformed topic"),
        (_with(c=[["hello"]] * (codec.MAX_ITEMS + 1)), "more than"),
    ],
)
def test_what_does_not_fit_is_refused_with_a_reason(text: str | bytes, reason: str) -> None:
    with pytest.raises(BadEntry, match=reason):
        codec.decode(text)


def test_a_sync_past_its_bound_is_refused() -> None:
    users = [[i, f"u{i}", "", "line", 0.0, []] for i in range(codec.MAX_SYNC_USERS + 1)]
    text = codec.encode(Entry("a", 1, changes=[["sync", "a", users, [], True, True]]))
    with pytest.raises(BadEntry, match="sync of more than"):
        codec.decode(text)
