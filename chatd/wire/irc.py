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

import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import chatd
from chatd.core import events as ev
from chatd.core.delivery import ECHO, HERE
from chatd.core.nicks import NICK_MAX
from chatd.core.rooms import DEFAULT_MAX_TOPIC_CHARS, ROOM_MAX
from chatd.wire import irc_message as im
from chatd.wire import replay
from chatd.wire.irc_message import Message, ctcp, format_message
from chatd.wire.text import lines_of, one_line

__all__ = [
    "CAPABILITIES",
    "HERE",
    "NAME",
    "SERVER_NAME",
    "SHARED",
    "IrcServer",
    "IrcWire",
    "render",
    "variant",
]

NAME: Final = "irc"

#: The server's name in the prefix of its own lines and numerics, unless
#: ``[irc] server_name`` says otherwise (see :class:`IrcServer`).
SERVER_NAME: Final = "chatd.local"
#: The network's name in 001 and ISUPPORT, unless ``[irc] network`` says otherwise.
NETWORK: Final = "chatd"
#: Who IRC users send plugin commands to, unless ``[irc] service_nick`` says otherwise.
SERVICE: Final = "chatd"
#: The capabilities chatd implements (CAP LS): ``server-time`` stamps every
#: line a client is sent through its wire with ``@time=`` (IRCv3); ``sasl``
#: (PLAIN) logs in to an account before registration (chatd.irc_gateway).
CAPABILITIES: Final = ("server-time", "sasl")
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
#: Targets one PRIVMSG or NOTICE may name (``#a,bob``; 005 TARGMAX): flood
#: control counts lines, so a line naming 70 targets would be 70 messages for
#: one token; 4 is what people type (a channel or two and a friend).
MAX_TARGETS: Final = 4
#: Longest username WHO and WHOIS show from a client's USER (chatd.irc_gateway
#: cuts it): a username is a short login name, shown beside a 16-character nick.
USERLEN: Final = 16


def variant(room: str, current: str) -> str:
    """IRC has one variant: a channel's line reads the same for every member."""
    return HERE


def source(nick: str, ident: str = "") -> str:
    """The prefix of a line ``nick`` caused: ``nick!ident@chatd`` (the ident is the
    user name it registered with: IRC's USER, else its first nick)."""
    return f"{nick}!{ident or nick}@{CLOAK}"


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


def numeric(nick: str, code: str, *params: str, server: str = SERVER_NAME) -> bytes:
    """``:server CODE nick params...``: a numeric reply to ``nick`` ("*" before it
    has one). Every param but the last (the text) may echo what a client sent,
    so each is made a :func:`token`: a reply can never be refused by the codec."""
    middle = tuple(token(param) for param in params[:-1])
    return message(server, code, token(nick), *middle, *params[-1:])


def _by(nick: str, ident: str, server: str) -> str:
    """The source of what ``nick`` did, or the server's when a server operator did it."""
    return source(nick, ident) if nick else server


#: Bytes of a CTCP ACTION's wrapping ("\x01ACTION " and "\x01").
_ACTION_BYTES: Final = len(ctcp("ACTION", "").encode())


def split_text(text: str, size: int) -> list[str]:
    """``text`` in pieces of at most ``size`` UTF-8 bytes each, cut between
    characters and, where one is in the last half of a piece, at a space (which
    goes): an nc user's line may be twice what one IRC line holds, and none
    of it may be lost on the way."""
    data = text.encode("utf-8", "replace")
    size = max(size, 4)  # room for any one character
    pieces: list[str] = []
    while len(data) > size:
        cut = size
        while data[cut] & 0xC0 == 0x80:  # inside a character
            cut -= 1
        space = data.rfind(b" ", 0, cut + 1)
        if space > size // 2:
            cut = space
        pieces.append(data[:cut].decode("utf-8"))
        data = data[cut:].removeprefix(b" ")
    if data or not pieces:
        pieces.append(data.decode("utf-8"))
    return pieces


