"""Bounded byte buffers for one connection: lines (or raw chunks) in, queued bytes out.

Rule: every byte a peer can make us hold is counted against a limit. The input
buffer holds what the reader has read and not yet taken (the reactor reads only
as much as flood control lets it take), plus at most one line's limit of an
unfinished line, whatever the peer sends; the output buffer refuses data past
its limit and lets the caller decide what that means (the reactor disconnects:
a client that does not read is not ours to buffer for). Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

#: Longest line a client may send, in bytes, not counting "\r\n". IRC allows 512;
#: chat lines with UTF-8 text want a bit more room, and anything longer is a paste
#: that would flood every other user's terminal anyway.
DEFAULT_MAX_LINE_BYTES: Final = 1024

#: Unsent output a client may have queued before it is disconnected, in bytes
#: ("sendq exceeded"). 1 MiB is thousands of chat lines: far more than a reader
#: that is merely slow ever falls behind, small enough that 10,000 stuck clients
#: cannot take the server's memory (the same reasoning as redis's pubsub limit).
DEFAULT_SENDQ_BYTES: Final = 1024 * 1024

#: Bytes asked of recv() at once (the loop's reads, and what a refused
#: connection sent): large, so a busy client costs one call per loop
#: iteration, not one per line. Also the largest unit :class:`Chunks` gives.
RECV_BYTES: Final = 64 * 1024


class Overlong(enum.Enum):
    """What :meth:`InputBuffer.next_line` gives for a line over the limit."""

    LINE = "line"


OVERLONG: Final = Overlong.LINE


class InputBuffer:
    """Splits a byte stream into lines on b"\\n", one line at a time.

    ``feed()`` stores what arrived; ``next_line()`` takes the next complete line
    out, without its b"\\n" and a trailing b"\\r", or returns None when no
    complete line is there. Taking lines one at a time lets the reader stop
    between two lines (flood control) and keep the rest for later.

    A line over the limit comes out as :data:`OVERLONG` in its place (once per
    overlong line, so the caller can say so once) and is skipped up to its
    newline. Its bytes are dropped as they arrive, never stored: the buffer
    holds the complete lines fed and not yet taken, plus an unfinished line of
    at most ``max_line_bytes + 1`` bytes (a b"\\r" whose b"\\n" is on its way).
    """

    __slots__ = ("_buf", "_discarding", "_overlong", "max_line_bytes")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._discarding = False  # dropping what arrives up to the next newline
        # Where in _buf overlong lines were cut out, in order; a tuple because it
        # is nearly always empty and () costs a connection nothing.
        self._overlong: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return
            self._discarding = False  # the overlong line ends here
            data = data[nl + 1 :]
        buf = self._buf
        buf += data
        tail = buf.rfind(b"\n") + 1  # where the unfinished line starts
        if len(buf) - tail > self.max_line_bytes + 1:
            del buf[tail:]
            self._overlong += (tail,)
            self._discarding = True

    def has_line(self) -> bool:
        """Whether :meth:`next_line` would give a line now."""
        return (bool(self._overlong) and self._overlong[0] == 0) or b"\n" in self._buf

    def next_line(self) -> bytes | Overlong | None:
        buf = self._buf
        if self._overlong and self._overlong[0] == 0:
            self._overlong = self._overlong[1:]
            return OVERLONG
        nl = buf.find(b"\n")
        if nl < 0:
            return None
        end = nl - 1 if nl and buf[nl - 1] == 0x0D else nl
        line: bytes | Overlong = bytes(buf[:end]) if end <= self.max_line_bytes else OVERLONG
        del buf[: nl + 1]  # O(1): bytearray drops from the front by moving its start
        if self._overlong:
            self._overlong = tuple(at - nl - 1 for at in self._overlong)
        return line


class OutputBuffer:
    """A queue of bytes waiting for the socket, with a limit on how much it holds.

    Chunks are kept as they were given (broadcast data is shared between all
    recipients, never copied per client); a partial send leaves a memoryview of
    the unsent rest at the front.
    """

    __slots__ = ("_chunks", "_size", "limit")

    def __init__(self, limit: int = DEFAULT_SENDQ_BYTES) -> None:
        self.limit = limit
        self._chunks: deque[bytes | memoryview] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes | memoryview) -> bool:
        """Queue ``data``; False, and nothing queued, if that would pass the limit."""
        if self._size + len(data) > self.limit:
            return False
        self._chunks.append(data)
        self._size += len(data)
        return True

    def peek(self, max_chunks: int) -> list[bytes | memoryview]:
        """The first ``max_chunks`` chunks, for one vectored send."""
        chunks = self._chunks
        if len(chunks) <= max_chunks:
            return list(chunks)
        return [chunks[i] for i in range(max_chunks)]

    def consume(self, sent: int) -> None:
        """Drop the first ``sent`` bytes, which the kernel has taken."""
        if sent == self._size:  # all of it, the usual case
            self._chunks.clear()
            self._size = 0
            return
        self._size -= sent
        chunks = self._chunks
        while sent:
            first = chunks[0]
            if sent >= len(first):
                sent -= len(first)
                chunks.popleft()
            else:
                chunks[0] = memoryview(first)[sent:]
                sent = 0

    def clear(self) -> None:
        self._chunks.clear()
        self._size = 0


class Chunks:
    """Input for a protocol that parses its own bytes (RESP, through hiredis):
    each chunk fed (what one recv() returned) is one unit, as it came; no
    lines, never overlong.

    Its bound is the reader's: the loop feeds at most one read (RECV_BYTES)
    between two takes, and a connection without flood control has its units
    taken as soon as they are fed.
    """

    __slots__ = ("_chunks", "max_line_bytes")

    def __init__(self, max_line_bytes: int = RECV_BYTES) -> None:
        #: The largest unit (one read): what the loop would read per token.
        self.max_line_bytes = max_line_bytes
        self._chunks: deque[bytes] = deque()

    def feed(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)

    def has_line(self) -> bool:
        return bool(self._chunks)

    def next_line(self) -> bytes | None:
        return self._chunks.popleft() if self._chunks else None


def chunks(session: object) -> Chunks:
    """A framing (see :data:`chatd.core.link.Framing`) that hands each read on
    as it came: ``reactor.connect(..., framing=chunks)``."""
    return Chunks()
