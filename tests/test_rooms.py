"""Rooms and private messages in the hub, sans-IO, as events compared whole.

The users here read a test wire that renders each event as its index in a log,
so what a user received is read back as the very events (and variants) the hub
emitted for it: who got what is checked without any text format in the way.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatd.config import Config, RoomSettings
from chatd.core import events as ev
from chatd.core.hub import Hub, User
from chatd.core.rooms import MAX_REASON_CHARS
from chatd.testing import ChatHarness
from chatd.wire import line
from tests.helpers import FakeLink, HubFixture, make_config, write_plugin

HERE, AWAY, ECHO = line.HERE, line.AWAY, line.ECHO


@dataclass
class EventWire:
    """A wire format whose bytes are the index of each rendering in ``log``."""

    NAME: str = "events"
    log: list[tuple[ev.Event, str]] = field(default_factory=list)

    def variant(self, room: str, current: str) -> str:
        return line.variant(room, current)

    def render(self, event: ev.Event, v: str = HERE) -> bytes:
        self.log.append((_without_idents(event), v))
        return f"{len(self.log) - 1}\n".encode()


def _without_idents(event: ev.Event) -> ev.Event:
    """``event`` with its idents blank: these tests are about who hears what;
    the idents (what IRC shows after a nick) are tests/test_irc_gateway.py's."""
    names = {f.name for f in dataclasses.fields(event)} & {"ident", "by_ident"}
    return dataclasses.replace(event, **dict.fromkeys(names, "")) if names else event


class Rooms:
    """A hub with the built-in plugins whose users read the EventWire."""

    def __init__(self, config: Config | None = None) -> None:
        self.fx = HubFixture(config=config)
        self.hub: Hub = self.fx.hub
        self.wire = EventWire()
        self.links: dict[str, FakeLink] = {}
        self.users: dict[str, User] = {}

    def join(self, nick: str) -> User:
        link = FakeLink()
        user = self.hub.connect(link, self.wire)
        self.hub.receive(user, nick)
        self.links[nick], self.users[nick] = link, user
        self.take_all()
        return user

    def send(self, nick: str, text: str) -> None:
        self.hub.receive(self.users[nick], text)

    def got(self, nick: str) -> list[tuple[ev.Event, str]]:
        """What ``nick`` received since last asked, as (event, variant) pairs;
        notices (command replies) as ("notice", text)."""
        return [self._read(x) for x in self.links[nick].take()]

    def _read(self, data: str) -> tuple[ev.Event, str]:
        return self.wire.log[int(data)]

    def take_all(self) -> None:
        for link in self.links.values():
            link.take()


@pytest.fixture
def rooms() -> Rooms:
    return Rooms()


def notice(text: str, room: str = "", v: str = HERE) -> tuple[ev.Event, str]:
    return (ev.Notice(text, room), v)


def test_registration_welcomes_into_the_default_room_and_its_members_hear(rooms: Rooms) -> None:
    link = FakeLink()
    alice = rooms.hub.connect(link, rooms.wire)
    rooms.links["alice"], rooms.users["alice"] = link, alice
    rooms.got("alice")
    rooms.send("alice", "alice")
    assert rooms.got("alice") == [(ev.Welcome("alice", "#lobby", 1, most=1), HERE)]
    assert alice.current is not None and alice.current.name == "#lobby"
    rooms.join("bob")  # join() clears what everyone got: ask before
    link = FakeLink()
    carol = rooms.hub.connect(link, rooms.wire)
    rooms.links["carol"], rooms.users["carol"] = link, carol
    rooms.got("carol")  # the greeting
    rooms.send("carol", "carol")
    assert rooms.got("alice") == [(ev.Joined("#lobby", "carol", True), HERE)]
    assert rooms.got("bob") == [(ev.Joined("#lobby", "carol", True), HERE)]
    assert rooms.got("carol") == [(ev.Welcome("carol", "#lobby", 3, most=3), HERE)]


