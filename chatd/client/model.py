"""The client's understanding of the chat, sans-IO: server lines in, display and replies out.

Rule: it speaks exactly the line protocol that nc users see and adds nothing to
it. Everything it learns (its nickname, who is online, which commands exist,
whether the server sent it away for good) it reads from ordinary server lines.
Every line passes :func:`sanitize` before anything else, so no byte from the
server reaches the terminal as a command.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Final

from chatd.core.commands import Invocation, parse
from chatd.wire.text import sanitize

Fragments = list[tuple[str, str]]  # prompt_toolkit (style, text) pairs

_NICK: Final = r"[A-Za-z0-9_-]{1,16}"
PROMPT = re.compile(r"^\*\*\* Choose a nickname")
WELCOME = re.compile(rf"^\*\*\* Welcome, ({_NICK})! ")
JOINED = re.compile(rf"^\*\*\* ({_NICK}) joined$")
LEFT = re.compile(rf"^\*\*\* ({_NICK}) left \(")
RENAMED = re.compile(rf"^\*\*\* ({_NICK}) is now known as ({_NICK})$")
YOU_ARE = re.compile(rf"^\*\*\* You are now known as ({_NICK})\.$")
WHO = re.compile(r"^\*\*\* \d+ users? online: (.*)$")
HELP_HEAD = re.compile(r"^\*\*\* Commands \(")
HELP_ITEM = re.compile(r"^\*\*\*   /([a-z][a-z0-9_-]*)")
HELP_FOOT = re.compile(r"^\*\*\* Anything else you type")
CHAT = re.compile(rf"^<({_NICK})> (.*)$")
ACTION = re.compile(rf"^\* ({_NICK}) (.*)$")

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


def is_quit(line: str) -> bool:
    """Whether the server will take ``line`` as /quit (its own parser decides)."""
    parsed = parse(line)
    return isinstance(parsed, Invocation) and parsed.name == "quit"


def nick_style(nick: str) -> str:
    return "bold " + NICK_COLORS[zlib.crc32(nick.lower().encode()) % len(NICK_COLORS)]


@dataclass
class Incoming:
    """What one server line means to the client."""

    text: str  # the clean line
    show: bool = True
    fragments: Fragments = field(default_factory=list)
    send: list[str] = field(default_factory=list)  # lines to send in reply


class ClientModel:
    """Registration, nicknames online, commands known; and how each line looks."""

    def __init__(self, nick: str | None = None) -> None:
        self.wanted = nick  # the nickname to claim at the prompt, if any
        self.nick: str | None = None  # the nickname the server gave us
        self.nicks: set[str] = set()
        self.commands: set[str] = set()
        self._nick_sent = False
        self._hidden_help = False  # a /help we sent ourselves: learn from it, show nothing
        self._who_continues = False
        #: Why the last line received sends us away for good (see SENT_AWAY), or None:
        #: asked when the connection closes, to decide whether to reconnect by itself.
        self.sent_away: str | None = None

    def reconnected(self) -> None:
        """A new connection: claim the nickname we had again."""
        if self.nick:
            self.wanted = self.nick
        self.nick = None
        self.nicks.clear()
        self._nick_sent = False
        self._hidden_help = self._who_continues = False
        self.sent_away = None

    @property
    def registered(self) -> bool:
        return self.nick is not None

    def typed(self, line: str) -> None:
        """The user typed ``line`` (sent as it is)."""
        if not self.registered and line and not line.startswith("/"):
            self.wanted = line  # a nickname answered by hand: reclaim it after a reconnect
            # ... but not on this connection: the user sent it already, and if it is
            # taken the prompt that follows is theirs to answer.
            self._nick_sent = True

    def receive(self, raw: str) -> Incoming:
        line = sanitize(raw).rstrip()
        incoming = Incoming(line, fragments=self.look(line))
        self.sent_away = sent_away(line)
        if PROMPT.match(line):
            if self.wanted and not self._nick_sent:
                self._nick_sent = True  # once: if it is taken, the user picks another
                incoming.send.append(self.wanted)
        elif m := WELCOME.match(line):
            self.nick = self.wanted = m[1]
            self.nicks.add(m[1])
            self._hidden_help = True
            incoming.send += ["/who", "/help"]
        elif m := JOINED.match(line):
            self.nicks.add(m[1])
        elif m := LEFT.match(line):
            self.nicks.discard(m[1])
        elif m := RENAMED.match(line):
            self.nicks.discard(m[1])
            self.nicks.add(m[2])
        elif m := YOU_ARE.match(line):
            self.nicks.discard(self.nick or "")
            self.nick = self.wanted = m[1]
            self.nicks.add(m[1])
        elif m := WHO.match(line):
            self.nicks = set()
            self._add_who(m[1])
        elif self._who_continues and line.startswith("*** "):
            self._add_who(line[4:])
        elif HELP_HEAD.match(line):
            incoming.show = not self._hidden_help
        elif m := HELP_ITEM.match(line):
            self.commands.add(m[1])
            incoming.show = not self._hidden_help
        elif HELP_FOOT.match(line):
            incoming.show = not self._hidden_help
            self._hidden_help = False
        return incoming

    def _add_who(self, names: str) -> None:
        self._who_continues = names.endswith(",")
        self.nicks.update(n for n in (p.strip() for p in names.split(",")) if n)

    def look(self, line: str) -> Fragments:
        """How a line is shown: nicknames colored, server lines and actions styled."""
        if m := CHAT.match(line):
            return [(nick_style(m[1]), f"<{m[1]}>"), ("", f" {m[2]}")]
        if line.startswith("*** "):
            return [(SERVER_STYLE, line)]
        if m := ACTION.match(line):
            return [(ACTION_STYLE, "* "), (nick_style(m[1]), m[1]), (ACTION_STYLE, f" {m[2]}")]
        return [("", line)]
