"""One connection: its socket, its buffers and its state, as a Link.

Rule: the reactor's modules (chatd.core.reactor, chatd.core.listeners,
chatd.core.connection) alone import socket and selectors; everything else in
chatd is sans-IO. A Connection is what a handler holds of one client (a
:class:`~chatd.core.link.Link`): queueing output on it never writes to the
socket and never calls back into the handler. It only marks the connection
for the loop's end-of-iteration flush, or asks the loop to close or abort it;
the loop does every read, write and close. What it needs of the loop is the
:class:`Loop` protocol below, so this module never imports the reactor.

A connection came in through a listener, or was dialled by the loop
(Reactor.connect); either way its ``owner`` holds its handler, limits and
counts, and the rest of its life is the same.

A connection's output is one of, at the end of an iteration: nothing; a
fan-out batch alone (``pending``: sent with one send(), never queued); or
queued chunks in its output buffer (``dirty``: flushed with one sendmsg()).
Its life: ``dial`` (dialled, not up yet: output is queued, nothing is read or
written), open, then ``closing`` (a requested close: read no more, drain) or
``doomed`` (to be aborted in the flush's write pass), or ``gone`` (aborted
with lines still to handle: the socket is closed, the lines are not lost),
and at last ``closed``; its handler is told it ended once (``told``).
"""

from __future__ import annotations

import collections
import socket
from typing import Any, Protocol

from chatd.core.buffers import InputBuffer, OutputBuffer
from chatd.core.fanout import Group, catch_up
from chatd.core.flood import TokenBucket
from chatd.core.link import Framer
from chatd.core.listeners import Address, Owner
from chatd.core.timers import Timer
from chatd.wire.tls import TlsSession


class Loop(Protocol):
    """What a connection needs of the loop that serves it (the Reactor is one).

    Private names: the loop and its connections are one piece cut in two files,
    and these are not for handlers."""

    #: Connections with output queued for the end-of-iteration flush.
    _dirty: list[Connection]
    #: Connections with only a fan-out batch to send at the end of the iteration.
    _pending: list[Connection]

    def _doom(self, conn: Connection, reason: str) -> None:
        """Abort ``conn`` for ``reason`` in the flush's write pass."""
        ...

    def _close(self, conn: Connection, reason: str) -> None:
        """Read no more; close once the output has drained or the linger time is up."""
        ...


class Dial:
    """An outbound connection on its way up: where it goes, the addresses left
    to try, and its deadline. The loop drops it once the connection is up."""

    __slots__ = ("addresses", "error", "host", "port", "timer")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        #: Left to try, in order; empty while a name is being looked up.
        self.addresses: collections.deque[Address] = collections.deque()
        self.error = ""  # why the last attempt failed
        self.timer: Timer | None = None  # the connect timeout


class Connection:
    """One socket with its buffers. Implements :class:`~chatd.core.link.Link`."""

    __slots__ = (
        "bucket",
        "closed",
        "closing",
        "dial",
        "dirty",
        "doomed",
        "gone",
        "groups",
        "host",
        "inbuf",
        "linger",
        "mask",
        "outbuf",
        "owner",
        "paused",
        "peer",
        "pending",
        "reactor",
        "reason",
        "sealed",
        "session",
        "sock",
        "tls",
        "tls_timer",
        "told",
    )

    session: Any  # what the handler's connect() returned

    def __init__(
        self,
        reactor: Loop,
        sock: socket.socket,
        peer: str,
        host: str,
        owner: Owner,
        bucket: TokenBucket | None,
    ) -> None:
        self.reactor = reactor
        self.sock = sock
        self.peer = peer
        self.host = host  # the peer's address, counted against max_per_host
        #: The listener it came through, or the Outbound that dialled it.
        self.owner = owner
        limits = owner.limits
        self.inbuf: Framer = InputBuffer(limits.max_line_bytes)
        self.outbuf = OutputBuffer(limits.sendq_bytes)
        self.bucket = bucket  # flood control, or None
        self.paused = False  # flood control has stopped reading for now
        self.groups: set[Group] = set()  # the fan-out groups it is in (chat: once named)
        #: A fan-out batch to send at the end of the iteration, when it is all
        #: this connection gets then (so it costs one send(), no queueing).
        self.pending: bytes | None = None
        self.mask = 0  # events registered with the selector now
        self.dirty = False  # queued for the end-of-iteration flush
        self.closing = False  # a close was requested: read no more, drain, close
        self.closed = False
        self.doomed = ""  # set: abort at the next flush, for this reason
        #: The socket is closed, but lines read from it are still being handled
        #: (at flood control's pace): the session ends when they are done.
        self.gone = False
        self.reason = ""  # why it is closing, told to the handler at the end
        self.told = False  # the handler has been told it ended (once)
        self.linger: Timer | None = None
        #: Dialled and not up yet (None: up, or accepted).
        self.dial: Dial | None = None
        #: TLS (a TLS listener's connection): the session, what it has sealed
        #: for the peer and the kernel has not taken yet (``outbuf`` holds the
        #: plain bytes until the handshake is done), and the handshake's deadline.
        self.tls: TlsSession | None = None
        self.sealed: OutputBuffer | None = None
        self.tls_timer: Timer | None = None

    # -- the Link interface (called by the handler; never calls back into it) --

    def send(self, data: bytes) -> None:
        if self.groups:
            catch_up(self)  # what was broadcast before this goes first
        self.deliver(data)

    def deliver(self, data: bytes | memoryview) -> None:
        if self.closing or self.doomed or self.gone:
            return
        pending = self.pending
        if pending is not None:  # more than one batch this iteration: queue both
            self.pending = None
            self.outbuf.append(pending)
        if not self.outbuf.append(data):
            self.reactor._doom(self, "sendq exceeded")
        elif not self.dirty:
            self.dirty = True
            self.reactor._dirty.append(self)

    def deliver_batch(self, data: bytes) -> None:
        if (
            self.dirty
            or self.pending is not None
            or self.outbuf
            or self.closing
            or self.doomed
            or self.dial is not None  # not up yet: it waits in the queue
            or self.tls is not None  # sealed at the flush, with the rest
        ):
            self.deliver(data)  # behind what is queued: the flush writes it all at once
        elif not self.gone:
            self.pending = data
            self.reactor._pending.append(self)

    def close(self) -> None:
        self.reactor._close(self, "closed by server")
