"""The reactor: the loop that serves every socket.

Rule: the reactor's modules (this one, chatd.core.listeners and
chatd.core.connection) alone import socket and selectors; everything else in
chatd is sans-IO. One thread, one selector, and no call that can block on a
client. The loop reads what is there, hands clean lines to the handler of the
listener the connection came in on (the hub for chat, the admin service for
the admin socket), and writes what the handler queued. Everything else (who
gets what, what a line means) is the handler's.

The reactor is cut in three, the arrows running one way (reactor ->
connection -> listeners):

* chatd.core.listeners: the listening sockets and admission (accept, refuse,
  per-host counts, pausing for want of descriptors, the admin's reserve);
* chatd.core.connection: one client's socket, buffers and state, as the Link
  its handler holds; it asks this loop for what it needs through a protocol;
* here: the loop (select, read, flush and write, timers, signals), and closing
  and shutting down, which touch all of the above.

How a loop iteration goes (after CPython asyncio's selector transports):

1. select() until a socket is ready or the next timer is due;
2. readable sockets: recv once in a large chunk, split and decode the lines,
   give them to the hub; the hub queues output on the links it wants to reach.
   With flood control, a connection out of tokens is not read again until it
   has earned one (its unread input waits in the kernel);
3. due timers run (they may queue output too);
4. the fan-out groups hand out this iteration's broadcast batch: a connection
   with nothing queued gets it with one send() right there, no queueing; then
   every other connection that got output is flushed with one sendmsg() over
   its queued chunks. Unsent bytes stay queued and the socket is registered
   for write readiness; once drained, it is unregistered again.

So a client gets one system call per loop iteration however many lines are
queued for it, and a client that stops reading only grows its own queue, up to
its sendq limit, at which point it is disconnected.

Closing: a requested close (quit, shutdown, end of input) stops reading, lets the
queue drain for at most CLOSE_LINGER_SECONDS, then closes. An abort (a socket
error, sendq exceeded) closes the socket at once and drops the queue; lines
already read from it are still handed to the handler, at flood control's pace,
before it hears the connection ended. BlockingIOError means "not now"; any
other socket error ends that one connection, never the loop.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Final

from chatd.core.buffers import OVERLONG
from chatd.core.connection import Connection
from chatd.core.fanout import Fanout, Group
from chatd.core.flood import TokenBucket
from chatd.core.link import Framing, Handler
from chatd.core.listeners import (
    ACCEPT_BATCH,
    ACCEPT_RETRY_SECONDS,
    BACKLOG,
    NO_LIMITS,
    RECV_BYTES,
    Admission,
    Limits,
    Listener,
    Tally,
    format_address,
    open_tcp,
    open_unix,
)
from chatd.core.stats import LoopTimes, Stats
from chatd.core.timers import Timers

# The loop's names, and its parts' names that were defined here before the
# reactor was cut in three: the server, the tests and the benchmarks import
# them from here.
__all__ = [
    "ACCEPT_BATCH",
    "ACCEPT_RETRY_SECONDS",
    "BACKLOG",
    "CLOSE_DRAIN_READS",
    "CLOSE_LINGER_SECONDS",
    "IOV_MAX",
    "MAX_SELECT_SECONDS",
    "RECV_BYTES",
    "SHUTDOWN_FLUSH_SECONDS",
    "Connection",
    "Limits",
    "Listener",
    "Reactor",
    "Tally",
    "format_address",
]

log = logging.getLogger(__name__)

#: How long a closing connection may take to drain its output before it is cut.
CLOSE_LINGER_SECONDS: Final = 5.0
#: How long shutdown waits for every client's output to drain.
SHUTDOWN_FLUSH_SECONDS: Final = 3.0
#: The longest one select() waits when a timer is due later than that: epoll
#: takes its timeout in int milliseconds (about 24 days at most), and waking an
#: idle server once an hour to look at its timers again costs nothing.
MAX_SELECT_SECONDS: Final = 3600.0
#: Most buffers one sendmsg() takes (Linux: 1024).
IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16

#: The byte request_stop() writes to the wake-up socket; signal numbers are never 0.
_STOP = 0
#: The byte call_soon_threadsafe() writes: past every signal number (at most 64).
_CALL = 255
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


#: Reads a closing connection's unread input may take before it is closed.
CLOSE_DRAIN_READS: Final = 16


def _drain_and_shut(sock: socket.socket) -> None:
    """Before a requested close: send FIN, then read what the peer sent and we
    will never handle. Closing a socket with unread input sends a reset instead
    of a FIN, and the reset can destroy our last line (a goodbye, a kick
    notice) before the peer reads it. Bounded: a peer still sending can't hold
    the loop here."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        for _ in range(CLOSE_DRAIN_READS):
            if not sock.recv(RECV_BYTES):
                break


