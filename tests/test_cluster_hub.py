"""Several hubs, one chat: the hub's side of a cluster (what it tells the
other nodes, and what it makes of what they tell), with the Redis log played
by a list, so that every step is deterministic. The real thing, with Redis
and chatd processes, is tests/test_cluster_e2e.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.cluster import codec
from chatd.cluster.codec import Broadcast, Entry
from chatd.core.hub import Hub, User
from tests.helpers import FakeLink, HubFixture

PASSWORD = "correct-horse"


class Node:
    """One hub and its Peers: what it does in a step is one entry."""

    def __init__(self, log: Log, name: str) -> None:
        self.log = log
        self.node = name
        self.fixture = HubFixture()
        self.hub: Hub = self.fixture.hub
        self.hub.peers = self
        self.entry = Entry(name, 0)
        self.serial = 0
        self.up = True

    def change(self, change: list[Any]) -> None:
        self.entry.changes.append(change)

    def broadcast(self, broadcast: Broadcast) -> None:
        self.entry.broadcasts.append(broadcast)

    def request(self, request: list[Any]) -> None:
        self.entry.requests.append(request)

    def describe(self) -> dict[str, Any]:
        return {"node": self.node}

    def holds(self, user_id: int, nick: str) -> bool:
        return self.log.leases.get(nick.lower()) == (self.node, user_id)

    def claim(self, user_id: int, nick: str, then: Callable[[bool | None], None]) -> bool:
        self.log.claims.append((nick.lower(), (self.node, user_id), then))
        return True

    def account(self, change: list[Any]) -> None:
        self.change(change)

    def release(self, user_id: int, nick: str) -> None:
        if self.holds(user_id, nick):
            del self.log.leases[nick.lower()]

    def end_turn(self) -> None:
        if self.entry:
            self.serial += 1
            self.entry.serial = self.serial
            self.entry.at = self.hub.wall()
            self.log.entries.append(codec.encode(self.entry))  # as it goes over the wire
            self.entry = Entry(self.node, 0)

    def join(self, nick: str) -> tuple[User, FakeLink]:
        link = FakeLink()
        user = self.hub.connect(link)
        self.hub.receive(user, nick)
        self.log.settle()
        return user, link


class Log:
    """The cluster's log: every node's entries in one order, read by all."""

    def __init__(self, *names: str) -> None:
        self.entries: list[str] = []
        self.read = 0
        #: Nickname leases, as Redis keeps them: folded nick -> (node, user id).
        self.leases: dict[str, tuple[str, int]] = {}
        self.claims: list[tuple[str, tuple[str, int], Callable[[bool | None], None]]] = []
        self.nodes = [Node(self, name) for name in names]

    def settle(self) -> None:
        """Every node's step ends; every entry reaches every node, in order,
        until no node has more to say."""
        while True:
            while self.claims:  # SET NX, in the order they came
                key, owner, then = self.claims.pop(0)
                granted = self.leases.setdefault(key, owner) == owner
                then(granted)
            for node in self.nodes:
                node.end_turn()
            if self.read == len(self.entries) and not self.claims:
                return
            if self.read == len(self.entries):
                continue
            text = self.entries[self.read]
            self.read += 1
            for node in self.nodes:
                entry = codec.decode(text)
                entry.seq = self.read  # its place in the log, as Redis numbers it
                node.hub.from_peers(entry)

    def add(self, name: str, *, live_first: bool = False) -> Node:
        """A node that joins now: what the log holds is its history, read
        before anything else happens (or, ``live_first``, after the next
        entries have reached it live, as a slow reading of a long log is)."""
        node = Node(self, name)
        known = self.nodes[0].hub.store.accounts.all()  # Redis's, as the node merges them
        node.hub.merge_accounts({x.name.lower(): [x.name, x.hash, x.created] for x in known})
        node.hub.reading_history(True)
        base = len(self.entries)
        self.nodes.append(node)
        if live_first:
            return node
        self.read_history(node, base)
        return node

    def read_history(self, node: Node, base: int) -> None:
        for seq, text in enumerate(self.entries[:base], 1):
            entry = codec.decode(text)
            entry.seq = seq
            node.hub.from_history(entry)
        node.hub.reading_history(False)


def _three() -> tuple[Log, Node, Node, Node]:
    log = Log("a", "b", "c")
    return (log, *log.nodes)  # type: ignore[return-value]


def test_a_line_reaches_every_node_once_and_not_its_sender() -> None:
    log, a, b, c = _three()
    alice, alice_link = a.join("alice")
    _, bob_link = b.join("bob")
    _, carol_link = c.join("carol")
    _, dave_link = a.join("dave")
    for link in (alice_link, bob_link, carol_link, dave_link):
        link.take()
    a.hub.receive(alice, "hello, everyone")
    assert alice_link.take() == []  # not yet: it waits for the log's order
    log.settle()
    for link in (bob_link, carol_link, dave_link):
        assert link.take() == ["<alice> hello, everyone"]
    assert alice_link.take() == []


def test_everyone_on_every_node_is_in_the_room_and_can_be_messaged() -> None:
    log, a, b, c = _three()
    alice, alice_link = a.join("alice")
    bob, bob_link = b.join("bob")
    c.join("carol")
    for node in (a, b, c):
        assert node.hub.nicks() == ["alice", "bob", "carol"]
        assert node.hub.members(node.hub.find_room("#lobby")) == ["alice", "bob", "carol"]
    assert b.hub.find("alice").node == "a"
    alice_link.take()
    bob_link.take()
    assert a.hub.private(alice, "bob", "psst") is None
    assert alice_link.take() == ["-> *bob* psst"]
    log.settle()
    assert bob_link.take() == ["*alice* psst"]
    b.hub.receive(bob, "/r and you")  # /r knows who wrote last, from another node
    log.settle()
    assert alice_link.take() == ["*bob* and you"]


def test_joins_parts_renames_quits_and_topics_cross_nodes() -> None:
    log, a, b, _ = _three()
    alice, _ = a.join("alice")
    bob, bob_link = b.join("bob")
    bob_link.take()
    a.hub.receive(alice, "/join #rust")
    log.settle()
    b.hub.receive(bob, "/join #rust")
    log.settle()
    assert b.hub.members(b.hub.find_room("#rust")) == ["alice", "bob"]
    assert "alice" in b.hub.room_ops(b.hub.find_room("#rust"))  # she made it
    bob_link.take()
    a.hub.receive(alice, "/topic all things rust")
    a.hub.receive(alice, "/nick alicia")
    log.settle()
    assert b.hub.find_room("#rust").topic == "all things rust"
    assert b.hub.find("alicia") is not None and b.hub.find("alice") is None
    got = bob_link.take()
    assert any("alice set the topic" in line and "all things rust" in line for line in got), got
    assert "*** alice is now known as alicia" in got, got
    a.hub.receive(alice, "/quit gone fishing")
    log.settle()
    assert "*** alicia left (Quit: gone fishing)" in bob_link.take()
    assert b.hub.nicks() == ["bob"]
    assert b.hub.members(b.hub.find_room("#rust")) == ["bob"]


def test_a_room_operator_kicks_a_user_of_another_node() -> None:
    log, a, b, _ = _three()
    alice, alice_link = a.join("alice")
    bob, bob_link = b.join("bob")
    a.hub.receive(alice, "/join #den")
    log.settle()
    b.hub.receive(bob, "/join #den")
    log.settle()
    alice_link.take()
    bob_link.take()
    a.hub.receive(alice, "/kick bob #den behave")
    log.settle()
    assert b.hub.members(b.hub.find_room("#den")) == ["alice"]
    assert a.hub.members(a.hub.find_room("#den")) == ["alice"]
    told = bob_link.take()
    assert any("kicked" in line and "behave" in line for line in told), told
    assert any("bob was kicked" in line for line in alice_link.take())


def test_a_lost_node_takes_its_users_with_it_once() -> None:
    log, a, b, c = _three()
    a.join("alice")
    _, bob_link = b.join("bob")
    c.join("carol")
    bob_link.take()
    log.entries.append(codec.encode(Entry("*", 0, changes=[["lost", "a"]])))
    log.settle()
    assert bob_link.take() == ["*** alice left (node lost)"]
    assert b.hub.nicks() == c.hub.nicks() == ["bob", "carol"]
    assert b.hub.find("alice") is None


def test_a_node_that_comes_back_is_told_as_what_changed() -> None:
    log, a, b, _ = _three()
    alice, _ = a.join("alice")
    _, bob_link = b.join("bob")
    bob_link.take()
    a.up = False  # Redis is away from node a: it goes on alone
    a.hub.receive(alice, "/nick alicia")
    a.join("erin")
    log.settle()
    assert b.hub.nicks() == ["alice", "bob"]
    a.up = True
    users, topics = a.hub.own_state()
    a.change(["sync", "a", users, topics, True, True])
    log.settle()
    assert b.hub.nicks() == ["alicia", "bob", "erin"]
    got = bob_link.take()
    assert "*** alice is now known as alicia" in got
    assert any(line.startswith("*** erin joined") for line in got), got


def test_one_nickname_claimed_on_every_node_at_once_is_had_by_one() -> None:
    log, a, b, c = _three()
    tries = []
    for node in (a, b, c):
        for _ in range(3):
            link = FakeLink()
            user = node.hub.connect(link)
            node.hub.receive(user, "alice")  # all before any answer
            tries.append((node, user, link))
    log.settle()
    welcomed = [
        link for _, _, link in tries if any("Welcome, alice!" in line for line in link.lines)
    ]
    assert len(welcomed) == 1
    refused = [link for _, _, link in tries if link not in welcomed]
    assert all(
        any("The nickname alice is taken" in line for line in link.lines) for link in refused
    )
    for node in (a, b, c):
        assert node.hub.nicks() == ["alice"]


def test_a_user_whose_lease_is_lost_is_renamed_and_told() -> None:
    log, a, b, _ = _three()
    alice, alice_link = a.join("alice")
    _, bob_link = b.join("bob")
    alice_link.take()
    a.hub.lease_lost(alice.id, "someone on another server took it")
    log.settle()
    told = alice_link.take()
    assert (
        told[0] == "*** The nickname alice is no longer yours: someone on another server took it."
    )
    assert alice.nick.startswith("alice-") and len(alice.nick) == 10
    assert b.hub.find(alice.nick) is not None and b.hub.find("alice") is None
    assert f"*** alice is now known as {alice.nick}" in bob_link.take()


def test_a_sync_in_parts_tells_departures_only_after_its_last() -> None:
    log, a, b, _ = _three()
    _, bob_link = b.join("bob")
    users = [[i, f"u{i}", f"u{i}", "line", 0.0, [["#lobby", False]]] for i in range(1, 1201)]
    parts = [users[:500], users[500:1000], users[1000:]]
    for i, part in enumerate(parts):
        a.change(["sync", "a", part, [], i == 0, i == 2])
    log.settle()
    assert len(b.hub.remote_users("a")) == 1200
    bob_link.take()
    # Again, without u1..u100: they leave once the last part is in, not before.
    kept = users[100:]
    a.change(["sync", "a", kept[:500], [], True, False])
    log.settle()
    assert len(b.hub.remote_users("a")) == 1200
    a.change(["sync", "a", kept[500:], [], False, True])
    log.settle()
    assert len(b.hub.remote_users("a")) == 1100
    left = [line for line in bob_link.take() if line.endswith("left (node lost)")]
    assert len(left) == 100


def test_a_big_iteration_goes_out_as_entries_of_a_bounded_size_in_order() -> None:
    from chatd.cluster.backplane import MAX_ENTRY_BYTES, _split
    from chatd.core import events as ev

    entry = Entry("a", 0, at=1_700_000_000.5)
    entry.changes = [["join", i, f"#r{i}", False] for i in range(3000)]
    entry.broadcasts = [
        Broadcast(codec.ROOM, "#r", ev.Said("#r", "al", f"line {i} " + "x" * 200), 0)
        for i in range(3000)
    ]
    entry.requests = [["close", "b", 1, "bye"]]
    parts = _split(entry)
    assert len(parts) > 1
    assert all(len(codec.encode(part)) <= MAX_ENTRY_BYTES for part in parts)
    flat = [item for part in parts for item in (*part.changes, *part.broadcasts, *part.requests)]
    assert flat == [*entry.changes, *entry.broadcasts, *entry.requests]
    assert {part.at for part in parts} == {entry.at}  # every part's lines said then
    huge = Entry("a", 0, broadcasts=[Broadcast(codec.EVERYONE, None, ev.Notice("x" * 10**6), 0)])
    assert _split(huge) == [huge]  # one item: alone, whatever its size


def test_lines_sent_while_a_nickname_is_asked_for_follow_it() -> None:
    log, a, b, _ = _three()
    _, bob_link = b.join("bob")
    bob_link.take()
    link = FakeLink()
    user = a.hub.connect(link)
    a.hub.receive(user, "alice")  # the lease is asked for...
    a.hub.receive(user, "hello all")  # ...and this is chat, not another nickname
    log.settle()
    assert user.nick == "alice"
    assert "<alice> hello all" in bob_link.take()
    assert list(log.leases) == ["bob", "alice"]


def test_a_lease_granted_to_someone_gone_or_renamed_meanwhile_is_given_back() -> None:
    log, a, _, _ = _three()
    link = FakeLink()
    user = a.hub.connect(link)
    a.hub.receive(user, "alice")
    a.hub.disconnect(user, "connection closed")  # before Redis answered
    log.settle()
    assert "alice" not in log.leases


def test_a_user_joining_during_the_round_trip_gets_a_line_once() -> None:
    log, a, _, _ = _three()
    alice, _ = a.join("alice")
    dave, link = a.join("dave")
    a.hub.receive(alice, "/join #r")
    log.settle()
    link.take()
    a.hub.receive(alice, "hi there")  # through the log: kept when it comes back
    a.hub.receive(dave, "/join #r")  # the same iteration: its catch-up must not show it
    log.settle()
    got = [line for line in link.lines if "hi there" in line]
    assert got == ["<alice> hi there"], got


def test_once_a_nickname_two_held_is_given_up_the_other_holder_answers_to_it() -> None:
    log, a, _, _ = _three()
    alice, _ = a.join("alice")
    # Another node's alice, as a node back from an outage tells it: a clash.
    a.hub.from_peers(Entry("b", 1, changes=[["arrive", 7, "alice", "alice", "line", 0.0]]))
    assert a.hub.find("alice") is alice
    a.hub.lease_lost(alice.id, "someone on another server took it")  # the lease says b's
    log.settle()
    found = a.hub.find("alice")
    assert found is not None and found.node == "b"
    assert a.hub.find(alice.nick) is alice


def _replays(lines: list[str]) -> list[str]:
    """The replayed lines among ``lines`` (history, catch-up), without their times."""
    return [line.split("] ", 1)[1] for line in lines if line.startswith("*** [")]


def test_every_node_keeps_a_rooms_lines_under_the_same_ids() -> None:
    log, a, b, c = _three()
    alice, _ = a.join("alice")
    bob, _ = b.join("bob")
    for node, user, text in ((a, alice, "one"), (b, bob, "two"), (a, alice, "/me three")):
        node.hub.receive(user, text)
        log.settle()
    kept = [node.hub.store.lines.last("#lobby", 10) for node in (a, b, c)]
    assert [(line.nick, line.text) for line in kept[0]] == [
        ("alice", "one"), ("bob", "two"), ("alice", "three"),
    ]  # fmt: skip
    assert kept[0] == kept[1] == kept[2]  # ids, times and all
    rooms = [node.hub.find_room("#lobby") for node in (a, b, c)]
    assert len({room.last_line for room in rooms if room is not None}) == 1


def test_a_user_back_through_another_node_is_shown_what_it_missed() -> None:
    log, a, b, c = _three()
    alice, _ = a.join("alice")
    bob, _ = b.join("bob")
    b.hub.receive(bob, "before")
    log.settle()
    a.hub.quit(alice)
    log.settle()
    for text in ("x", "y"):
        b.hub.receive(bob, text)
        log.settle()
    _, back = c.join("alice")  # through c, which never had her
    got = back.take()
    assert any(line.startswith("*** While you were away") for line in got), got
    assert _replays(got) == ["<bob> x", "<bob> y"]


def test_a_node_that_joins_late_has_the_rooms_history_from_the_log() -> None:
    log, a, b, _ = _three()
    alice, _ = a.join("alice")
    bob, _ = b.join("bob")
    a.hub.receive(alice, "said before d was there")
    b.hub.set_topic(bob, "#lobby", "tea")
    log.settle()
    a.hub.quit(alice)
    log.settle()
    d = log.add("d")
    assert d.hub.store.lines.last("#lobby", 5) == a.hub.store.lines.last("#lobby", 5)
    dave, dave_link = d.join("dave")  # new to the room: shown its recent lines
    said = ["<alice> said before d was there", "bob set the topic: tea"]
    assert _replays(dave_link.take()) == said
    d.hub.receive(dave, "/history")
    assert _replays(dave_link.take()) == said
    b.hub.receive(bob, "after")
    log.settle()
    assert [line.text for line in d.hub.store.lines.last("#lobby", 5)][-1] == "after"
    assert d.hub.store.lines.last("#lobby", 5) == a.hub.store.lines.last("#lobby", 5)
    # Where alice was is d's to know too: back through d, she is caught up.
    _, back = d.join("alice")
    assert _replays(back.take()) == ["<bob> after"]


def test_a_message_kept_for_an_offline_account_is_given_on_any_node() -> None:
    log, a, b, c = _three()
    alice, _ = a.join("alice")
    a.hub.receive(alice, f"/register {PASSWORD}")
    a.hub.quit(alice)
    log.settle()
    bob, bob_link = b.join("bob")
    bob_link.take()
    b.hub.receive(bob, "/msg alice are you there?")
    assert bob_link.take() == ["*** alice is offline; your message is kept until they identify."]
    log.settle()
    assert [node.hub.store.accounts.held("alice") for node in (a, b, c)] == [1, 1, 1]
    link = FakeLink()
    back = c.hub.connect(link)
    c.hub.receive(back, f"alice:{PASSWORD}")
    log.settle()
    assert any("*bob* are you there?" in line for line in link.take())
    assert [node.hub.store.accounts.held("alice") for node in (a, b, c)] == [0, 0, 0]


def test_a_login_takes_its_nickname_over_from_another_nodes_connection() -> None:
    log, a, b, c = _three()
    alice, alice_link = a.join("alice")
    a.hub.receive(alice, f"/register {PASSWORD}")
    log.settle()
    alice_link.take()
    link = FakeLink()
    again = b.hub.connect(link)
    b.hub.receive(again, f"alice:{PASSWORD}")
    b.hub.receive(again, "it is me, on b now")  # waits until she is alice here
    log.settle()
    assert alice_link.take()[0] == "*** Someone logged in as alice from elsewhere."
    got = link.take()
    assert "*** You are identified: alice is your account." in got, got
    assert not any("taken" in line for line in got), got
    for node in (a, b, c):
        found = node.hub.find("alice")
        assert found is not None and found.node == ("" if node is b else "b")
    assert log.leases["alice"] == ("b", again.id)
    _, carol_link = c.join("carol")
    carol_link.take()
    b.hub.receive(again, "and this")
    log.settle()
    assert carol_link.take() == ["<alice> and this"]


def test_a_room_made_on_two_nodes_at_once_is_run_by_the_first_in_the_log() -> None:
    log, a, b, c = _three()
    alice, alice_link = a.join("alice")
    bob, bob_link = b.join("bob")
    for link in (alice_link, bob_link):
        link.take()
    a.hub.receive(alice, "/join #new")  # both before either hears of the other
    b.hub.receive(bob, "/join #new")
    log.settle()  # a's entry is first in the log
    for node in (a, b, c):
        room = node.hub.find_room("#new")
        assert room is not None
        assert sorted(user.nick for user in room.ops) == ["alice"], node.node
        assert sorted(user.nick for user in room.members) == ["alice", "bob"]
    assert (
        "*** #new was made on another server a moment before, by alice:"
        " alice is its operator, not bob." in bob_link.take()
    )
    assert not any("moment before" in line for line in alice_link.take())
    b.hub.receive(bob, "/kick alice")
    assert bob_link.take()[-1].startswith("*** ")  # refused: not its operator
    assert a.hub.find("alice") in a.hub.find_room("#new").members  # type: ignore[union-attr]


def test_line_ids_are_the_logs_positions_whatever_each_nodes_own_count() -> None:
    log, a, b, c = _three()
    for i in range(5):  # a's own count is ahead of the others'
        a.hub.store.lines.append("#elsewhere", 1, "x", "x", str(i))
    alice, _ = a.join("alice")
    b.join("bob")
    a.hub.receive(alice, "one")
    log.settle()
    said = log.entries.index(next(e for e in log.entries if '"one"' in e)) + 1
    for node in (a, b, c):
        line = node.hub.store.lines.last("#lobby", 1)[0]
        assert (line.text, line.id) == ("one", said * codec.LINE_SPAN), node.node


def test_history_read_after_live_entries_leaves_the_newer_state() -> None:
    log, a, b, _ = _three()
    alice, _ = a.join("alice")
    a.hub.receive(alice, f"/register {PASSWORD}")
    a.hub.quit(alice)
    bob, _ = b.join("bob")
    log.settle()
    b.hub.receive(bob, "/msg alice psst")
    log.settle()
    d = log.add("d", live_first=True)  # its reading of the log is slow...
    base = len(log.entries)
    link = FakeLink()
    back = a.hub.connect(link)
    a.hub.receive(back, f"alice:{PASSWORD}")  # ...alice is given psst meanwhile, on a
    log.settle()
    assert any("*bob* psst" in line for line in link.take())
    log.read_history(d, base)  # the older "held" comes after the "taken"
    assert [node.hub.store.accounts.held("alice") for node in log.nodes] == [0, 0, 0, 0]
    # and where she was stays the newer of the two marks
    a.hub.quit(back)
    log.settle()
    mark = d.hub.store.lines.seen("alice", "#lobby")
    assert mark is not None and mark == a.hub.store.lines.seen("alice", "#lobby")
