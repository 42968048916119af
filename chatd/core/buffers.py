"""Bounded byte buffers for one connection: lines in, queued bytes out.

Rule: every byte a peer can make us hold is counted against a limit. The input
buffer never holds more than one line's limit, whatever the peer sends; the
output buffer refuses data past its limit and lets the caller decide what that
means (the reactor disconnects: a client that does not read is not ours to
buffer for). Nothing here does I/O.
"""

from __future__ import annotations

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


class InputBuffer:
    """Splits a byte stream into lines on b"\\n", holding at most one line's limit.

    ``feed()`` returns the complete lines it found, each without its b"\\n" and a
    trailing b"\\r". A line over the limit comes out as ``None`` (one per overlong
    line, so the caller can say so once) and is skipped up to its newline; the
    bytes of such a line are dropped as they arrive, never stored.
    """

    __slots__ = ("_buf", "_discarding", "max_line_bytes")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._discarding = False

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | None]:
        buf = self._buf
        buf += data
        out: list[bytes | None] = []
        limit = self.max_line_bytes
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            if self._discarding:
                self._discarding = False  # the overlong line ends here; it was reported
            elif end - start > limit:
                out.append(None)
            else:
                out.append(bytes(buf[start:end]))
            start = nl + 1
        del buf[:start]
        # An unterminated tail may hold one more byte than the limit: a "\r" whose
        # "\n" is still on its way.
        if len(buf) > limit + 1 or (self._discarding and buf):
            if not self._discarding:
                out.append(None)
                self._discarding = True
            buf.clear()
        return out


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

    def append(self, data: bytes) -> bool:
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
