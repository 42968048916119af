"""The client's understanding of the chat, sans-IO: server lines in, display and replies out.

Rule: it speaks exactly the line protocol that nc users see and adds nothing to
it. Everything it learns (its nickname, its current room and the rooms it is
in, the rooms there are, who is in each of its rooms, which commands exist,
whether the server sent it away for good) it reads from ordinary server lines.
Every line passes :func:`sanitize` before anything else, so no byte from the
server reaches the terminal as a command.

An older server has no rooms: its welcome names none, its ``/who`` says
``N users online: ...``. Then :attr:`ClientModel.room` stays None, and the
nicknames online are kept under the room key ``""`` (the whole server), so the
client works as it did before rooms.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Final

from chatd.core.commands import Invocation, parse
from chatd.core.nicks import NICK_PATTERN
from chatd.wire.text import sanitize

Fragments = list[tuple[str, str]]  # prompt_toolkit (style, text) pairs

_NICK: Final = NICK_PATTERN
#: A room's name as the server writes it: # and 1-32 letters, digits, _ or -.
_ROOM: Final = r"#[A-Za-z0-9_-]{1,32}"
PROMPT = re.compile(r"^\*\*\* Choose a nickname")
#: A registered nickname's password asked for (the next line typed is it),
#: and the answers that end the asking.
PASSWORD_PROMPT = re.compile(
    r"^\*\*\* (The nickname \S+ is registered\. Type its password"
    r"|Wrong password for \S+; \d+ more tr)"
)
#: The room part is missing from an older server's welcome (it has no rooms).
WELCOME = re.compile(rf"^\*\*\* Welcome, ({_NICK})! (?:[^;]*; you are in ({_ROOM})\.)?")
#: ``*** bob joined`` (arrived, in the current room), ``*** bob joined #games``.
JOINED = re.compile(rf"^\*\*\* ({_NICK}) joined(?: ({_ROOM}))?$")
#: ``*** bob left (Quit)`` (gone from every room), ``*** bob left #games (reason)``;
#: from another room ``*** [#games] bob left (reason)``, a part.
LEFT = re.compile(rf"^\*\*\* ({_NICK}) left(?: ({_ROOM}))?(?: \(.*)?$")
KICKED = re.compile(rf"^\*\*\* ({_NICK}) was kicked (?:from ({_ROOM}) )?by ")
RENAMED = re.compile(rf"^\*\*\* ({_NICK}) is now known as ({_NICK})$")
YOU_ARE = re.compile(rf"^\*\*\* You are now known as ({_NICK})\.$")
WHO = re.compile(r"^\*\*\* \d+ users? online: (.*)$")  # an older server's /who
WHO_ROOM = re.compile(rf"^\*\*\* \d+ users? in ({_ROOM}): (.*)$")
NOW_TALKING = re.compile(rf"^\*\*\* Now talking in ({_ROOM})\.$")
NO_ROOM = re.compile(r"^\*\*\* You are in no room\.")
YOU_LEFT = re.compile(rf"^\*\*\* (?:You left ({_ROOM})\.|You were kicked from ({_ROOM}) by )")
TOPIC = re.compile(rf"^\*\*\* (?:Topic of ({_ROOM}): |({_ROOM}) has no topic\.$)")
ROOMS_HEAD = re.compile(r"^\*\*\* (\d+) rooms?:$")
ROOMS_ITEM = re.compile(rf"^\*\*\*   ({_ROOM}) \(\d+ users?\)")
NO_SUCH_USER = re.compile(rf"^\*\*\* No such user: ({_NICK})\.$")
HELP_HEAD = re.compile(r"^\*\*\* Commands \(")
HELP_ITEM = re.compile(r"^\*\*\*   /([a-z][a-z0-9_-]*)")
HELP_FOOT = re.compile(r"^\*\*\* Anything else you type")
CHAT = re.compile(rf"^<({_NICK})> (.*)$")
ACTION = re.compile(rf"^\* ({_NICK}) (.*)$")
#: A line from another of the user's rooms: chat or an action, or a notice.
AWAY = re.compile(rf"^\[({_ROOM})\] (.*)$")
AWAY_NOTICE = re.compile(rf"^\*\*\* \[({_ROOM})\] (.*)$")
#: A private message to us (``*alice* text``), and one we sent (``-> *bob* text``).
PRIVATE = re.compile(rf"^\*({_NICK})\* (.*)$")
PRIVATE_SENT = re.compile(rf"^-> \*({_NICK})\* (.*)$")

#: The server's last words that mean "stay away", by why: kicked or banned by an
#: operator, or timed out (silent too long once named, or never named). When one
#: of these is the last line before the server closes, the client does not
#: reconnect by itself, since that would undo the kick, the ban or the timeout
#: at once; it waits for the user. Any other close (a restart, ``*** Server
#: shutting down...``, a lost connection) reconnects as before. Only the line
#: right before the close counts, so the same words said earlier and followed by
#: more lines (a plugin's announcement, say) change nothing. A DURATION is what
#: the server writes for a ban: ``10m``, ``2h``, ``1d``, ``1h30m``.
_DURATION: Final = r"\d+[a-z]+(?: ?\d+[a-z]+)*"
#: (why, the line after ``*** `` and before its end: a full stop, or whatever
#: ended the operator's reason), tried in order.
SENT_AWAY: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (why, re.compile(rf"^\*\*\* {text}(?:\.|(?<=[!?\u2026\"')\]]))$"))
    for why, text in (
        ("kicked", r"You have been kicked by an operator(?:: .*)?"),
        ("banned", rf"You have been banned by an operator for {_DURATION}(?:: .*)?"),
        ("banned", rf"You are banned from this server for another {_DURATION}"),
        ("idle", r"Disconnected: nothing sent for \S+ seconds \(idle timeout\)"),
        ("unnamed", r"Timed out: no nickname chosen in \S+ seconds"),
    )
)


def sent_away(line: str) -> str | None:
    """Why ``line`` (clean) sends the client away for good, from :data:`SENT_AWAY`; or None."""
    return next((why for why, pattern in SENT_AWAY if pattern.match(line)), None)


#: Nickname colors: picked by a stable hash of the name, so a person keeps
#: their color across lines, sessions and machines.
NICK_COLORS: Final = (
    "ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan",
    "ansibrightred", "ansibrightgreen", "ansibrightblue", "ansibrightmagenta",
    "ansibrightcyan",
)  # fmt: skip
SERVER_STYLE: Final = "ansiyellow"
ACTION_STYLE: Final = "italic"
#: The ``[#games]`` before a line from another of the user's rooms, and the
#: current room in the prompt: bold in the terminal's own color, which reads on
#: dark and light backgrounds alike and is no nickname's color.
ROOM_STYLE: Final = "bold"
#: Added to the sender's color for the ``*alice*`` of a private message, so that
#: a line only you see stands out from the room's chat.
PRIVATE_STYLE: Final = "reverse"


def is_quit(line: str) -> bool:
    """Whether the server will take ``line`` as /quit (its own parser decides)."""
    parsed = parse(line)
    return isinstance(parsed, Invocation) and parsed.name == "quit"


def nick_style(nick: str) -> str:
    return "bold " + NICK_COLORS[zlib.crc32(nick.lower().encode()) % len(NICK_COLORS)]


def _private_badge(nick: str) -> tuple[str, str]:
    return f"{nick_style(nick)} {PRIVATE_STYLE}", f"*{nick}*"


def room_key(name: str) -> str:
    """Room names are unique ignoring case (and ASCII, so lower() folds them)."""
    return name.lower()


@dataclass
class Incoming:
    """What one server line means to the client."""

    text: str  # the clean line
    show: bool = True
    fragments: Fragments = field(default_factory=list)
    send: list[str] = field(default_factory=list)  # lines to send in reply


class ClientModel:
    """Registration, rooms, nicknames, commands known; and how each line looks."""

    def __init__(self, nick: str | None = None) -> None:
        self.wanted = nick  # the nickname to claim at the prompt, if any
        self.nick: str | None = None  # the nickname the server gave us
        #: The current room; "" when in none; None when the server has no rooms
        #: (an older one) or has not said yet.
        self.room: str | None = None
        self.commands: set[str] = set()
        self._default = ""  # the key of the room the welcome put us in: never removed
        self._rooms: dict[str, str] = {}  # key -> name: every room we have heard of
        self._mine: dict[str, str] = {}  # key -> name: the rooms we are in
        #: room key -> who is in it, for our rooms; "" holds an older server's
        #: users online, and those whose room we do not know.
        self._members: dict[str, set[str]] = {}
        self._correspondents: set[str] = set()  # who we messaged or who messaged us
        self._nick_sent = False
        #: The server asked for a password: what is typed next is one (never
        #: kept as the nickname to claim again, shown masked).
        self.asking_password = False
        self._hidden_help = False  # a /help we sent ourselves: learn from it, show nothing
        self._hidden_rooms = False  # the same for a /rooms
        self._rooms_left = 0  # lines of a /rooms listing still to come
        self._who_continues = False
        self._who_key = ""  # the room the /who list being read is of
        #: Why the last line received sends us away for good (see SENT_AWAY), or None:
        #: asked when the connection closes, to decide whether to reconnect by itself.
        self.sent_away: str | None = None

    def reconnected(self) -> None:
        """A new connection: claim the nickname we had again; a new server's rooms."""
        if self.nick:
            self.wanted = self.nick
        self.nick = self.room = None
        self._default = ""
        for known in (self._rooms, self._mine, self._members):
            known.clear()
        self._correspondents.clear()
        self._nick_sent = False
        self.asking_password = False
        self._hidden_help = self._hidden_rooms = self._who_continues = False
        self._rooms_left = 0
        self.sent_away = None

    @property
    def registered(self) -> bool:
        return self.nick is not None

    @property
    def settled(self) -> bool:
        """Named, and all we sent by ourselves on joining (/who, /help, /rooms) is
        answered (the server answers in order, and the last answer is a hidden one)."""
        return self.registered and not (self._hidden_help or self._hidden_rooms)

    @property
    def nicks(self) -> set[str]:
        """Everyone we know to be online: in our rooms, or in private talk with us."""
        return self._correspondents.union(*self._members.values())

    @property
    def rooms(self) -> list[str]:
        """Every room we have heard of, sorted ignoring case."""
        return sorted(self._rooms.values(), key=str.lower)

    @property
    def my_rooms(self) -> list[str]:
        """The rooms we are in, sorted ignoring case."""
        return sorted(self._mine.values(), key=str.lower)

    def prompt(self) -> Fragments:
        """``carol #lobby> ``; ``carol> `` from a server without rooms; ``> `` until named."""
        if not self.nick:
            return [("", "> ")]
        if self.room is None:
            return [("", f"{self.nick}> ")]
        if not self.room:
            return [("", f"{self.nick} (no room)> ")]
        return [("", f"{self.nick} "), (ROOM_STYLE, self.room), ("", "> ")]

    def typed(self, line: str) -> None:
        """The user typed ``line`` (sent as it is)."""
        if self.asking_password:
            # A password (or /nick, /quit): never a nickname to claim again.
            # Masking goes on until the server welcomes us or asks for a
            # nickname again, whatever it says between (a wait, a retry).
            return
        if not self.registered and line and not line.startswith("/"):
            self.wanted = line  # a nickname answered by hand: reclaim it after a reconnect
            # ... but not on this connection: the user sent it already, and if it is
            # taken the prompt that follows is theirs to answer.
            self._nick_sent = True

    def receive(self, raw: str) -> Incoming:
        line = sanitize(raw).rstrip()
        incoming = Incoming(line, fragments=self.look(line))
        self.sent_away = sent_away(line)
        who_continues, self._who_continues = self._who_continues, False
        if PASSWORD_PROMPT.match(line):
            self.asking_password = True
        elif PROMPT.match(line):
            self.asking_password = False
            if self.wanted and not self._nick_sent:
                self._nick_sent = True  # once: if it is taken, the user picks another
                incoming.send.append(self.wanted)
        elif m := WELCOME.match(line):
            self.asking_password = False
            self.nick = self.wanted = m[1]
            self.room = m[2]  # None from an older server
            if m[2]:
                self._default = room_key(m[2])
                self._enter(m[2])
            else:
                self._members.setdefault("", set()).add(m[1])
            self._hidden_help = True
            incoming.send += ["/who", "/help"]
        elif HELP_HEAD.match(line):
            incoming.show = not self._hidden_help
        elif m := HELP_ITEM.match(line):
            self.commands.add(m[1])
            incoming.show = not self._hidden_help
        elif HELP_FOOT.match(line):
            incoming.show = not self._hidden_help
            if self._hidden_help and self.room is not None and "rooms" in self.commands:
                # A server with rooms: learn their names too, for Tab.
                self._hidden_rooms = True
                incoming.send.append("/rooms")
            self._hidden_help = False
        elif m := ROOMS_HEAD.match(line):
            incoming.show = not self._hidden_rooms
            self._rooms_left = int(m[1])
            keep = {*self._mine, self._default}  # rooms that exist whatever the list says
            self._rooms = {key: name for key, name in self._rooms.items() if key in keep}
            self._hidden_rooms = self._hidden_rooms and self._rooms_left > 0
        elif self._rooms_left and (m := ROOMS_ITEM.match(line)):
            incoming.show = not self._hidden_rooms
            self._know(m[1])
            self._rooms_left -= 1
            self._hidden_rooms = self._hidden_rooms and self._rooms_left > 0
        elif who_continues and line.startswith("*** ") and not AWAY_NOTICE.match(line):
            self._add_who(self._who_key, line[4:])
        else:
            self._follow(line)
        return incoming

    def _follow(self, line: str) -> None:
        """Learn rooms and nicknames from ``line``."""
        away = None  # the room of a line from another of our rooms
        if m := AWAY_NOTICE.match(line):
            away, line = m[1], f"*** {m[2]}"
            self._enter(away)
        elif m := AWAY.match(line):
            away, line = m[1], m[2]
            self._enter(away)
        here = away or self.room or ""  # "": the server has no rooms
        if m := NOW_TALKING.match(line):
            self.room = m[1]
            self._enter(m[1])
        elif NO_ROOM.match(line):
            self.room = ""
        elif m := YOU_LEFT.match(line):
            self._leave(m[1] or m[2])
        elif m := JOINED.match(line):
            self._member(m[2] or here, m[1])
        elif m := LEFT.match(line):
            if room := m[2] or away:
                self._members.get(room_key(room), set()).discard(m[1])
            else:  # quit: gone from all our rooms
                self._forget(m[1])
        elif m := KICKED.match(line):
            self._members.get(room_key(m[2] or here), set()).discard(m[1])
        elif m := RENAMED.match(line):
            self._rename(m[1], m[2])
        elif m := YOU_ARE.match(line):
            self._rename(self.nick or "", m[1])
            self.nick = self.wanted = m[1]
        elif m := WHO.match(line):
            self._members[""] = set()
            self._add_who("", m[1])
        elif m := WHO_ROOM.match(line):
            self._know(m[1])
            self._members[room_key(m[1])] = set()
            self._add_who(m[1], m[2])
        elif m := TOPIC.match(line):
            self._know(m[1] or m[2])
        elif m := NO_SUCH_USER.match(line):
            self._forget(m[1])
        elif (m := CHAT.match(line)) or (m := ACTION.match(line)):
            self._member(here, m[1])
        elif (m := PRIVATE.match(line)) or (m := PRIVATE_SENT.match(line)):
            self._correspondents.add(m[1])

    def _know(self, room: str) -> None:
        self._rooms[room_key(room)] = room

    def _enter(self, room: str) -> None:
        """We are in ``room``."""
        self._know(room)
        key = room_key(room)
        self._mine[key] = room
        members = self._members.setdefault(key, set())
        if self.nick:
            members.add(self.nick)

    def _leave(self, room: str) -> None:
        """We left ``room``, or were kicked from it."""
        key = room_key(room)
        self._mine.pop(key, None)
        left_behind = self._members.pop(key, set()) - {self.nick or ""}
        if not left_behind and key != self._default:
            self._rooms.pop(key, None)  # the server removes a room nobody is in

    def _member(self, room: str, nick: str) -> None:
        self._members.setdefault(room_key(room), set()).add(nick)

    def _forget(self, nick: str) -> None:
        for members in self._members.values():
            members.discard(nick)
        self._correspondents.discard(nick)

    def _rename(self, old: str, new: str) -> None:
        for names in (*self._members.values(), self._correspondents):
            if old in names:
                names.discard(old)
                names.add(new)

    def _add_who(self, room: str, names: str) -> None:
        self._who_key = room_key(room)
        self._who_continues = names.endswith(",")
        self._members.setdefault(self._who_key, set()).update(
            n.lstrip("@") for n in (p.strip() for p in names.split(",")) if n
        )

    def look(self, line: str) -> Fragments:
        """How a line is shown: nicknames colored, server lines, actions, private
        messages and the room of a line from another room styled."""
        if m := AWAY_NOTICE.match(line):
            return [(SERVER_STYLE, "*** "), (ROOM_STYLE, f"[{m[1]}]"), (SERVER_STYLE, f" {m[2]}")]
        if line.startswith("*** "):
            return [(SERVER_STYLE, line)]
        if m := AWAY.match(line):
            return [(ROOM_STYLE, f"[{m[1]}]"), ("", " "), *self._look_chat(m[2])]
        if m := PRIVATE.match(line):
            return [_private_badge(m[1]), ("", f" {m[2]}")]
        if m := PRIVATE_SENT.match(line):
            return [("", "-> "), _private_badge(m[1]), ("", f" {m[2]}")]
        return self._look_chat(line)

    @staticmethod
    def _look_chat(line: str) -> Fragments:
        if m := CHAT.match(line):
            return [(nick_style(m[1]), f"<{m[1]}>"), ("", f" {m[2]}")]
        if m := ACTION.match(line):
            return [(ACTION_STYLE, "* "), (nick_style(m[1]), m[1]), (ACTION_STYLE, f" {m[2]}")]
        return [("", line)]
