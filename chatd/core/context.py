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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatd.core.datafiles import DataFileError, read_list

if TYPE_CHECKING:
    from chatd.core.commands import Command
    from chatd.core.hub import Hub, User
    from chatd.core.timers import Timer


@dataclass(frozen=True)
class Drop:
    """Returned from ``chatd_message``: deliver nothing, and tell the sender why."""

    reason: str


class Chat:
    """One plugin's view of the chat: settings, state, users, time."""

    __slots__ = ("_hub", "config", "log", "name", "state")

    def __init__(
        self, hub: Hub, name: str, config: Mapping[str, Any], state: dict[str, Any]
    ) -> None:
        self._hub = hub
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

    def commands(self) -> list[Command]:
        """Every command available now, sorted by name."""
        return list(self._hub.plugins.commands)

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
        guard, name = self._hub.plugins.guard, self.name
        what = f"timer {getattr(callback, '__qualname__', 'callback')}"

        def run() -> None:
            if guard.enabled(name):
                _, error = guard.run(name, what, callback)
                if error is not None:
                    self.log.error("%s failed: %s", what, error, exc_info=error)

        return run


class Context(Chat):
    """A plugin's view of the chat on behalf of one user, the caller."""

    __slots__ = ("_user",)

    def __init__(self, chat: Chat, user: User) -> None:
        super().__init__(chat._hub, chat.name, chat.config, chat.state)
        self._user = user

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
    def online(self) -> bool:
        """False once the caller has left (for timers that outlive a user)."""
        return self._hub.is_online(self._user)

    def reply(self, text: str) -> None:
        """Send ``*** text`` to the caller; each line of a multi-line text gets its own ``*** ``."""
        self._hub.notify(self._user, text)

    def announce(self, text: str, *, include_self: bool = False) -> None:
        """Send ``*** text`` to every named user, the caller only if ``include_self``."""
        self._hub.announce(text, exclude=None if include_self else self._user)

    def say(self, text: str) -> None:
        """Send ``text`` to everyone else as chat from the caller (``<nick> text``)."""
        self._hub.say(self._user, text)

    def emote(self, text: str) -> None:
        """Send ``* nick text`` to everyone else."""
        self._hub.emote(self._user, text)

    def rename(self, new_nick: str) -> str | None:
        """Change the caller's nickname; returns why not, or None when done."""
        return self._hub.rename(self._user, new_nick)

    def quit(self, reason: str = "") -> None:
        """Disconnect the caller after their pending output; others see ``reason``."""
        self._hub.quit(self._user, reason)
