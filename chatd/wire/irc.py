"""The IRC format irssi, weechat and HexChat users see, sans-IO: events in, IRC lines out.

Rule: this module knows what the hub's events look like as IRC messages
(RFC 1459/2812) and nothing of connections or the hub. Every line goes through
:func:`chatd.wire.irc_message.format_message`, which guarantees no CR, LF or NUL
inside a line and at most 512 bytes; every piece of text is cleaned first with
chatd.wire.text (:func:`one_line`, :func:`lines_of`), whoever produced it.

Two renderers, because of the fan-out rule (an event is rendered once per room,
format and variant, never per reader):

* the module-level :func:`render`, for what many readers get alike: chat,
  joins, parts, quits, nick changes, topics, modes, room notices. The source of
  a user's line is ``nick!nick@chatd``, a fixed cloak, so the rendering does
  not depend on who reads it (events carry nicks only).
* :class:`IrcWire`, one per connection, which knows its reader's nickname:
  numerics (``:chatd.local 353 alice = #lobby :...``) name their recipient, so
  the personal events (Welcome, RoomState, Members, YouLeft, a notice to one
  user) are rendered there; it hands everything else to :func:`render`.

IRC has one variant (:data:`HERE`): a channel is a channel wherever the reader
"is". A private message shown back to its sender (:data:`ECHO`) and a change
of current room (Current) render as nothing: IRC clients show their own lines
themselves and have no current room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import chatd
from chatd.core import events as ev
from chatd.core.delivery import ECHO, HERE
from chatd.core.nicks import NICK_MAX
from chatd.core.rooms import DEFAULT_MAX_TOPIC_CHARS, ROOM_MAX
from chatd.wire import irc_message as im
from chatd.wire.irc_message import Message, ctcp, format_message
from chatd.wire.text import lines_of, one_line

__all__ = ["HERE", "NAME", "SERVER_NAME", "SHARED", "IrcWire", "render", "variant"]

NAME: Final = "irc"

#: The server's name in the prefix of its own lines and numerics. A constant
#: until the listener's ``[irc] server_name`` setting exists.
SERVER_NAME: Final = "chatd.local"
#: The network's name in 001 and ISUPPORT (``[irc] network`` later).
NETWORK: Final = "chatd"
#: The host part of every user's source: one fixed cloak, so a line renders
#: the same for every reader (and no reader learns another's address).
CLOAK: Final = "chatd"

#: IrcWire.render's default variant: the event is rendered once for many
#: readers (delivery's to_everyone, to_sharing, to_each call render without a
#: variant), so it must not name this connection's nick. Delivery's to_user
#: always passes the variant, so an explicit one means "for this reader alone".
SHARED: Final = "shared"

#: Nicknames are at most this long (chatd.core.nicks, the rule for everyone).
NICKLEN: Final = NICK_MAX
#: "#" and at most ROOM_MAX characters (chatd.core.rooms).
CHANNELLEN: Final = 1 + ROOM_MAX


def variant(room: str, current: str) -> str:
    """IRC has one variant: a channel's line reads the same for every member."""
    return HERE


def source(nick: str) -> str:
    """The prefix of a line ``nick`` caused: ``nick!nick@chatd``."""
    return f"{nick}!{nick}@{CLOAK}"


def message(src: str, command: str, *params: str) -> bytes:
    """One encoded IRC line (CR LF included)."""
    return format_message(Message(command, params, src))


#: How much of a client's token a reply echoes (a nick, a channel, a verb): the
#: longest name chatd has is a room's 33 characters; more is a hostile line's.
ECHO_CHARS: Final = 64


def token(text: str) -> str:
    """A client's word as a reply may echo it in a middle param: one clean line,
    no spaces, no leading ":", at most ECHO_CHARS; "*" when nothing is left."""
    word = one_line(text).replace(" ", "").lstrip(":")[:ECHO_CHARS]
    return word or "*"


def numeric(nick: str, code: str, *params: str) -> bytes:
    """``:server CODE nick params...``: a numeric reply to ``nick`` ("*" before it
    has one). Every param but the last (the text) may echo what a client sent,
    so each is made a :func:`token`: a reply can never be refused by the codec."""
    middle = tuple(token(param) for param in params[:-1])
    return message(SERVER_NAME, code, token(nick), *middle, *params[-1:])


def _by(nick: str) -> str:
    """The source of what ``nick`` did, or the server's when a server operator did it."""
    return source(nick) if nick else SERVER_NAME


def _said(e: ev.Said, v: str) -> bytes:
    return message(source(e.nick), "PRIVMSG", e.room, one_line(e.text))