def chat_lines(src: str, command: str, target: str, text: str, *, action: bool = False) -> bytes:
    """``:src COMMAND target :text`` as as many lines as ``text`` needs (each
    within IRC's 512 bytes), a CTCP ACTION each when ``action``."""
    head = len(f":{src} {command} {target} :".encode()) + 2  # and the CR LF
    room = im.MAX_MESSAGE_BYTES - head - (_ACTION_BYTES if action else 0)
    pieces = split_text(one_line(text), room)
    if action:
        return b"".join(message(src, command, target, ctcp("ACTION", p)) for p in pieces)
    return b"".join(message(src, command, target, p) for p in pieces)


def _said(e: ev.Said, v: str, info: IrcServer) -> bytes:
    command = "NOTICE" if e.notice else "PRIVMSG"
    return chat_lines(source(e.nick, e.ident), command, e.room, e.text)


def _acted(e: ev.Acted, v: str, info: IrcServer) -> bytes:
    return chat_lines(source(e.nick, e.ident), "PRIVMSG", e.room, e.text, action=True)


def _private(e: ev.PrivateSaid, v: str, info: IrcServer) -> bytes:
    if v == ECHO:  # the client shows its own line (no echo-message capability yet)
        return b""
    command = "NOTICE" if e.notice else "PRIVMSG"
    return chat_lines(source(e.sender, e.ident), command, e.to, e.text, action=e.action)


def _joined(e: ev.Joined, v: str, info: IrcServer) -> bytes:
    return message(source(e.nick, e.ident), "JOIN", e.room)


def _parted(e: ev.Parted, v: str, info: IrcServer) -> bytes:
    reason = one_line(e.reason)
    if reason:
        return message(source(e.nick, e.ident), "PART", e.room, reason)
    return message(source(e.nick, e.ident), "PART", e.room)


def _kick(room: str, nick: str, by: str, by_ident: str, reason: str, server: str) -> bytes:
    reason = one_line(reason)
    if reason:
        return message(_by(by, by_ident, server), "KICK", room, nick, reason)
    return message(_by(by, by_ident, server), "KICK", room, nick)


def _kicked(e: ev.Kicked, v: str, info: IrcServer) -> bytes:
    return _kick(e.room, e.nick, e.by, e.by_ident, e.reason, info.name)


def _quit(e: ev.Quit, v: str, info: IrcServer) -> bytes:
    return message(source(e.nick, e.ident), "QUIT", one_line(e.reason) or "Quit")


def _renamed(e: ev.Renamed, v: str, info: IrcServer) -> bytes:
    return message(source(e.old, e.ident), "NICK", e.new)


def _topic(e: ev.TopicSet, v: str, info: IrcServer) -> bytes:
    return message(_by(e.by, e.by_ident, info.name), "TOPIC", e.room, one_line(e.text))


def _opped(e: ev.Opped, v: str, info: IrcServer) -> bytes:
    src = _by(e.by, e.by_ident, info.name)
    return message(src, "MODE", e.room, "+o" if e.op else "-o", e.nick)


def notices(target: str, text: str, src: str = SERVER_NAME) -> bytes:
    """``NOTICE target :line`` for each non-empty line of ``text`` (a long one
    as several, none cut short)."""
    return b"".join(chat_lines(src, "NOTICE", target, line) for line in lines_of(text) if line)


def _notice(e: ev.Notice, v: str, info: IrcServer) -> bytes:
    # The server's words (a plugin's announcement, an operator's) come from the
    # service nick, whom IRC users send commands to.
    return notices(e.room or "*", e.text, source(info.service))


def _replay_start(e: ev.ReplayStart, v: str, info: IrcServer) -> bytes:
    return notices(e.room or "*", replay.start_text(e), source(info.service))


def _replay_end(e: ev.ReplayEnd, v: str, info: IrcServer) -> bytes:
    return notices(e.room or "*", replay.end_text(e), source(info.service))


