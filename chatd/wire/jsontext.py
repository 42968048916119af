"""JSON text from a peer, decoded with its nesting bounded: what the admin
protocol and the web protocol read. Sans-IO.

Rule: json.loads recurses once per nested array or object, and a message of
brackets alone (64 KiB of ``[``) would run it out of stack; so the depth is
found by a scan first, and text nested past :data:`MAX_NESTING` is refused
before the decoder sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

#: How deeply a message may nest arrays and objects. The admin protocol's
#: requests nest two levels ({"args": {...}}) and its responses three
#: ({"result": [{...}]}); the web protocol's requests one. 32 leaves room for a
#: clear error about a wrong shape, and stays far below the depth at which the
#: json decoder runs out of stack (a RecursionError near 1,000).
MAX_NESTING: Final = 32

#: A JSON string, escapes and all (an unterminated one runs to the end).
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


class TooDeep(ValueError):
    """Text nested past MAX_NESTING (a ValueError, as what is not JSON is)."""


def too_deep(text: str) -> bool:
    """Whether ``text`` nests arrays and objects more than MAX_NESTING deep."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return False  # every ordinary message: no scan
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING:
            return True
    return False


def load(text: str) -> Any:
    """json.loads, but TooDeep for nesting past MAX_NESTING, found before the
    decoder recurses into it; ValueError for what is not JSON."""
    if too_deep(text):
        raise TooDeep(f"nested too deep (at most {MAX_NESTING} levels)")
    try:
        return json.loads(text)
    except RecursionError:  # should the scan ever miss: the same answer
        raise TooDeep(f"nested too deep (at most {MAX_NESTING} levels)") from None