def _acted(e: ev.Acted, v: str) -> bytes:
    return message(source(e.nick), "PRIVMSG", e.room, ctcp("ACTION", one_line(e.text)))


def _private(e: ev.PrivateSaid, v: str) -> bytes:
    if v == ECHO:  # the client shows its own line (no echo-message capability yet)
        return b""
    return message(source(e.sender), "PRIVMSG", e.to, one_line(e.text))


def _joined(e: ev.Joined, v: str) -> bytes:
    return message(source(e.nick), "JOIN", e.room)


def _parted(e: ev.Parted, v: str) -> bytes:
    reason = one_line(e.reason)
    if reason:
        return message(source(e.nick), "PART", e.room, reason)
    return message(source(e.nick), "PART", e.room)


def _kick(room: str, nick: str, by: str, reason: str) -> bytes:
    reason = one_line(reason)
    if reason:
        return message(_by(by), "KICK", room, nick, reason)
    return message(_by(by), "KICK", room, nick)


def _kicked(e: ev.Kicked, v: str) -> bytes:
    return _kick(e.room, e.nick, e.by, e.reason)


def _quit(e: ev.Quit, v: str) -> bytes:
    return message(source(e.nick), "QUIT", one_line(e.reason) or "Quit")


def _renamed(e: ev.Renamed, v: str) -> bytes:
    return message(source(e.old), "NICK", e.new)


def _topic(e: ev.TopicSet, v: str) -> bytes:
    return message(_by(e.by), "TOPIC", e.room, one_line(e.text))


def _opped(e: ev.Opped, v: str) -> bytes:
    return message(_by(e.by), "MODE", e.room, "+o" if e.op else "-o", e.nick)


def notices(target: str, text: str, src: str = SERVER_NAME) -> bytes:
    """``NOTICE target :line`` for each non-empty line of ``text``."""
    return b"".join(message(src, "NOTICE", target, line) for line in lines_of(text) if line)


def _notice(e: ev.Notice, v: str) -> bytes:
    return notices(e.room or "*", e.text)


def _current(e: ev.Current, v: str) -> bytes:
    return b""  # IRC has no current room


def _greeting(e: ev.Greeting, v: str) -> bytes:
    return b""  # IRC registers with NICK and USER: no prompt


def _you_renamed(e: ev.YouRenamed, v: str) -> bytes:
    return message(source(e.old), "NICK", e.new)  # the client follows its own NICK line


def _goodbye(e: ev.Goodbye, v: str) -> bytes:
    return b""  # the gateway has answered QUIT with ERROR: nothing may follow it


# -- what one reader is told: numerics name it -------------------------------------------


def lusers(nick: str, online: int) -> bytes:
    """251 and 255: how many are on (nc users count: it is one chat)."""
    return numeric(
        nick, im.RPL_LUSERCLIENT, f"There are {online} users and 0 invisible on 1 server"
    ) + numeric(nick, im.RPL_LUSERME, f"I have {online} clients and 0 servers")


def no_motd(nick: str) -> bytes:
    return numeric(nick, im.ERR_NOMOTD, "MOTD File is missing")


def isupport(nick: str, topic_len: int) -> bytes:
    tokens = (
        f"CASEMAPPING={im.CASEMAPPING}",
        "CHANTYPES=#",
        f"NICKLEN={NICKLEN}",
        f"CHANNELLEN={CHANNELLEN}",
        f"TOPICLEN={topic_len}",
        f"NETWORK={NETWORK}",
        "PREFIX=(o)@",
        "CHANMODES=,,,",
    )
    return numeric(nick, im.RPL_ISUPPORT, *tokens, "are supported by this server")


def welcome(nick: str, online: int, topic_len: int = DEFAULT_MAX_TOPIC_CHARS) -> bytes:
    """The registration burst: 001-004, 005, LUSERS (251, 255) and 422 (no MOTD yet)."""
    version = f"chatd-{chatd.__version__}"
    return b"".join(
        (
            numeric(nick, im.RPL_WELCOME, f"Welcome to the {NETWORK} IRC network, {nick}"),
            numeric(nick, im.RPL_YOURHOST, f"Your host is {SERVER_NAME}, running {version}"),
            numeric(nick, im.RPL_CREATED, "This server was created when chatd started"),
            # Modes: user "i" (accepted and shown, changes nothing); channel "o".
            numeric(nick, im.RPL_MYINFO, SERVER_NAME, version, "i", "o"),
            isupport(nick, topic_len),
            lusers(nick, online),
            no_motd(nick),
        )
    )


