"""The reactor: the loop that serves every socket.

Rule: the reactor's modules (this one, chatd.core.listeners and
chatd.core.connection) alone import socket and selectors; everything else in
chatd is sans-IO. One thread, one selector, and no call that can block on a
client. The loop reads what is there, hands clean lines to the handler of the
listener the connection came in on (the hub for chat, the admin service for
the admin socket), and writes what the handler queued. Everything else (who
gets what, what a line means) is the handler's.

The loop dials out too (:meth:`Reactor.connect`: the Redis backplane's
connections), and serves what it dialled like any other socket: the same
reads, writes, limits and ends, with an Outbound owner where an accepted
connection has its listener.

The reactor is cut in three, the arrows running one way (reactor ->
connection -> listeners):

* chatd.core.listeners: the listening sockets and admission (accept, refuse,
  per-host counts, pausing for want of descriptors, the admin's reserve), the
  Outbound owner of dialled connections and the sockets they dial with;
* chatd.core.connection: one connection's socket, buffers and state, as the
  Link its handler holds; it asks this loop for what it needs through a protocol;
* here: the loop (select, read, flush and write, timers, signals), dialling,
  and closing and shutting down, which touch all of the above.

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
other socket error ends that one connection, never the loop. Whichever way a
connection ends, its handler's disconnect() is called exactly once.

Dialling: connect() never waits. A numeric address is connected to at once
(non-blocking: the loop waits for the socket to become writable, then reads
SO_ERROR); a name is looked up on a thread of its own. Each address is tried
in turn, all within one timeout on the timers. Until the connection is up,
what its handler sends is queued, and written once it is.
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
import threading
import time
from collections.abc import Callable
from typing import Final

from chatd.core.buffers import OVERLONG, RECV_BYTES, OutputBuffer
from chatd.core.connection import Connection, Dial
from chatd.core.fanout import Fanout, Group
from chatd.core.flood import TokenBucket
from chatd.core.link import Framing, Handler, Link
from chatd.core.listeners import (
    ACCEPT_BATCH,
    ACCEPT_RETRY_SECONDS,
    BACKLOG,
    NO_LIMITS,
    Address,
    Admission,
    Limits,
    Listener,
    Outbound,
    Tally,
    Tls,
    format_address,
    notify_service,
    numeric_addresses,
    open_dial,
    open_tcp,
    open_unix,
    resolve,
)
from chatd.core.stats import LoopTimes, Stats
from chatd.core.timers import Timers
from chatd.wire.tls import TlsError, TlsSession

# The loop's names, and its parts' names that were defined here before the
# reactor was cut in three: the server, the tests and the benchmarks import
# them from here.
__all__ = [
    "ACCEPT_BATCH",
    "ACCEPT_RETRY_SECONDS",
    "BACKLOG",
    "CLOSE_DRAIN_READS",
    "CLOSE_LINGER_SECONDS",
    "CONNECT_TIMEOUT_SECONDS",
    "IOV_MAX",
    "MAX_SELECT_SECONDS",
    "RECV_BYTES",
    "SHUTDOWN_FLUSH_SECONDS",
    "Connection",
    "Limits",
    "Listener",
    "Outbound",
    "Reactor",
    "Tally",
    "Tls",
    "format_address",
    "notify_service",
]

log = logging.getLogger(__name__)

#: How long a closing connection may take to drain its output before it is cut.
CLOSE_LINGER_SECONDS: Final = 5.0
#: What one read of a TLS connection takes at most: a full record and its
#: overhead. A peer sending records of one byte each makes every record cost
#: a decryption: this bounds what one connection costs the loop per turn.
TLS_RECV_BYTES: Final = 17 * 1024
#: What TLS adds to a connection's sendq while its output waits sealed in
#: records: a record's header and tag on every 16 KiB at most, and a
#: handshake's flight (a certificate chain) before anything.
TLS_SLACK_BYTES: Final = 64 * 1024
#: How long shutdown waits for every client's output to drain.
SHUTDOWN_FLUSH_SECONDS: Final = 3.0
#: How long connect() waits for a connection to come up (the name looked up,
#: every address tried) before it gives up. Redis on the same network answers
#: in a millisecond; a host silent for 5 s is down or its packets are dropped,
#: and the kernel would go on resending the SYN for about two minutes. The
#: handler dials again on its own timers.
CONNECT_TIMEOUT_SECONDS: Final = 5.0
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


#: Why a connect() failed, as its handler is told.
_DIAL_REASONS: Final = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
}

#: connect_ex() results that mean "under way": the socket becomes writable when
#: it is done (0: done already, which loopback may be).
_DIALLING: Final = frozenset({0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EINTR})

#: getaddrinfo() errors that mean the name has no address.
_NO_SUCH_NAME: Final = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def _dial_reason(code: int) -> str:
    """A failed attempt's errno as a reason: "connection refused"."""
    return _DIAL_REASONS.get(code) or _reason(OSError(code, os.strerror(code)))


