"""The hub: the one owner of who is connected, who is named what, and who gets what.

Rule: the hub knows users, nicknames and text; it knows nothing of sockets. It
is the reactor's Handler for chat connections and talks to each through a
:class:`~chatd.core.link.Link`, which only queues bytes and closes, and never
calls back into the hub: the reactor reports a connection's end later, through
:meth:`Hub.disconnect`. That keeps every hub method free of
re-entrancy (a fan-out loop can never see the user set change under it).

A user's life is two states and a table of what each accepts::

    REGISTERING --valid, free nickname--> NAMED --quit / link closed--> GONE
    REGISTERING --link closed / quit----------------------------------> GONE

Only NAMED users receive chat, take part in nickname uniqueness, and run
commands; a REGISTERING user's every line is a nickname attempt (or /quit).

Every outgoing line is encoded once. A line for every named user is published
to the hub's fan-out group (chatd.core.fanout), which hands each member the
whole batch of an iteration at once: the hub never loops over recipients.
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
import re
import time
from typing import TYPE_CHECKING, Final

from chatd.config import Config
from chatd.core import commands as cmds
from chatd.core import protocol
from chatd.core.bans import Bans, format_duration
from chatd.core.fanout import Group
from chatd.core.link import Link
from chatd.core.stats import Stats
from chatd.core.timers import Clock, Timer, Timers

if TYPE_CHECKING:
    from chatd.core.plugins import PluginHost

log = logging.getLogger(__name__)

NICK_MAX: Final = 16
_NICK = re.compile(rf"[A-Za-z0-9_-]{{1,{NICK_MAX}}}")
NICK_RULE: Final = f"1-{NICK_MAX} letters, digits, _ or -"
NICK_PROMPT: Final = f"Choose a nickname ({NICK_RULE}):"


class State(enum.Enum):
    REGISTERING = "registering"
    NAMED = "named"
    GONE = "gone"


class User:
    """A connection and, once it has one, its nickname."""

    __slots__ = (
        "connected_at",
        "deadline",
        "id",
        "last_active",
        "lines",
        "link",
        "nick",
        "state",
    )

    def __init__(self, link: Link, connected_at: float, user_id: int) -> None:
        self.id = user_id
        self.link = link
        self.nick = ""
        self.state = State.REGISTERING
        self.connected_at = connected_at
        self.last_active = connected_at  # when it last sent a line
        self.lines = 0  # lines it sent once named
        #: The register timeout while registering, the idle timeout once named.
        self.deadline: Timer | None = None

    def __repr__(self) -> str:
        return f"<User {self.nick or '?'} {self.state.value} {self.link.peer}>"


def nick_problem(nick: str) -> str | None:
    """Why ``nick`` cannot be a nickname, or None if it can."""
    if _NICK.fullmatch(nick):
        return None
    shown = nick if len(nick) <= 40 else nick[:40] + "..."
    return f'"{shown}" is not a valid nickname: use {NICK_RULE}.'


def _key(nick: str) -> str:
    # Nicknames are ASCII, so lower() is a complete case fold.
    return nick.lower()


class Hub:
    def __init__(
        self,
        plugins: PluginHost,
        timers: Timers | None = None,
        *,
        clock: Clock = time.monotonic,
        stats: Stats | None = None,
        group: Group | None = None,
    ) -> None:
        """``group`` is the fan-out group for named users; the reactor's, so that it
        is flushed once per loop iteration (tests flush their own)."""
        self.plugins = plugins
        self.group = group if group is not None else Group()
        self.stats = stats if stats is not None else Stats(clock())
        self.timers = timers if timers is not None else Timers(clock)
        self.clock = clock
        self._connected: set[User] = set()
        self._named: dict[str, User] = {}  # _key(nick) -> user
        self._ids = itertools.count(1)
        #: Nicknames and addresses operators keep out for a while (chatd admin ban).
        self.bans = Bans()
        plugins.attach(self)

    @property
    def config(self) -> Config:
        """The settings in force: the plugin host's, which a reload replaces."""
        return self.plugins.config

    # -- what the transport calls ------------------------------------------------

    def connect(self, link: Link) -> User:
        """A new connection: greet it and ask for a nickname."""
        user = User(link, self.clock(), next(self._ids))
        ban = self.bans.find("address", link.host, user.connected_at)
        if ban is not None:
            left = format_duration(ban.until - user.connected_at)
            self.notify(user, f"You are banned from this server for another {left}.")
            log.info("%s: refused, its address is banned for another %s", link.peer, left)
            user.state = State.GONE
            link.close()
            return user
        self._connected.add(user)
        self._notify_lines(user, ["Welcome to chatd, a chat server for terminals.", NICK_PROMPT])
        user.deadline = self.timers.call_later(
            self.config.limits.register_timeout, functools.partial(self._register_overdue, user)
        )
        return user

    def receive(self, user: User, text: str) -> None:
        """One clean line of text from ``user`` (already decoded and sanitized)."""
        if user.state is State.NAMED:
            if not text:
                return
            user.lines += 1
            user.last_active = self.clock()
            self.stats.lines_in += 1
            parsed = cmds.parse(text)
            if isinstance(parsed, str):
                self.say(user, parsed)
            else:
                self.plugins.run_command(user, parsed)
        elif user.state is State.REGISTERING:
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
        return protocol.encode_line(protocol.notice(reason))

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
            self.group.leave(user.link)
            del self._named[_key(user.nick)]
            log.info("%s left (%s)", user.nick, reason)
            self.announce(f"{user.nick} left ({reason})")
            self.plugins.user_left(user, reason)

    def shutdown(self, message: str) -> None:
        """Tell everyone the server is going away and close every link."""
        data = protocol.encode_line(protocol.notice(message))
        for user in self._connected:
            user.link.send(data)
            user.link.close()
            if user.state is State.NAMED:
                self.group.leave(user.link)
            user.state = State.GONE  # no leave notices: everyone is going
        told = len(self._connected)
        log.info("shutting down: %d connection%s told", told, "" if told == 1 else "s")
        self._connected.clear()
        self._named.clear()
        self.plugins.shutdown()

    # -- what commands and plugins call (through Context) --------------------------

    def notify(self, user: User, text: str) -> None:
        """Send ``*** line`` for each line of ``text`` to one user."""
        user.link.send(protocol.encode_notices(text))

    def announce(self, text: str, *, exclude: User | None = None) -> int:
        """Send ``*** line`` for each line of ``text`` to every named user but
        ``exclude``; returns how many got it."""
        return self._fan_out(protocol.encode_notices(text), exclude)

    def say(self, user: User, text: str) -> None:
        """Chat: ``<nick> text`` to every named user but the sender, if plugins let it pass."""
        self._from_user(user, text, action=False)

    def emote(self, user: User, text: str) -> None:
        """An action: ``* nick text`` to every named user but the sender, likewise."""
        self._from_user(user, text, action=True)

    def find(self, nick: str) -> User | None:
        return self._named.get(_key(nick))

    def is_online(self, user: User) -> bool:
        return user.state is State.NAMED

    def users(self) -> list[User]:
        """Every named user."""
        return list(self._named.values())

    def kick(self, user: User, reason: str = "") -> None:
        """An operator removes ``user``: it is told why, the others see it leave."""
        if user.state is State.GONE:
            return
        reason = protocol.one_line(reason)  # it goes into a sentence, and into the log
        why = f"kicked by an operator: {reason}" if reason else "kicked by an operator"
        self.notify(user, protocol.sentence(f"You have been {why}"))
        log.info("%s was %s", user.nick or user.link.peer, why)
        self.disconnect(user, why)
        user.link.close()

    def ban(self, nick: str, seconds: float, reason: str = "") -> str:
        """An operator keeps ``nick`` out for ``seconds``, and the address it is
        on, if it is online (it is told and disconnected). Returns what was done."""
        reason = protocol.one_line(reason)
        until = self.clock() + seconds
        length = format_duration(seconds)
        self.bans.add("nick", nick, until, reason)
        user = self.find(nick)
        if user is None:
            log.info("%s was banned by an operator for %s", nick, length)
            return f"banned the nickname {nick} for {length}"
        self.bans.add("address", user.link.host, until, reason)
        why = f"banned by an operator: {reason}" if reason else "banned by an operator"
        told = f"You have been banned by an operator for {length}"
        self.notify(user, protocol.sentence(f"{told}: {reason}" if reason else told))
        log.info("%s was banned by an operator for %s, and %s", user.nick, length, user.link.host)
        self.disconnect(user, why)
        user.link.close()
        return f"banned {user.nick} and the address {user.link.host} for {length}"

    def limits_changed(self) -> None:
        """The settings were reloaded: the idle timeout applies to everyone at once."""
        for user in self._named.values():
            self._arm_idle_timeout(user)

    def nicks(self) -> list[str]:
        return sorted((u.nick for u in self._named.values()), key=_key)

    def rename(self, user: User, new_nick: str) -> str | None:
        """Change a named user's nickname; returns why not, or None when done."""
        problem = nick_problem(new_nick) or self._banned_nick(new_nick)
        if problem:
            return problem
        if new_nick == user.nick:
            return f"You are already {new_nick}."
        holder = self._named.get(_key(new_nick))
        if holder is not None and holder is not user:
            return f"The nickname {new_nick} is taken; choose another."
        old = user.nick
        del self._named[_key(old)]
        user.nick = new_nick
        self._named[_key(new_nick)] = user
        log.info("%s is now known as %s", old, new_nick)
        self.notify(user, f"You are now known as {new_nick}.")
        self.announce(f"{old} is now known as {new_nick}", exclude=user)
        return None

    def quit(self, user: User, reason: str = "") -> None:
        """The user leaves on purpose: say goodbye, tell the others, close."""
        if user.state is State.GONE:
            return
        self.notify(user, f"Goodbye, {user.nick}." if user.nick else "Goodbye.")
        reason = protocol.one_line(reason)  # a plugin's ctx.quit may pass anything
        self.disconnect(user, f"Quit: {reason}" if reason else "Quit")
        user.link.close()

    # -- inside ----------------------------------------------------------------------

    def _register(self, user: User, text: str) -> None:
        parsed = cmds.parse(text)
        if isinstance(parsed, cmds.Invocation):
            if parsed.name == "quit":
                self.quit(user)
            else:  # "/who" is no nickname: say so, not that it is an invalid one
                command = f"/{parsed.name}" if parsed.name else "a command"
                self._notify_lines(
                    user, [f"Choose a nickname first; then {command} works.", NICK_PROMPT]
                )
            return
        if not text:
            self._notify_lines(user, [NICK_PROMPT])
            return
        problem = nick_problem(text) or self._banned_nick(text)
        if problem is None and _key(text) in self._named:
            problem = f"The nickname {text} is taken; choose another."
        if problem:
            self._notify_lines(user, [problem, NICK_PROMPT])
            return
        user.nick = text
        user.state = State.NAMED
        user.last_active = self.clock()
        self._named[_key(text)] = user
        self.group.join(user.link)
        self._arm_idle_timeout(user)
        log.info("%s joined from %s", text, user.link.peer)
        count = len(self._named)
        online = "1 user online (you)" if count == 1 else f"{count} users online"
        self.notify(user, f"Welcome, {text}! {online}. Type /help for commands.")
        self.announce(f"{text} joined", exclude=user)
        self.plugins.user_joined(user)

    def _banned_nick(self, nick: str) -> str | None:
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
            self.disconnect(user, "registration timed out")
            user.link.close()

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
        self.disconnect(user, "idle timeout")
        user.link.close()

    def _from_user(self, user: User, text: str, *, action: bool) -> None:
        passed = self.plugins.filter_message(user, text, action)
        if passed is not None and user.state is State.NAMED:
            line = protocol.action if action else protocol.chat
            self._fan_out(protocol.encode_line(line(user.nick, passed)), user)

    def _notify_lines(self, user: User, lines: list[str]) -> None:
        self.notify(user, "\n".join(lines))

    def _fan_out(self, data: bytes, exclude: User | None) -> int:
        """Publish ``data`` (complete encoded lines) to every named user but ``exclude``."""
        skip = exclude.link if exclude is not None and exclude.state is State.NAMED else None
        self.group.publish(data, skip)
        sent = len(self._named) - (skip is not None)
        self.stats.lines_out += sent
        return sent
