"""Kept lines shown again, in words every wire shares: the times, the line
before and after a replay. Sans-IO; the wire modules put these on their lines.

Rule: a replayed line is always marked as history, the same way on every
path (a catch-up, a newcomer's recent lines, /history): its time in brackets,
in the server's time zone, with the date when it was not today
(``[10:32]``, ``[Nov 30 10:32]``, ``[2025-11-30 10:32]``).
"""

from __future__ import annotations

import time

from chatd.core import events as ev
from chatd.wire.text import one_line


def clock_time(at: float, now: float) -> str:
    """``at`` (seconds since the epoch) as a reader shown it at ``now`` wants
    it: the time today, with the day another day, with the year another year."""
    when, today = time.localtime(at), time.localtime(now)
    if when.tm_year != today.tm_year:
        return time.strftime("%Y-%m-%d %H:%M", when)
    if when.tm_yday != today.tm_yday:
        return time.strftime("%b %d %H:%M", when)
    return time.strftime("%H:%M", when)


def _lines(count: int) -> str:
    return "1 line" if count == 1 else f"{count} lines"


def start_text(e: ev.ReplayStart) -> str:
    """The line before a replay."""
    if e.why == ev.MISSED:
        since = clock_time(e.since, e.now)
        return f"While you were away (since {since}): {_lines(e.count)} in {e.room}."
    if e.why == ev.RECENT:
        return f"Recent chat in {e.room} ({_lines(e.count)}):"
    if e.why == ev.HELD:
        messages = "1 private message" if e.count == 1 else f"{e.count} private messages"
        return f"{messages} while you were away:"
    return f"History of {e.room}, the last {_lines(e.count)}:"


def end_text(e: ev.ReplayEnd) -> str:
    """The line after a replay: how many earlier lines were not shown, and how
    to see them."""
    if e.why == ev.HELD:
        return "End of private messages kept for you."
    what = {ev.MISSED: "what you missed in", ev.RECENT: "recent chat in"}.get(e.why, "history of")
    text = f"End of {what} {e.room}"
    if e.more:
        more = f"{e.more}{'' if e.more_counted else ' or more'} earlier"
        text += f"; {more} {'line' if e.more == 1 else 'lines'} not shown: /history {e.ask}"
    return text + "."


def body(e: ev.Replayed) -> str:
    """A kept line's text as nc shows it, without the time: ``<alice> hi``,
    ``* alice waves``, ``alice set the topic: ...``, ``*carol* psst`` (a
    private message kept for the reader)."""
    text = one_line(e.text)
    if e.kind == ev.PRIVATE:
        return f"*{e.nick}* {text}"
    if e.kind == ev.PRIVATE_ACTED:
        return f"*{e.nick}* * {e.nick} {text}"
    if e.kind == ev.ACTED:
        return f"* {e.nick} {text}"
    if e.kind == ev.TOPIC:
        by = e.nick or "a server operator"
        return f"{by} set the topic: {text}" if text else f"{by} cleared the topic"
    return f"<{e.nick}> {text}"
