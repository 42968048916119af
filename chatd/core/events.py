"""Events: what happened in the chat, as the hub tells it, in no wire format.

Rule: an event says what happened and names the people and rooms involved by
their names at that moment; it holds no bytes, no links and no formatting. The
hub decides who hears of it (an audience, see chatd.core.delivery); each wire
module (chatd.wire.line for nc, later IRC, the browser, the history store and
other nodes) renders it in its own way. Events are frozen, so one event can be
handed to every renderer and compared whole in tests.

A user who caused an event is named by its nickname and, beside it, its
``ident`` (:attr:`chatd.core.hub.User.ident`: the user name a wire shows after
the nick, IRC's ``nick!ident@host``; fixed for the connection's life, so it
stays when the nick changes). A renderer that has no use for it ignores it.

Text in an event is what its author gave (a user's line is already clean; a
plugin's or an operator's may hold anything): the renderer that puts it on a
wire sanitizes it, since only it knows what its format must not contain.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Said:
    """``nick`` said ``text`` in ``room``; a ``notice`` (IRC's NOTICE) is never
    answered automatically, and a wire that has no notices shows it as chat."""

    room: str
    nick: str
    text: str
    ident: str = ""
    notice: bool = False


@dataclass(frozen=True, slots=True)
class Acted:
    """``nick`` did ``text`` (``/me``) in ``room``."""

    room: str
    nick: str
    text: str
    ident: str = ""


@dataclass(frozen=True, slots=True)
class PrivateSaid:
    """``sender`` said ``text`` to ``to`` alone (a ``notice``: see Said), or did
    it (an ``action``: a private ``/me``)."""

    sender: str
    to: str
    text: str
    ident: str = ""
    notice: bool = False
    action: bool = False


@dataclass(frozen=True, slots=True)
class Joined:
    """``nick`` joined ``room``; ``arrived`` when that is its arrival on the server
    (registration puts a user in the default room)."""

    room: str
    nick: str
    arrived: bool = False
    ident: str = ""


@dataclass(frozen=True, slots=True)
class Parted:
    """``nick`` left ``room`` (and stays on the server)."""

    room: str
    nick: str
    reason: str = ""
    ident: str = ""


@dataclass(frozen=True, slots=True)
class Kicked:
    """``by`` (a room operator, or ``""`` for a server operator) put ``nick`` out of ``room``."""

    room: str
    nick: str
    by: str
    reason: str = ""
    by_ident: str = ""


@dataclass(frozen=True, slots=True)
class Quit:
    """``nick`` left the server: everyone who shared a room with it hears once."""

    nick: str
    reason: str
    ident: str = ""


@dataclass(frozen=True, slots=True)
class Renamed:
    """``old`` is now known as ``new``."""

    old: str
    new: str
    ident: str = ""


@dataclass(frozen=True, slots=True)
class TopicSet:
    """``by`` (``""``: a server operator) set ``room``'s topic to ``text`` (``""``: cleared)."""

    room: str
    text: str
    by: str
    by_ident: str = ""


@dataclass(frozen=True, slots=True)
class Opped:
    """``by`` made ``nick`` an operator of ``room`` (``op``), or took that away."""

    room: str
    nick: str
    by: str
    op: bool
    by_ident: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the server says, in ``room`` when it is about one (a plugin's
    ``ctx.announce``), else to whoever it is sent to."""

    text: str
    room: str = ""


# -- history shown again (to one user) ----------------------------------------------

#: What a kept line was (Replayed.kind).
SAID = "said"
ACTED = "acted"
NOTICED = "notice"  # chat sent as a notice (IRC's NOTICE)
TOPIC = "topic"
PRIVATE = "private"  # a private message kept for an account while it was away
PRIVATE_ACTED = "private-acted"  # a private /me, likewise

#: Why kept lines are shown (ReplayStart.why): what the user missed while away,
#: the latest lines of a room new to it, or what it asked for (/history).
MISSED = "missed"
RECENT = "recent"
ASKED = "asked"
HELD = "held"  # private messages kept for an account (in no room: ``room`` is "")


@dataclass(frozen=True, slots=True)
class ReplayStart:
    """``count`` kept lines of ``room`` follow, shown for ``why``; ``since``
    is when the user was last there (MISSED), and ``now`` is when they are
    shown (a renderer gives a date to times from another day)."""

    room: str
    why: str
    count: int
    since: float = 0.0
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class Replayed:
    """A kept line of ``room`` shown again: ``nick`` (``ident``) did ``kind``
    with ``text`` at ``at`` (seconds since the epoch); shown at ``now``. It is
    history, and every wire marks it so (nc: ``*** [10:32] <alice> hi``; IRC:
    its server-time tag, or the time in the text)."""

    room: str
    at: float
    kind: str
    nick: str
    text: str
    ident: str = ""
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class ReplayEnd:
    """The lines ReplayStart announced have been shown; ``more`` earlier ones
    were not (past the cap: ``more_counted`` False when there are more still,
    not counted), and ``/history {ask}`` shows as many of them as it can."""

    room: str
    why: str
    count: int
    more: int = 0
    more_counted: bool = True
    ask: int = 0


# -- what only the user it concerns is told ---------------------------------------


@dataclass(frozen=True, slots=True)
class YouRenamed:
    """The user is now known as ``new`` (it was ``old``): the others hear Renamed."""

    old: str
    new: str
    ident: str = ""


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The user quit on purpose (``nick``: ``""`` if it never had one), with
    the ``reason`` the others are told; its connection closes after this."""

    nick: str
    reason: str = "Quit"


@dataclass(frozen=True, slots=True)
class Closing:
    """The server closes the user's connection now, for ``reason`` (a kick, a
    ban, a timeout): it was told why in words just before; a wire whose clients
    expect a last line before a close (IRC's ERROR) sends it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Greeting:
    """A new connection, not yet named, is greeted (nc: asked for a nickname;
    a wire with a registration of its own may show nothing)."""


@dataclass(frozen=True, slots=True)
class Welcome:
    """``nick`` is registered, and is in ``room`` (``""``: none); ``online`` users
    are on the server, it included, and there have been ``most`` at once."""

    nick: str
    room: str
    online: int
    most: int = 0


@dataclass(frozen=True, slots=True)
class RoomState:
    """What a user who has just joined ``room`` is told: its topic and members
    (operators in ``ops``), sorted ignoring case."""

    room: str
    topic: str
    members: tuple[str, ...]
    ops: frozenset[str]


@dataclass(frozen=True, slots=True)
class Members:
    """Who is in ``room`` (operators in ``ops``), sorted ignoring case: what a
    user asked for with ``/who``."""

    room: str
    members: tuple[str, ...]
    ops: frozenset[str]


@dataclass(frozen=True, slots=True)
class Current:
    """The user's current room (where its plain lines go) is now ``room``; ``""``
    when it is in none."""

    room: str


@dataclass(frozen=True, slots=True)
class YouLeft:
    """The user left ``room``: by ``/part`` (with its ``reason``), or put out by
    ``kicked_by`` (``""`` for a server operator) when ``kicked``."""

    room: str
    kicked: bool = False
    kicked_by: str = ""
    reason: str = ""
    by_ident: str = ""


Event = (
    Said
    | Acted
    | PrivateSaid
    | Joined
    | Parted
    | Kicked
    | Quit
    | Renamed
    | TopicSet
    | Opped
    | Notice
    | Greeting
    | YouRenamed
    | Goodbye
    | Closing
    | Welcome
    | RoomState
    | Members
    | Current
    | YouLeft
    | ReplayStart
    | Replayed
    | ReplayEnd
)