def replayed(e: ev.Replayed, info: IrcServer, *, timed: bool = False, to: str = "*") -> bytes:
    """A kept line as the lines it was: from its author to the room (a kept
    private message: to its reader, ``to``), its time before the text
    (``[10:32] hi``) unless the reader's client shows the server-time tag it
    is sent with (``timed``). A topic is told, not set again: a NOTICE from
    the service."""
    stamp = "" if timed else f"[{replay.clock_time(e.at, e.now)}] "
    target = e.room or to
    if e.kind == ev.TOPIC:
        return notices(target, stamp + replay.body(e), source(info.service))
    src = source(e.nick, e.ident)
    if e.kind in (ev.ACTED, ev.PRIVATE_ACTED):
        return chat_lines(src, "PRIVMSG", target, stamp + one_line(e.text), action=True)
    command = "NOTICE" if e.kind == ev.NOTICED else "PRIVMSG"
    return chat_lines(src, command, target, stamp + one_line(e.text))


def _replayed(e: ev.Replayed, v: str, info: IrcServer) -> bytes:
    return replayed(e, info)


def _current(e: ev.Current, v: str, info: IrcServer) -> bytes:
    return b""  # IRC has no current room


def _greeting(e: ev.Greeting, v: str, info: IrcServer) -> bytes:
    return b""  # IRC registers with NICK and USER: no prompt


def _you_renamed(e: ev.YouRenamed, v: str, info: IrcServer) -> bytes:
    return message(source(e.old, e.ident), "NICK", e.new)  # the client follows its own NICK line


def closing_link(nick: str, reason: str) -> bytes:
    """``ERROR :Closing Link: nick (reason)``: the last line before a close."""
    return message("", "ERROR", f"Closing Link: {nick} ({one_line(reason)})")


# -- what one reader is told: numerics name it -------------------------------------------


