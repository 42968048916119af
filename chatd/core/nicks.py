"""Nicknames: the rule every user's name keeps, whatever wire it came in on.

Rule: a nickname is 1-16 ASCII letters, digits, ``_`` or ``-``, or one of the
characters IRC nicknames have always been allowed (``[]\\^{}|`` and the
backtick: irssi and weechat users keep names like ``[tom]`` or ``ann|away``),
unique ignoring case. Case is ASCII's, so ``lower()`` is a complete case fold
and IRC's ``CASEMAPPING=ascii`` says exactly that (``[`` and ``{`` are two
characters, not one in two cases). None of these characters begins anything
in the line format (``<nick>``, ``*nick*``, ``[#room]``, ``*** ``), so an nc
reader never mistakes a name for markup. This module needs nothing else of
chatd, so the hub and every wire module can use it.
"""

from __future__ import annotations

import re
from typing import Final

NICK_MAX: Final = 16
#: The characters of a nickname, as a regular expression's character class body.
NICK_CHARS: Final = r"A-Za-z0-9_\-\[\]\\^{}|`"
#: A whole nickname, as a regular expression (for clients that read names in lines).
NICK_PATTERN: Final = rf"[{NICK_CHARS}]{{1,{NICK_MAX}}}"
_NICK = re.compile(NICK_PATTERN)
NICK_RULE: Final = f"1-{NICK_MAX} letters, digits or any of _-[]\\^{{}}|`"
#: What nc users are asked (chatd.wire.line's greeting, the hub's re-prompt).
NICK_PROMPT: Final = f"Choose a nickname ({NICK_RULE}):"


#: What the hub's register() and rename() answer while the cluster is asked
#: whether a nickname is free (its lease in Redis, chatd.cluster): the
#: caller's ``retry`` runs once Redis has answered (in a millisecond or so)
#: and gets the answer; compare with ``is``. A caller that shows it anyway
#: shows a true sentence.
PENDING: Final = "Checking that nickname with the other servers..."


def taken(nick: str) -> str:
    """What someone is told who asks for a nickname someone else has."""
    return f"The nickname {nick} is taken; choose another."


def nick_problem(nick: str) -> str | None:
    """Why ``nick`` cannot be a nickname, or None if it can."""
    if _NICK.fullmatch(nick):
        return None
    shown = nick if len(nick) <= 40 else nick[:40] + "..."
    return f'"{shown}" is not a valid nickname: use {NICK_RULE}.'
