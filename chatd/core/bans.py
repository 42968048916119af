"""Bans: nicknames and addresses an operator keeps out for a while, in memory.

Rule: a ban is a key (a nickname folded to lower case, or an address), an
expiry on the server's clock and a reason; nothing else. It is checked where a
user arrives (a connection from a banned address is told and closed before it
is greeted; a banned nickname is refused at the prompt and by /nick) and it
ends by itself. The table is bounded (MAX_BANS): an operator script gone wild
cannot grow it without end; past the bound the ban that ends soonest goes
first. Bans live as long as the process: the store, when there is one, will
keep them across restarts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

#: Most bans held at once (nicknames and addresses together). Far more than any
#: operator types by hand, and a few MiB at most.
MAX_BANS: Final = 10_000
#: The longest ban: a year, as long as a timer can wait (chatd.core.timers).
MAX_BAN_SECONDS: Final = 365 * 24 * 3600

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+|\d+")


class BanError(ValueError):
    """A ban that can't be made (a bad duration); the message says why, for the operator."""


def parse_duration(text: str) -> int:
    """``"90"``, ``"10m"``, ``"1h30m"``, ``"2d"`` -> seconds. BanError if it isn't one."""
    text = text.strip().lower()
    if not _WHOLE.fullmatch(text):
        raise BanError(
            f"{text!r} is not a duration: give seconds, or a number with s, m, h, d or w"
            " (10m, 2h, 1d, 1h30m)"
        )
    if text.isdigit():
        seconds = int(text)
    else:
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    if not 0 < seconds <= MAX_BAN_SECONDS:
        raise BanError(f"a ban lasts from 1 second to 365 days, not {text}")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as a person reads them, at most two units: ``45s``, ``9m 58s``, ``2h``, ``1d 3h``."""
    left = max(1, math.ceil(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            count, left = divmod(left, size)
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
        if parts and not left:
            break
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Ban:
    key: str  # a nickname in lower case, or an address
    kind: str  # "nick" or "address"
    until: float  # on the server's clock
    reason: str


class Bans:
    """The bans in force, by key. Expired ones are dropped as they are met."""

    def __init__(self) -> None:
        self._bans: dict[tuple[str, str], Ban] = {}

    def __len__(self) -> int:
        return len(self._bans)

    def add(self, kind: str, key: str, until: float, reason: str) -> Ban:
        """Ban ``key`` (a "nick" or an "address") until ``until``; a later ban of the
        same key replaces the earlier one."""
        ban = Ban(key.lower() if kind == "nick" else key, kind, until, reason)
        self._bans.pop((kind, ban.key), None)
        if len(self._bans) >= MAX_BANS:
            soonest = min(self._bans.values(), key=lambda b: b.until)
            del self._bans[(soonest.kind, soonest.key)]
        self._bans[(kind, ban.key)] = ban
        return ban

    def find(self, kind: str, key: str, now: float) -> Ban | None:
        """The ban in force on ``key``, or None."""
        index = (kind, key.lower() if kind == "nick" else key)
        ban = self._bans.get(index)
        if ban is not None and ban.until <= now:
            del self._bans[index]
            return None
        return ban

    def remove(self, key: str) -> list[Ban]:
        """Lift every ban on ``key`` (a nickname or an address); returns those lifted."""
        lifted = [
            ban
            for (kind, k), ban in list(self._bans.items())
            if k == (key.lower() if kind == "nick" else key)
        ]
        for ban in lifted:
            del self._bans[(ban.kind, ban.key)]
        return lifted

    def active(self, now: float) -> list[Ban]:
        """Every ban in force, soonest to end first."""
        for index in [i for i, ban in self._bans.items() if ban.until <= now]:
            del self._bans[index]
        return sorted(self._bans.values(), key=lambda b: (b.until, b.kind, b.key))
