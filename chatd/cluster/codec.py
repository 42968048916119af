"""What one node tells the others, as the JSON text of one log entry. Sans-IO.

Rule: an entry is everything one node did in one step of its loop that the
other nodes must know, in the order it did it:

- ``c``, changes to the shared picture of the chat (who is on which node,
  in which rooms, the topics and room operators), each a short list
  (:data:`CHANGES`); the other nodes apply them to their replica;
- ``b``, broadcasts: a hub event (chatd.core.events) and its audience, which
  every node renders once per format for its own readers (the fan-out rule
  holds on every node);
- ``q``, requests one node makes of another, about a user only that node can
  act on (put out of a room, disconnected).

Entries come from other processes, so decoding trusts nothing: nesting is
bounded, every field is checked against the event's
own types, and an entry that does not fit is refused whole with a one-line
reason. Text inside is still sanitized by each wire as it renders it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Final

from chatd.core import events as ev

#: The events that cross nodes: those with an audience of more than one user,
#: and private messages. What concerns one reader only (a welcome, a room's
#: state) is made by the reader's own node.
BROADCAST: Final[dict[str, type[Any]]] = {
    cls.__name__: cls
    for cls in (
        ev.Said,
        ev.Acted,
        ev.PrivateSaid,
        ev.Joined,
        ev.Parted,
        ev.Kicked,
        ev.Quit,
        ev.Renamed,
        ev.TopicSet,
        ev.Opped,
        ev.Notice,
    )
}

#: Audiences: a room's members, the members of several rooms once each, every
#: named user, one user (by its node and id on that node).
ROOM: Final = "r"
SHARING: Final = "s"
EVERYONE: Final = "e"
USER: Final = "u"

#: The changes, with the types of their arguments after the name. A user is
#: named by its id on its node; changes to a node's users come from that node
#: (the entry's origin), save ``op``, ``topic``, ``lost`` and ``sync``, which say
#: whose they are.
CHANGES: Final[dict[str, tuple[type[Any], ...]]] = {
    # id, nick, ident, protocol ("line", "irc", "web"), connected at (epoch seconds)
    "arrive": (int, str, str, str, float),
    "gone": (int,),  # id
    "rename": (int, str),  # id, new nick
    "join": (int, str, bool),  # id, room, made its operator (it made the room)
    "leave": (int, str),  # id, room
    "op": (str, int, str, bool),  # node, id, room, operator or not
    "topic": (str, str, str),  # room, text, by
    "lost": (str,),  # node: it is gone, and its users with it
    "bye": (str,),  # node: it is shutting down, and its users go with it
    # node, its users [[id, nick, ident, protocol, at, [[room, op], ...]], ...],
    # the topics of their rooms [[room, text, by], ...], whether this is the
    # first part, and the last: all of it, in parts of a few hundred users,
    # replacing what was known of that node (a node's first word, and after
    # Redis was away)
    "sync": (str, list, list, bool, bool),
    "hello": (),  # a node has (re)joined: every node answers with its sync
    # name, password hash (chatd.core.passwords' format; "": deleted), made at:
    # an account, the cluster's (each node's store keeps a copy)
    "account": (str, str, float),
    # who (folded nick), room (its key), the last line id it saw there, when:
    # where its next catch-up starts, on whichever node it comes back through
    "seen": (str, str, int, float),
    # account, at, sender, sender's ident, text, notice, action: a private
    # message kept for an account that is offline on every node
    "held": (str, float, str, str, str, bool, bool),
    # account: its kept messages were delivered (on the node it identified on)
    "taken": (str,),
}

#: The requests, likewise: node and id of the user they are about first.
REQUESTS: Final[dict[str, tuple[type[Any], ...]]] = {
    # node, id, room, by (nick), by's ident, reason: put it out of a room
    "kick": (str, int, str, str, str, str),
    # node, id, reason: an operator's kick off the server
    "close": (str, int, str),
    # node, id, what it is told ("": nothing), why: closed (a ban, a login
    # from elsewhere) as the node that asks would close its own
    "end": (str, int, str, str),
}

#: Line ids a log entry's lines have: the entry's place in the log times
#: this, plus its broadcast's place in it (past MAX_ITEMS, so never a clash):
#: every node keeps a room's lines under the same ids, so that where a user
#: was is the same line on every node.
LINE_SPAN: Final = 1 << 16

#: Users one sync may carry: the most a node serves (config MAX_CLIENTS) would
#: make one entry of tens of MB; a node sends its sync in entries of at most
#: this many users, and a reader refuses a longer list.
MAX_SYNC_USERS: Final = 2_000
#: Items (changes + broadcasts + requests) in one entry: one loop iteration's
#: worth of one node's chat, and a bound on what one entry makes a node do.
MAX_ITEMS: Final = 10_000


class BadEntry(ValueError):
    """An entry this node cannot use (its one-line reason says why)."""


@dataclass(slots=True)
class Entry:
    """One node's step: ``origin`` is the node, ``serial`` its count of entries
    (a node knows its own entries again after a reconnect by it), ``at`` when
    it was sent (the origin's clock, seconds since the epoch: what every node
    keeps as its lines' time). ``seq`` is its place in the log, given by the
    log and not part of the text (0: delivered at once, not through the log)."""

    origin: str
    serial: int
    changes: list[list[Any]] = field(default_factory=list)
    broadcasts: list[Broadcast] = field(default_factory=list)
    requests: list[list[Any]] = field(default_factory=list)
    at: float = 0.0
    seq: int = 0

    def __bool__(self) -> bool:
        return bool(self.changes or self.broadcasts or self.requests)


@dataclass(frozen=True, slots=True)
class Broadcast:
    """``event`` for ``audience`` (ROOM: ``where`` is the room; SHARING: the
    rooms; EVERYONE; USER: ``where`` is [node, id]) but the origin's user
    ``exclude`` (its id; 0: nobody)."""

    audience: str
    where: Any
    event: Any
    exclude: int = 0


def encode(entry: Entry) -> str:
    """``entry`` as compact JSON text (what the sequencing script keeps and publishes)."""
    out: dict[str, Any] = {"o": entry.origin, "n": entry.serial}
    if entry.at:
        out["t"] = round(entry.at, 3)
    if entry.changes:
        out["c"] = entry.changes
    if entry.broadcasts:
        out["b"] = [_broadcast(b) for b in entry.broadcasts]
    if entry.requests:
        out["q"] = entry.requests
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def _broadcast(b: Broadcast) -> list[Any]:
    event = b.event
    name = type(event).__name__
    return [b.audience, b.where, b.exclude, name, *map(event.__getattribute__, _NAMES[name])]


def decode(text: str | bytes) -> Entry:
    """The entry in ``text``, checked whole; BadEntry (one line) if it is not one."""
    try:
        # Not jsontext.load: its scan for nesting costs more than the decoding
        # here, where every broadcast is a list; the C decoder's own guard
        # (RecursionError past the recursion limit) bounds the nesting, and
        # the shape is checked below to its last item.
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEntry(f"not JSON: {exc}") from None
    except RecursionError:
        raise BadEntry("not JSON for chatd: nested too deep") from None
    if not isinstance(data, dict):
        raise BadEntry("not an object")
    origin, serial = data.get("o"), data.get("n")
    if not isinstance(origin, str) or not origin:
        raise BadEntry("no origin node")
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise BadEntry("no serial number")
    at = data.get("t", 0.0)
    if not _fits(at, float) or not 0 <= at < 1e11:
        raise BadEntry("a time that is not seconds since the epoch")
    changes, broadcasts, requests = data.get("c", []), data.get("b", []), data.get("q", [])
    if not all(isinstance(x, list) for x in (changes, broadcasts, requests)):
        raise BadEntry("c, b and q must be lists")
    if len(changes) + len(broadcasts) + len(requests) > MAX_ITEMS:
        raise BadEntry(f"more than {MAX_ITEMS} items")
    entry = Entry(origin, serial, at=at)
    entry.changes = [_checked(item, CHANGES, "change") for item in changes]
    entry.requests = [_checked(item, REQUESTS, "request") for item in requests]
    entry.broadcasts = [_decode_broadcast(item) for item in broadcasts]
    for change in entry.changes:
        if change[0] == "sync":
            _check_sync(change)
    return entry


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits(value: Any, kind: type[Any]) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return _is_int(value)
    return isinstance(value, kind)


def _checked(item: Any, table: dict[str, tuple[type[Any], ...]], what: str) -> list[Any]:
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise BadEntry(f"a {what} is not [name, ...]")
    kinds = table.get(item[0])
    if kinds is None:
        raise BadEntry(f"unknown {what} {item[0]!r}")
    args = item[1:]
    if len(args) != len(kinds) or not all(map(_fits, args, kinds)):
        raise BadEntry(f"{what} {item[0]!r} has the wrong arguments")
    return item


def _shapes(cls: type[Any]) -> frozenset[tuple[type[Any], ...]]:
    """The exact types an event's fields may arrive as, every combination
    (a float field may come as an int): checking a broadcast's fields is then
    one set lookup, not a test per field (a busy entry has thousands)."""
    hints = typing.get_type_hints(cls)
    options = [
        (int, float) if hints[f.name] is float else (hints[f.name],)
        for f in dataclasses.fields(cls)
    ]
    return frozenset(itertools.product(*options))


#: Each event class that crosses nodes -> its fields' names, in order.
_NAMES: Final = {
    name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in BROADCAST.items()
}
#: Each event class that crosses nodes -> the types its fields may come as.
_SHAPES: Final = {name: _shapes(cls) for name, cls in BROADCAST.items()}


def _decode_broadcast(item: Any) -> Broadcast:
    if not isinstance(item, list) or len(item) < 4:
        raise BadEntry("a broadcast is not [audience, where, exclude, event, ...]")
    audience, where, exclude, name, *values = item
    cls = BROADCAST.get(name) if isinstance(name, str) else None
    if cls is None:
        raise BadEntry(f"unknown event {name!r}")
    if not _is_int(exclude):
        raise BadEntry("a broadcast's exclude is not an id")
    if audience == ROOM:
        ok = isinstance(where, str)
    elif audience == SHARING:
        ok = isinstance(where, list) and all(isinstance(r, str) for r in where)
    elif audience == EVERYONE:
        ok = where is None
    elif audience == USER:
        ok = (
            isinstance(where, list)
            and len(where) == 2
            and isinstance(where[0], str)
            and _is_int(where[1])
        )
    else:
        raise BadEntry(f"unknown audience {audience!r}")
    if not ok:
        raise BadEntry(f"audience {audience!r} with the wrong target")
    if tuple(map(type, values)) not in _SHAPES[name]:
        raise BadEntry(f"event {name} has the wrong fields")
    return Broadcast(audience, where, cls(*values), exclude)


def _check_sync(change: list[Any]) -> None:
    _, _, users, topics, _, _ = change
    if len(users) > MAX_SYNC_USERS:
        raise BadEntry(f"a sync of more than {MAX_SYNC_USERS} users")
    for user in users:
        if not (
            isinstance(user, list)
            and len(user) == 6
            and all(map(_fits, user[:5], CHANGES["arrive"]))
            and isinstance(user[5], list)
            and all(
                isinstance(r, list)
                and len(r) == 2
                and isinstance(r[0], str)
                and isinstance(r[1], bool)
                for r in user[5]
            )
        ):
            raise BadEntry("a sync with a malformed user")
    for topic in topics:
        if not (
            isinstance(topic, list) and len(topic) == 3 and all(isinstance(t, str) for t in topic)
        ):
            raise BadEntry("a sync with a malformed topic")
