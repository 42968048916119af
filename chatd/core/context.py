"""What a plugin may do: :class:`Chat` (the chat as a whole) and :class:`Context`
(the same, on behalf of one user: the caller of a command).

Rule: plugins reach the chat only through these objects. They speak in
nicknames and text, never in sockets or links, so a plugin works unchanged
whatever transport a user came in on, and everything they send is formatted and
encoded by the hub, so a plugin cannot put raw bytes on the wire. Each plugin
gets its own Chat: its own config section and its own state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatd.core.datafiles import DataFileError, read_list
from chatd.core.nicks import PENDING
from chatd.store.accounts import account_who

if TYPE_CHECKING:
    from chatd.core.commands import Command
    from chatd.core.guard import Guard
    from chatd.core.hub import Hub, User
    from chatd.core.timers import Timer


class PluginServices(Protocol):
    """What a Chat needs of the plugin host (chatd.core.plugins.PluginHost is it)."""

    @property
    def commands(self) -> Iterable[Command]: ...

    @property
    def guard(self) -> Guard: ...


@dataclass(frozen=True)
class RoomInfo:
    """A room as plugins see it: its name, topic, members (sorted ignoring case)
    and operators."""

    name: str
    topic: str
    members: tuple[str, ...]
    ops: frozenset[str]


@dataclass(frozen=True)
class Score:
    """A player's kept score: ``name`` (the account's, or a guest's
    nickname), ``points``, and whether it is a ``guest`` (no account: the
    points belong to whoever uses that nickname)."""

    name: str
    points: int
    guest: bool


@dataclass(frozen=True)
class Drop:
    """Returned from ``chatd_message``: deliver nothing, and tell the sender why."""

    reason: str


class Chat:
    """One plugin's view of the chat: settings, state, users, time."""

    __slots__ = ("_host", "_hub", "config", "log", "name", "state")

    def __init__(
        self,
        hub: Hub,
        name: str,
        config: Mapping[str, Any],
        state: dict[str, Any],
        host: PluginServices,
    ) -> None:
        self._hub = hub
        self._host = host
        #: The plugin's name (a built-in module's name, or a drop-in file's stem).
        self.name = name
        #: The plugin's table from chatd.toml (``[name]``), defaults filled in for
        #: the built-in plugins; empty when the file has none.
        self.config = config
        #: The plugin's own place for data; it lives as long as the server and
        #: survives reloads, so rounds in progress go on.
        self.state = state
        #: A logger named after the plugin.
        self.log = logging.getLogger(f"chatd.plugin.{name}")

    def path(self, value: str) -> Path:
        """A path from the plugin's settings, relative to the config file's folder."""
        return self._hub.config.path(value)

    def load_list(self, key: str, default: Path) -> tuple[list[str], Path]:
        """The entries of the list file that setting ``key`` names (``default`` when
        it is empty), without duplicates, and the file's path. Raises ValueError
        naming the setting and the file when the file can't be read."""
        setting = self.config.get(key, "")
        path = self.path(setting) if setting else default
        try:
            entries = read_list(path)
        except DataFileError as exc:
            raise ValueError(f"[{self.name}] {key}: {exc}") from None
        return list(dict.fromkeys(entries)), path

    # -- users --------------------------------------------------------------

    def nicks(self) -> list[str]:
        """Every named user online, sorted ignoring case."""
        return self._hub.nicks()

    def send(self, nick: str, text: str) -> bool:
        """Send ``*** text`` to the user ``nick``; False if nobody has that nickname."""
        user = self._hub.find(nick)
        if user is None:
            return False
        self._hub.notify(user, text)
        return True

    def announce(self, text: str) -> None:
        """Send ``*** text`` to every named user."""
        self._hub.announce(text)

    # -- rooms --------------------------------------------------------------

    def rooms(self) -> list[RoomInfo]:
        """Every room, sorted by name ignoring case."""
        return [self._info(room) for room in self._hub.rooms()]

    def room_info(self, name: str) -> RoomInfo | None:
        """Room ``name`` (any case), or None when there is none."""
        room = self._hub.find_room(name)
        return self._info(room) if room is not None else None

    def announce_room(self, room: str, text: str) -> int:
        """Send ``*** text`` to the members of ``room``; returns how many got it."""
        return self._hub.announce_room(room, text)

    def _info(self, room: Any) -> RoomInfo:
        hub = self._hub
        return RoomInfo(room.name, room.topic, tuple(hub.members(room)), hub.room_ops(room))

    def commands(self) -> list[Command]:
        """Every command available now, sorted by name."""
        return list(self._host.commands)

    # -- scores (kept in the store, across restarts) -------------------------------

    def top_scores(self, count: int, *, days: float | None = None) -> list[Score]:
        """This plugin's best ``count`` players, all time or over the last
        ``days`` (at most 7), best first."""
        store = self._hub.store
        shown: list[Score] = []
        for who, points in store.scores.top(self.name, count, days=days):
            if who.startswith("@"):
                account = store.accounts.get(who[1:])
                shown.append(Score(account.name if account else who[1:], points, False))
            else:
                shown.append(Score(who, points, True))
        return shown

    # -- time -----------------------------------------------------------------

    def now(self) -> float:
        """The server's monotonic clock, in seconds (injectable in tests)."""
        return self._hub.clock()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` once after ``delay`` seconds; ``.cancel()`` the result to stop it."""
        return self._hub.timers.call_later(delay, self._guarded(callback))

    def call_every(self, interval: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` every ``interval`` seconds until cancelled."""
        return self._hub.timers.call_every(interval, self._guarded(callback))

    def _guarded(self, callback: Callable[[], object]) -> Callable[[], None]:
        """``callback`` run as this plugin's code: timed, cut off at the deadline,
        skipped while the plugin is switched off."""
        guard, name = self._host.guard, self.name
        what = f"timer {getattr(callback, '__qualname__', 'callback')}"

        def run() -> None:
            if guard.enabled(name):
                _, error = guard.run(name, what, callback)
                if error is not None:
                    self.log.error("%s failed: %s", what, error, exc_info=error)

        return run


class Context(Chat):
    """A plugin's view of the chat on behalf of one user, the caller."""

    __slots__ = ("_room", "_user")

    def __init__(self, chat: Chat, user: User, room: str | None = None) -> None:
        """``room``: where the command was typed or the message goes (default:
        the caller's current room now)."""
        super().__init__(chat._hub, chat.name, chat.config, chat.state, chat._host)
        self._user = user
        if room is None:
            room = user.current.name if user.current is not None else ""
        self._room = room

    @property
    def nick(self) -> str:
        """The caller's nickname now."""
        return self._user.nick

    @property
    def user_id(self) -> int:
        """A number that names the caller's connection for as long as it lasts,
        whatever nickname it takes: use it, not the nick, to key per-user state."""
        return self._user.id

    @property
    def room(self) -> str:
        """The room the command was typed in (the caller's current room then), or
        the room a message goes to; ``""`` when the caller is in no room."""
        return self._room

    @property
    def joined(self) -> list[str]:
        """The rooms the caller is in, in the order it joined them."""
        return [room.name for room in self._user.rooms.values()]

    @property
    def online(self) -> bool:
        """False once the caller has left (for timers that outlive a user)."""
        return self._hub.is_online(self._user)

    def reply(self, text: str) -> None:
        """Send ``*** text`` to the caller; each line of a multi-line text gets its own ``*** ``."""
        self._hub.notify(self._user, text)

    def announce(self, text: str, *, include_self: bool = False) -> None:
        """Send ``*** text`` to the members of :attr:`room` (nobody else when the
        caller is in no room), the caller only if ``include_self``."""
        exclude = None if include_self else self._user
        if self._room:
            self._hub.announce_room(self._room, text, exclude=exclude)
        elif include_self:  # in no room: nobody else hears it (Chat.announce reaches all)
            self._hub.notify(self._user, text)

    def say(self, text: str) -> None:
        """Send ``text`` to the others in :attr:`room` as chat from the caller (``<nick> text``)."""
        self._hub.say(self._user, text, self._room)

    def emote(self, text: str) -> None:
        """Send ``* nick text`` to the others in :attr:`room`."""
        self._hub.emote(self._user, text, self._room)

    def join(self, room: str) -> str | None:
        """The caller joins ``room`` (made if there is none; the maker is its
        operator) and makes it current; returns why not, or None when done."""
        return self._hub.join(self._user, room)

    def part(self, room: str = "", reason: str = "") -> str | None:
        """The caller leaves ``room`` (default: :attr:`room`); why not, or None."""
        return self._hub.part(self._user, room or self._room, reason)

    def set_topic(self, text: str, room: str = "") -> str | None:
        """Set the topic of ``room`` (default: :attr:`room`; ``""`` clears it); why not, or None."""
        return self._hub.set_topic(self._user, room or self._room, text)

    def kick_from_room(self, nick: str, reason: str = "", room: str = "") -> str | None:
        """As an operator of ``room`` (default: :attr:`room`), put ``nick`` out of it."""
        return self._hub.kick_from_room(self._user, room or self._room, nick, reason)

    def set_op(self, nick: str, op: bool, room: str = "") -> str | None:
        """As an operator of ``room`` (default: :attr:`room`), make ``nick`` one (or not)."""
        return self._hub.set_op(self._user, room or self._room, nick, op)

    def show_members(self, room: str = "") -> str | None:
        """Tell the caller who is in ``room`` (default: :attr:`room`), operators
        marked; returns why not (a bad name, no such room), or None when done."""
        return self._hub.who(self._user, room or self._room)

    def show_history(self, count: int, room: str = "") -> str | None:
        """Show the caller the last ``count`` kept lines of ``room`` (default:
        :attr:`room`), marked as history; returns why not, or None when done."""
        return self._hub.history(self._user, count, room or self._room)

    def add_score(self, points: int) -> int:
        """Give the caller ``points`` in this plugin's scores (kept for its
        account, or for its nickname if it is a guest); returns its total."""
        store, user = self._hub.store, self._user
        account = self._hub.desk.account_name(user)
        who = account_who(account) if account else self._hub.fold(user.nick)
        store.scores.add(self.name, who, points)
        return store.scores.total(self.name, who)

    # The caller's account (chatd.core.accounts): each answers the caller
    # itself, once its password has been checked off the loop.

    @property
    def identified(self) -> bool:
        """Whether the caller proved an account's password (it may have
        changed its nickname since)."""
        return bool(self._hub.desk.account_name(self._user))

    def register_account(self, password: str) -> None:
        """Make the caller's nickname an account with ``password``."""
        self._hub.desk.register(self._user, password)

    def identify(self, password: str, nick: str = "") -> None:
        """Prove the password of ``nick``'s account (default: the caller's
        nickname), and take that nickname."""
        self._hub.desk.identify(self._user, nick or self._user.nick, password)

    def change_password(self, old: str, new: str) -> None:
        self._hub.desk.change_password(self._user, old, new)

    def unregister_account(self, password: str) -> None:
        """Delete the caller's account (it stays on, a guest)."""
        self._hub.desk.unregister(self._user, password)

    def message(self, nick: str, text: str) -> str | None:
        """Send ``text`` to ``nick`` alone (``*caller* text``); why not, or None."""
        return self._hub.private(self._user, nick, text)

    @property
    def last_messaged_by(self) -> str | None:
        """The nickname of the last user who messaged the caller, if still online."""
        last = self._hub.reply_to(self._user)
        return last.nick if last is not None else None

    def rename(self, new_nick: str) -> str | None:
        """Change the caller's nickname; returns why not, or None when done
        (in a cluster it may be done a moment later, once the other servers
        have said the name is free; if it is not, the caller is told)."""
        problem = self._hub.rename(self._user, new_nick)
        return None if problem is PENDING else problem

    def quit(self, reason: str = "") -> None:
        """Disconnect the caller after their pending output; others see ``reason``."""
        self._hub.quit(self._user, reason)
