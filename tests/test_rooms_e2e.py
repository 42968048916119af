"""Rooms and private messages end to end: a real server, real sockets, nc's lines."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.helpers import LineClient, PumpedServer, make_config

Connect = Callable[..., LineClient]

CHAT = re.compile(r"^(\[#\S+\] )?(<\S+> |\* \S+ )")


def test_join_talk_part_and_the_lines_name_their_room(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.send("/join #games")
    assert alice.lines_until("*** 1 user in #games: @alice") == [
        "*** bob joined",
        "*** carol joined",
        "*** Now talking in #games.",
        "*** #games has no topic.",
    ]
    bob.send("/join #Games")
    bob.expect("*** Now talking in #games.")
    bob.expect("*** 2 users in #games: @alice, bob")
    alice.expect("*** bob joined #games")
    bob.send("anyone for chess?")  # to #games: carol is not in it
    carol.send("lunch?")  # to #lobby: alice and bob read it from another room
    assert alice.expect(CHAT) == "<bob> anyone for chess?"
    assert alice.expect(CHAT) == "[#lobby] <carol> lunch?"
    assert bob.expect(CHAT) == "[#lobby] <carol> lunch?"
    alice.send("/topic chess at 8")
    bob.expect("*** alice set the topic of #games: chess at 8")
    carol.send("/who")  # her current room
    carol.expect("*** 3 users in #lobby: alice, bob, carol")
    carol.send("/rooms")
    carol.expect("*** 2 rooms:")
    carol.expect("***   #games (2 users): chess at 8")
    carol.expect("***   #lobby (3 users)")
    carol.send("/who #games")
    carol.expect("*** 2 users in #games: @alice, bob")
    bob.send("/part #games see you")
    bob.expect("*** You left #games.")
    bob.expect("*** Now talking in #lobby.")
    alice.expect("*** bob left #games (see you)")
    bob.send("back in the lobby")
    assert carol.expect(CHAT) == "<bob> back in the lobby"
    assert alice.expect(CHAT) == "[#lobby] <bob> back in the lobby"


def test_carol_sees_no_line_of_a_room_she_is_not_in(connect: Connect) -> None:
    alice, carol = connect("alice"), connect("carol")
    alice.send("/join #secret")
    alice.expect("*** 1 user in #secret: @alice")
    alice.send("hush")
    alice.send("/join #lobby")
    alice.expect("*** Now talking in #lobby.")
    alice.send("hello lobby")
    assert carol.expect(CHAT) == "<alice> hello lobby"  # and not "hush" before it


def test_private_messages_and_r(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.send("/msg bob are you there?")
    alice.expect("-> *bob* are you there?")
    bob.expect("*alice* are you there?")
    bob.send("/r yes")
    bob.expect("-> *alice* yes")
    alice.expect("*bob* yes")
    alice.send("/msg nobody hi")
    alice.expect("*** No such user: nobody.")
    carol.send("done")  # carol got none of it: her next line is the public one
    assert alice.expect(CHAT) == "<carol> done"


def test_a_room_operator_kicks_and_the_kicked_user_is_told(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("/join #games")
    alice.expect("*** 1 user in #games: @alice")
    bob.send("/join #games")
    bob.expect("*** 2 users in #games: @alice, bob")
    bob.send("/kick alice")
    bob.expect("*** You are not an operator of #games.")
    alice.send("/kick bob flooding")
    bob.expect("*** You were kicked from #games by alice: flooding")
    bob.expect("*** Now talking in #lobby.")
    alice.expect("*** bob was kicked from #games by alice (flooding)")


def test_within_a_room_everyone_sees_one_order_joins_and_leaves_included(
    connect: Connect,
) -> None:
    """Three talkers and a watcher in #r, with someone joining and leaving in the
    middle: every member's view of #r is the watcher's, less its own lines."""
    watcher = connect("watcher")
    talkers = [connect(f"t{i}") for i in range(3)]
    for client in [watcher, *talkers]:
        client.send("/join #r")
    for client in [watcher, *talkers]:
        client.expect(re.compile(r"^\*\*\* \d users? in #r: "))
    visitor = connect("visitor")
    rounds = 30
    for n in range(rounds):
        for i, talker in enumerate(talkers):
            talker.send(f"line {n} from t{i}")
        if n == 10:
            visitor.send("/join #r")
        if n == 20:
            visitor.send("/part #r")
    visitor.expect("*** You left #r.")  # its part is in before anyone says done
    for talker in talkers:
        talker.send("done")

    room_line = re.compile(r"^(<\S+> |\*\*\* visitor (joined|left) #r)")

    def view(client: LineClient, expect_done: int) -> list[str]:
        seen: list[str] = []
        done = 0
        while done < expect_done:
            got = client.expect(room_line)
            seen.append(got)
            done += got.endswith("> done")
        return seen

    reference = view(watcher, 3)
    assert "*** visitor joined #r" in reference and "*** visitor left #r" in reference
    assert len([x for x in reference if x.startswith("<")]) == rounds * 3 + 3
    for i, talker in enumerate(talkers):
        mine = f"<t{i}> "
        assert view(talker, 2) == [x for x in reference if not x.startswith(mine)], i


class CountingSocket:
    """A connection's socket that counts the writes the reactor makes on it."""

    def __init__(self, sock: object) -> None:
        self._sock = sock
        self.writes = 0

    def send(self, data: bytes) -> int:
        self.writes += 1
        return self._sock.send(data)  # type: ignore[attr-defined, no-any-return]

    def sendmsg(self, buffers: list[bytes]) -> int:
        self.writes += 1
        return self._sock.sendmsg(buffers)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_member_of_two_busy_rooms_gets_one_write_an_iteration() -> None:
    pumped = PumpedServer(make_config())
    try:
        alice = pumped.connect("alice")
        one, two = pumped.connect("one"), pumped.connect("two")
        for client, rooms in ((alice, "#a #b"), (one, "#a"), (two, "#b")):
            for room in rooms.split():
                client.send(f"/join {room}")
                pumped.until(lambda c=client, r=room: f"*** Now talking in {r}." in c.lines)
        conn = next(c for c in pumped.server.reactor.connections if c.session.nick == "alice")
        counting = CountingSocket(conn.sock)
        conn.sock = counting  # type: ignore[assignment]
        one.send("in a")
        two.send("in b")
        pumped.server.reactor.run_once(max_wait=1.0)  # both lines are there: one turn reads both
        pumped.until(
            lambda: len(alice.chat()) + len(alice.lines) > 0 and "<two> in b" in alice.lines
        )
        assert "[#a] <one> in a" in alice.lines
        assert counting.writes == 1
    finally:
        pumped.close()
