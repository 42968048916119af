"""Delivery: an event and its audience in, each reader's bytes out, rendered once.

Rule: the hub says *what* happened (an event, chatd.core.events) and *to whom*
(an audience: one user, one room, everyone, or everyone who shares a room with
a user); this module alone turns that into bytes on links, and it keeps the
fan-out rule: an event is rendered at most once per (audience, wire format,
variant), never per reader, and a room's line is published once to each of the
room's fan-out groups (chatd.core.fanout), which hand it to their members in one
write per loop iteration.

A room has one group per (wire, variant) that any member reads it in: an nc
user whose current room it is reads it in the line format's ``here`` variant,
the other members in ``away`` (the room named first). The hub tells this module
when a user's rooms or current room change (:meth:`Delivery.place`), and the
user moves between the room's groups; lines published earlier in the same
iteration still reach it as they were rendered then, so order is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from chatd.core import events
from chatd.core.events import Event
from chatd.core.fanout import Fanout, Group, Member
from chatd.core.link import Link
from chatd.core.rooms import Room
from chatd.core.stats import Stats

if TYPE_CHECKING:
    from collections.abc import Iterable


#: The variants every wire module renders (it may render two alike): for readers
#: whose current room the event happened in, or for an event in no room; for the
#: members for whom it is another of their rooms; a private message shown back
#: to its sender.
HERE: Final = "here"
AWAY: Final = "away"
ECHO: Final = "echo"


class Wire(Protocol):
    """A wire module as delivery sees it (chatd.wire.line is one)."""

    @property
    def NAME(self) -> str: ...

    def render(self, event: Event, v: str = ...) -> bytes:
        """``event`` as complete encoded output for readers of variant ``v``."""
        ...

    def variant(self, room: str, current: str) -> str:
        """The variant of an event in ``room`` (``""``: none) for a reader whose
        current room is ``current`` (``""``: none)."""
        ...


class Reader(Protocol):
    """What delivery needs of a user: its link, its format, where it is."""

    link: Link
    wire: Wire
    #: The rooms it is in, by key, in the order it joined them.
    rooms: dict[str, Room]
    current: Room | None
    #: Room -> the group of that room it is in now.
    placed: dict[Room, Group]


#: Events that happen in a room (their variant depends on the reader's current
#: room); the rest concern one reader and are read as they are (HERE).
ROOM_EVENTS: Final = (
    events.Said,
    events.Acted,
    events.Joined,
    events.Parted,
    events.Kicked,
    events.TopicSet,
    events.Opped,
    events.Notice,
    events.ReplayStart,
    events.Replayed,
    events.ReplayEnd,
)


def _room_of(event: Event) -> str:
    return event.room if isinstance(event, ROOM_EVENTS) else ""


class Delivery:
    def __init__(self, fanout: Fanout | None = None, stats: Stats | None = None) -> None:
        """``fanout`` makes the groups (the reactor's, so that they are flushed
        once per loop iteration; tests flush their own)."""
        self.fanout = fanout if fanout is not None else Fanout()
        self.stats = stats if stats is not None else Stats(0.0)
        #: wire name -> the group of every named user who reads that format.
        self.everyone: dict[str, Group] = {}
        self._wires: dict[str, Wire] = {}

    # -- who is where ------------------------------------------------------------------

    def arrive(self, user: Reader) -> None:
        """``user`` is named: it hears what goes to everyone."""
        wire = user.wire
        self._wires[wire.NAME] = wire
        group = self.everyone.get(wire.NAME)
        if group is None:
            group = self.everyone[wire.NAME] = self.fanout.group()
        group.join(user.link)

    def depart(self, user: Reader) -> None:
        """``user`` is gone: it hears nothing more, once it has what came before."""
        for room in list(user.placed):
            self.remove(user, room)
        group = self.everyone.get(user.wire.NAME)
        if group is not None:
            group.leave(user.link)

    def place(self, user: Reader, room: Room) -> None:
        """Put ``user`` (a member of ``room``) in the room's group for its format
        and variant now; called when it joins and when its current room changes."""
        wire = user.wire
        current = user.current.name if user.current is not None else ""
        key = (wire.NAME, wire.variant(room.name, current))
        group = room.groups.get(key)
        if group is None:
            group = room.groups[key] = self.fanout.group()
        old = user.placed.get(room)
        if old is group:
            return
        if old is not None:
            old.leave(user.link)
        group.join(user.link)
        user.placed[room] = group

    def remove(self, user: Reader, room: Room) -> None:
        """``user`` left ``room``: it hears no more of it."""
        group = user.placed.pop(room, None)
        if group is not None:
            group.leave(user.link)

    # -- audiences ----------------------------------------------------------------------

    def counted(self, sent: int) -> None:
        """One event went to ``sent`` readers: one line out (if any read it),
        ``sent`` deliveries. The audiences below count themselves; the hub calls
        it for what it sends with :meth:`to_user` and counts (a private message)."""
        stats = self.stats
        stats.lines_out += sent
        if sent:
            stats.events_out += 1

    def render(self, wire: Wire, event: Event) -> bytes:
        """``event`` for a connection the hub has no user for (one turned away)."""
        return wire.render(event)

    def to_each(self, readers: Iterable[Reader], event: Event) -> None:
        """``event`` for each of ``readers`` (who need not be named: a shutdown
        tells everyone connected), rendered once per format."""
        rendered: dict[str, bytes] = {}
        for reader in readers:
            wire = reader.wire
            data = rendered.get(wire.NAME)
            if data is None:
                data = rendered[wire.NAME] = wire.render(event)
            reader.link.send(data)

    def to_user(self, user: Reader, event: Event, v: str | None = None) -> None:
        """``event`` for one user (after whatever its groups published before)."""
        wire = user.wire
        if v is None:
            current = user.current.name if user.current is not None else ""
            v = wire.variant(_room_of(event), current)
        data = wire.render(event, v)
        if data:  # a format may have nothing to show for an event (IRC: a current room)
            user.link.send(data)

    def to_room(self, room: Room, event: Event, sender: Reader | None = None) -> int:
        """``event`` for every member of ``room`` but ``sender``: one rendering and
        one publish per group. Returns how many get it."""
        skip = sender.link if sender is not None else None
        sent = 0
        for (name, v), group in room.groups.items():
            if group.members:
                data = self._wires[name].render(event, v)
                if data:
                    group.publish(data, skip)
                    sent += len(group) - (skip in group.members)
        self.counted(sent)
        return sent

    def to_everyone(self, event: Event, exclude: Reader | None = None) -> int:
        """``event`` for every named user but ``exclude``."""
        skip = exclude.link if exclude is not None else None
        sent = 0
        for name, group in self.everyone.items():
            if group.members:
                group.publish(self._wires[name].render(event), skip)
                sent += len(group) - (skip in group.members)
        self.counted(sent)
        return sent

    def to_sharing(self, user: Reader, event: Event, rooms: Iterable[Room] | None = None) -> int:
        """``event`` (a quit, a rename: no room of its own) once for everyone who
        shares one of ``rooms`` (``user``'s by default) with ``user``, not
        ``user``. From one room it is that room's broadcast; from several, each
        reader gets it once, rendered once per format."""
        shared = list(user.rooms.values()) if rooms is None else list(rooms)
        # What the rooms published before goes out first, so that, in every one
        # of them, this comes after the lines before it (a reader hears it
        # from one room's group only, which is not flushed in step with the
        # others). That moves the batches to the links early, in order; each
        # still gets one write this iteration.
        if len(shared) > 1:
            self.fanout.flush()
        # Each room's groups in turn, skipping the members an earlier group
        # already reaches: the sets are intersected and joined in C, and the
        # Python work is in the members who share several rooms with the user.
        link = user.link
        covered: set[Member] = {link}
        rendered: dict[str, bytes] = {}  # wire -> the event, which is in no room
        sent = 0
        for room in shared:
            for (name, _), group in room.groups.items():
                members = group.members
                if not members:
                    continue
                data = rendered.get(name)
                if data is None:
                    data = rendered[name] = self._wires[name].render(event)
                skip = members & covered
                group.publish(data, link if link in skip else None, skip)
                sent += len(members) - len(skip)
                covered |= members
        self.counted(sent)
        return sent
