"""The line format nc users and ``chatd connect`` see, sans-IO: events in, bytes out.

Rule: this module alone knows what chatd's lines look like. It renders each
event into complete lines of UTF-8 text ending in "\\n", and cleans every piece
of text it puts in a line (:func:`chatd.wire.text.one_line`), whoever produced
it, so no control byte leaves the server and every line starts with its own
prefix. No I/O, and nothing about other users or connections.

The format, in full (the README documents the same):

* UTF-8 text, one message per line, lines end with "\\n" (a "\\r" before it is
  dropped). Invalid UTF-8 is decoded with U+FFFD replacement characters.
* chat from alice:      ``<alice> text``
* an action by alice:   ``* alice waves``
* a private message:    ``*alice* text`` (the sender sees ``-> *bob* text``)
* anything the server itself says (notices, replies, errors): ``*** text``
* a kept line shown again (history), with its time: ``*** [10:32] <alice> hi``
  (``[Nov 30 10:32]`` another day), between a line before and a line after
* from a room that is not the reader's current room, the same with the room
  before it: ``[#games] <bob> hi``, ``[#games] * bob waves``, ``*** [#games] carol joined``.

An event is rendered once per *variant*, never per reader: :data:`HERE` for
readers whose current room it happened in (or for events in no room),
:data:`AWAY` for the members of the room for whom it is another of their rooms,
:data:`ECHO` for a private message shown back to its sender.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from chatd.core import events as ev
from chatd.core.delivery import AWAY, ECHO, HERE
from chatd.core.nicks import NICK_PROMPT
from chatd.core.rooms import NO_ROOM
from chatd.wire import replay
from chatd.wire.text import lines_of, one_line

__all__ = ["AWAY", "ECHO", "HERE", "NAME", "NO_ROOM", "render", "variant"]

NAME: Final = "line"
SERVER_PREFIX: Final = "*** "


def variant(room: str, current: str) -> str:
    """The variant of an event in ``room`` for a reader whose current room is ``current``."""
    return HERE if not room or room == current else AWAY


def encode_line(text: str) -> bytes:
    """One outgoing line, encoded; ``text`` is one clean line."""
    return (text + "\n").encode("utf-8")


def chat(nick: str, text: str) -> str:
    return f"<{nick}> {one_line(text)}"


def action(nick: str, text: str) -> str:
    return f"* {nick} {one_line(text)}"


def notice(text: str) -> str:
    return SERVER_PREFIX + one_line(text)


def encode_notices(text: str) -> bytes:
    """``*** line`` for each line of ``text``, encoded: a multi-line reply or
    announcement never puts a line on the wire without its prefix."""
    return b"".join(encode_line(SERVER_PREFIX + line) for line in lines_of(text))


def _why(reason: str) -> str:
    reason = one_line(reason)
    return f" ({reason})" if reason else ""


# Each renderer gives the line's text after the "*** " or in full (chat), for
# the HERE variant and for the AWAY variant (which names the room first).
# Names (nicks, rooms) are checked where they are made and need no cleaning.


def _said(e: ev.Said, v: str) -> bytes:
    line = chat(e.nick, e.text)
    return encode_line(line if v != AWAY else f"[{e.room}] {line}")


def _acted(e: ev.Acted, v: str) -> bytes:
    line = action(e.nick, e.text)
    return encode_line(line if v != AWAY else f"[{e.room}] {line}")


def _private(e: ev.PrivateSaid, v: str) -> bytes:
    text = one_line(e.text)
    if e.action:  # a private /me (from IRC): "*bob* * bob waves"
        text = f"* {e.sender} {text}"
    return encode_line(f"-> *{e.to}* {text}" if v == ECHO else f"*{e.sender}* {text}")


def _room_notice(room: str, here: str, away: str, v: str) -> bytes:
    return encode_line(SERVER_PREFIX + (here if v != AWAY else f"[{room}] {away}"))


def _joined(e: ev.Joined, v: str) -> bytes:
    here = f"{e.nick} joined" if e.arrived else f"{e.nick} joined {e.room}"
    return _room_notice(e.room, here, f"{e.nick} joined", v)


def _parted(e: ev.Parted, v: str) -> bytes:
    why = _why(e.reason)
    return _room_notice(e.room, f"{e.nick} left {e.room}{why}", f"{e.nick} left{why}", v)


def _by(nick: str) -> str:
    return nick or "a server operator"


def _kicked(e: ev.Kicked, v: str) -> bytes:
    why, by = _why(e.reason), _by(e.by)
    return _room_notice(
        e.room,
        f"{e.nick} was kicked from {e.room} by {by}{why}",
        f"{e.nick} was kicked by {by}{why}",
        v,
    )


def _quit(e: ev.Quit, v: str) -> bytes:
    return encode_line(f"{SERVER_PREFIX}{e.nick} left{_why(e.reason) or ' (Quit)'}")


def _renamed(e: ev.Renamed, v: str) -> bytes:
    return encode_line(f"{SERVER_PREFIX}{e.old} is now known as {e.new}")


def _topic(e: ev.TopicSet, v: str) -> bytes:
    by, text = _by(e.by), one_line(e.text)
    if text:
        return _room_notice(
            e.room, f"{by} set the topic of {e.room}: {text}", f"{by} set the topic: {text}", v
        )
    return _room_notice(e.room, f"{by} cleared the topic of {e.room}", f"{by} cleared the topic", v)


def _opped(e: ev.Opped, v: str) -> bytes:
    by = _by(e.by)
    if e.op:
        here, away = (
            f"{by} made {e.nick} an operator of {e.room}",
            f"{by} made {e.nick} an operator",
        )
    else:
        here = f"{by} removed {e.nick} as an operator of {e.room}"
        away = f"{by} removed {e.nick} as an operator"
    return _room_notice(e.room, here, away, v)


def _notice(e: ev.Notice, v: str) -> bytes:
    if v == AWAY and e.room:
        return b"".join(
            encode_line(f"{SERVER_PREFIX}[{e.room}] {line}") for line in lines_of(e.text)
        )
    return encode_notices(e.text)


def _greeting(e: ev.Greeting, v: str) -> bytes:
    return encode_notices(f"Welcome to chatd, a chat server for terminals.\n{NICK_PROMPT}")


def _you_renamed(e: ev.YouRenamed, v: str) -> bytes:
    return encode_line(f"{SERVER_PREFIX}You are now known as {e.new}.")


def _goodbye(e: ev.Goodbye, v: str) -> bytes:
    return encode_line(
        f"{SERVER_PREFIX}Goodbye, {e.nick}." if e.nick else f"{SERVER_PREFIX}Goodbye."
    )


def _closing(e: ev.Closing, v: str) -> bytes:
    return b""  # the notice before it said why, and nc needs no last word


def _welcome(e: ev.Welcome, v: str) -> bytes:
    online = "1 user online (you)" if e.online == 1 else f"{e.online} users online"
    where = f"; you are in {e.room}" if e.room else ""
    return encode_line(
        f"{SERVER_PREFIX}Welcome, {e.nick}! {online}{where}. Type /help for commands."
    )


def _room_state(e: ev.RoomState, v: str) -> bytes:
    topic = one_line(e.topic)
    head = f"Topic of {e.room}: {topic}" if topic else f"{e.room} has no topic."
    return encode_notices(f"{head}\n{members_line(e.room, e.members, e.ops)}")


def _members(e: ev.Members, v: str) -> bytes:
    return encode_notices(members_line(e.room, e.members, e.ops))


def _current(e: ev.Current, v: str) -> bytes:
    if not e.room:
        return encode_line(f"{SERVER_PREFIX}{NO_ROOM}")
    return encode_line(f"{SERVER_PREFIX}Now talking in {e.room}.")


def _you_left(e: ev.YouLeft, v: str) -> bytes:
    if not e.kicked:
        return encode_line(f"{SERVER_PREFIX}You left {e.room}.")
    reason = one_line(e.reason)
    told = f"You were kicked from {e.room} by {_by(e.kicked_by)}"
    return encode_line(f"{SERVER_PREFIX}{told}: {reason}" if reason else f"{SERVER_PREFIX}{told}.")


def _replay_start(e: ev.ReplayStart, v: str) -> bytes:
    return _room_notice(e.room, replay.start_text(e), replay.start_text(e), v)


def _replayed(e: ev.Replayed, v: str) -> bytes:
    line = f"[{replay.clock_time(e.at, e.now)}] {replay.body(e)}"
    return _room_notice(e.room, line, line, v)


def _replay_end(e: ev.ReplayEnd, v: str) -> bytes:
    return _room_notice(e.room, replay.end_text(e), replay.end_text(e), v)


#: Members' lines are cut at about this many characters, so a busy room does not
#: send one line wider than any terminal.
MEMBERS_LINE_CHARS: Final = 400


def members_line(room: str, members: tuple[str, ...] | list[str], ops: frozenset[str]) -> str:
    """``N users in #room: @alice, bob`` (operators marked), cut into lines of
    about MEMBERS_LINE_CHARS (each later line ends the one before with a comma)."""
    names = [f"@{nick}" if nick in ops else nick for nick in members]
    count = "1 user" if len(names) == 1 else f"{len(names)} users"
    lines: list[list[str]] = [[]]
    width = 0
    for name in names:
        if lines[-1] and width + len(name) > MEMBERS_LINE_CHARS:
            lines.append([])
            width = 0
        lines[-1].append(name)
        width += len(name) + 2
    return f"{count} in {room}: " + ",\n".join(", ".join(line) for line in lines)


_RENDER: Final[dict[type, Callable[[Any, str], bytes]]] = {
    ev.Said: _said,
    ev.Acted: _acted,
    ev.PrivateSaid: _private,
    ev.Joined: _joined,
    ev.Parted: _parted,
    ev.Kicked: _kicked,
    ev.Quit: _quit,
    ev.Renamed: _renamed,
    ev.TopicSet: _topic,
    ev.Opped: _opped,
    ev.Notice: _notice,
    ev.Greeting: _greeting,
    ev.YouRenamed: _you_renamed,
    ev.Goodbye: _goodbye,
    ev.Closing: _closing,
    ev.Welcome: _welcome,
    ev.RoomState: _room_state,
    ev.Members: _members,
    ev.Current: _current,
    ev.YouLeft: _you_left,
    ev.ReplayStart: _replay_start,
    ev.Replayed: _replayed,
    ev.ReplayEnd: _replay_end,
}


def render(event: ev.Event, v: str = HERE) -> bytes:
    """``event`` as complete encoded lines, for readers of variant ``v``."""
    return _RENDER[type(event)](event, v)