def test_join_makes_a_room_its_maker_runs_and_tells_the_joiner_what_is_there(
    rooms: Rooms,
) -> None:
    for nick in ("alice", "bob", "carol"):
        rooms.join(nick)
    rooms.send("alice", "/join #Games")
    assert rooms.got("alice") == [
        (ev.Current("#Games"), HERE),
        (ev.RoomState("#Games", "", ("alice",), frozenset({"alice"})), HERE),
    ]
    assert rooms.got("bob") == []  # not in #Games: hears nothing of it
    rooms.send("bob", "/join #games")  # names ignore case
    assert rooms.got("alice") == [(ev.Joined("#Games", "bob"), HERE)]
    assert rooms.got("bob") == [
        (ev.Current("#Games"), HERE),
        (ev.RoomState("#Games", "", ("alice", "bob"), frozenset({"alice"})), HERE),
    ]
    assert rooms.got("carol") == []


def test_lines_go_to_the_current_room_and_name_their_room_for_the_others(rooms: Rooms) -> None:
    for nick in ("alice", "bob", "carol"):
        rooms.join(nick)
    rooms.send("alice", "/join #games")
    rooms.send("bob", "/join #games")
    rooms.take_all()
    rooms.send("bob", "hi")  # bob's current room is #games
    rooms.send("carol", "/me waves")  # carol is only in #lobby
    assert rooms.got("alice") == [
        (ev.Said("#games", "bob", "hi"), HERE),
        (ev.Acted("#lobby", "carol", "waves"), AWAY),
    ]
    assert rooms.got("bob") == [(ev.Acted("#lobby", "carol", "waves"), AWAY)]
    assert rooms.got("carol") == []  # #games is not hers; her own line is not echoed
    rooms.send("alice", "/join #lobby")  # already in: it only becomes current
    assert rooms.got("alice") == [(ev.Current("#lobby"), HERE)]
    rooms.send("carol", "back")
    rooms.send("bob", "still here")
    assert rooms.got("alice") == [
        (ev.Said("#lobby", "carol", "back"), HERE),
        (ev.Said("#games", "bob", "still here"), AWAY),
    ]