def names(nick: str, room: str, members: Iterable[str], ops: frozenset[str]) -> bytes:
    """353 lines (as many as the 512-byte limit needs), then 366."""
    head = len(f":{SERVER_NAME} {im.RPL_NAMREPLY} {nick} = {room} :".encode())
    room_line = im.MAX_MESSAGE_BYTES - 2 - head  # bytes left for the names
    chunks: list[list[str]] = [[]]
    width = 0
    for member in members:
        name = f"@{member}" if member in ops else member
        if chunks[-1] and width + 1 + len(name) > room_line:
            chunks.append([])
            width = 0
        width += len(name) + (1 if chunks[-1] else 0)
        chunks[-1].append(name)
    out = [numeric(nick, im.RPL_NAMREPLY, "=", room, " ".join(c)) for c in chunks if c]
    out.append(numeric(nick, im.RPL_ENDOFNAMES, room, "End of /NAMES list"))
    return b"".join(out)


def room_state(nick: str, e: ev.RoomState) -> bytes:
    """What a client needs to open a channel: its own JOIN, the topic, the names."""
    out = [message(source(nick), "JOIN", e.room)]
    topic = one_line(e.topic)
    if topic:
        out.append(numeric(nick, im.RPL_TOPIC, e.room, topic))
    out.append(names(nick, e.room, e.members, e.ops))
    return b"".join(out)


def you_left(nick: str, e: ev.YouLeft) -> bytes:
    if e.kicked:
        return _kick(e.room, nick, e.kicked_by, e.reason)
    reason = one_line(e.reason)
    if reason:
        return message(source(nick), "PART", e.room, reason)
    return message(source(nick), "PART", e.room)


def personal(nick: str, event: ev.Event, topic_len: int = DEFAULT_MAX_TOPIC_CHARS) -> bytes:
    """``event`` for the one reader called ``nick`` ("*" before it has a name)."""
    if isinstance(event, ev.Welcome):
        return welcome(nick, event.online, topic_len)
    if isinstance(event, ev.RoomState):
        return room_state(nick, event)
    if isinstance(event, ev.Members):
        return names(nick, event.room, event.members, event.ops)
    if isinstance(event, ev.YouLeft):
        return you_left(nick, event)
    if isinstance(event, ev.Notice) and not event.room:
        return notices(nick or "*", event.text)
    return render(event)


def _personal_anonymous(e: Any, v: str) -> bytes:
    return personal("*", e)


_RENDER: Final[dict[type, Callable[[Any, str], bytes]]] = {
    ev.Said: _said,
    ev.Acted: _acted,
    ev.PrivateSaid: _private,
    ev.Joined: _joined,
    ev.Parted: _parted,
    ev.Kicked: _kicked,
    ev.Quit: _quit,
    ev.Renamed: _renamed,
    ev.TopicSet: _topic,
    ev.Opped: _opped,
    ev.Notice: _notice,
    ev.Current: _current,
    ev.Greeting: _greeting,
    ev.YouRenamed: _you_renamed,
    ev.Goodbye: _goodbye,
    # Personal events reach the module renderer only by mistake; they name no one.
    ev.Welcome: _personal_anonymous,
    ev.RoomState: _personal_anonymous,
    ev.Members: _personal_anonymous,
    ev.YouLeft: _personal_anonymous,
}


def render(event: ev.Event, v: str = HERE) -> bytes:
    """``event`` as complete IRC lines, the same for every reader (no recipient nick)."""
    return _RENDER[type(event)](event, v)


class Named(Protocol):
    """Who an IrcWire renders for (chatd.core.hub.User is one)."""

    @property
    def nick(self) -> str: ...


#: Events IrcWire renders with its reader's nick; a Notice only when it is in no
#: room and rendered for this reader alone (see SHARED).
_PERSONAL: Final = (ev.Welcome, ev.RoomState, ev.Members, ev.YouLeft)


class IrcWire:
    """One IRC connection's wire: :func:`render` plus the personal events, which
    name their reader. Set ``owner`` (the hub's user) once the hub has made it;
    until it has a nickname, numerics go to "*"."""

    NAME: Final = NAME

    def __init__(
        self, owner: Named | None = None, topic_len: int = DEFAULT_MAX_TOPIC_CHARS
    ) -> None:
        self.owner = owner
        self.topic_len = topic_len

    @property
    def nick(self) -> str:
        return (self.owner.nick if self.owner is not None else "") or "*"

    def variant(self, room: str, current: str) -> str:
        return HERE

    def render(self, event: ev.Event, v: str = SHARED) -> bytes:
        if isinstance(event, _PERSONAL) or (
            v != SHARED and isinstance(event, ev.Notice) and not event.room
        ):
            return personal(self.nick, event, self.topic_len)
        return render(event, HERE if v == SHARED else v)
