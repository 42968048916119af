"""Rooms: their names, and what one room holds (members, operators, topic).

Rule: a Room is plain data the hub owns and changes; nothing else changes it.
A name is ``#`` and 1-32 letters, digits, ``_`` or ``-``, unique ignoring case
(names are ASCII, so ``lower()`` is a complete case fold).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from chatd.core.fanout import Group

ROOM_MAX: Final = 32
ROOM_PATTERN: Final = re.compile(rf"#[A-Za-z0-9_-]{{1,{ROOM_MAX}}}")
ROOM_RULE: Final = f"# and 1-{ROOM_MAX} letters, digits, _ or -"

#: [rooms] defaults (chatd.config), with the reason for each number.
#: A thousand rooms is a large community; each costs a few hundred bytes
#: and nothing while quiet, so the bound is about abuse, not memory.
DEFAULT_MAX_ROOMS: Final = 1000
#: More rooms than anyone follows in a terminal (irssi users rarely pass 20).
DEFAULT_MAX_ROOMS_PER_USER: Final = 20
#: A topic is a line: 300 characters fit an IRC TOPIC (RFC 2812's 512-byte line).
DEFAULT_MAX_TOPIC_CHARS: Final = 300


#: The longest reason a part, a kick or a ban carries: a reason is a few words, and
#: an operator's (an admin request may be 64 KiB) must not make lines longer
#: than any client may send.
MAX_REASON_CHARS: Final = 300

#: What a plain line (or a room command) gets from someone in no room.
NO_ROOM: Final = "You are in no room. /join #room to enter one."


def room_problem(name: str) -> str | None:
    """Why ``name`` cannot be a room's name, or None if it can."""
    if ROOM_PATTERN.fullmatch(name):
        return None
    shown = name if len(name) <= 40 else name[:40] + "..."
    return f'"{shown}" is not a room name: use {ROOM_RULE} (like #games).'


def room_key(name: str) -> str:
    return name.lower()


class Room:
    """One room: its members in the order they joined, its operators, its topic."""

    __slots__ = (
        "founding", "groups", "last_line", "lines", "members", "name", "ops", "topic",
        "topic_by",
    )  # fmt: skip

    def __init__(self, name: str, last_line: int = 0) -> None:
        self.name = name
        #: The id of the newest line kept of it (chatd.store.lines): what a
        #: member who leaves has seen up to.
        self.last_line = last_line
        #: Lines said in it since it was made here (operators' "busiest rooms").
        self.lines = 0
        #: Member -> None: a dict keeps the order they joined in (a User; Any here
        #: so this module needs nothing of the hub's).
        self.members: dict[Any, None] = {}
        self.ops: set[Any] = set()
        self.topic = ""
        self.topic_by = ""
        #: (wire, variant) -> the fan-out group of members who read this room
        #: in that format and variant (chatd.core.delivery).
        self.groups: dict[tuple[str, str], Group] = {}
        #: In a cluster, the member of this node who made the room and runs
        #: it, until the log confirms the making (another node may have made
        #: it a moment before: the log's order says who runs it).
        self.founding: Any = None

    def __repr__(self) -> str:
        return f"<Room {self.name} {len(self.members)} members>"
