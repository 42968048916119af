"""Room history through the hub, sans-IO: what is kept, a newcomer's recent
lines, a returning nickname's catch-up, /history, and what is never kept
(private messages). The store is the in-memory one (the SQLite one has its
own tests, and the end-to-end tests restart a real server on a real file)."""

from __future__ import annotations

import re

from chatd.config import HistorySettings
from chatd.testing import WALL_OFFSET
from chatd.wire.replay import clock_time
from tests.helpers import HubFixture, make_config

TIME = r"\[(\d\d:\d\d|\w{3} \d\d \d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d)\]"


def _fx(**history: object) -> HubFixture:
    return HubFixture(config=make_config(history=HistorySettings(**history)))  # type: ignore[arg-type]


def _replays(lines: list[str]) -> list[str]:
    """The replayed lines among ``lines``, without their times."""
    return [
        re.sub(rf"^\*\*\* {TIME} ", "", line)
        for line in lines
        if re.match(rf"\*\*\* {TIME} ", line)
    ]


def test_a_newcomer_sees_the_rooms_latest_lines_marked_as_history() -> None:
    fx = _fx(join_lines=3)
    alice_user, _ = fx.join("alice")
    for text in ("one", "two", "three", "four"):
        fx.hub.receive(alice_user, text)
    fx.hub.receive(alice_user, "/me waves")
    _, bob = fx.join_keeping("bob")
    got = bob.take()
    start = got.index("*** Recent chat in #lobby (3 lines):")
    assert got[start + 1 : start + 5] == [
        f"*** [{clock_time(fx.clock() + WALL_OFFSET, fx.clock() + WALL_OFFSET)}] <alice> three",
        got[start + 2],
        got[start + 3],
        "*** End of recent chat in #lobby.",
    ]
    assert _replays(got) == ["<alice> three", "<alice> four", "* alice waves"]


def test_a_returning_nick_gets_exactly_what_it_missed_in_order() -> None:
    fx = _fx()
    alice_user, _alice = fx.join("alice")
    fx.hub.receive(alice_user, "before")
    bob_user, bob = fx.join("bob")
    fx.clock.advance(60)
    fx.hub.quit(bob_user)
    left_at = fx.clock() + WALL_OFFSET
    fx.clock.advance(60)
    for text in ("a", "b", "c"):
        fx.hub.receive(alice_user, text)
    fx.hub.set_topic(alice_user, "#lobby", "tea")
    _, bob = fx.join_keeping("bob")
    got = bob.take()
    since = clock_time(left_at, fx.clock() + WALL_OFFSET)
    head = f"*** While you were away (since {since}): 4 lines in #lobby."
    assert head in got
    assert got[-1] == "*** End of what you missed in #lobby."
    assert _replays(got) == ["<alice> a", "<alice> b", "<alice> c", "alice set the topic: tea"]
    # Back again with nothing new: nothing is replayed.
    fx.hub.quit(fx.hub.find("bob"))  # type: ignore[arg-type]
    _, bob = fx.join_keeping("bob")
    assert _replays(bob.take()) == []


def test_past_the_cap_the_latest_are_shown_and_the_rest_counted() -> None:
    fx = _fx(catchup_lines=5)
    alice_user, _ = fx.join("alice")
    bob_user, _ = fx.join("bob")
    fx.hub.quit(bob_user)
    for i in range(8):
        fx.hub.receive(alice_user, f"l{i}")
    _, bob = fx.join_keeping("bob")
    got = bob.take()
    assert "*** While you were away" in got[-7] and "5 lines in #lobby." in got[-7]
    assert _replays(got) == [f"<alice> l{i}" for i in range(3, 8)]
    assert got[-1] == "*** End of what you missed in #lobby; 3 earlier lines not shown: /history 8."


def test_leaving_a_room_and_coming_back_catches_up_on_that_room() -> None:
    fx = _fx()
    alice_user, _ = fx.join("alice")
    bob_user, bob = fx.join("bob")
    fx.hub.join(alice_user, "#games")
    fx.hub.join(bob_user, "#games")
    fx.hub.part(bob_user, "#games")
    fx.hub.receive(alice_user, "gg")
    bob.take()
    fx.hub.join(bob_user, "#games")
    got = bob.take()
    assert _replays(got) == ["<alice> gg"]
    assert any(line.startswith("*** While you were away") for line in got)


def test_history_shows_the_last_n_lines_with_times_and_refuses_past_its_cap() -> None:
    fx = _fx()
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/history")
    assert alice.take() == ["*** #lobby has no history yet."]
    for i in range(30):
        fx.hub.receive(alice_user, f"l{i}")
    alice.take()
    fx.hub.receive(alice_user, "/history")
    got = alice.take()
    assert got[0] == "*** History of #lobby, the last 20 lines:"
    assert _replays(got) == [f"<alice> l{i}" for i in range(10, 30)]
    assert got[-1] == "*** End of history of #lobby."
    fx.hub.receive(alice_user, "/history 2")
    assert _replays(alice.take()) == ["<alice> l28", "<alice> l29"]
    fx.hub.receive(alice_user, "/history 501")
    assert alice.take() == ["*** /history shows 1 to 500 lines."]
    fx.hub.receive(alice_user, "/history lots")
    assert alice.take() == ["*** Usage: /history [N] [#room] (the last N lines, 1 to 500)."]
    fx.hub.receive(alice_user, "/history 5 #games")
    assert alice.take() == ["*** You are not in #games."]


def test_history_of_another_room_is_marked_with_its_name() -> None:
    fx = _fx()
    alice_user, alice = fx.join("alice")
    fx.hub.join(alice_user, "#games")
    fx.hub.receive(alice_user, "gg")
    fx.hub.join(alice_user, "#lobby")  # current again
    alice.take()
    fx.hub.receive(alice_user, "/history 1 #games")
    got = alice.take()
    assert got[0] == "*** [#games] History of #games, the last 1 line:"
    assert re.fullmatch(rf"\*\*\* \[#games\] {TIME} <alice> gg", got[1])


def test_private_messages_are_never_kept_or_replayed() -> None:
    fx = _fx()
    alice_user, alice = fx.join("alice")
    _bob_user, _ = fx.join("bob")
    fx.hub.private(alice_user, "bob", "the secret")
    fx.hub.receive(alice_user, "/msg bob another secret")
    fx.hub.receive(alice_user, "public")
    _, carol = fx.join_keeping("carol")
    fx.hub.receive(alice_user, "/history 500")
    everything = carol.take() + alice.take()
    assert not [line for line in everything if "secret" in line]
    assert _replays(everything) == ["<alice> public", "<alice> public"]


def test_join_lines_0_shows_a_newcomer_nothing() -> None:
    fx = _fx(join_lines=0)
    alice_user, _ = fx.join("alice")
    fx.hub.receive(alice_user, "hi")
    _, bob = fx.join_keeping("bob")
    assert _replays(bob.take()) == []