#: Socket errors as the leave reasons the README lists. A broken pipe is the
#: peer gone before we wrote (it reset, or closed and then got our data): to the
#: others that is a reset.
_REASONS: Final = {
    errno.ECONNRESET: "connection reset by peer",
    errno.EPIPE: "connection reset by peer",
    errno.ECONNABORTED: "connection reset by peer",
    errno.ETIMEDOUT: "connection timed out",
    errno.EHOSTUNREACH: "connection timed out",
    errno.ENETUNREACH: "connection timed out",
}


def _reason(exc: OSError) -> str:
    """A socket error as a leave reason: "connection reset by peer"."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    text = exc.strerror or type(exc).__name__
    return "connection error: " + text[:1].lower() + text[1:]


class Reactor:
    def __init__(
        self,
        timers: Timers,
        *,
        shutdown_message: str = "Server shutting down. Goodbye!",
        on_reload: Callable[[], object] | None = None,
    ) -> None:
        self.on_reload = on_reload
        self.timers = timers
        self.shutdown_message = shutdown_message
        self.selector = selectors.DefaultSelector()
        self.connections: set[Connection] = set()
        self._dirty: list[Connection] = []
        self._pending: list[Connection] = []  # connections with only a batch to send
        #: The fan-out groups of this loop (the hub's rooms), flushed once per iteration.
        self.fanout = Fanout()
        self._stopping = False
        #: The listeners, and who gets in through them (with the admin's reserve
        #: descriptor, opened here).
        self._admission = Admission(
            self.selector, self.timers, admit=self._admit, stopping=lambda: self._stopping
        )
        # A socket pair that wakes select(): signal numbers arrive on it through
        # signal.set_wakeup_fd, and request_stop() writes to it from any thread.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, _READ, self._on_wake)
        self._old_signals: dict[int, object] = {}
        #: When the loop last turned (time.monotonic()): the stall watchdog reads it.
        self.turned = time.monotonic()
        #: The loop is waiting in select(): idle, not stalled, however long it waits.
        self.idle = False
        #: What other threads asked the loop to run (call_soon_threadsafe), in order.
        self._calls: collections.deque[Callable[[], object]] = collections.deque()
        #: Run at the end of every iteration, after its output is written.
        self._turn_hooks: list[Callable[[], object]] = []
        #: How long each iteration took, from select() returning to its last
        #: turn hook (on the timers' clock, which tests drive): for metrics.
        self.loop_times = LoopTimes()

    # -- setting up ------------------------------------------------------------

    def listen(
        self,
        host: str,
        port: int,
        handler: Handler,
        limits: Limits = NO_LIMITS,
        *,
        stats: Stats | None = None,
        tally: Tally | None = None,
        framing: Framing | None = None,
        name: str = "",
    ) -> Listener:
        """Serve TCP connections on (host, port) with ``handler``; listeners given
        one ``tally`` count their connections together against their limits;
        ``framing`` cuts their input into units other than lines; ``name``
        labels its counts ("nc", "irc", "web")."""
        sock = open_tcp(host, port)
        listener = Listener(
            sock, handler, limits, stats=stats, tally=tally, framing=framing, name=name
        )
        return self._admission.add(listener)

    def listen_unix(
        self,
        path: str,
        handler: Handler,
        *,
        allowed_uids: frozenset[int],
        limits: Limits = NO_LIMITS,
        name: str = "",
    ) -> Listener:
        """Serve a Unix socket at ``path`` (mode 0600) to peers whose uid is allowed;
        ``name`` labels its counts ("admin").

        What is already at ``path`` is removed only if it is a stale socket
        (see :func:`~chatd.core.listeners.open_unix`); else FileExistsError.
        """
        sock = open_unix(path)
        listener = Listener(
            sock, handler, limits, stats=None, allowed_uids=allowed_uids, path=path, name=name
        )
        return self._admission.add(listener)

    @property
    def listeners(self) -> list[Listener]:
        """The listeners open now, in the order they were opened (their counts
        are what operators read)."""
        return list(self._admission.listeners)

    def group(self) -> Group:
        """A new fan-out group whose lines this loop hands out once per iteration."""
        return self.fanout.group()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM stop the server gracefully, SIGHUP reloads (main thread only)."""
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            # The handler does nothing: the C-level handler has already written
            # the signal number to the wake-up socket, which the loop reads.
            self._old_signals[signum] = signal.signal(signum, lambda *_: None)

    def call_soon_threadsafe(self, call: Callable[[], object]) -> None:
        """Run ``call`` on the loop's thread, soon (within the iteration the loop
        is in, or the next: the loop is woken). Safe from any thread: how work
        done elsewhere (a password hashed, a batch stored) comes back to the
        loop. An exception from it is logged; the loop goes on."""
        self._calls.append(call)  # deque.append is atomic; the wake-up comes after it
        # OSError: the pair is full (a wake-up is already pending) or closed (stopped).
        with contextlib.suppress(OSError):
            self._wake_w.send(bytes([_CALL]))

    def add_turn_hook(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` at the end of every loop iteration, after the iteration's
        output is written (the store hands over the iteration's lines there, in
        one batch). An exception from it is logged; the loop goes on."""
        self._turn_hooks.append(hook)

    def request_stop(self) -> None:
        """Ask the loop to shut down gracefully. Safe from any thread or signal handler."""
        # OSError: the pair is full (a wake-up is already pending) or closed (stopped).
        with contextlib.suppress(OSError):
            self._wake_w.send(bytes([_STOP]))

    # -- running ------------------------------------------------------------------

    def run(self) -> None:
        """Serve until asked to stop, then shut down gracefully and close everything."""
        try:
            while not self._stopping:
                self.run_once()
            self._shutdown()
        finally:
            self._close_all()

    def run_once(self, max_wait: float | None = None) -> None:
        self.turned = time.monotonic()  # for the stall watchdog, in its own thread
        timeout = self.timers.next_delay()
        if max_wait is not None:
            timeout = max_wait if timeout is None else min(timeout, max_wait)
        if timeout is not None:
            timeout = min(timeout, MAX_SELECT_SECONDS)
        self.idle = True
        ready = self.selector.select(timeout)
        self.turned = time.monotonic()  # before idle goes: the watchdog reads idle first
        self.idle = False
        clock = self.timers.clock
        busy_from = clock()
        for key, mask in ready:
            target = key.data
            try:
                if isinstance(target, Connection):
                    self._on_client(target, mask)
                else:
                    target(mask)
            except Exception:
                # A bug in our own code (the hub, or a plugin that escaped its
                # guard) costs that one connection, never the loop.
                log.exception("internal error serving %r", key.fileobj)
                if isinstance(target, Connection):
                    self._abort(target, "internal error")
        self.timers.run_due()
        if self._calls:
            self._run_calls()
        self._flush()
        for hook in self._turn_hooks:
            self._guarded(hook, "turn hook")
        self.loop_times.observe(clock() - busy_from)

    def _run_calls(self) -> None:
        calls = self._calls
        for _ in range(len(calls)):  # those queued now; later ones wake the loop again
            self._guarded(calls.popleft(), "call from another thread")

    @staticmethod
    def _guarded(call: Callable[[], object], what: str) -> None:
        try:
            call()
        except Exception:
            log.exception("internal error in a %s (%r)", what, call)

    # -- admitting -----------------------------------------------------------------

    def _admit(self, listener: Listener, sock: socket.socket, peer: str, host: str) -> None:
        """A connection its listener let in: read from it, and tell its handler."""
        limits = listener.limits
        bucket = None
        if limits.flood_rate > 0:
            bucket = TokenBucket(limits.flood_burst, limits.flood_rate, self.timers.clock())
        conn = Connection(self, sock, peer, host, listener, bucket)
        self.connections.add(conn)
        listener.opened(host)
        self._set_mask(conn, _READ)
        conn.session = listener.handler.connect(conn)
        if listener.framing is not None:
            conn.inbuf = listener.framing(conn.session)

    # -- reading -------------------------------------------------------------------

    def _on_client(self, conn: Connection, mask: int) -> None:
        if mask & _WRITE:
            self._write(conn)
        if mask & _READ and not (conn.closed or conn.closing or conn.paused):
            self._read(conn)

    def _read(self, conn: Connection) -> None:
        size = RECV_BYTES
        bucket = conn.bucket
        if bucket is not None:
            # Read no more than the lines it may send now can fill (at least
            # one line's worth): what a flooder sends past that waits in the
            # kernel, not in our memory.
            bucket.ready(self.timers.clock())
            room = conn.inbuf.max_line_bytes + 2
            size = min(RECV_BYTES, max(1, bucket.allowance()) * room)
        try:
            data = conn.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._abort(conn, _reason(exc), keep_input=True)
            return
        if not data:
            self._close(conn, "connection closed")
            conn.listener.handler.disconnect(conn.session, "connection closed")
            return
        listener = conn.listener
        listener.counts.bytes_in += len(data)
        if listener.stats is not None:
            listener.stats.bytes_in += len(data)
        conn.inbuf.feed(data)
        self._take_lines(conn)

    def _take_lines(self, conn: Connection) -> None:
        """Hand the connection's complete lines to its handler, as its bucket allows."""
        inbuf, bucket = conn.inbuf, conn.bucket
        handler, session = conn.listener.handler, conn.session
        while not (conn.closing or conn.doomed):  # it may quit, or be cut off, part-way
            if bucket is not None and not bucket.ready(self.timers.clock()):
                if inbuf.has_line():
                    self._pause_reading(conn, bucket)
                return
            line = inbuf.next_line()
            if line is None:
                return
            if bucket is not None:
                bucket.take()
            if line is OVERLONG:
                handler.line_too_long(session, inbuf.max_line_bytes)
            else:
                handler.receive_line(session, line)

    def _pause_reading(self, conn: Connection, bucket: TokenBucket) -> None:
        """Out of tokens: stop reading until the next one is earned (backpressure)."""
        conn.paused = True
        self._set_mask(conn, conn.mask & ~_READ)
        self.timers.call_later(bucket.wait(), lambda: self._resume_reading(conn))
        if not bucket.slowed:
            bucket.slowed = True
            conn.listener.counts.flood_slowdowns += 1
            conn.listener.handler.slowed(conn.session, bucket.rate)

    def _resume_reading(self, conn: Connection) -> None:
        if conn.closed or conn.closing:
            return
        conn.paused = False
        self._take_lines(conn)
        if conn.gone:
            self._end_if_handled(conn)
        elif not (conn.paused or conn.closing or conn.closed):
            self._set_mask(conn, conn.mask | _READ)

    # -- writing -------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what this iteration queued: one sendmsg per connection."""
        # A connection that fails while being written to is reported to its
        # handler at once, and what the handler says about it ("alice left")
        # goes out in this same iteration: hence the loop.
        while True:
            self.fanout.flush()
            if self._pending:
                pending, self._pending = self._pending, []
                for conn in pending:
                    data = conn.pending
                    if data is not None and not conn.closed:
                        conn.pending = None
                        self._send_now(conn, data)
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, []
            for conn in dirty:
                conn.dirty = False
                if conn.closed:
                    continue
                if conn.doomed:
                    self._abort(conn, conn.doomed, keep_input=True)
                else:
                    self._write(conn)

    def _send_now(self, conn: Connection, data: bytes) -> None:
        """Write ``data`` to a connection with nothing else queued (a fan-out
        batch): the common case of a broadcast costs one send() and no
        queueing. What the kernel does not take is queued. A failure is dealt
        with in the flush's write pass, with the other aborts."""
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._doom(conn, _reason(exc))
            return
        listener = conn.listener
        listener.counts.bytes_out += sent
        if listener.stats is not None:
            listener.stats.bytes_out += sent
        if sent < len(data):  # the socket is full: queue the rest until it drains
            if conn.outbuf.append(memoryview(data)[sent:]):
                self._set_mask(conn, conn.mask | _WRITE)
            else:
                self._doom(conn, "sendq exceeded")

    def _doom(self, conn: Connection, reason: str) -> None:
        """Abort ``conn`` for ``reason`` in the flush's write pass."""
        conn.doomed = reason
        if not conn.dirty:
            conn.dirty = True
            self._dirty.append(conn)

    def _write(self, conn: Connection) -> None:
        out = conn.outbuf
        if out:
            try:
                chunks = out.peek(IOV_MAX)
                # One chunk (a batch of broadcast lines, most of the time): send()
                # costs less than building sendmsg()'s vector.
                sent = conn.sock.send(chunks[0]) if len(chunks) == 1 else conn.sock.sendmsg(chunks)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._abort(conn, _reason(exc), keep_input=True)
                return
            out.consume(sent)
            listener = conn.listener
            listener.counts.bytes_out += sent
            if listener.stats is not None:
                listener.stats.bytes_out += sent
        if out:
            self._set_mask(conn, conn.mask | _WRITE)
        elif conn.closing:
            self._finish(conn, graceful=True)
        elif conn.mask & _WRITE:
            self._set_mask(conn, conn.mask & ~_WRITE)

    def _set_mask(self, conn: Connection, mask: int) -> None:
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self.selector.register(conn.sock, mask, conn)
        elif mask == 0:
            self.selector.unregister(conn.sock)
        else:
            self.selector.modify(conn.sock, mask, conn)
        conn.mask = mask

    # -- closing -------------------------------------------------------------------

    def _close(self, conn: Connection, reason: str) -> None:
        """Read no more; close once the output has drained or the linger time is up."""
        if conn.closing or conn.closed:
            return
        conn.closing = True
        conn.reason = reason
        self._set_mask(conn, conn.mask & ~_READ)
        conn.linger = self.timers.call_later(
            CLOSE_LINGER_SECONDS, lambda: self._abort(conn, reason + ", output not drained")
        )
        if not conn.dirty:
            conn.dirty = True
            self._dirty.append(conn)

    def _abort(self, conn: Connection, reason: str, *, keep_input: bool = False) -> None:
        """Close now and drop whatever was queued for the peer.

        With ``keep_input`` (the socket failed: a reset, a broken pipe, sendq
        exceeded), lines already read from it and not yet handled are still
        handled, at the pace flood control allows, before the handler hears
        that the connection ended: a line the server has read is never lost.
        """
        if conn.closed:
            return
        if reason == "sendq exceeded":
            conn.listener.counts.sendq_disconnects += 1
            log.warning(
                "%s: disconnected, sendq exceeded (%d bytes queued)", conn.peer, len(conn.outbuf)
            )
        conn.outbuf.clear()
        conn.pending = None
        conn.reason = reason
        lines_wait = keep_input and conn.inbuf.has_line()
        if lines_wait and not (conn.gone or conn.closing or self._stopping):
            self._orphan(conn)
            return
        self._finish(conn)

    def _orphan(self, conn: Connection) -> None:
        """The socket is gone but read lines wait: close it, go on with the lines."""
        conn.gone = True
        conn.doomed = ""  # its lines are still to be taken
        self._set_mask(conn, 0)
        conn.sock.close()  # the descriptor is free at once
        if not conn.paused:  # else the resume timer takes them, as before
            # Taken in the next iteration, not now: this may be the middle of a
            # flush, which must not call back into the handler with lines.
            conn.paused = True
            self.timers.call_later(0, lambda: self._resume_reading(conn))

    def _end_if_handled(self, conn: Connection) -> None:
        """End a gone connection once no line of it waits (or it quit meanwhile)."""
        if not (conn.closed or conn.closing or conn.paused):
            self._finish(conn)

    def _finish(self, conn: Connection, *, graceful: bool = False) -> None:
        conn.closed = True
        conn.closing = True
        if conn.linger is not None:
            conn.linger.cancel()
        self._set_mask(conn, 0)
        if graceful and not conn.gone:
            _drain_and_shut(conn.sock)
        conn.sock.close()
        self._admission.freed()
        self.connections.discard(conn)
        listener = conn.listener
        listener.closed(conn.host)
        listener.handler.disconnect(conn.session, conn.reason)

    # -- stopping ------------------------------------------------------------------

    def _on_wake(self, mask: int) -> None:
        try:
            data = self._wake_r.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum == _CALL:
                continue  # the calls run at the end of this iteration
            if signum in (_STOP, signal.SIGINT, signal.SIGTERM) and not self._stopping:
                why = (
                    "asked to stop"
                    if signum == _STOP
                    else f"received {signal.Signals(signum).name}"
                )
                log.info("%s: shutting down", why)
                self._stopping = True
            elif signum == signal.SIGHUP and self.on_reload is not None:
                log.info("received SIGHUP: reloading")
                self.on_reload()

    def _shutdown(self) -> None:
        listeners = self._admission.listeners
        handlers = {id(listener.handler): listener.handler for listener in listeners}
        self._admission.close_listeners()
        # The handler listened with last goes first: a gateway beside the hub
        # (IRC) closes its connections with its own goodbye before the hub
        # tells everyone left (what is sent to a closed connection is dropped).
        for handler in reversed(handlers.values()):
            handler.shutdown(self.shutdown_message)
        self._flush()
        deadline = self.timers.clock() + SHUTDOWN_FLUSH_SECONDS
        while self.connections and (left := deadline - self.timers.clock()) > 0:
            self.run_once(max_wait=left)

    def _close_all(self) -> None:
        for conn in list(self.connections):
            self._abort(conn, "server shutdown")
        self._admission.close_listeners()
        if self._old_signals:
            signal.set_wakeup_fd(-1)
            for signum, handler in self._old_signals.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            self._old_signals.clear()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._admission.close_spare()