def test_part_leaves_and_another_room_becomes_current_or_none(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/join #games")
    rooms.send("bob", "/join #games")
    rooms.take_all()
    rooms.send("alice", "/part brb")  # the current room, with a reason
    assert rooms.got("bob") == [(ev.Parted("#games", "alice", "brb"), HERE)]
    assert rooms.got("alice") == [
        (ev.YouLeft("#games", reason="brb"), HERE),
        (ev.Current("#lobby"), HERE),
    ]
    rooms.send("alice", "/part #lobby")
    assert rooms.got("bob") == [(ev.Parted("#lobby", "alice"), AWAY)]
    assert rooms.got("alice") == [(ev.YouLeft("#lobby"), HERE), (ev.Current(""), HERE)]
    rooms.send("alice", "anyone?")
    assert rooms.got("alice") == [notice(line.NO_ROOM)]
    assert rooms.got("bob") == []
    rooms.send("alice", "/part")
    assert rooms.got("alice") == [notice("Usage: /part [#room] [REASON] (you are in no room).")]
    rooms.send("alice", "/who")
    assert rooms.got("alice") == [notice(line.NO_ROOM)]


def test_part_takes_a_room_of_yours_without_its_hash_else_a_reason(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/join #games")
    rooms.send("bob", "/join #games")
    rooms.send("alice", "/join #lobby")
    rooms.take_all()
    rooms.send("alice", "/part GAMES")  # a room she is in: the # left out
    assert rooms.got("bob") == [(ev.Parted("#games", "alice"), HERE)]
    rooms.send("alice", "/part lunch time")  # not a room of hers: the reason
    assert rooms.got("alice")[1:] == [
        (ev.YouLeft("#lobby", reason="lunch time"), HERE),
        (ev.Current(""), HERE),
    ]
    assert rooms.got("bob") == [(ev.Parted("#lobby", "alice", "lunch time"), AWAY)]


def test_a_kick_reason_is_cut_to_a_line(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/join #games")
    rooms.send("bob", "/join #games")
    rooms.take_all()
    assert rooms.hub.kick_from_room(None, "#games", "bob", "x" * 5000) is None
    (event, _), *_ = rooms.got("bob")
    assert isinstance(event, ev.YouLeft) and len(event.reason) == MAX_REASON_CHARS


def test_an_empty_room_goes_but_the_default_room_stays(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.send("alice", "/join #games")
    assert [r.name for r in rooms.hub.rooms()] == ["#games", "#lobby"]
    rooms.send("alice", "/part #games")
    rooms.send("alice", "/part #lobby")
    assert [r.name for r in rooms.hub.rooms()] == ["#lobby"]
    rooms.send("alice", "/join #games")  # made afresh: alice runs it again
    room = rooms.hub.find_room("#games")
    assert room is not None and rooms.hub.room_ops(room) == {"alice"}


def test_quit_and_rename_are_heard_once_by_everyone_who_shares_a_room(rooms: Rooms) -> None:
    for nick in ("alice", "bob", "carol", "dave"):
        rooms.join(nick)
    for nick in ("alice", "bob", "carol"):
        rooms.send(nick, "/join #games")
    rooms.send("dave", "/part #lobby")  # dave shares no room with anyone
    rooms.take_all()
    rooms.send("alice", "/nick alicia")
    assert rooms.got("bob") == [(ev.Renamed("alice", "alicia"), HERE)]  # once, not per room
    assert rooms.got("carol") == [(ev.Renamed("alice", "alicia"), HERE)]
    assert rooms.got("dave") == []
    assert rooms.got("alice") == [(ev.YouRenamed("alice", "alicia"), HERE)]
    rooms.hub.receive(rooms.users["alice"], "/quit bye")
    assert rooms.got("bob") == [(ev.Quit("alicia", "Quit: bye"), HERE)]
    assert rooms.got("carol") == [(ev.Quit("alicia", "Quit: bye"), HERE)]
    assert rooms.got("dave") == []
    for room in rooms.hub.rooms():
        assert "alicia" not in rooms.hub.members(room)


def test_the_topic_is_the_operators_while_the_room_has_one(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/join #games")
    rooms.send("bob", "/join #games")
    rooms.take_all()
    rooms.send("bob", "/topic chess at 8")
    assert rooms.got("bob") == [notice("Only the operators of #games may set its topic.")]
    rooms.send("alice", "/topic chess at 8")
    expected = [(ev.TopicSet("#games", "chess at 8", "alice"), HERE)]
    assert rooms.got("alice") == expected
    assert rooms.got("bob") == expected
    rooms.send("bob", "/topic")
    assert rooms.got("bob") == [notice("Topic of #games: chess at 8")]
    rooms.send("alice", "/part")  # the only operator leaves: the room goes on without one
    rooms.take_all()
    rooms.send("bob", "/topic -")  # now anyone may; "-" clears it
    assert rooms.got("bob") == [(ev.TopicSet("#games", "", "bob"), HERE)]
    # In the default room, which has no operator, anyone may set it.
    rooms.send("bob", "/join #lobby")
    rooms.take_all()
    rooms.send("bob", "/topic welcome")
    assert rooms.got("alice") == [(ev.TopicSet("#lobby", "welcome", "bob"), HERE)]


def test_operators_kick_and_op_and_others_may_not(rooms: Rooms) -> None:
    for nick in ("alice", "bob", "carol"):
        rooms.join(nick)
    for nick in ("alice", "bob", "carol"):
        rooms.send(nick, "/join #games")
    rooms.take_all()
    rooms.send("bob", "/kick carol")
    assert rooms.got("bob") == [notice("You are not an operator of #games.")]
    rooms.send("alice", "/op bob")
    opped = [(ev.Opped("#games", "bob", "alice", True), HERE)]
    assert rooms.got("alice") == opped and rooms.got("bob") == opped
    assert rooms.got("carol") == opped
    rooms.send("bob", "/kick carol spamming")
    kicked = [(ev.Kicked("#games", "carol", "bob", "spamming"), HERE)]
    assert rooms.got("alice") == kicked and rooms.got("bob") == kicked
    assert rooms.got("carol") == [
        (ev.YouLeft("#games", True, "bob", "spamming"), HERE),
        (ev.Current("#lobby"), HERE),
    ]
    rooms.send("carol", "/join #games")  # kicked, not banned: she may come back
    assert rooms.got("alice") == [(ev.Joined("#games", "carol"), HERE)]
    rooms.take_all()
    rooms.send("alice", "/deop bob")
    assert rooms.got("bob") == [(ev.Opped("#games", "bob", "alice", False), HERE)]
    rooms.take_all()
    rooms.send("bob", "/op carol")
    assert rooms.got("bob") == [notice("You are not an operator of #games.")]
    rooms.send("alice", "/kick nobody")
    assert rooms.got("alice") == [notice("nobody is not in #games.")]
    rooms.send("alice", "/kick alice")
    assert rooms.got("alice") == [notice("You cannot kick yourself; /part #games leaves it.")]
    rooms.send("alice", "/op alice")
    assert rooms.got("alice") == [notice("alice is an operator of #games already.")]


def test_the_default_room_has_no_operator(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/kick bob")
    assert rooms.got("alice") == [notice("#lobby has no operators: it is everyone's room.")]


def test_private_messages_and_answering_the_last_one(rooms: Rooms) -> None:
    for nick in ("alice", "bob", "carol"):
        rooms.join(nick)
    rooms.send("alice", "/msg BOB psst, a secret")
    said = ev.PrivateSaid("alice", "bob", "psst, a secret")
    assert rooms.got("bob") == [(said, HERE)]
    assert rooms.got("alice") == [(said, ECHO)]
    assert rooms.got("carol") == []
    rooms.send("bob", "/r got it")
    back = ev.PrivateSaid("bob", "alice", "got it")
    assert rooms.got("alice") == [(back, HERE)]
    assert rooms.got("bob") == [(back, ECHO)]
    rooms.send("carol", "/r hello?")
    assert rooms.got("carol") == [
        notice("No one has messaged you (or they have left): /msg NICK TEXT instead.")
    ]
    rooms.send("carol", "/msg nobody hi")
    assert rooms.got("carol") == [notice("No such user: nobody.")]
    rooms.send("carol", "/msg carol hi")
    assert rooms.got("carol") == [notice("That is you: a private message goes to someone else.")]
    rooms.send("carol", "/msg bob")
    assert rooms.got("carol") == [notice("Usage: /msg NICK TEXT (only NICK sees it).")]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/join games", '"games" is not a room name: use # and 1-32 letters, digits, _ or -'),
        ("/join #" + "x" * 33, "is not a room name"),
        ("/join #a b", "Usage: /join #room"),
        ("/join", "Usage: /join #room"),
        ("/part #nowhere", "You are not in #nowhere."),
        ("/part #bad!", "is not a room name"),
        ("/who #nowhere", "There is no room #nowhere. /rooms lists them."),
        ("/who games", '"games" is not a room name'),
        ("/who #a #b", "Usage: /who [#room]"),
        ("/kick", "Usage: /kick NICK [REASON]"),
        ("/op", "Usage: /op NICK"),
        ("/r", "Usage: /r TEXT"),
        ("/topic " + "t" * 301, "That topic is 301 characters; the most is 300."),
    ],
)
def test_bad_room_commands_get_one_line_saying_why(rooms: Rooms, command: str, answer: str) -> None:
    rooms.join("alice")
    rooms.send("alice", command)
    got = rooms.got("alice")
    assert len(got) == 1, got
    event, _ = got[0]
    assert isinstance(event, ev.Notice) and answer in event.text


def test_room_limits_refuse_with_one_line_and_keep_what_was() -> None:
    rooms = Rooms(make_config(rooms=RoomSettings(max_rooms=3, max_rooms_per_user=2)))
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/join #one")  # alice: #lobby, #one: her limit
    rooms.send("alice", "/join #two")
    assert rooms.got("alice")[-1] == notice(
        "You are in 2 rooms, the most one may be in; /part one before you join another."
    )
    rooms.send("bob", "/join #two")  # #lobby, #one, #two: the server's limit
    rooms.send("bob", "/part #two")
    rooms.send("bob", "/join #two")
    rooms.take_all()
    rooms.send("bob", "/part #lobby")
    rooms.send("bob", "/join #three")
    assert rooms.got("bob")[-1] == notice(
        "The server has 3 rooms, as many as it allows; join one of them (/rooms lists them)."
    )
    assert [r.name for r in rooms.hub.rooms()] == ["#lobby", "#one", "#two"]


def test_rooms_lists_every_room_with_its_size_and_topic(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/join #games")
    rooms.send("alice", "/topic chess")
    rooms.take_all()
    rooms.send("bob", "/rooms")
    assert rooms.got("bob") == [notice("2 rooms:\n  #games (1 user): chess\n  #lobby (2 users)")]
    rooms.send("bob", "/who #games")
    assert rooms.got("bob") == [(ev.Members("#games", ("alice",), frozenset({"alice"})), HERE)]


def test_a_plugin_context_knows_its_room_and_announces_there(rooms: Rooms) -> None:
    for nick in ("alice", "bob", "carol"):
        rooms.join(nick)
    rooms.send("alice", "/join #games")
    rooms.send("bob", "/join #games")
    rooms.send("bob", "/join #lobby")  # bob: in both, #lobby current
    rooms.take_all()
    jumble = rooms.fx.plugins.chat("jumble")
    rooms.send("alice", "/game")
    state = jumble.state
    word = next(iter(state["rounds"].values())).word if "rounds" in state else None
    assert word is not None, state
    rooms.take_all()
    rooms.send("alice", f"/guess {word}")
    solved = [e for e, _ in rooms.wire.log if isinstance(e, ev.Notice) and "solved" in e.text]
    assert solved and solved[-1].room == "#games"
    assert [(e, v) for e, v in rooms.got("bob") if isinstance(e, ev.Notice)] == [(solved[-1], AWAY)]
    assert rooms.got("carol") == []  # only in #lobby


# -- any sequence delivers to exactly the right members, once each, in order ---------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOM_NAMES = ("#lobby", "#a", "#b", "#c")
PEOPLE = 4

_op = st.one_of(
    st.tuples(st.just("join"), st.integers(0, PEOPLE - 1), st.sampled_from(ROOM_NAMES)),
    st.tuples(st.just("part"), st.integers(0, PEOPLE - 1), st.sampled_from(ROOM_NAMES)),
    st.tuples(st.just("say"), st.integers(0, PEOPLE - 1), st.just("")),
    st.tuples(st.just("act"), st.integers(0, PEOPLE - 1), st.just("")),
    st.tuples(st.just("rename"), st.integers(0, PEOPLE - 1), st.just("")),
    st.tuples(st.just("quit"), st.integers(0, PEOPLE - 1), st.just("")),
    st.tuples(st.just("flush"), st.just(0), st.just("")),
)


class Model:
    """What each reader should get: per room, the room's events in order, a quit
    or a rename of someone it shares the room with among them."""

    def __init__(self) -> None:
        self.nick = {i: f"p{i}" for i in range(PEOPLE)}
        self.rooms: dict[int, list[str]] = {i: ["#lobby"] for i in range(PEOPLE)}  # join order
        self.current: dict[int, str] = {i: "#lobby" for i in range(PEOPLE)}
        self.online = set(range(PEOPLE))
        #: reader -> room -> what it should see of that room, in order
        self.expect: dict[int, dict[str, list[tuple[ev.Event, str]]]] = {
            i: {} for i in range(PEOPLE)
        }
        #: reader -> the quits and renames it should get, each once
        self.roomless: dict[int, list[ev.Event]] = {i: [] for i in range(PEOPLE)}

    def members(self, room: str) -> set[int]:
        return {i for i in self.online if room in self.rooms[i]}

    def to_room(self, room: str, event: ev.Event, skip: int | None) -> None:
        for i in self.members(room) - {skip}:
            v = HERE if self.current[i] == room else AWAY
            self.expect[i].setdefault(room, []).append((event, v))

    def to_sharing(self, who: int, event: ev.Event) -> None:
        for i in {i for r in self.rooms[who] for i in self.members(r)} - {who}:
            self.roomless[i].append(event)
            for room in set(self.rooms[who]) & set(self.rooms[i]):
                self.expect[i].setdefault(room, []).append((event, HERE))


ROOMLESS = (ev.Quit, ev.Renamed)


def _per_room(
    got: list[tuple[ev.Event, str]], model: Model, reader: int
) -> dict[str, list[tuple[ev.Event, str]]]:
    """What ``reader`` got, cut into each room's sequence as the model files it."""
    kinds = (ev.Said, ev.Acted, ev.Joined, ev.Parted)
    per_room: dict[str, list[tuple[ev.Event, str]]] = {}
    for event, v in got:
        if isinstance(event, kinds):
            per_room.setdefault(event.room, []).append((event, v))
        elif isinstance(event, ROOMLESS):
            for room, wanted in model.expect[reader].items():
                if (event, HERE) in wanted:
                    per_room.setdefault(room, []).append((event, v))
    return per_room


@settings(max_examples=150, deadline=None)
@given(st.lists(_op, max_size=40))
def test_any_sequence_reaches_exactly_the_members_once_each_in_order(
    ops: list[tuple[str, int, str]],
) -> None:
    rooms = Rooms()
    model = Model()
    for i in range(PEOPLE):
        rooms.join(f"p{i}")
    got: dict[int, list[tuple[ev.Event, str]]] = {i: [] for i in range(PEOPLE)}
    links = {i: rooms.links[f"p{i}"] for i in range(PEOPLE)}
    users = {i: rooms.users[f"p{i}"] for i in range(PEOPLE)}

    def read_all() -> None:
        for i, link in links.items():
            got[i].extend(rooms.wire.log[int(x)] for x in link.take())

    for n, (kind, who, room) in enumerate(ops):
        if kind == "flush":
            read_all()
            continue
        if who not in model.online:
            continue
        hub, user, nick = rooms.hub, users[who], model.nick[who]
        if kind == "join":
            if room not in model.rooms[who]:
                model.to_room(room, ev.Joined(room, nick), who)
                model.rooms[who].append(room)
            model.current[who] = room
            hub.receive(user, f"/join {room}")
        elif kind == "part":
            hub.receive(user, f"/part {room}")
            if room in model.rooms[who]:
                model.rooms[who].remove(room)
                model.to_room(room, ev.Parted(room, nick), who)
                if model.current[who] == room:
                    model.current[who] = model.rooms[who][-1] if model.rooms[who] else ""
        elif kind in ("say", "act"):
            text = f"m{n}"
            hub.receive(user, text if kind == "say" else f"/me {text}")
            if model.current[who]:
                cls = ev.Said if kind == "say" else ev.Acted
                model.to_room(model.current[who], cls(model.current[who], nick, text), who)
        elif kind == "rename":
            new = f"q{n}"
            model.to_sharing(who, ev.Renamed(nick, new))
            hub.receive(user, f"/nick {new}")
            model.nick[who] = new
        elif kind == "quit":
            model.to_sharing(who, ev.Quit(nick, "Quit"))
            hub.receive(user, "/quit")
            model.online.discard(who)
    read_all()
    for i in range(PEOPLE):
        roomless = [event for event, _ in got[i] if isinstance(event, ROOMLESS)]
        assert sorted(map(repr, roomless)) == sorted(map(repr, model.roomless[i])), i
        assert _per_room(got[i], model, i) == model.expect[i], i


def test_a_line_is_rendered_once_per_variant_and_a_quit_once(rooms: Rooms) -> None:
    """The fan-out rule, counted: 40 members, two variants of the room, two
    renderings of a line; a quit from someone in two rooms, one rendering."""
    for i in range(40):
        rooms.join(f"u{i}")
    for i in range(20):  # half of them read #lobby from another room
        rooms.send(f"u{i}", "/join #side")
    rooms.take_all()
    before = len(rooms.wire.log)
    rooms.send("u39", "hello")
    assert sorted(v for _, v in rooms.wire.log[before:]) == [AWAY, HERE]
    assert sum(len(rooms.links[f"u{i}"].take()) for i in range(39)) == 39
    before = len(rooms.wire.log)
    rooms.send("u0", "/quit")  # in #lobby and #side, with 39 and 19 others
    assert [e for e, _ in rooms.wire.log[before:] if isinstance(e, ev.Quit)] == [
        ev.Quit("u0", "Quit")
    ]
    assert all(rooms.links[f"u{i}"].take().count(str(before)) <= 1 for i in range(1, 40))
    assert sum(len(rooms.links[f"u{i}"].take()) for i in range(1, 40)) == 0


SHOUT = """
    from chatd import hookimpl

    SEEN = []

    @hookimpl
    def chatd_message(ctx, room, text, action):
        SEEN.append((room, ctx.room, text))
        return text.upper() if room == "#loud" else None
"""


def test_chatd_message_is_told_the_room_a_line_goes_to(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "shout.py", SHOUT)
    chat = ChatHarness(plugin)
    alice, bob = chat.join("alice"), chat.join("bob")
    alice.send("/join #loud")
    bob.send("/join #loud")
    alice.lines()
    alice.send("hello")
    bob.send("/join #lobby")
    bob.send("quiet here")
    assert "<alice> HELLO" in bob.lines()
    module = sys.modules["chatd_plugin_shout"]
    assert module.SEEN == [("#loud", "#loud", "hello"), ("#lobby", "#lobby", "quiet here")]
    assert "[#lobby] <bob> quiet here" in alice.lines()
    chat.close()


def test_in_no_room_a_plugin_announce_reaches_nobody_else() -> None:
    chat = ChatHarness("plugins.d/roll.py")
    alice, bob = chat.join("alice"), chat.join("bob")
    bob.send("/join #games")
    alice.send("/part")
    bob.lines()
    alice.lines()
    alice.send("/roll 1d6")
    assert [line for line in alice.lines() if "rolls 1d6" in line]  # include_self: she sees it
    assert bob.lines() == []  # they share no room
    chat.close()


def test_r_answers_the_user_not_whoever_took_the_nick_later(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.join("bob")
    rooms.send("alice", "/msg bob hi")
    rooms.send("alice", "/quit")
    rooms.join("alice")  # someone else, with her old nickname
    rooms.take_all()
    rooms.send("bob", "/r still there?")
    assert rooms.got("bob") == [
        notice("No one has messaged you (or they have left): /msg NICK TEXT instead.")
    ]
    assert rooms.got("alice") == []


def test_a_reload_does_not_move_the_default_room(rooms: Rooms) -> None:
    rooms.join("alice")
    rooms.send("alice", "/join #main")  # alice makes #main and runs it
    rooms.fx.chat.reload("config", config={"rooms": {"default": "#main"}})
    carol = rooms.join("carol")
    assert carol.current is not None and carol.current.name == "#lobby"
    rooms.send("alice", "/part #lobby")
    assert rooms.hub.find_room("#lobby") is not None  # still the default: never removed


def test_register_is_the_nickname_step_any_wire_can_call(rooms: Rooms) -> None:
    """What a wire with a registration of its own (IRC) calls once it has a nick."""
    rooms.join("alice")
    link = FakeLink()
    user = rooms.hub.connect(link, rooms.wire)
    link.take()  # the nc greeting: a wire of its own would not send it
    assert rooms.hub.register(user, "ALICE") == "The nickname ALICE is taken; choose another."
    assert rooms.hub.register(user, "no way") is not None
    assert rooms.hub.register(user, "bob") is None
    assert [rooms._read(x) for x in link.take()] == [(ev.Welcome("bob", "#lobby", 2, most=2), HERE)]
    assert rooms.got("alice") == [(ev.Joined("#lobby", "bob", True), HERE)]
    assert rooms.hub.register(user, "robert") == "You have a nickname already."