class IrcServer:
    """What every IRC line of one listener says of the server: its name, its
    network, its limits, its MOTD, and the wall clock ``server-time`` reads.
    One per listener, shared by its connections' wires; the MOTD may change
    (a reload), the rest is fixed while the server runs."""

    __slots__ = ("motd", "name", "network", "service", "topic_len", "wall")

    def __init__(
        self,
        name: str = SERVER_NAME,
        network: str = NETWORK,
        *,
        topic_len: int = DEFAULT_MAX_TOPIC_CHARS,
        motd: Iterable[str] = (),
        service: str = SERVICE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.network = network
        #: The service nick: plugin replies and announcements come from it.
        self.service = service
        self.topic_len = topic_len
        #: The message of the day, line by line; none: 422 "MOTD File is missing".
        self.motd: tuple[str, ...] = tuple(motd)
        self.wall = wall


#: Defaults, for renderings that have no listener's (tests, the module renderer).
DEFAULT_SERVER: Final = IrcServer()


def lusers(nick: str, online: int, server: str = SERVER_NAME, peak: int | None = None) -> bytes:
    """251 and 255: how many are on (nc users count: it is one chat); with
    ``peak`` (the most there have been), 265 and 266 too, local and global
    alike on a server of one."""
    out = numeric(
        nick,
        im.RPL_LUSERCLIENT,
        f"There are {online} users and 0 invisible on 1 server",
        server=server,
    ) + numeric(nick, im.RPL_LUSERME, f"I have {online} clients and 0 servers", server=server)
    if peak is None:
        return out
    most = max(peak, online)
    for code, where in ((im.RPL_LOCALUSERS, "local"), (im.RPL_GLOBALUSERS, "global")):
        text = f"Current {where} users {online}, max {most}"
        out += numeric(nick, code, str(online), str(most), text, server=server)
    return out


def motd(nick: str, info: IrcServer = DEFAULT_SERVER) -> bytes:
    """375, a 372 for each line, 376; or 422 when there is no MOTD."""
    if not info.motd:
        return numeric(nick, im.ERR_NOMOTD, "MOTD File is missing", server=info.name)
    server = info.name
    out = [numeric(nick, im.RPL_MOTDSTART, f"- {server} Message of the day - ", server=server)]
    out += [numeric(nick, im.RPL_MOTD, f"- {line}", server=server) for line in info.motd]
    out.append(numeric(nick, im.RPL_ENDOFMOTD, "End of /MOTD command.", server=server))
    return b"".join(out)


def isupport(nick: str, info: IrcServer = DEFAULT_SERVER) -> bytes:
    tokens = (
        f"CASEMAPPING={im.CASEMAPPING}",
        "CHANTYPES=#",
        f"NICKLEN={NICKLEN}",
        f"CHANNELLEN={CHANNELLEN}",
        f"TOPICLEN={info.topic_len}",
        f"USERLEN={USERLEN}",
        f"NETWORK={info.network}",
        "PREFIX=(o)@",
        "CHANMODES=,,,t",
        f"TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS}",
    )
    return numeric(nick, im.RPL_ISUPPORT, *tokens, "are supported by this server", server=info.name)


def welcome(nick: str, online: int, info: IrcServer = DEFAULT_SERVER, most: int = 0) -> bytes:
    """The registration burst: 001-004, 005, LUSERS (251, 255) and the MOTD."""
    version = f"chatd-{chatd.__version__}"
    server = info.name
    return b"".join(
        (
            numeric(
                nick,
                im.RPL_WELCOME,
                f"Welcome to the {info.network} IRC network, {nick}",
                server=server,
            ),
            numeric(
                nick, im.RPL_YOURHOST, f"Your host is {server}, running {version}", server=server
            ),
            numeric(
                nick, im.RPL_CREATED, "This server was created when chatd started", server=server
            ),
            # Modes: user "i" (accepted and shown, changes nothing); channel "o"
            # and "t" (the topic is for operators while the channel has any).
            numeric(nick, im.RPL_MYINFO, server, version, "i", "ot", "o", server=server),
            isupport(nick, info),
            lusers(nick, online, server, most or None),
            motd(nick, info),
        )
    )


def names(
    nick: str, room: str, members: Iterable[str], ops: frozenset[str], server: str = SERVER_NAME
) -> bytes:
    """353 lines (as many as the 512-byte limit needs), then 366."""
    head = len(f":{server} {im.RPL_NAMREPLY} {nick} = {room} :".encode())
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
    out = [
        numeric(nick, im.RPL_NAMREPLY, "=", room, " ".join(c), server=server) for c in chunks if c
    ]
    out.append(numeric(nick, im.RPL_ENDOFNAMES, room, "End of /NAMES list", server=server))
    return b"".join(out)


def room_state(nick: str, e: ev.RoomState, server: str = SERVER_NAME, ident: str = "") -> bytes:
    """What a client needs to open a channel: its own JOIN, the topic, the names."""
    out = [message(source(nick, ident), "JOIN", e.room)]
    topic = one_line(e.topic)
    if topic:
        out.append(numeric(nick, im.RPL_TOPIC, e.room, topic, server=server))
    out.append(names(nick, e.room, e.members, e.ops, server))
    return b"".join(out)


def you_left(nick: str, e: ev.YouLeft, server: str = SERVER_NAME, ident: str = "") -> bytes:
    if e.kicked:
        return _kick(e.room, nick, e.kicked_by, e.by_ident, e.reason, server)
    reason = one_line(e.reason)
    if reason:
        return message(source(nick, ident), "PART", e.room, reason)
    return message(source(nick, ident), "PART", e.room)


def personal(
    nick: str, event: ev.Event, info: IrcServer = DEFAULT_SERVER, ident: str = ""
) -> bytes:
    """``event`` for the one reader called ``nick`` ("*" before it has a name),
    whose ident is ``ident`` (its own JOIN and PART lines show it)."""
    server = info.name
    if isinstance(event, ev.Welcome):
        return welcome(nick, event.online, info, event.most)
    if isinstance(event, ev.RoomState):
        return room_state(nick, event, server, ident)
    if isinstance(event, ev.Members):
        return names(nick, event.room, event.members, event.ops, server)
    if isinstance(event, ev.YouLeft):
        return you_left(nick, event, server, ident)
    if isinstance(event, ev.Goodbye):
        return closing_link(nick, event.reason)
    if isinstance(event, ev.Closing):
        return closing_link(nick, event.reason)
    if isinstance(event, ev.Notice) and not event.room:
        # Before registration (no nick yet) the server speaks; after, the service.
        src = source(info.service) if nick != "*" else server
        return notices(nick, event.text, src)
    return render(event, HERE, info)


def _personal_anonymous(e: Any, v: str, info: IrcServer) -> bytes:
    return personal("*", e, info)


_RENDER: Final[dict[type, Callable[[Any, str, IrcServer], bytes]]] = {
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
    ev.ReplayStart: _replay_start,
    ev.Replayed: _replayed,
    ev.ReplayEnd: _replay_end,
    # The last line before a close names its reader: rendered by IrcWire.
    ev.Goodbye: _personal_anonymous,
    ev.Closing: _personal_anonymous,
    # Personal events reach the module renderer only by mistake; they name no one.
    ev.Welcome: _personal_anonymous,
    ev.RoomState: _personal_anonymous,
    ev.Members: _personal_anonymous,
    ev.YouLeft: _personal_anonymous,
}


def render(event: ev.Event, v: str = HERE, info: IrcServer | None = None) -> bytes:
    """``event`` as complete IRC lines, the same for every reader (no recipient nick)."""
    return _RENDER[type(event)](event, v, info or DEFAULT_SERVER)


def time_tag(when: float) -> bytes:
    """IRCv3 ``server-time``: ``@time=2026-12-01T13:48:34.123Z `` for ``when``
    (seconds since the epoch), in UTC, to the millisecond."""
    seconds = int(when)
    millis = int((when - seconds) * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"@time={stamp}.{millis:03d}Z ".encode()


def stamped(data: bytes, when: float) -> bytes:
    """Each line of ``data`` with the server-time tag of ``when`` before it."""
    tag = time_tag(when)
    return b"".join(tag + line for line in data.splitlines(keepends=True))


class Named(Protocol):
    """Who an IrcWire renders for (chatd.core.hub.User is one)."""

    @property
    def nick(self) -> str: ...

    @property
    def ident(self) -> str: ...


#: Events IrcWire renders with its reader's nick; a Notice only when it is in no
#: room and rendered for this reader alone (see SHARED).
_PERSONAL: Final = (
    ev.Welcome,
    ev.RoomState,
    ev.Members,
    ev.YouLeft,
    ev.Goodbye,
    ev.Closing,
)


class IrcWire:
    """One IRC connection's wire: :func:`render` plus the personal events, which
    name their reader. Set ``owner`` (the hub's user) once the hub has made it;
    until it has a nickname, numerics go to "*".

    A connection that asked for ``server-time`` reads a format of its own
    (:attr:`NAME` ``irc+time``): what the others share is rendered once more
    for such readers, with the tag, never once per reader. Choose it before
    the connection registers (delivery groups readers by NAME from then on).
    """

    def __init__(
        self,
        owner: Named | None = None,
        info: IrcServer = DEFAULT_SERVER,
        *,
        server_time: bool = False,
    ) -> None:
        self.owner = owner
        self.info = info
        self.server_time = server_time

    @property
    def NAME(self) -> str:  # the Wire protocol names it so
        return f"{NAME}+time" if self.server_time else NAME

    @property
    def nick(self) -> str:
        return (self.owner.nick if self.owner is not None else "") or "*"

    def variant(self, room: str, current: str) -> str:
        return HERE

    def render(self, event: ev.Event, v: str = SHARED) -> bytes:
        if isinstance(event, (ev.ReplayStart, ev.ReplayEnd)) and not event.room:
            # Private messages kept for this reader: told to it by the service.
            text = (
                replay.start_text(event)
                if isinstance(event, ev.ReplayStart)
                else replay.end_text(event)
            )
            data = notices(self.nick, text, source(self.info.service))
            return stamped(data, self.info.wall()) if self.server_time else data
        if isinstance(event, ev.Replayed):
            # History keeps its own time: the client shows when it was said.
            data = replayed(event, self.info, timed=self.server_time, to=self.nick)
            return stamped(data, event.at) if self.server_time else data
        if isinstance(event, _PERSONAL) or (
            v != SHARED and isinstance(event, ev.Notice) and not event.room
        ):
            ident = self.owner.ident if self.owner is not None else ""
            data = personal(self.nick, event, self.info, ident)
        else:
            data = render(event, HERE if v == SHARED else v, self.info)
        if self.server_time and data:
            return stamped(data, self.info.wall())
        return data
