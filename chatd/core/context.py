"""What a command handler may do: the Context a plugin's handler receives.

Rule: plugins reach the chat only through this object. It speaks in nicknames
and text, never in sockets or links, so a plugin works unchanged whatever
transport the user came in on. Everything it sends is formatted and encoded
by the hub, so a plugin cannot put raw bytes on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.core.commands import Command
    from chatd.core.hub import Hub, User
    from chatd.core.timers import Timer


class Context:
    """The caller of a command and the operations open to a plugin on their behalf."""

    __slots__ = ("_hub", "_user")

    def __init__(self, hub: Hub, user: User) -> None:
        self._hub = hub
        self._user = user

    @property
    def nick(self) -> str:
        """The caller's nickname."""
        return self._user.nick

    # -- talking -----------------------------------------------------------

    def reply(self, text: str) -> None:
        """Send ``*** text`` to the caller (one line; newlines in text start new lines)."""
        self._hub.notify(self._user, text)

    def send(self, nick: str, text: str) -> bool:
        """Send ``*** text`` to the user ``nick``; False if nobody has that nickname."""
        user = self._hub.find(nick)
        if user is None:
            return False
        self._hub.notify(user, text)
        return True

    def announce(self, text: str, *, include_self: bool = False) -> None:
        """Send ``*** text`` to every user, the caller only if ``include_self``."""
        self._hub.announce(text, exclude=None if include_self else self._user)

    def say(self, text: str) -> None:
        """Send ``text`` to everyone else as chat from the caller (``<nick> text``)."""
        self._hub.say(self._user, text)

    def emote(self, text: str) -> None:
        """Send ``* nick text`` to everyone else."""
        self._hub.emote(self._user, text)

    # -- looking around ------------------------------------------------------

    def nicks(self) -> list[str]:
        """Every named user online, sorted case-insensitively."""
        return self._hub.nicks()

    def commands(self) -> list[Command]:
        """Every command available, sorted by name."""
        return list(self._hub.commands)

    # -- changing the caller ---------------------------------------------------

    def rename(self, new_nick: str) -> str | None:
        """Change the caller's nickname; returns why not, or None when done."""
        return self._hub.rename(self._user, new_nick)

    def quit(self, reason: str = "") -> None:
        """Disconnect the caller after their pending output; others see ``reason``."""
        self._hub.quit(self._user, reason)

    # -- time -----------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` once after ``delay`` seconds, on the server's loop."""
        return self._hub.timers.call_later(delay, callback)
