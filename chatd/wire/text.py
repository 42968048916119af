"""Text that is safe to show: what every wire module cleans its input and output with.

Rule: everything a user sends passes through :func:`decode_line`, which
guarantees that no control character or terminal escape sequence survives, so
nothing one client sends can reach another client's terminal as a command; and
every renderer (chatd.wire.line, ...) cleans what it is given again with
:func:`one_line` or :func:`lines_of`, whoever produced it (a user, a plugin, an
operator): the edge that renders is the one that guarantees no control byte and
no line break leaves the server. No I/O here.
"""

from __future__ import annotations

import re
from typing import Final

# Terminal escape sequences, longest forms first: CSI (ESC [ or the 8-bit 0x9B,
# parameters, intermediates, a final byte), OSC/DCS/SOS/PM/APC strings (ended by
# BEL or ST, or by the end of the line), then any other two-byte ESC sequence.
# Removing whole sequences matters: dropping only the ESC would leave "[2J" or
# "]0;title" in the text.
_ESCAPE_SEQUENCE = re.compile(
    r"""
    (?:\x1b\[|\x9b) [0-?]* [\x20-/]* [@-~]?
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)?
  | \x1b [\x20-/]* [0-~]?
    """,
    re.VERBOSE,
)
# What is left after that: every C0 control, DEL and every C1 control; the
# bidirectional embeddings, overrides and isolates (U+202A-202E, U+2066-2069),
# with which one user's text could reverse the words around it on a page or
# a terminal that follows them ("Trojan Source"; the plain marks LRM and RLM
# stay, as right-to-left writing needs them); and lone surrogates (only text a
# plugin or an operator gave can hold one: no UTF-8 encoder, the wire's or
# SQLite's, can write it).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Where text a plugin or an operator gives is cut into lines (or joined, for
# what must be one line): what terminals and str.splitlines() take as a break.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def sanitize(text: str) -> str:
    """Make ``text`` safe to show in someone else's terminal.

    Escape sequences are removed whole, a tab becomes a space, every other
    control character (C0, DEL, C1) is removed. The result holds no ESC and no
    control character whatever the input was.
    """
    if text.isprintable():  # the common case: one C-level scan, no regex
        return text
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\t", " "))
    return _CONTROL.sub("", text)


def one_line(text: str) -> str:
    """``text`` as one safe line: line breaks become spaces, then :func:`sanitize`.
    Clean text (the common case) costs one C-level scan."""
    if text.isprintable():
        return text
    return sanitize(_LINE_BREAK.sub(" ", text))


def lines_of(text: str) -> list[str]:
    """``text`` cut at its line breaks into safe lines (for multi-line replies)."""
    if text.isprintable():
        return [text]
    return [sanitize(line).rstrip() for line in _LINE_BREAK.split(text)]


#: How a sentence may end (before closing quotes and brackets); a line without
#: one gets a full stop from sentence().
SENTENCE_ENDS: Final = (".", "!", "?", "…")
_CLOSERS: Final = "\"')]\u00bb\u201d\u2019"  # " ' ) ] and the typographic closing quotes


def sentence(text: str) -> str:
    """``text`` ending as a sentence: a full stop added unless it has an ending."""
    if not text or text.rstrip(_CLOSERS).endswith(SENTENCE_ENDS):
        return text
    return text + "."


def decode_line(raw: bytes) -> str:
    """A line as received (without its line ending) -> clean text, trailing space removed."""
    return sanitize(raw.decode("utf-8", "replace")).rstrip()
