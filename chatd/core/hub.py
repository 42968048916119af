"""The hub: the one owner of who is connected, who is named what, which rooms
exist and who is in them, and who hears of what.

Rule: the hub knows users, nicknames, rooms and the rules of the chat; it knows
nothing of sockets and no wire format. What happens becomes an event
(chatd.core.events) for an audience (a user, a room, everyone, everyone who
shares a room with a user), handed to :class:`~chatd.core.delivery.Delivery`,
which renders it once per format and variant. The hub is the reactor's Handler
for chat connections and talks to each through a
:class:`~chatd.core.link.Link`, which only queues bytes and closes, and never
calls back into the hub: the reactor reports a connection's end later, through
:meth:`Hub.disconnect`. That keeps every hub method free of re-entrancy (a
fan-out loop can never see the user set change under it).

A user's life is two states and a table of what each accepts::

    REGISTERING --valid, free nickname--> NAMED --quit / link closed--> GONE
    REGISTERING --link closed / quit----------------------------------> GONE

Only NAMED users receive chat, take part in nickname uniqueness, run commands
and are in rooms; a REGISTERING user's every line is a nickname attempt (or
/quit). A named user is in the default room once registered, and in up to
``[rooms] max_rooms_per_user`` rooms; one of them (if any) is its current room,
where its plain lines go. A room other than the default one exists while it has
members; whoever creates one is its operator.

The hub calls plugins only through :class:`PluginCalls`, a narrow interface the
plugin host implements: the hub does not import the plugin machinery.
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from chatd.cluster.codec import EVERYONE, LINE_SPAN, ROOM, SHARING, USER, Broadcast, Entry
from chatd.config import Config
from chatd.core import events as ev
from chatd.core.accounts import Desk, Hashing, InlineHasher
from chatd.core.bans import Bans, format_duration
from chatd.core.delivery import ECHO, Delivery, Wire
from chatd.core.fanout import Fanout, Group
from chatd.core.invocation import Invocation, parse
from chatd.core.link import Link
from chatd.core.nicks import NICK_MAX, NICK_PROMPT, PENDING, nick_problem, taken
from chatd.core.rooms import MAX_REASON_CHARS, NO_ROOM, Room, room_key, room_problem
from chatd.core.stats import Stats
from chatd.core.timers import Clock, Timer, Timers
from chatd.store import lines as kept
from chatd.store.store import Store, memory_store
from chatd.wire.text import decode_line, one_line, sentence

log = logging.getLogger(__name__)

#: Lines /history shows without a number, and at most: 500 lines is ten
#: screens, past what anyone scrolls back through in a terminal (and a
#: bounded read: the room's in-memory tail and one indexed query).
HISTORY_LINES: Final = 20
MAX_HISTORY_LINES: Final = 500
#: Missed lines past the catch-up cap are counted to this many at most ("N or
#: more"): one bounded read, however long someone was away.
MAX_COUNTED_LINES: Final = 10_000

#: Nicknames IRC clients send passwords to (their services' names on other
#: networks: HexChat's "Message NickServ" login, irssi and weechat scripts):
#: nobody may take one, and chatd's service answers to them.
SERVICE_NICKS: Final = frozenset(
    {"nickserv", "chanserv", "memoserv", "operserv", "hostserv", "botserv", "saslserv",
     "global", "ns", "cs", "ms"}
)  # fmt: skip

#: Lines a registering user's connection may send while its nickname's lease
#: is asked for (a millisecond or so): an nc user who pasted "alice\nhi"
#: has "hi" said once she is named. More than a burst of flood control's is
#: not a person typing; the rest are dropped.
MAX_WAITING_LINES: Final = 100
#: Digits added to a nickname that had to be given up (its lease lost to
#: another node's user): "alice" becomes "alice-4821".
_FALLBACK_DIGITS: Final = 4

#: The kind a line is kept as (chatd.store.lines) -> the kind it is shown as.
_SHOWN_AS: Final = {
    kept.SAID: ev.SAID,
    kept.ACTED: ev.ACTED,
    kept.NOTICE: ev.NOTICED,
    kept.TOPIC: ev.TOPIC,
}


class State(enum.Enum):
    REGISTERING = "registering"
    NAMED = "named"
    GONE = "gone"


class PluginCalls(Protocol):
    """What the hub calls on the plugins (chatd.core.plugins.PluginHost is it)."""

    @property
    def config(self) -> Config:
        """The settings in force (a reload replaces them)."""
        ...

    def run_command(self, user: User, invocation: Invocation) -> None:
        """Run one ``/command`` for ``user``; its replies go through the hub."""
        ...

    def filter_message(self, user: User, room: str, text: str, action: bool) -> str | None:
        """The text to deliver to ``room``, or None when a plugin dropped it."""
        ...

    def user_joined(self, user: User) -> None: ...

    def user_left(self, user: User, reason: str) -> None: ...

    def shutdown(self) -> None: ...


class Peers(Protocol):
    """What the hub calls on the other nodes of a cluster (chatd.cluster's
    Backplane is it): what changed and what is to be heard, gathered into one
    log entry per loop iteration. Without one the hub is a single node."""

    #: This node's name in the cluster.
    node: str

    @property
    def up(self) -> bool:
        """Whether the other nodes are reachable: broadcasts go through the
        cluster's log (and come back to be delivered here too, in the log's
        order); else they are delivered here at once."""
        ...

    def change(self, change: list[Any]) -> None:
        """A change to the shared picture (chatd.cluster.codec.CHANGES)."""
        ...

    def broadcast(self, broadcast: Broadcast) -> None: ...

    def request(self, request: list[Any]) -> None:
        """Ask another node to act on one of its users (codec.REQUESTS)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Its state, for operators (admin stats, /healthz)."""
        ...

    def holds(self, user_id: int, nick: str) -> bool:
        """Whether this node's user ``user_id`` holds the cluster's lease on ``nick``."""
        ...

    def claim(self, user_id: int, nick: str, then: Callable[[bool | None], None]) -> bool:
        """Ask for the lease on ``nick``: ``then(True)`` had, ``then(False)``
        someone else's, ``then(None)`` no answer. False at once (no call)
        when another user of this node holds or claims it."""
        ...

    def release(self, user_id: int, nick: str) -> None: ...

    def account(self, change: list[Any]) -> None:
        """An account changed here (codec's ``account``): kept in Redis, and
        told to the other nodes (when they are reachable; else the merge
        after the reconnect tells them)."""
        ...


class _RemoteLink:
    """The link of a user of another node: nothing is sent on it (its own node
    delivers to it); its address, as operators see it, is its node."""

    __slots__ = ("host",)

    def __init__(self, node: str) -> None:
        self.host = node

    @property
    def peer(self) -> str:
        return f"node {self.host}"

    def send(self, data: bytes) -> None:
        pass

    def deliver(self, data: bytes | memoryview) -> None:
        pass

    def deliver_batch(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _RemoteWire:
    """The wire of a user of another node, by the name of its protocol there:
    it renders nothing (its own node renders for it)."""

    __slots__ = ("NAME",)

    def __init__(self, name: str) -> None:
        self.NAME = name

    def render(self, event: ev.Event, v: str = "") -> bytes:
        return b""

    def variant(self, room: str, current: str) -> str:
        return ""


class _Nobody:
    """The sender of a broadcast from another node, to Delivery: nobody here."""

    link = None
    rooms: dict[str, Room] = {}  # noqa: RUF012 (never written)


class User:
    """A connection and, once it has one, its nickname and rooms."""

    __slots__ = (
        "account",
        "account_id",
        "asking",
        "checking",
        "connected_at",
        "current",
        "deadline",
        "id",
        "ident",
        "last_active",
        "last_from",
        "lines",
        "link",
        "nick",
        "node",
        "placed",
        "remote_id",
        "rooms",
        "state",
        "tries",
        "waiting",
        "wire",
    )

    def __init__(self, link: Link, connected_at: float, user_id: int, wire: Wire) -> None:
        self.id = user_id
        self.link = link
        self.wire = wire
        self.nick = ""
        #: The user name wires show beside the nick (IRC: nick!ident@host): what
        #: the wire gave before registering (IRC's USER), else the nick it
        #: registered with; it stays when the nick changes, as on IRC.
        self.ident = ""
        self.state = State.REGISTERING
        self.connected_at = connected_at
        self.last_active = connected_at  # when it last sent a line
        self.lines = 0  # lines it sent once named
        #: The register timeout while registering, the idle timeout once named.
        self.deadline: Timer | None = None
        self.rooms: dict[str, Room] = {}  # room key -> room, in the order it joined
        self.current: Room | None = None  # where its plain lines go
        self.placed: dict[Room, Group] = {}  # room -> its fan-out group there (delivery)
        #: The id of who messaged it last, for /r (an id, not the user: a user
        #: that has left must not be kept alive by whoever it wrote to).
        self.last_from = 0
        #: Accounts (chatd.core.accounts): the account it proved the password
        #: of (its folded name; "" for a guest); while registering, the
        #: registered nickname whose password it was asked for, and how many
        #: wrong ones it gave; whether a password of its is being checked.
        self.account = ""
        self.account_id = 0  # the account's id: one deleted and made again is another
        self.asking = ""
        self.tries = 0
        self.checking = False
        #: Several nodes (chatd.cluster): the node a user of another node is on
        #: (its stand-in here, "" for this node's own), and its id there.
        self.node = ""
        self.remote_id = 0
        #: Lines it sent while its nickname's lease was asked for (None: not asking).
        self.waiting: list[str] | None = None

    @property
    def protocol(self) -> str:
        """How it came in, as operators read it: its wire's name without the
        variant ("line", "irc" for "irc+time" too, "web")."""
        return self.wire.NAME.partition("+")[0]

    def __repr__(self) -> str:
        return f"<User {self.nick or '?'} {self.state.value} {self.link.peer}>"


def _reason(text: str) -> str:
    """A reason given to someone else (a part's, a kick's, a ban's): one clean
    line, at most MAX_REASON_CHARS."""
    text = one_line(text).strip()
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def _key(nick: str) -> str:
    # Nicknames are ASCII, so lower() is a complete case fold.
    return nick.lower()


def _kept_as(event: ev.Event) -> tuple[int, str, str, str] | None:
    """How a room's event of the cluster's log is kept in history (kind,
    nick, ident, text), or None if it is not a line kept."""
    if isinstance(event, ev.Said):
        return (kept.NOTICE if event.notice else kept.SAID), event.nick, event.ident, event.text
    if isinstance(event, ev.Acted):
        return kept.ACTED, event.nick, event.ident, event.text
    if isinstance(event, ev.TopicSet):
        return kept.TOPIC, event.by, event.by_ident, event.text
    return None


class Hub:
    def __init__(
        self,
        plugins: PluginCalls,
        timers: Timers | None = None,
        *,
        wire: Wire,
        clock: Clock = time.monotonic,
        stats: Stats | None = None,
        fanout: Fanout | None = None,
        store: Store | None = None,
        wall: Clock = time.time,
        hasher: Hashing | None = None,
        peers: Peers | None = None,
    ) -> None:
        """``wire`` is the format of the connections the hub serves as a Handler
        (chatd.wire.line: nc's); ``fanout`` makes the fan-out groups: the
        reactor's, so that they are flushed once per loop iteration (tests flush
        their own). ``store`` keeps the history (by default in memory, for
        this hub's life); ``wall`` is the time of day its lines are kept with;
        ``hasher`` runs password hashing off the loop (by default at once, on
        the caller's thread: for a hub with no loop); ``peers`` are the other
        nodes of a cluster (chatd.cluster), None for a single node."""
        self.wire = wire
        self.plugins = plugins
        self.stats = stats if stats is not None else Stats(clock())
        self.delivery = Delivery(fanout, self.stats)
        self.timers = timers if timers is not None else Timers(clock)
        self.clock = clock
        self.wall = wall
        self.store = store if store is not None else memory_store(self.config, wall)
        self.desk = Desk(self, hasher if hasher is not None else InlineHasher())
        self._connected: set[User] = set()
        self._named: dict[str, User] = {}  # _key(nick) -> user
        self._by_id: dict[int, User] = {}  # id -> named user
        self._rooms: dict[str, Room] = {}  # room_key(name) -> room
        self.peers = peers
        #: Other nodes' users, by (node, id there): stand-ins that are in rooms,
        #: hold nicknames and are listed, and to which nothing is sent.
        self._remote: dict[tuple[str, int], User] = {}
        #: Nickname leases the cluster refused, until the retry has been told:
        #: (user id, folded nick).
        self._refused_leases: dict[tuple[int, str], bool] = {}
        #: Other nodes' users asked to end (a take-over by a login here), by
        #: id; and the logins waiting for one to go: folded nick -> [(user,
        #: nick, retry)]; and the nicknames let go in the entry being applied.
        self._ending: set[int] = set()
        self._freeing: dict[str, list[tuple[User, str, Callable[[], object]]]] = {}
        self._let_go: list[str] = []
        self._claiming: set[int] = set()  # users whose lease Redis is asked for
        #: While history is read from the log: the live held and taken
        #: changes, applied once it is read (origin, change).
        self._reading_history = False
        self._after_history: list[tuple[str, list[Any]]] = []
        self._ids_behind = False  # said once that the log's ids are behind this node's
        #: Nicknames two users have at once (another node's and this one's, or
        #: two others', until a lost lease renames one): folded nick.
        self._clashed: set[str] = set()
        #: A node's sync under way (in parts): node -> its users' ids so far.
        self._syncing: dict[str, set[int]] = {}
        # In a cluster, users are known by (node, id): a node restarted under
        # its old name must not number its users as its last run did.
        self._ids = itertools.count(1 if peers is None else random.randrange(1 << 20, 1 << 40))
        #: Nicknames and addresses operators keep out for a while (chatd admin ban).
        self.bans = Bans()
        # The room users are put in: [rooms] default as the hub started (a reload
        # does not move it: it is a restart-only setting). Never removed.
        self._lobby = self._new_room(self.config.rooms.default)
        self._rooms[room_key(self._lobby.name)] = self._lobby

    @property
    def config(self) -> Config:
        """The settings in force: the plugin host's, which a reload replaces."""
        return self.plugins.config

    @property
    def fanout(self) -> Fanout:
        return self.delivery.fanout

    @property
    def node(self) -> str:
        """This node's name in its cluster ("" for a single node)."""
        return self.peers.node if self.peers is not None else ""

    # -- what the transport calls ------------------------------------------------

    def connect(self, link: Link, wire: Wire | None = None) -> User:
        """A new connection (reading ``wire``, by default the hub's): greet it and
        ask for a nickname."""
        user = User(link, self.clock(), next(self._ids), wire or self.wire)
        ban = self.bans.find("address", link.host, user.connected_at)
        if ban is not None:
            left = format_duration(ban.until - user.connected_at)
            self.notify(user, f"You are banned from this server for another {left}.")
            log.info("%s: refused, its address is banned for another %s", link.peer, left)
            self.delivery.to_user(user, ev.Closing("banned"))
            user.state = State.GONE
            link.close()
            return user
        self._connected.add(user)
        self.delivery.to_user(user, ev.Greeting())
        user.deadline = self.timers.call_later(
            self.config.limits.register_timeout, functools.partial(self._register_overdue, user)
        )
        return user

    def receive_line(self, user: User, line: bytes) -> None:
        """One line from ``user``'s connection, as it came: decoded and cleaned here."""
        self.receive(user, decode_line(line))

    def receive(self, user: User, text: str) -> None:
        """One clean line of text from ``user`` (decoded and sanitized)."""
        try:
            self._receive(user, text)
        finally:
            self.desk.settle()

    def _receive(self, user: User, text: str) -> None:
        if user.state is State.NAMED:
            if not text:
                return
            user.lines += 1
            user.last_active = self.clock()
            self.stats.lines_in += 1
            parsed = parse(text)
            if isinstance(parsed, str):
                self.say(user, parsed)
            else:
                self.plugins.run_command(user, parsed)
        elif user.state is State.REGISTERING:
            if user.waiting is not None:  # its nickname is being asked for
                if len(user.waiting) < MAX_WAITING_LINES:
                    user.waiting.append(text)
                return
            self._register(user, text)

    def line_too_long(self, user: User, limit: int) -> None:
        """The transport dropped a line from ``user`` that was over ``limit`` bytes."""
        if user.state is not State.GONE:
            self.notify(user, f"Line too long (over {limit} bytes); it was not sent.")

    def slowed(self, user: User, rate: float) -> None:
        """Flood control is holding ``user``'s lines back (told once per flood)."""
        if user.state is not State.GONE:
            self.notify(
                user, f"You are sending too fast: your lines go out at {rate:g} a second now."
            )

    def refused(self, reason: str) -> bytes:
        """The one line a connection that is turned away gets."""
        return self.delivery.render(self.wire, ev.Notice(reason))

    def disconnect(self, user: User, reason: str) -> None:
        """``user``'s connection has ended. Safe to call more than once."""
        if user.state is State.GONE:
            return
        was_named = user.state is State.NAMED
        user.state = State.GONE
        if user.deadline is not None:
            user.deadline.cancel()
        self._connected.discard(user)
        if was_named:
            name = self.desk.account_name(user)
            if name:
                self.store.accounts.touch(name)  # its last seen
            self._unname(user)
            del self._by_id[user.id]
            if self.peers is not None:
                self.peers.release(user.id, user.nick)
            log.info("%s left (%s)", user.nick, reason)
            if user.rooms:
                self._to_sharing(user, ev.Quit(user.nick, reason, user.ident))
            self._change(["gone", user.id])
            self.delivery.depart(user)
            for room in list(user.rooms.values()):
                self._leave_room(user, room)
            self.plugins.user_left(user, reason)

    def shutdown(self, message: str) -> None:
        """Tell everyone the server is going away and close every link."""
        self.delivery.to_each(self._connected, ev.Notice(one_line(message)))
        for user in self._connected:
            user.link.close()
            if user.state is State.NAMED:
                for room in user.rooms.values():
                    self._mark_seen(user, room)
                self.delivery.depart(user)
            user.state = State.GONE  # no leave notices: everyone is going
        told = len(self._connected)
        log.info("shutting down: %d connection%s told", told, "" if told == 1 else "s")
        self._connected.clear()
        self._named.clear()
        self._by_id.clear()
        self.plugins.shutdown()

    # -- users: what commands, plugins and operators call --------------------------

    def notify(self, user: User, text: str, room: str = "") -> None:
        """Send ``*** line`` for each line of ``text`` to one user (about ``room``)."""
        self.delivery.to_user(user, ev.Notice(text, room))

    def announce(self, text: str, *, exclude: User | None = None) -> int:
        """Tell every named user but ``exclude`` ``text``; returns how many got it."""
        return self._to_everyone(ev.Notice(text), exclude)

    def tell_here(self, text: str) -> None:
        """Tell every named user of this node ``text`` (in a cluster, the
        others' are not told: what this node says of itself)."""
        self.delivery.to_everyone(ev.Notice(text))

    def announce_room(self, room: str, text: str, *, exclude: User | None = None) -> int:
        """Tell the members of ``room`` (but ``exclude``) ``text``; how many got it."""
        found = self.find_room(room)
        if found is None:
            return 0
        return self._to_room(found, ev.Notice(text, found.name), exclude)

    def say(self, user: User, text: str, room: str = "", *, notice: bool = False) -> None:
        """Chat from ``user`` to ``room`` (its current room by default), if plugins
        let it pass; a ``notice`` is chat no one answers automatically (IRC's NOTICE)."""
        self._from_user(user, text, room, action=False, notice=notice)

    def speaking_room(self, user: User, name: str = "") -> Room | str:
        """The room ``user`` would speak in with ``name`` (its current room for
        ""), or why it cannot: what :meth:`say` and :meth:`emote` check, for a
        wire that answers the refusal its own way (the web's error event)."""
        room = self.find_room(name) if name else user.current
        if room is None or user not in room.members:
            return f"You are not in {name}." if name else NO_ROOM
        return room

    def emote(self, user: User, text: str, room: str = "") -> None:
        """An action (``/me``), likewise."""
        self._from_user(user, text, room, action=True)

    def private(
        self, user: User, nick: str, text: str, *, notice: bool = False, action: bool = False
    ) -> str | None:
        """A private message (or ``notice``, or ``action``: a private ``/me``) from
        ``user`` to ``nick``; returns why not, or None when sent."""
        to = self.find(nick)
        if to is None:
            kept = self.desk.hold(user, nick, text, notice=notice, action=action)
            if kept is None:
                return f"No such user: {nick}."
            if not notice:  # a notice is never answered
                self.notify(user, kept)
            return None
        if to is user:
            return "That is you: a private message goes to someone else."
        event = ev.PrivateSaid(user.nick, to.nick, text, user.ident, notice, action)
        if to.node:
            if self.peers is None or not self.peers.up:
                return f"{to.nick} is on another server, out of reach just now; try again soon."
            self.peers.broadcast(Broadcast(USER, [to.node, to.remote_id], event, user.id))
        else:
            self.delivery.to_user(to, event)
            to.last_from = user.id
            self.delivery.counted(1)
        self.delivery.to_user(user, event, ECHO)
        return None

    def reply_to(self, user: User) -> User | None:
        """Who ``user`` would answer with ``/r``: the last to message it, if still on."""
        return self._by_id.get(user.last_from)

    def find(self, nick: str) -> User | None:
        return self._named.get(_key(nick))

    @staticmethod
    def fold(nick: str) -> str:
        """``nick`` as uniqueness sees it (ASCII lower case)."""
        return _key(nick)

    def is_connected(self, user: User) -> bool:
        """Whether ``user``'s connection is still there (registering or named)."""
        return user.state is not State.GONE

    def is_online(self, user: User) -> bool:
        return user.state is State.NAMED

    def users(self) -> list[User]:
        """Every named user."""
        return list(self._named.values())

    def nicks(self) -> list[str]:
        return sorted((u.nick for u in self._named.values()), key=_key)

    def kick(self, user: User, reason: str = "") -> None:
        """An operator removes ``user``: it is told why, the others see it leave."""
        if user.state is State.GONE:
            return
        reason = _reason(reason)  # it goes into a sentence, and into the log
        if user.node:  # its own node does it (and tells the others)
            if self.peers is not None:
                self.peers.request(["close", user.node, user.remote_id, reason])
            return
        why = f"kicked by an operator: {reason}" if reason else "kicked by an operator"
        self.notify(user, sentence(f"You have been {why}"))
        log.info("%s was %s", user.nick or user.link.peer, why)
        self.close_user(user, why)

    def ban(self, nick: str, seconds: float, reason: str = "") -> str:
        """An operator keeps ``nick`` out for ``seconds``, and the address it is
        on, if it is online (it is told and disconnected). Returns what was done."""
        reason = _reason(reason)
        until = self.clock() + seconds
        length = format_duration(seconds)
        self.bans.add("nick", nick, until, reason)
        user = self.find(nick)
        if user is None:
            log.info("%s was banned by an operator for %s", nick, length)
            return f"banned the nickname {nick} for {length}"
        why = f"banned by an operator: {reason}" if reason else "banned by an operator"
        told = f"You have been banned by an operator for {length}"
        if user.node:  # its node closes it; its address is that node's to ban
            self.close_user(user, why, told=sentence(f"{told}: {reason}" if reason else told))
            log.info("%s (on %s) was banned by an operator for %s", user.nick, user.node, length)
            return f"banned the nickname {user.nick} for {length}, and closed it on {user.node}"
        self.bans.add("address", user.link.host, until, reason)
        self.notify(user, sentence(f"{told}: {reason}" if reason else told))
        log.info("%s was banned by an operator for %s, and %s", user.nick, length, user.link.host)
        self.close_user(user, why)
        return f"banned {user.nick} and the address {user.link.host} for {length}"

    def limits_changed(self) -> None:
        """The settings were reloaded: the idle timeout applies to everyone at once."""
        for user in self._named.values():
            self._arm_idle_timeout(user)

    def rename(
        self,
        user: User,
        new_nick: str,
        *,
        verified: bool = False,
        retry: Callable[[], object] | None = None,
    ) -> str | None:
        """Change a named user's nickname; returns why not, or None when done.
        A registered nickname is only for its account (``verified``: its
        password was just given). In a cluster it may answer PENDING: see
        :meth:`register` for ``retry``."""
        if retry is None:
            retry = functools.partial(self._notify_problem, user, self.rename, new_nick)
        if verified and self._await_end(user, new_nick, retry):
            return PENDING
        problem = self.nick_refusal(user, new_nick)
        if problem:
            return problem
        if not verified and self.desk.registered(new_nick) and not self.desk.owns(user, new_nick):
            return (
                f"The nickname {new_nick} is registered;"
                f" /identify {new_nick} PASSWORD takes it if it is yours."
            )
        if new_nick == user.nick:
            return f"You are already {new_nick}."
        pending = self._lease(user, new_nick, retry)
        if pending:
            return pending
        old = user.nick
        for room in user.rooms.values():  # what "old" saw, should it come back
            self._mark_seen(user, room)
        if _key(old) != _key(new_nick):
            self._unname(user)
        user.nick = new_nick
        self._named[_key(new_nick)] = user
        if self.peers is not None and _key(old) != _key(new_nick):
            self.peers.release(user.id, old)
        log.info("%s is now known as %s", old, new_nick)
        self._change(["rename", user.id, new_nick])
        self.delivery.to_user(user, ev.YouRenamed(old, new_nick, user.ident))
        if user.rooms:
            self._to_sharing(user, ev.Renamed(old, new_nick, user.ident))
        return None

    def quit(self, user: User, reason: str = "") -> None:
        """The user leaves on purpose: say goodbye, tell the others, close."""
        if user.state is State.GONE:
            return
        reason = one_line(reason)  # a plugin's ctx.quit may pass anything (a user's
        # own quit is bounded by its line limit, and is its to say in full)
        why = f"Quit: {reason}" if reason else "Quit"
        self.delivery.to_user(user, ev.Goodbye(user.nick, why))
        self.disconnect(user, why)
        user.link.close()

    def close_user(self, user: User, reason: str, *, told: str = "") -> None:
        """Close ``user``'s connection for ``reason`` (it was told why, or
        ``reason`` says it), telling it ``told`` first, if given: its wire's
        last line (IRC's ERROR), the others hear it leave with ``reason``, the
        link closes. Another node's user is closed by its node."""
        if user.node:
            if self.peers is not None:
                self.peers.request(["end", user.node, user.remote_id, told, reason])
                self._ending.add(user.id)
            return
        if told:
            self.notify(user, told)
        self.delivery.to_user(user, ev.Closing(reason))
        self.disconnect(user, reason)
        user.link.close()

    # -- rooms -------------------------------------------------------------------------

    def find_room(self, name: str) -> Room | None:
        return self._rooms.get(room_key(name))

    def rooms(self) -> list[Room]:
        """Every room, sorted by name ignoring case."""
        return [self._rooms[key] for key in sorted(self._rooms)]

    def join(self, user: User, name: str) -> str | None:
        """``user`` joins room ``name`` (made if there is none) and makes it its
        current room; returns why not, or None when done."""
        return self._join(user, name, arrived=False)

    def _join(self, user: User, name: str, *, arrived: bool) -> str | None:
        problem = room_problem(name)
        if problem:
            return problem
        room = self.find_room(name)
        if room is not None and user in room.members:
            self._make_current(user, room)
            return None
        limits = self.config.rooms
        if len(user.rooms) >= limits.max_rooms_per_user:
            return (
                f"You are in {len(user.rooms)} rooms, the most one may be in;"
                " /part one before you join another."
            )
        created = room is None
        if room is None:
            if len(self._rooms) >= limits.max_rooms:
                return (
                    f"The server has {len(self._rooms)} rooms, as many as it allows;"
                    " join one of them (/rooms lists them)."
                )
            room = self._rooms[room_key(name)] = self._new_room(name)
            room.ops.add(user)  # whoever makes a room runs it
            if self._clustered():
                room.founding = user
        self._enter(user, room, arrived=arrived)
        if created:
            log.info("%s made %s", user.nick, room.name)
        return None

    def part(self, user: User, name: str = "", reason: str = "") -> str | None:
        """``user`` leaves room ``name`` (its current room by default); returns why
        not, or None when done."""
        if name:
            problem = room_problem(name)
            if problem:
                return problem
            room = self.find_room(name)
            if room is None or user not in room.members:
                return f"You are not in {name}."
        elif user.current is None:
            return NO_ROOM
        else:
            room = user.current
        reason = _reason(reason)
        self._to_room(room, ev.Parted(room.name, user.nick, reason, user.ident), user)
        self._change(["leave", user.id, room.name])
        self._leave_room(user, room)
        self.delivery.to_user(user, ev.YouLeft(room.name, reason=reason))
        self._after_leaving(user, room)
        return None

    def set_topic(self, user: User | None, name: str, text: str) -> str | None:
        """``user`` (None: a server operator) sets room ``name``'s topic to ``text``
        (``""`` clears it); returns why not, or None when done."""
        room = self.find_room(name)
        if room is None:
            return room_problem(name) or f"There is no room {name}."
        text = one_line(text).strip()
        most = self.config.rooms.max_topic_chars
        if len(text) > most:
            return f"That topic is {len(text)} characters; the most is {most}."
        if user is not None:
            if user not in room.members:
                return f"You are not in {room.name}."
            if room.ops and user not in room.ops:
                return f"Only the operators of {room.name} may set its topic."
        room.topic = text
        room.topic_by = user.nick if user is not None else ""
        by = room.topic_by or "an operator"
        if text:
            log.info("%s set the topic of %s: %s", by, room.name, text)
        else:
            log.info("%s cleared the topic of %s", by, room.name)
        by_ident = user.ident if user is not None else ""
        self._change(["topic", room.name, text, room.topic_by])
        self._to_room(room, ev.TopicSet(room.name, text, room.topic_by, by_ident))
        if not self._clustered():  # else kept as the log hands it back, in its order
            self._record(room, kept.TOPIC, room.topic_by, by_ident, text)
        return None

    def kick_from_room(self, by: User | None, name: str, nick: str, reason: str = "") -> str | None:
        """``by`` (a room operator; None: a server operator) puts ``nick`` out of
        room ``name``; it may come back. Returns why not, or None when done."""
        found = self._op_on(by, name, nick)
        if isinstance(found, str):
            return found
        room, target = found
        if target is by:
            return f"You cannot kick yourself; /part {room.name} leaves it."
        reason = _reason(reason)
        by_nick, by_ident = (by.nick, by.ident) if by is not None else ("", "")
        if target.node:  # its own node puts it out (and tells everyone)
            if self.peers is None or not self.peers.up:
                return f"{target.nick} is on another server, out of reach just now."
            request = ["kick", target.node, target.remote_id, room.name, by_nick, by_ident, reason]
            self.peers.request(request)
            return None
        self._kick(room, target, by_nick, by_ident, reason)
        return None

    def _kick(self, room: Room, target: User, by_nick: str, by_ident: str, reason: str) -> None:
        """Put ``target`` (this node's) out of ``room``, by ``by_nick`` (``""``:
        a server operator)."""
        why = f" ({reason})" if reason else ""
        log.info(
            "%s was kicked from %s by %s%s", target.nick, room.name, by_nick or "an operator", why
        )
        kicked = ev.Kicked(room.name, target.nick, by_nick, reason, by_ident)
        self._to_room(room, kicked, target)
        self._change(["leave", target.id, room.name])
        self._leave_room(target, room)
        self.delivery.to_user(target, ev.YouLeft(room.name, True, by_nick, reason, by_ident))
        self._after_leaving(target, room)

    def set_op(self, by: User | None, name: str, nick: str, op: bool) -> str | None:
        """``by`` (a room operator; None: a server operator) makes ``nick`` an
        operator of room ``name`` (``op``) or takes that away."""
        found = self._op_on(by, name, nick)
        if isinstance(found, str):
            return found
        room, target = found
        if (target in room.ops) == op:
            already = "is an operator of {} already" if op else "is not an operator of {}"
            return f"{target.nick} {already.format(room.name)}."
        if op:
            room.ops.add(target)
        else:
            room.ops.discard(target)
        by_nick, by_ident = (by.nick, by.ident) if by is not None else ("", "")
        log.info(
            "%s %s %s as an operator of %s",
            by_nick or "an operator",
            "made" if op else "removed",
            target.nick,
            room.name,
        )
        self._change(["op", target.node or self.node, target.remote_id or target.id, room.name, op])
        self._to_room(room, ev.Opped(room.name, target.nick, by_nick, op, by_ident))
        return None

    def who(self, user: User, name: str) -> str | None:
        """Tell ``user`` who is in room ``name``; returns why not, or None when done."""
        problem = room_problem(name)
        if problem:
            return problem
        room = self.find_room(name)
        if room is None:
            return f"There is no room {name}. /rooms lists them."
        event = ev.Members(room.name, tuple(self.members(room)), self.room_ops(room))
        self.delivery.to_user(user, event)
        return None

    def room_state(self, user: User, name: str) -> str | None:
        """Tell ``user`` (a member of room ``name``) the room's topic and members,
        as a join does: what a wire that shows a join with its member list (IRC)
        needs for the default room, which registration enters without it.
        Returns why not, or None when done."""
        room = self.find_room(name)
        if room is None or user not in room.members:
            return f"You are not in {name}."
        self.delivery.to_user(user, self._state(room))
        return None

    def members(self, room: Room) -> list[str]:
        """The nicknames in ``room``, sorted ignoring case."""
        return sorted((member.nick for member in room.members), key=_key)

    def room_ops(self, room: Room) -> frozenset[str]:
        return frozenset(member.nick for member in room.ops)

    # -- inside ----------------------------------------------------------------------

    def _op_on(self, by: User | None, name: str, nick: str) -> tuple[Room, User] | str:
        """Room ``name`` and its member ``nick``, when ``by`` (None: a server
        operator) may act as the room's operator on it; else why not."""
        room = self.find_room(name)
        if room is None:
            return room_problem(name) or f"There is no room {name}."
        if by is not None and by not in room.members:
            return f"You are not in {room.name}."
        if by is not None and by not in room.ops:
            if room is self._lobby:
                return f"{room.name} has no operators: it is everyone's room."
            return f"You are not an operator of {room.name}."
        target = self.find(nick)
        if target is None or target not in room.members:
            return f"{nick} is not in {room.name}."
        return room, target

    def _enter(self, user: User, room: Room, *, arrived: bool, welcomed: bool = False) -> None:
        """Put ``user`` in ``room`` as its current room; the members hear of it
        (that it ``arrived`` on the server, or joined from elsewhere). ``user``
        is told the room's state unless its welcome named the room."""
        self._to_room(room, ev.Joined(room.name, user.nick, arrived, user.ident), user)
        self._change(["join", user.id, room.name, user in room.ops])
        room.members[user] = None
        user.rooms[room_key(room.name)] = room
        self._set_current(user, room)
        if not welcomed:
            self.delivery.to_user(user, ev.Current(room.name))
            self.delivery.to_user(user, self._state(room))
        self._catch_up(user, room)

    def _state(self, room: Room) -> ev.RoomState:
        """What a user who joins ``room`` is told of it."""
        return ev.RoomState(room.name, room.topic, tuple(self.members(room)), self.room_ops(room))

    def _make_current(self, user: User, room: Room) -> None:
        self._set_current(user, room)
        self.delivery.to_user(user, ev.Current(room.name))

    def _set_current(self, user: User, room: Room) -> None:
        """``room`` (one of ``user``'s) is its current room: it moves to the
        groups of its new variant in that room and in the one current before."""
        old, user.current = user.current, room
        self.delivery.place(user, room)
        if old is not None and old is not room and old in user.placed:
            self.delivery.place(user, old)

    def _leave_room(self, user: User, room: Room) -> None:
        """Take ``user`` out of ``room``, and the room away when it is empty."""
        self._mark_seen(user, room)
        self.delivery.remove(user, room)
        room.members.pop(user, None)
        room.ops.discard(user)
        user.rooms.pop(room_key(room.name), None)
        if not room.members and room is not self._lobby:
            del self._rooms[room_key(room.name)]
            log.info("%s is empty and gone", room.name)

    def _after_leaving(self, user: User, room: Room) -> None:
        """``user`` left ``room``: if it was its current room, another of its rooms
        (the last it joined) is current now, or none."""
        if user.current is not room:
            return
        user.current = None
        rest = list(user.rooms.values())
        if rest:
            self._make_current(user, rest[-1])
        else:
            self.delivery.to_user(user, ev.Current(""))

    def _register(self, user: User, text: str) -> None:
        parsed = parse(text)
        if user.asking and isinstance(parsed, Invocation) and parsed.name == "nick":
            user.asking = ""  # another nickname after all
            self._register(user, parsed.args.strip())
            return
        if user.asking and not (isinstance(parsed, Invocation) and parsed.name == "quit"):
            self.desk.password_line(user, text)  # the line is a password: never shown or logged
            return
        if isinstance(parsed, Invocation):
            if parsed.name == "quit":
                self.quit(user)
            else:  # "/who" is no nickname: say so, not that it is an invalid one
                command = f"/{parsed.name}" if parsed.name else "a command"
                self.notify(user, f"Choose a nickname first; then {command} works.\n{NICK_PROMPT}")
            return
        if not text:
            self.notify(user, NICK_PROMPT)
            return
        nick, colon, password = text.partition(":")  # NICK:PASSWORD (":" is in no nick)
        if self.desk.at_prompt(user, nick, password if colon else None):
            return
        problem = self.register(user, text, retry=functools.partial(self._register, user, text))
        if problem and problem is not PENDING:
            self.notify(user, f"{problem}\n{NICK_PROMPT}")

    def register(
        self,
        user: User,
        nick: str,
        rooms: Sequence[str] | None = None,
        *,
        verified: bool = False,
        retry: Callable[[], object] | None = None,
    ) -> str | None:
        """Name a registering ``user`` ``nick``, welcome it and put it in the
        default room, or in ``rooms`` when given (each told as a join is, and
        none when empty); returns why not (the nickname's rule, a ban, taken),
        or None when done. The nc prompt calls it with each line; another wire
        (IRC, with its autojoin) when its own registration is complete. A
        registered nickname needs its password proved first (``verified``).

        In a cluster the other nodes' users hold nicknames too, through leases
        in Redis: while the lease is asked for, it answers PENDING and nothing
        else happens; once Redis has answered, ``retry`` is called (it makes
        the same call again, and gets the answer). Without a ``retry``, the
        call is made again and its refusal told to the user."""
        if user.state is not State.REGISTERING:
            return "You have a nickname already."
        if retry is None:
            retry = functools.partial(
                self._notify_problem, user, self.register, nick, rooms, verified=verified
            )
        if verified and self._await_end(user, nick, retry):
            return PENDING
        problem = self.nick_refusal(user, nick)
        if problem:
            return problem
        if not verified and self.desk.registered(nick):
            return f"The nickname {nick} is registered; its password is needed."
        pending = self._lease(user, nick, retry)
        if pending:
            return pending
        user.nick = nick
        user.ident = user.ident or nick
        user.state = State.NAMED
        user.last_active = self.clock()
        self._named[_key(nick)] = user
        self._by_id[user.id] = user
        self.stats.users_peak = max(self.stats.users_peak, len(self._named))
        self._change(["arrive", user.id, nick, user.ident, user.protocol, self._since(user)])
        self.delivery.arrive(user)
        self._arm_idle_timeout(user)
        log.info("%s joined from %s", nick, user.link.peer)
        if rooms is None:
            room = self._lobby
            welcome = ev.Welcome(nick, room.name, len(self._named), self.stats.users_peak)
            self.delivery.to_user(user, welcome)
            self._enter(user, room, arrived=True, welcomed=True)
        else:
            welcome = ev.Welcome(nick, "", len(self._named), self.stats.users_peak)
            self.delivery.to_user(user, welcome)
            for name in rooms:
                problem = self._join(user, name, arrived=True)
                if problem:  # the server's own list: full, or past the rooms one may be in
                    self.notify(user, problem)
        self.plugins.user_joined(user)
        return None

    def nick_refusal(self, user: User, nick: str) -> str | None:
        """Why ``user`` may not be called ``nick`` (the rule, a ban, someone else
        has it), or None: what registering and renaming check, and what a wire
        checks before its registration is complete (IRC's NICK)."""
        problem = nick_problem(nick) or self.banned_nick(nick)
        if problem is None and self.nick_taken(nick, user):
            problem = taken(nick)
        return problem

    def nick_taken(self, nick: str, user: User) -> bool:
        """Whether someone other than ``user`` is called ``nick`` (ignoring case),
        or it is the IRC service's (``[irc] service_nick``: reserved for everyone,
        whether IRC is served or not, so that it never changes hands), or one
        of SERVICE_NICKS (whoever held one would be sent other users' passwords)."""
        key = _key(nick)
        if key == _key(self.config.irc.service_nick) or key in SERVICE_NICKS:
            return True
        holder = self._named.get(key)
        return holder is not None and holder is not user

    def banned_nick(self, nick: str) -> str | None:
        """Why ``nick`` is banned now, or None."""
        ban = self.bans.find("nick", nick, self.clock())
        if ban is None:
            return None
        left = format_duration(ban.until - self.clock())
        return f"The nickname {nick} is banned for another {left}; choose another."

    def _register_overdue(self, user: User) -> None:
        if user.state is State.REGISTERING:
            waited = self.clock() - user.connected_at
            self.notify(user, f"Timed out: no nickname chosen in {waited:.0f} seconds.")
            log.info("%s: closed, no nickname chosen in %.0fs", user.link.peer, waited)
            self.close_user(user, "registration timed out")

    def _arm_idle_timeout(self, user: User) -> None:
        """(Re)schedule the idle check for when ``user`` would pass the idle timeout."""
        if user.deadline is not None:
            user.deadline.cancel()
            user.deadline = None
        idle = self.config.limits.idle_timeout
        if idle > 0:
            due = user.last_active + idle - self.clock()
            user.deadline = self.timers.call_later(due, functools.partial(self._idle_check, user))

    def _idle_check(self, user: User) -> None:
        # One timer per user, moved only when it fires: a line from the user
        # costs nothing here but the last_active stamp it sets anyway.
        idle = self.config.limits.idle_timeout
        if user.state is not State.NAMED or idle <= 0:
            return
        if self.clock() - user.last_active < idle:
            self._arm_idle_timeout(user)
            return
        self.notify(user, f"Disconnected: nothing sent for {idle:g} seconds (idle timeout).")
        self.close_user(user, "idle timeout")

    def _from_user(
        self, user: User, text: str, room_name: str, *, action: bool, notice: bool = False
    ) -> None:
        room = self.speaking_room(user, room_name)
        if isinstance(room, str):
            self.notify(user, room)
            return
        passed = self.plugins.filter_message(user, room.name, text, action)
        if passed is not None and user.state is State.NAMED and user in room.members:
            event: ev.Said | ev.Acted
            if action:
                event = ev.Acted(room.name, user.nick, passed, user.ident)
            else:
                event = ev.Said(room.name, user.nick, passed, user.ident, notice)
            self._to_room(room, event, user)
            kind = kept.ACTED if action else kept.NOTICE if notice else kept.SAID
            if not self._clustered():  # else kept as the log hands it back, in its order
                self._record(room, kind, user.nick, user.ident, passed)

    # -- what other nodes hear ------------------------------------------------------------
    # Changes to users and rooms go to the other nodes, and broadcasts go
    # through the cluster's log, to be delivered on every node (this one too)
    # in one order; with no cluster, or none reachable, they are delivered here
    # at once.

    def _clustered(self) -> bool:
        return self.peers is not None and self.peers.up

    def _change(self, change: list[Any]) -> None:
        if self.peers is not None and self.peers.up:
            self.peers.change(change)

    def _to_room(self, room: Room, event: ev.Event, sender: User | None = None) -> int:
        if self.peers is None or not self.peers.up:
            return self.delivery.to_room(room, event, sender)
        self.peers.broadcast(Broadcast(ROOM, room.name, event, sender.id if sender else 0))
        return len(room.members) - (sender in room.members)

    def _to_sharing(self, user: User, event: ev.Event) -> None:
        if self.peers is None or not self.peers.up:
            self.delivery.to_sharing(user, event)
            return
        rooms = [room.name for room in user.rooms.values()]
        self.peers.broadcast(Broadcast(SHARING, rooms, event, user.id))

    def _to_everyone(self, event: ev.Event, exclude: User | None = None) -> int:
        if self.peers is None or not self.peers.up:
            return self.delivery.to_everyone(event, exclude)
        self.peers.broadcast(Broadcast(EVERYONE, None, event, exclude.id if exclude else 0))
        return len(self._named) - (exclude is not None)

    def _lease(self, user: User, nick: str, retry: Callable[[], object]) -> str | None:
        """In a cluster, what :meth:`register` or :meth:`rename` answers for
        ``nick`` before it goes ahead: None when ``user`` holds its lease (or
        there is no cluster to ask: a single node, or one alone for now),
        PENDING while it is asked for (``retry`` runs once Redis answers),
        else why not."""
        peers = self.peers
        if peers is None or not peers.up or peers.holds(user.id, nick):
            return None
        key = (user.id, _key(nick))
        if self._refused_leases.pop(key, False):
            return taken(nick)

        answered = functools.partial(self._claim_answered, user, nick, retry)
        if not peers.claim(user.id, nick, answered):
            return taken(nick)
        self._claiming.add(user.id)
        if user.state is State.REGISTERING and user.waiting is None:
            user.waiting = []  # its next lines wait for the answer (chat, not nicknames)
        return PENDING

    def _claim_answered(
        self, user: User, nick: str, retry: Callable[[], object], granted: bool | None
    ) -> None:
        self._claiming.discard(user.id)
        self._answered(user, nick, retry, granted)

    def _answered(
        self, user: User, nick: str, retry: Callable[[], object], granted: bool | None
    ) -> None:
        """Redis answered ``user``'s claim of ``nick`` (None: it did not, or
        there was nothing to claim yet): the call is made again (``retry``),
        then what ``user`` sent meanwhile."""
        key = (user.id, _key(nick))
        if granted is False:
            self._refused_leases[key] = True
        if user.state is not State.GONE:
            retry()
        self._refused_leases.pop(key, None)  # told, or no longer asked
        if granted and _key(user.nick) != key[1] and self.peers is not None:
            self.peers.release(user.id, nick)  # gone, or another name meanwhile
        if user.waiting is not None and (user.id in self._claiming or self._waits_for_end(user)):
            return  # it waits on: for another claim's answer, or another node's user to go
        waiting, user.waiting = user.waiting, None
        for text in waiting or ():  # what it sent meanwhile, in order
            if user.state is not State.GONE:
                self.receive(user, text)

    def _await_end(self, user: User, nick: str, retry: Callable[[], object]) -> bool:
        """Whether ``user``'s proven take-over of ``nick`` must wait: the
        holder is another node's user, asked to end, whose lease its node
        gives up as it goes. ``retry`` runs once it has gone (or after
        ``node_timeout``, whatever became of it); lines wait meanwhile."""
        key = _key(nick)
        holder = self._named.get(key)
        if holder is None or holder is user or holder.id not in self._ending:
            return False
        self._freeing.setdefault(key, []).append((user, nick, retry))
        if user.state is State.REGISTERING and user.waiting is None:
            user.waiting = []
        self.timers.call_later(
            self.config.cluster.node_timeout, functools.partial(self._free, key, holder)
        )
        return True

    def _waits_for_end(self, user: User) -> bool:
        return any(user is waiter for waiters in self._freeing.values() for waiter, _, _ in waiters)

    def _free(self, key: str, holder: User | None = None) -> None:
        """``key`` was let go (or ``holder`` did not go in time): the logins
        waiting for it try again."""
        if holder is not None:
            if self._named.get(key) is not holder:
                return  # it went, and was seen to
            self._ending.discard(holder.id)  # it did not go: no waiting for it again
        for user, nick, retry in self._freeing.pop(key, ()):
            self._answered(user, nick, retry, None)

    def _notify_problem(
        self, user: User, call: Callable[..., str | None], *args: Any, **kwargs: Any
    ) -> None:
        """Make ``call`` again (a lease has been answered) and tell ``user``
        why not, if not."""
        if user.state is State.GONE:
            return
        problem = call(user, *args, **kwargs)
        if problem and problem is not PENDING:
            self.notify(user, problem)

    def lease_lost(self, user_id: int, why: str) -> None:
        """This node's user ``user_id`` may no longer be called what it is
        (``why``): it is told, and renamed to its nickname and a few digits."""
        user = self._by_id.get(user_id)
        if user is None or user.node or user.state is not State.NAMED:
            return
        self.notify(user, f"The nickname {user.nick} is no longer yours: {why}.")
        self._fall_back(user_id)

    def _fall_back(self, user_id: int, new: str = "", tries: int = 0) -> None:
        """Rename ``user_id`` to ``new``, or to a name made of its own, until
        one is had (a few tries: each is a random number)."""
        user = self._by_id.get(user_id)
        if user is None or user.node or user.state is not State.NAMED or tries > 5:
            return
        if not new:
            stem = user.nick.rsplit("-", 1)[0] if "-" in user.nick else user.nick
            for _ in range(10):
                number = random.randrange(10**_FALLBACK_DIGITS)
                new = f"{stem[: NICK_MAX - _FALLBACK_DIGITS - 1]}-{number:0{_FALLBACK_DIGITS}d}"
                if self.find(new) is None:
                    break
        again = functools.partial(self._fall_back, user_id, new, tries + 1)
        problem = self.rename(user, new, verified=True, retry=again)
        if problem and problem is not PENDING:
            self._fall_back(user_id, "", tries + 1)  # taken meanwhile: another

    def share(self, change: list[Any]) -> None:
        """Tell the other nodes of a cluster ``change`` (one of the codec's
        CHANGES), when they can hear it."""
        self._change(change)

    def account_changed(self, change: list[Any]) -> None:
        """An account changed here: the other nodes' stores follow (Desk)."""
        if self.peers is not None:
            self.peers.account(change)

    def merge_accounts(self, shared: dict[str, list[Any] | None]) -> list[list[Any]]:
        """The cluster's accounts, as Redis keeps them, joined with this
        node's (see Desk.merge): the changes for those only this node has."""
        return self.desk.merge(shared)

    def _since(self, user: User) -> float:
        """When ``user`` connected, in seconds since the epoch (what other nodes
        can read: the hub's clock is this process's)."""
        return self.wall() - (self.clock() - user.connected_at)

    # -- what other nodes tell ------------------------------------------------------------

    def from_peers(self, entry: Entry) -> None:
        """A log entry, in the cluster's order (this node's own ones too, which
        it has applied already: only their broadcasts are delivered)."""
        mine = entry.origin == self.node
        for change in entry.changes:
            try:
                self._apply(entry.origin, change, mine)
            except Exception:
                log.exception("cluster: cannot apply %r from %s", change[:3], entry.origin)
        first = entry.seq * LINE_SPAN  # 0: delivered at once, its lines numbered here
        for i, broadcast in enumerate(entry.broadcasts):
            self._hear(entry.origin, broadcast, mine, first and first + i, entry.at)
        for request in entry.requests:
            if request[1] == self.node:
                self._requested(entry.origin, request)
        while self._let_go:
            self._free(self._let_go.pop(0))

    def from_history(self, entry: Entry) -> None:
        """An entry of the log from before this node joined it: its room lines
        are kept as history (under the ids every node keeps them under), and
        where users were, and what was held for offline accounts, as they
        were then. Nothing is delivered, nothing else applied (the nodes'
        ``sync`` says how things are now)."""
        for change in entry.changes:
            if change[0] in ("seen", "held", "taken"):
                self._apply(entry.origin, change, False, history=True)
        lines = self.store.lines
        first = entry.seq * LINE_SPAN
        at = entry.at or self.wall()
        for i, b in enumerate(entry.broadcasts):
            kept_as = _kept_as(b.event) if b.audience == ROOM else None
            if kept_as is None:
                continue
            kind, nick, ident, text = kept_as
            line = kept.Line(first + i, room_key(b.where), at, kind, nick, ident, one_line(text))
            lines.backfill(line)
            room = self.find_room(b.where)
            if room is not None:
                room.last_line = max(room.last_line, first + i)

    def history_floor(self) -> int:
        """The log position this node's newest line id stands for: the log
        must not number its entries below it (FLOOR)."""
        return self.store.lines.newest // LINE_SPAN

    def history_busy(self) -> bool:
        """The store's writer has much to do: a reading of history waits."""
        return self.store.lines.queued > kept.MAX_QUEUED_LINES // 4

    def reading_history(self, reading: bool) -> None:
        """The backplane begins reading history, or is done: meanwhile what
        the live log says of held messages waits, so that they are applied
        after the older entries, in the log's order."""
        self._reading_history = reading
        if not reading:
            later, self._after_history = self._after_history, []
            for origin, change in later:
                self._apply(origin, change, False)

    @property
    def log_position(self) -> tuple[str, int]:
        """Where the store has the cluster's log to (kept with its lines)."""
        return self.store.log_position

    @log_position.setter
    def log_position(self, value: tuple[str, int]) -> None:
        self.store.log_position = value

    def own_state(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """This node's users ([id, nick, ident, protocol, at, [[room, op], ...]])
        and the topics of their rooms: a ``sync``'s arguments."""
        users: list[list[Any]] = []
        topics: dict[str, list[Any]] = {}
        for user in self._by_id.values():
            if user.node:
                continue
            rooms = [[room.name, user in room.ops] for room in user.rooms.values()]
            users.append([user.id, user.nick, user.ident, user.protocol, self._since(user), rooms])
            for room in user.rooms.values():
                if room.topic:
                    topics[room_key(room.name)] = [room.name, room.topic, room.topic_by]
        return users, list(topics.values())

    def remote_users(self, node: str) -> list[User]:
        """The users of ``node`` this node knows of."""
        return [user for (n, _), user in self._remote.items() if n == node]

    def _apply(self, origin: str, change: list[Any], mine: bool, history: bool = False) -> None:
        name, args = change[0], change[1:]
        if name == "topic":  # every node's, in the log's order (this one's again too)
            room = self.find_room(args[0])
            if room is not None:
                room.topic, room.topic_by = args[1], args[2]
            return
        if name == "op":
            found = self._remote.get((args[0], args[1]))
            if found is None and args[0] == self.node:
                found = self._by_id.get(args[1])
            room = self.find_room(args[2])
            if found is not None and room is not None and found in room.members:
                if args[3]:
                    room.ops.add(found)
                else:
                    room.ops.discard(found)
            return
        if name in ("lost", "bye"):
            if args[0] != self.node:
                self._lose(args[0], "node lost" if name == "lost" else "server shutting down")
            return
        if name == "sync":
            if args[0] != self.node:
                self._sync(*args)
            return
        if mine and name == "join" and args[2]:
            made = self.find_room(args[1])
            if made is not None and made.founding is not None and made.founding.id == args[0]:
                made.founding = None  # the log has it: this node's user made the room
        if mine or name == "hello":
            return  # this node's users: applied as they happened
        if name == "account":
            self.desk.from_peers(*args)
            return
        if name == "seen":
            who, key, last_id, at = args
            had = self.store.lines.seen(who, key)
            if had is None or had.last_id < last_id:  # (history read late is older)
                self.store.lines.mark_seen(who, key, last_id, at)
            return
        if name in ("held", "taken"):
            if self._reading_history and not history:
                self._after_history.append((origin, change))  # after the older ones
            else:
                self.desk.held_from_peers(name, args)
            return
        key = (origin, args[0])
        user = self._remote.get(key)
        if name == "arrive":
            if user is None:
                self._add_remote(origin, *args)
        elif user is None:
            log.debug("cluster: %s about an unknown user %s/%s", name, origin, args[0])
        elif name == "gone":
            self._drop_remote(user)
        elif name == "rename":
            self._rename_remote(user, args[1])
        elif name == "join":
            self._join_remote(user, args[1], args[2], made=True)
        elif name == "leave":
            room = self.find_room(args[1])
            if room is not None and user in room.members:
                self._leave_room(user, room)

    def _add_remote(
        self, node: str, remote_id: int, nick: str, ident: str, protocol: str, at: float
    ) -> User:
        now = self.clock()
        user = User(
            _RemoteLink(node),  # type: ignore[arg-type]
            now - max(0.0, self.wall() - at),
            next(self._ids),
            _RemoteWire(protocol),
        )
        user.node, user.remote_id = node, remote_id
        user.nick, user.ident = nick, ident
        user.state = State.NAMED
        user.last_active = now
        self._remote[(node, remote_id)] = user
        self._by_id[user.id] = user
        holder = self._named.get(_key(nick))
        if holder is not None:  # the same nickname on two nodes at once
            log.warning("cluster: %s is on %s and %s at once", nick, holder.link.peer, node)
            self._clashed.add(_key(nick))  # it is found once the other has let go
        else:
            self._named[_key(nick)] = user
        self.stats.users_peak = max(self.stats.users_peak, len(self._named))
        return user

    def _drop_remote(self, user: User, reason: str = "") -> None:
        """Another node's user is gone; with a ``reason``, this node's users
        who shared a room with it are told it left (else its own node's
        broadcast of its quit tells them)."""
        if reason and user.rooms:
            self.delivery.to_sharing(user, ev.Quit(user.nick, reason, user.ident))
        user.state = State.GONE
        self._ending.discard(user.id)
        self._remote.pop((user.node, user.remote_id), None)
        self._by_id.pop(user.id, None)
        self._unname(user)
        for room in list(user.rooms.values()):
            self._leave_room(user, room)

    def _rename_remote(self, user: User, nick: str) -> None:
        self._unname(user)
        user.nick = nick
        if self._named.setdefault(_key(nick), user) is not user:
            self._clashed.add(_key(nick))

    def _unname(self, user: User) -> None:
        """``user`` no longer answers to its nickname here; if another (of
        another node: a clash a lease lost will end) has it too, it does now."""
        key = _key(user.nick)
        if self._named.get(key) is user:
            del self._named[key]
            if key in self._freeing:
                self._let_go.append(key)  # tried again once the entry is applied
        if key in self._clashed and key not in self._named:
            self._clashed.discard(key)
            for other in self._by_id.values():
                if other is not user and other.state is State.NAMED and _key(other.nick) == key:
                    self._named[key] = other
                    break

    def _join_remote(self, user: User, name: str, op: bool, *, made: bool = False) -> None:
        """Another node's ``user`` is in room ``name``, an operator (``op``);
        ``made``: it joins now, and ``op`` says its node made the room for it.
        Two nodes may make one room at once: the first in the log runs it."""
        room = self.find_room(name)
        if room is None:
            if room_problem(name):
                return
            room = self._rooms[room_key(name)] = self._new_room(name)
        elif made and op:
            if room.founding is not None:
                self._outmade(room, room.founding, user)
            elif room.members:
                op = False  # made before, in the log's order, by someone else
        room.members[user] = None
        user.rooms[room_key(room.name)] = room
        if op:
            room.ops.add(user)

    def _outmade(self, room: Room, founder: User, first: User) -> None:
        """``founder`` made ``room`` here, but ``first`` made it on another node
        a moment before (in the log's order): ``first`` runs it, as every
        other node has it."""
        room.founding = None
        if founder in room.members and founder in room.ops:
            room.ops.discard(founder)
            self.delivery.to_room(
                room,
                ev.Notice(
                    f"{room.name} was made on another server a moment before, by"
                    f" {first.nick}: {first.nick} is its operator, not {founder.nick}.",
                    room.name,
                ),
            )

    def _lose(self, node: str, reason: str) -> None:
        """``node`` is gone: its users are told here as leaving, for ``reason``."""
        lost = self.remote_users(node)
        for user in lost:
            self._drop_remote(user, reason)
        if lost:
            log.info("cluster: %s lost, and its %d users", node, len(lost))

    def _sync(
        self,
        node: str,
        users: list[list[Any]],
        topics: list[list[Any]],
        first: bool = True,
        last: bool = True,
    ) -> None:
        """All of ``node``'s users, as it has them now (in parts, ``first`` to
        ``last``): what differs from what this node knew is told as arrivals,
        renames, joins, parts, and (after the last part) departures."""
        if first:
            self._syncing[node] = set()
        seen = self._syncing.setdefault(node, set())
        known = {user.remote_id: user for user in self.remote_users(node)}
        for remote_id, nick, ident, protocol, at, rooms in users:
            seen.add(remote_id)
            user = known.get(remote_id)
            if user is None:
                user = self._add_remote(node, remote_id, nick, ident, protocol, at)
            elif user.nick != nick:
                old = user.nick
                self._rename_remote(user, nick)
                if user.rooms:
                    self.delivery.to_sharing(user, ev.Renamed(old, nick, ident))
            now_in = {room_key(name): (name, op) for name, op in rooms}
            for key, room in list(user.rooms.items()):
                if key not in now_in:
                    self.delivery.to_room(room, ev.Parted(room.name, user.nick, "", user.ident))
                    self._leave_room(user, room)
            for key, (name, op) in now_in.items():
                if key not in user.rooms:
                    found = self.find_room(name)
                    if found is not None:
                        self.delivery.to_room(found, ev.Joined(found.name, nick, False, ident))
                    self._join_remote(user, name, op)
                else:
                    room = user.rooms[key]
                    (room.ops.add if op else room.ops.discard)(user)
        if last:
            self._syncing.pop(node, None)
        for remote_id, user in known.items() if last else ():
            if remote_id not in seen:
                self._drop_remote(user, "node lost")
        for name, text, by in topics:
            topical = self.find_room(name)
            if topical is not None:
                topical.topic, topical.topic_by = text, by

    def _hear(self, origin: str, b: Broadcast, mine: bool, line_id: int, at: float) -> None:
        """Deliver a broadcast of the log to this node's readers: rendered once
        per format, as a local one is; the origin's sender is not told again.
        A room line is kept as ``line_id`` (0: the next id here), said at ``at``."""
        sender = self._by_id.get(b.exclude) if mine and b.exclude else None
        event = b.event
        if b.audience == ROOM:
            room = self.find_room(b.where)
            if room is None:
                return
            self.delivery.to_room(room, event, sender)
            # Kept here as delivered: every node's history in the log's order,
            # and a catch-up never shows a line that is still to come live.
            kept_as = _kept_as(event)
            if kept_as is not None:
                self._record(room, *kept_as, line_id, at)
        elif b.audience == SHARING:
            rooms = [room for name in b.where if (room := self.find_room(name)) is not None]
            reader = sender if sender is not None else _Nobody()
            self.delivery.to_sharing(reader, event, rooms)  # type: ignore[arg-type]
        elif b.audience == EVERYONE:
            self.delivery.to_everyone(event, sender)
        elif b.audience == USER and b.where[0] == self.node:
            to = self._by_id.get(b.where[1])
            if to is None or to.node or to.state is not State.NAMED:
                return
            self.delivery.to_user(to, event)
            self.delivery.counted(1)
            if isinstance(event, ev.PrivateSaid):
                who = self._remote.get((origin, b.exclude))
                if who is not None:
                    to.last_from = who.id

    def _requested(self, origin: str, request: list[Any]) -> None:
        """Another node asks this one to act on one of its users."""
        name, _, user_id = request[:3]
        user = self._by_id.get(user_id)
        if user is None or user.node or user.state is not State.NAMED:
            return
        if name == "close":
            self.kick(user, request[3])
        elif name == "end":
            if request[3]:
                self.notify(user, request[3])
            self.close_user(user, request[4])
        elif name == "kick":
            room_name, by_nick, by_ident, reason = request[3:]
            room = self.find_room(room_name)
            if room is not None and user in room.members:
                self._kick(room, user, by_nick, by_ident, reason)

    # -- history -----------------------------------------------------------------------

    def _new_room(self, name: str) -> Room:
        """A room as it is made: it goes on from the newest line kept of it."""
        newest = self.store.lines.last(room_key(name), 1)
        return Room(name, newest[0].id if newest else 0)

    def _record(
        self,
        room: Room,
        kind: int,
        nick: str,
        ident: str,
        text: str,
        line_id: int = 0,
        at: float = 0.0,
    ) -> None:
        """Keep a line of ``room`` (the store writes it off the loop): as
        ``line_id`` (a cluster's) or the next id, said at ``at`` or now."""
        line = self.store.lines.append(
            room_key(room.name), kind, nick, ident, one_line(text), line_id, at
        )
        room.last_line = line.id
        room.lines += 1
        if line_id and line.id != line_id and not self._ids_behind:
            self._ids_behind = True
            log.warning(
                "cluster: the log numbers lines below this node's history (a Redis that"
                " lost its data, met first by nodes with less history?); this node keeps"
                " them under ids of its own, so its history and seen marks differ from"
                " the others' for them"
            )

    def _mark_seen(self, user: User, room: Room) -> None:
        """``user`` has seen ``room`` up to its newest line (it is leaving it,
        or the server, or its nickname): where its next catch-up starts, on
        this node and (in a cluster) every other (which mark it themselves
        when they hear of it: the change is for a node that joins later)."""
        who, key, now = _key(user.nick), room_key(room.name), self.wall()
        self.store.lines.mark_seen(who, key, room.last_line, now)
        if not user.node:
            self._change(["seen", who, key, room.last_line, now])

    def _catch_up(self, user: User, room: Room) -> None:
        """``user`` has just entered ``room``: show it what it missed since it
        was last there under this nickname, or, new to the room, its latest
        lines (``[history] catchup_lines`` and ``join_lines``)."""
        history = self.config.history
        key = room_key(room.name)
        lines = self.store.lines
        seen = lines.seen(_key(user.nick), key)
        if seen is None:
            self._replay(user, room, ev.RECENT, lines.last(key, history.join_lines))
            return
        cap = history.catchup_lines
        if seen.last_id >= room.last_line or cap <= 0:
            return
        shown = [line for line in lines.last(key, cap) if line.id > seen.last_id]
        more = 0
        if len(shown) == cap:
            more = lines.count(key, seen.last_id, shown[0].id, MAX_COUNTED_LINES)
        self._replay(
            user,
            room,
            ev.MISSED,
            shown,
            since=seen.at,
            more=more,
            counted=more < MAX_COUNTED_LINES,
        )

    def _replay(
        self,
        user: User,
        room: Room,
        why: str,
        shown: Sequence[kept.Line],
        *,
        since: float = 0.0,
        more: int = 0,
        counted: bool = True,
    ) -> None:
        """Show ``user`` kept lines of ``room``, between the line that says why
        and the one that says how many more there are."""
        if not shown:
            return
        now = self.wall()
        to = self.delivery.to_user
        to(user, ev.ReplayStart(room.name, why, len(shown), since, now))
        for line in shown:
            kind = _SHOWN_AS.get(line.kind, ev.SAID)
            to(user, ev.Replayed(room.name, line.at, kind, line.nick, line.text, line.ident, now))
        ask = min(len(shown) + more, MAX_HISTORY_LINES)
        to(user, ev.ReplayEnd(room.name, why, len(shown), more, counted, ask))

    def history(self, user: User, count: int = HISTORY_LINES, name: str = "") -> str | None:
        """Show ``user`` the last ``count`` kept lines of room ``name`` (its
        current room by default; one it is in); returns why not, or None."""
        if name:
            room = self.find_room(name)
            if room is None or user not in room.members:
                return room_problem(name) or f"You are not in {name}."
        elif user.current is None:
            return NO_ROOM
        else:
            room = user.current
        if not 1 <= count <= MAX_HISTORY_LINES:
            return f"/history shows 1 to {MAX_HISTORY_LINES} lines."
        shown = self.store.lines.last(room_key(room.name), count)
        if not shown:
            return f"{room.name} has no history yet."
        self._replay(user, room, ev.ASKED, shown)
        return None
