"""What a line a user typed is: a command invocation ("/name args") or text to send.

Rule: this needs nothing else of chatd, so the hub, the command table and the
client can all use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Invocation:
    """A parsed ``/name args`` line."""

    name: str
    args: str


def parse(text: str) -> Invocation | str:
    """Split a line into a command invocation, or return the plain text to send.

    ``/name args`` is a command (the name is matched case-insensitively);
    ``//text`` is the plain message ``/text``; anything else is plain text.
    """
    if not text.startswith("/"):
        return text
    if text.startswith("//"):
        return text[1:]
    name, _, args = text[1:].partition(" ")
    return Invocation(name.lower(), args.strip())
