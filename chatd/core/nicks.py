"""Nicknames: the rule every user's name keeps, whatever wire it came in on.

Rule: a nickname is 1-16 ASCII letters, digits, ``_`` or ``-``, unique ignoring
case (ASCII, so ``lower()`` is a complete case fold). This module needs nothing
else of chatd, so the hub and every wire module can use it.
"""

from __future__ import annotations

import re
from typing import Final

NICK_MAX: Final = 16
_NICK = re.compile(rf"[A-Za-z0-9_-]{{1,{NICK_MAX}}}")
NICK_RULE: Final = f"1-{NICK_MAX} letters, digits, _ or -"
#: What nc users are asked (chatd.wire.line's greeting, the hub's re-prompt).
NICK_PROMPT: Final = f"Choose a nickname ({NICK_RULE}):"


def nick_problem(nick: str) -> str | None:
    """Why ``nick`` cannot be a nickname, or None if it can."""
    if _NICK.fullmatch(nick):
        return None
    shown = nick if len(nick) <= 40 else nick[:40] + "..."
    return f'"{shown}" is not a valid nickname: use {NICK_RULE}.'