def _lookup_reason(host: str, exc: Exception) -> str:
    """A failed lookup of ``host`` as a reason: "name not found: redis.local"."""
    if isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_NAME:
        return f"name not found: {host}"
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return f"name lookup failed for {host}: {text[:1].lower()}{text[1:]}"


class Reactor:
    def __init__(
        self,
        timers: Timers,
        *,
        shutdown_message: str = "Server shutting down. Goodbye!",
        on_reload: Callable[[], object] | None = None,
        on_stopping: Callable[[], object] | None = None,
    ) -> None:
        self.on_reload = on_reload
        #: Called once the shutdown begins (the service manager is told).
        self.on_stopping = on_stopping
        self.timers = timers
        self.shutdown_message = shutdown_message
        self.selector = selectors.DefaultSelector()
        #: The connections the listeners let in (the clients).
        self.connections: set[Connection] = set()
        #: The connections connect() dialled, up or on their way.
        self.outbound_connections: set[Connection] = set()
        #: Their owners, one per (handler, name), in the order first dialled.
        self._outbound: dict[tuple[int, str], Outbound] = {}
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
        #: What a dialled connection's socket is before its first attempt opens
        #: one: closed (closing it again does nothing), and never registered.
        self._unopened = socket.socket()
        self._unopened.close()
        self._old_signals: dict[int, object] = {}
        #: When the loop last turned (time.monotonic()): the stall watchdog reads it.
        self.turned = time.monotonic()
        #: The loop is waiting in select(): idle, not stalled, however long it waits.
        self.idle = False
        #: What other threads asked the loop to run (call_soon_threadsafe), in order.
        self._calls: collections.deque[Callable[[], object]] = collections.deque()
        #: Run at the end of every iteration, after its output is written.
        self._turn_hooks: list[Callable[[], object]] = []
        #: Run at the end of every iteration, before its output is written.
        self._flush_hooks: list[Callable[[], object]] = []
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
        tls: Tls | None = None,
    ) -> Listener:
        """Serve TCP connections on (host, port) with ``handler``; listeners given
        one ``tally`` count their connections together against their limits;
        ``framing`` cuts their input into units other than lines; ``name``
        labels its counts ("nc", "irc", "web"); ``tls``: over TLS."""
        sock = open_tcp(host, port)
        listener = Listener(
            sock, handler, limits, stats=stats, tally=tally, framing=framing, name=name, tls=tls
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

    @property
    def outbound(self) -> list[Outbound]:
        """The owners of the connections connect() dialled, one per (handler,
        name), in the order first dialled: their counts (metrics) run across
        reconnects."""
        return list(self._outbound.values())

    def connect(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        framing: Framing | None = None,
        limits: Limits = NO_LIMITS,
        name: str = "",
        timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> Link:
        """Open a TCP connection to (host, port), served by ``handler``; never waits.

        ``handler.connect(link)`` is called before this returns, with the
        connection not up yet: what it sends meanwhile is queued and written
        once it is (a client's hello can go at once). ``framing`` cuts its
        input as a listener's does (:func:`chatd.core.buffers.chunks`: each read
        as it came). ``host`` is an IPv4 or IPv6 address or a name, looked up
        off the loop; each address is tried in turn, within ``timeout``
        seconds in all. A connection that fails to come up, or ends, is told
        to ``handler.disconnect(session, reason)`` exactly once, later, never
        from inside this call: "connection refused", "connect timed out after
        5s", "name not found: HOST", then as for accepted connections
        ("connection closed", "sendq exceeded", ...).

        ``limits`` give its sendq; there is no flood control (a peer we dialled
        is not a user), and no chat limit counts it: its counts are those of
        its Outbound (:attr:`outbound`), one per (handler, ``name``). Dialling
        again after an end is the handler's (on its own timers), not the loop's.
        """
        if not 0 < port < 65536:
            raise ValueError(f"connect: port must be 1 to 65535, got {port}")
        if limits.flood_rate > 0:
            raise ValueError("connect: outbound connections have no flood control")
        if not timeout > 0:  # NaN too
            raise ValueError(f"connect: timeout must be positive, got {timeout!r}")
        owner = self._outbound.get((id(handler), name))
        if owner is None:
            owner = Outbound(handler, limits, framing=framing, name=name)
            self._outbound[id(handler), name] = owner
        else:
            owner.limits, owner.framing = limits, framing
        # Its socket is opened by the first attempt: a name's family is not known yet.
        conn = Connection(self, self._unopened, format_address((host, port)), host, owner, None)
        dial = conn.dial = Dial(host, port)
        self.outbound_connections.add(conn)
        try:
            conn.session = handler.connect(conn)
            if framing is not None:
                conn.inbuf = framing(conn.session)
        except BaseException:
            self.outbound_connections.discard(conn)
            raise
        # What goes wrong from here is told later, on the timers, never from
        # inside this call: the handler is in the middle of it.
        if self._stopping:
            self._fail_soon(conn, "server shutdown")
            return conn
        dial.timer = self.timers.call_later(
            timeout, lambda: self._abort(conn, f"connect timed out after {timeout:g}s")
        )
        addresses = numeric_addresses(host, port)
        if addresses is None:
            self._look_up(conn, host, port)
        else:
            dial.addresses.extend(addresses)
            if reason := self._dial_next(conn):
                self._fail_soon(conn, reason)
        return conn

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

    def add_turn_hook(self, hook: Callable[[], object], *, before_flush: bool = False) -> None:
        """Run ``hook`` at the end of every loop iteration, after the iteration's
        output is written (the store hands over the iteration's lines there, in
        one batch). With ``before_flush``, just before it is written instead:
        what the hook sends goes out in this iteration's writes (the backplane
        sends the iteration's entry to Redis there), where after them it would
        wait for whatever wakes the loop next. An exception from it is logged;
        the loop goes on."""
        (self._flush_hooks if before_flush else self._turn_hooks).append(hook)

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
        for hook in self._flush_hooks:
            self._guarded(hook, "turn hook")
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
        tls = listener.tls
        if tls is not None:
            conn.tls = TlsSession(tls.context)
            conn.sealed = OutputBuffer(limits.sendq_bytes + TLS_SLACK_BYTES)
            conn.tls_timer = self.timers.call_later(
                tls.handshake_timeout, lambda: self._handshake_late(conn, tls.handshake_timeout)
            )
        self._set_mask(conn, _READ)
        conn.session = listener.handler.connect(conn)
        if listener.framing is not None:
            conn.inbuf = listener.framing(conn.session)

    # -- reading -------------------------------------------------------------------

    def _on_client(self, conn: Connection, mask: int) -> None:
        if conn.closed:
            return  # ended by an earlier event of the same select()
        if conn.dial is not None:
            self._dialled(conn)
            return
        if mask & _WRITE:
            self._write(conn)
        if mask & _READ and not (conn.closed or conn.closing or conn.paused):
            self._read(conn)

    def _read(self, conn: Connection) -> None:
        size = RECV_BYTES if conn.tls is None else TLS_RECV_BYTES
        bucket = conn.bucket
        if bucket is not None:
            # Read no more than the lines it may send now can fill (at least
            # one line's worth): what a flooder sends past that waits in the
            # kernel, not in our memory.
            bucket.ready(self.timers.clock())
            room = conn.inbuf.max_line_bytes + 2
            size = min(size, max(1, bucket.allowance()) * room)
        try:
            data = conn.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._abort(conn, _reason(exc), keep_input=True)
            return
        if not data:
            self._close(conn, "connection closed")
            # Told now, not once the output has drained: the others hear at once.
            self._tell(conn, "connection closed")
            return
        owner = conn.owner
        owner.counts.bytes_in += len(data)
        if owner.stats is not None:
            owner.stats.bytes_in += len(data)
        if conn.tls is not None:
            data = self._unseal(conn, conn.tls, data)
            if conn.closed or conn.gone:
                return
        conn.inbuf.feed(data)
        self._take_lines(conn)
        if conn.tls is not None and conn.tls.closed and not conn.paused:
            self._peer_done(conn)  # (while paused: once its lines are taken)

    def _peer_done(self, conn: Connection) -> None:
        """The TLS peer said it is done (close_notify), and its lines are taken."""
        self._close(conn, "connection closed")
        self._tell(conn, "connection closed")

    def _unseal(self, conn: Connection, tls: TlsSession, data: bytes) -> bytes:
        """The plain bytes in ``data`` from a TLS peer; the handshake's
        answers are queued, and once it is done, what waited for it. A peer
        whose TLS fails is closed (logged once, with why)."""
        was_up = tls.up
        try:
            plain = tls.receive(data)
        except TlsError as exc:
            log.info("%s: TLS failed (%s); closed", conn.peer, exc)
            with contextlib.suppress(OSError):  # its alert, if the kernel takes it now
                conn.sock.send(tls.outgoing())
            # What came before the bad record is kept, as from a socket that failed.
            conn.inbuf.feed(exc.plain)
            self._take_lines(conn)
            self._abort(conn, f"TLS failed: {exc}", keep_input=True)
            return b""
        if tls.up and not was_up and conn.tls_timer is not None:
            conn.tls_timer.cancel()
            conn.tls_timer = None
        if tls.pending_bytes() or (tls.up and not was_up and conn.outbuf):
            self._mark_dirty(conn)
        return plain

    def _mark_dirty(self, conn: Connection) -> None:
        """Have ``conn`` written at this iteration's flush."""
        if not conn.dirty:
            conn.dirty = True
            self._dirty.append(conn)

    def _handshake_late(self, conn: Connection, timeout: float) -> None:
        conn.tls_timer = None
        if conn.closed or conn.tls is None or conn.tls.up:
            return
        log.info("%s: no TLS handshake within %gs; closed", conn.peer, timeout)
        self._abort(conn, "TLS handshake timed out")

    def _take_lines(self, conn: Connection) -> None:
        """Hand the connection's complete lines to its handler, as its bucket allows."""
        inbuf, bucket = conn.inbuf, conn.bucket
        handler, session = conn.owner.handler, conn.session
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
            conn.owner.counts.flood_slowdowns += 1
            conn.owner.handler.slowed(conn.session, bucket.rate)

    def _resume_reading(self, conn: Connection) -> None:
        if conn.closed or conn.closing:
            return
        conn.paused = False
        self._take_lines(conn)
        if conn.gone:
            self._end_if_handled(conn)
        elif conn.paused or conn.closing or conn.closed:
            pass
        elif conn.tls is not None and conn.tls.closed:
            self._peer_done(conn)  # it said it was done, and its last lines are taken
        else:
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
                elif conn.dial is None:
                    self._write(conn)
                elif conn.closing and not conn.outbuf:
                    self._finish(conn)  # closed before it was up, with nothing to say
                # else: not up yet; its output waits for it

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
        owner = conn.owner
        owner.counts.bytes_out += sent
        if owner.stats is not None:
            owner.stats.bytes_out += sent
        if sent < len(data):  # the socket is full: queue the rest until it drains
            if conn.outbuf.append(memoryview(data)[sent:]):
                self._set_mask(conn, conn.mask | _WRITE)
            else:
                self._doom(conn, "sendq exceeded")

    def _doom(self, conn: Connection, reason: str) -> None:
        """Abort ``conn`` for ``reason`` in the flush's write pass."""
        conn.doomed = reason
        self._mark_dirty(conn)

    def _seal(self, conn: Connection, tls: TlsSession) -> OutputBuffer | None:
        """A TLS connection's bytes for the peer: its plain output (once the
        handshake is done) sealed into records, after what was sealed and not
        yet sent; None if that passes its sendq (it is doomed)."""
        sealed = conn.sealed
        assert sealed is not None
        out = conn.outbuf
        if tls.up and out:
            try:
                while out:
                    chunks = out.peek(IOV_MAX)
                    tls.send(b"".join(chunks))
                    out.consume(sum(len(chunk) for chunk in chunks))
            except TlsError as exc:
                self._doom(conn, f"TLS failed: {exc}")
                return None
        if conn.closing and tls.up and not out:
            tls.close()  # close_notify, after the last of its output
        data = tls.outgoing()
        if data and not sealed.append(data):
            self._doom(conn, "sendq exceeded")
            return None
        return sealed

    def _write(self, conn: Connection) -> None:
        if conn.tls is None:
            out = conn.outbuf
        else:
            sealed = self._seal(conn, conn.tls)
            if sealed is None:
                return
            out = sealed
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
            owner = conn.owner
            owner.counts.bytes_out += sent
            if owner.stats is not None:
                owner.stats.bytes_out += sent
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
        self._mark_dirty(conn)

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
            conn.owner.counts.sendq_disconnects += 1
            queued = len(conn.outbuf) + (len(conn.sealed) if conn.sealed is not None else 0)
            log.warning("%s: disconnected, sendq exceeded (%d bytes queued)", conn.peer, queued)
        conn.outbuf.clear()
        if conn.sealed is not None:
            conn.sealed.clear()
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
        if conn.tls_timer is not None:
            conn.tls_timer.cancel()
        dial = conn.dial
        if dial is not None and dial.timer is not None:
            dial.timer.cancel()
        self._set_mask(conn, 0)
        if graceful and not conn.gone and dial is None:
            _drain_and_shut(conn.sock)
        conn.sock.close()
        self._admission.freed()
        self.connections.discard(conn)
        self.outbound_connections.discard(conn)
        if dial is None:  # it was up: counted in
            conn.owner.closed(conn.host)
        self._tell(conn, conn.reason)

    @staticmethod
    def _tell(conn: Connection, reason: str) -> None:
        """Tell the handler its connection ended, the first time only."""
        if not conn.told:
            conn.told = True
            conn.owner.handler.disconnect(conn.session, reason)

    # -- dialling ------------------------------------------------------------------

    def _fail_soon(self, conn: Connection, reason: str) -> None:
        """End a connection that is not up, for ``reason``, on the timers (from
        inside connect(), which its handler is still calling)."""
        self.timers.call_later(0, lambda: self._abort(conn, reason))

    def _look_up(self, conn: Connection, host: str, port: int) -> None:
        """Find ``host``'s addresses on a thread of its own: DNS may take seconds."""
        done = self._looked_up

        def look_up() -> None:
            # This thread touches nothing but its own result: it waits for
            # getaddrinfo, then hands the answer (or the error) to the loop,
            # which alone looks at the connection. No socket, no handler, no
            # loop state. It ends with the lookup: a daemon, so a lookup still
            # waiting on DNS never holds up the process's exit.
            result: list[Address] | Exception
            try:
                result = resolve(host, port)
            except (OSError, UnicodeError) as exc:  # UnicodeError: a label IDNA refuses
                result = exc
            self.call_soon_threadsafe(lambda: done(conn, result))

        threading.Thread(target=look_up, name=f"chatd lookup {host}", daemon=True).start()

    def _looked_up(self, conn: Connection, result: list[Address] | Exception) -> None:
        dial = conn.dial
        if conn.closed or dial is None:
            return  # timed out, closed or shut down meanwhile
        if isinstance(result, Exception):
            self._abort(conn, _lookup_reason(dial.host, result))
            return
        dial.addresses.extend(result)
        dial.error = f"name not found: {dial.host}"  # if it had no address at all
        if reason := self._dial_next(conn):
            self._abort(conn, reason)

    def _dial_next(self, conn: Connection) -> str:
        """Start connecting to the next address left; "" once an attempt is
        under way, else why the last one failed (none is left)."""
        dial = conn.dial
        assert dial is not None
        while dial.addresses:
            family, address = dial.addresses.popleft()
            self._set_mask(conn, 0)
            conn.sock.close()  # a failed attempt's socket is not used again
            conn.sock = self._unopened  # until the next one is open
            try:
                conn.sock = open_dial(family)
                code = conn.sock.connect_ex(address)
            except OSError as exc:  # no descriptor left, no such family here
                dial.error = _reason(exc)
                continue
            if code in _DIALLING:
                self._set_mask(conn, _WRITE)  # writable: the attempt is over
                return ""
            dial.error = _dial_reason(code)
        return dial.error

    def _dialled(self, conn: Connection) -> None:
        """The socket being connected became writable: the attempt is over."""
        try:
            code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            code = exc.errno or errno.EIO
        dial = conn.dial
        assert dial is not None
        if code:
            dial.error = _dial_reason(code)
            if reason := self._dial_next(conn):
                self._abort(conn, reason)
            return
        conn.dial = None
        if dial.timer is not None:
            dial.timer.cancel()
        with contextlib.suppress(OSError):  # reset already: the next read says so
            conn.host = conn.sock.getpeername()[0]
        conn.owner.opened(conn.host)
        self._set_mask(conn, 0 if conn.closing else _READ)
        if conn.outbuf or conn.closing:
            self._write(conn)  # what was queued meanwhile; a requested close

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
        if self.on_stopping is not None:
            self.on_stopping()
        listeners = self._admission.listeners
        handlers = {id(listener.handler): listener.handler for listener in listeners}
        self._admission.close_listeners()
        # The handler listened with last goes first: a gateway beside the hub
        # (IRC) closes its connections with its own goodbye before the hub
        # tells everyone left (what is sent to a closed connection is dropped).
        for handler in reversed(handlers.values()):
            handler.shutdown(self.shutdown_message)
        # Then what dialled out (the backplane), in the order it first did: the
        # chat's goodbyes are queued, and its own last words (leases released)
        # go out on connections that close once they are written. One not up
        # yet has nothing to finish: it ends now.
        shut = set(handlers)
        for owner in self._outbound.values():
            if id(owner.handler) not in shut:
                shut.add(id(owner.handler))
                owner.handler.shutdown(self.shutdown_message)
        for conn in list(self.outbound_connections):
            if conn.dial is not None:
                self._abort(conn, "server shutdown")
            else:
                self._close(conn, "server shutdown")
        self._flush()
        deadline = self.timers.clock() + SHUTDOWN_FLUSH_SECONDS
        while (self.connections or self.outbound_connections) and (
            left := deadline - self.timers.clock()
        ) > 0:
            self.run_once(max_wait=left)

    def _close_all(self) -> None:
        for conn in [*self.connections, *self.outbound_connections]:
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
