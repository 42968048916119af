"""The reactor: the only module that imports socket and selectors.

Rule: one thread, one selector, and no call that can block on a client. It
accepts connections, reads what is there, hands clean lines to the handler of
the listener the connection came in on (the hub for chat, the admin service for
the admin socket), and writes what the handler queued. Everything else (who
gets what, what a line means) is the handler's.

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

Admission: a connection past the listener's max_connections or max_per_host
gets one line from its handler (handler.refused) and is closed before the
handler ever sees it.

Closing: a requested close (quit, shutdown, end of input) stops reading, lets the
queue drain for at most CLOSE_LINGER_SECONDS, then closes. An abort (a socket
error, sendq exceeded) closes the socket at once and drops the queue; lines
already read from it are still handed to the handler, at flood control's pace,
before it hears the connection ended. BlockingIOError means "not now"; any
other socket error ends that one connection, never the loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from chatd.core.buffers import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_SENDQ_BYTES,
    OVERLONG,
    InputBuffer,
    OutputBuffer,
)
from chatd.core.fanout import Fanout, Group, catch_up
from chatd.core.flood import TokenBucket
from chatd.core.link import Handler
from chatd.core.stats import Stats
from chatd.core.timers import Timer, Timers
from chatd.wire.text import decode_line

log = logging.getLogger(__name__)

#: Bytes asked of recv() at once: large, so a busy client costs one call per
#: loop iteration, not one per line.
RECV_BYTES: Final = 64 * 1024
#: Connections accepted per readiness event before the loop serves others again.
ACCEPT_BATCH: Final = 64
#: Listen backlog; the kernel caps it at net.core.somaxconn.
BACKLOG: Final = 1024
#: How long a closing connection may take to drain its output before it is cut.
CLOSE_LINGER_SECONDS: Final = 5.0
#: How long shutdown waits for every client's output to drain.
SHUTDOWN_FLUSH_SECONDS: Final = 3.0
#: The longest one select() waits when a timer is due later than that: epoll
#: takes its timeout in int milliseconds (about 24 days at most), and waking an
#: idle server once an hour to look at its timers again costs nothing.
MAX_SELECT_SECONDS: Final = 3600.0
#: When accept() fails for want of file descriptors, wait this long before trying
#: again instead of spinning on a listener that stays readable.
ACCEPT_RETRY_SECONDS: Final = 0.5
#: Most buffers one sendmsg() takes (Linux: 1024).
IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16

#: The byte request_stop() writes to the wake-up socket; signal numbers are never 0.
_STOP = 0
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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


def _open_spare() -> int | None:
    """A descriptor to hold in reserve (see Reactor._spare), or None if none is free."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) or "local"


def _peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


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


@dataclass(frozen=True, slots=True)
class Limits:
    """What one listener allows each connection, and how many connections."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    sendq_bytes: int = DEFAULT_SENDQ_BYTES
    flood_burst: int = 0  # lines at once; 0 with flood_rate 0: no flood control
    flood_rate: float = 0.0  # lines a second after the burst
    max_connections: int = 0  # 0: no limit
    max_per_host: int = 0  # connections from one address; 0: no limit


class Listener:
    """A listening socket, what serves its connections, their limits and counts."""

    __slots__ = (
        "allowed_uids",
        "count",
        "full",
        "handler",
        "hosts",
        "limits",
        "noisy",
        "path",
        "paused",
        "sock",
        "stats",
        "watched",
    )

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        limits: Limits,
        *,
        stats: Stats | None,
        allowed_uids: frozenset[int] | None = None,
        path: str | None = None,
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.limits = limits  # replaceable; applies to connections accepted from then on
        self.stats = stats
        self.allowed_uids = allowed_uids  # Unix sockets: peers' uids let in (SO_PEERCRED)
        self.path = path  # Unix sockets: the file, removed on close
        self.count = 0  # connections open
        self.hosts: dict[str, int] = {}  # address -> connections open from it
        self.full = False  # refusing for max_connections (logged once per episode)
        self.noisy: set[str] = set()  # addresses refused for max_per_host, and logged
        self.watched = False  # registered with the selector
        self.paused = False  # accept() found no descriptor free: a retry is scheduled


class Connection:
    """One client socket with its buffers. Implements :class:`~chatd.core.link.Link`."""

    __slots__ = (
        "bucket",
        "closed",
        "closing",
        "dirty",
        "doomed",
        "gone",
        "groups",
        "host",
        "inbuf",
        "linger",
        "listener",
        "mask",
        "outbuf",
        "paused",
        "peer",
        "pending",
        "reactor",
        "reason",
        "session",
        "sock",
    )

    session: Any  # what the handler's connect() returned

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        peer: str,
        host: str,
        listener: Listener,
        bucket: TokenBucket | None,
    ) -> None:
        self.reactor = reactor
        self.sock = sock
        self.peer = peer
        self.host = host  # the peer's address, counted against max_per_host
        self.listener = listener
        limits = listener.limits
        self.inbuf = InputBuffer(limits.max_line_bytes)
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
        self.linger: Timer | None = None

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
        if self.dirty or self.pending is not None or self.outbuf or self.closing or self.doomed:
            self.deliver(data)  # behind what is queued: the flush writes it all at once
        elif not self.gone:
            self.pending = data
            self.reactor._pending.append(self)

    def close(self) -> None:
        self.reactor._close(self, "closed by server")


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
        self._listeners: list[Listener] = []
        self._accept_paused = False  # some listener is paused for want of descriptors
        self._stopping = False
        # One descriptor held in reserve for the admin socket: when the chat has
        # taken every descriptor, it is given up so an operator's connection can
        # be accepted, and taken back as soon as a descriptor is free again
        # (before the chat listener may accept more).
        self._spare: int | None = _open_spare()
        # A socket pair that wakes select(): signal numbers arrive on it through
        # signal.set_wakeup_fd, and request_stop() writes to it from any thread.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, _READ, self._on_wake)
        self._old_signals: dict[int, object] = {}
        #: When the loop last turned (time.monotonic()): the stall watchdog reads it.
        self.turned = time.monotonic()

    # -- setting up ------------------------------------------------------------

    def listen(
        self,
        host: str,
        port: int,
        handler: Handler,
        limits: Limits = Limits(),
        *,
        stats: Stats | None = None,
    ) -> Listener:
        """Serve TCP connections on (host, port) with ``handler``."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        return self._add_listener(Listener(sock, handler, limits, stats=stats))

    def listen_unix(
        self,
        path: str,
        handler: Handler,
        *,
        allowed_uids: frozenset[int],
        limits: Limits = Limits(),
    ) -> Listener:
        """Serve a Unix socket at ``path`` (mode 0600) to peers whose uid is allowed.

        Only a socket that no server answers on (a stopped server's leftover) is
        ever removed from ``path``. A live one raises FileExistsError (EADDRINUSE);
        anything else there, a symbolic link included, FileExistsError (EEXIST).
        """
        try:
            mode: int | None = os.lstat(path).st_mode  # a symbolic link is not followed
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISSOCK(mode):
            raise FileExistsError(errno.EEXIST, "something that is not a socket is there", path)
        if mode is not None:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.setblocking(False)  # a live server with a full backlog must not block us
            try:
                probe.connect(path)
                answered = True
            except BlockingIOError:  # its backlog is full: alive all the same
                answered = True
            except ConnectionRefusedError:
                answered = False
                os.unlink(path)  # stale: nobody is listening
            except FileNotFoundError:
                answered = False  # gone since we looked
            finally:
                probe.close()
            if answered:
                raise FileExistsError(errno.EADDRINUSE, "another server is answering there", path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the file is created 0600, never wider for a moment
        try:
            sock.bind(path)
            sock.listen(BACKLOG)
        except OSError:
            sock.close()  # not left for the garbage collector
            raise
        finally:
            os.umask(old_umask)
        listener = Listener(sock, handler, limits, stats=None, allowed_uids=allowed_uids, path=path)
        return self._add_listener(listener)

    def _add_listener(self, listener: Listener) -> Listener:
        listener.sock.setblocking(False)
        self._listeners.append(listener)
        self._watch_listener(listener)
        return listener

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
        for key, mask in self.selector.select(timeout):
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
        self._flush()

    # -- accepting -----------------------------------------------------------------

    def _on_accept(self, listener: Listener) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = listener.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_FDS:  # ECONNABORTED and friends: that one only
                    log.warning("accept failed: %s", exc.strerror)
                elif listener.path and self._spare is not None:
                    os.close(self._spare)  # the admin socket gets the reserve
                    self._spare = None
                    continue
                else:
                    self._pause_accepting(listener, exc)
                return
            if self._accept_paused:
                self._resume_accepting()
            sock.setblocking(False)
            if sock.family == socket.AF_UNIX:
                uid = _peer_uid(sock)
                if listener.allowed_uids is not None and uid not in listener.allowed_uids:
                    log.warning("admin socket: refused a connection from uid %s", uid)
                    sock.close()
                    continue
                host = peer = f"uid {uid}"
            else:
                host, peer = address[0], format_address(address)
                refusal = self._refusal(listener, host)
                if refusal:
                    self._refuse(listener, sock, refusal)
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._admit(listener, sock, peer, host)

    def _refusal(self, listener: Listener, host: str) -> str:
        """Why a new connection from ``host`` is turned away, or "" if it is not."""
        limits = listener.limits
        if limits.max_connections and listener.count >= limits.max_connections:
            if not listener.full:
                listener.full = True
                log.warning(
                    "server full (%d connections): refusing new ones", limits.max_connections
                )
            return "Server full."
        if limits.max_per_host and listener.hosts.get(host, 0) >= limits.max_per_host:
            if host not in listener.noisy:  # once until one of its connections ends
                listener.noisy.add(host)
                log.warning(
                    "%s: refusing connections, %d open from there", host, limits.max_per_host
                )
            return f"Too many connections from your address (at most {limits.max_per_host})."
        return ""

    def _refuse(self, listener: Listener, sock: socket.socket, reason: str) -> None:
        """Tell a connection why it is turned away, in one line, and close it."""
        if listener.stats is not None:
            listener.stats.refused += 1
        with contextlib.suppress(OSError):
            # What the client already sent is read first: closing a socket with
            # unread input sends a reset, which can destroy the line below
            # before the client reads it.
            sock.recv(RECV_BYTES)
        with contextlib.suppress(OSError):  # a fresh socket's buffer takes one line
            sock.send(listener.handler.refused(reason))
        sock.close()

    def _admit(self, listener: Listener, sock: socket.socket, peer: str, host: str) -> None:
        limits = listener.limits
        bucket = None
        if limits.flood_rate > 0:
            bucket = TokenBucket(limits.flood_burst, limits.flood_rate, self.timers.clock())
        conn = Connection(self, sock, peer, host, listener, bucket)
        self.connections.add(conn)
        listener.count += 1
        listener.hosts[host] = listener.hosts.get(host, 0) + 1
        if listener.stats is not None:
            listener.stats.opened()
        self._set_mask(conn, _READ)
        conn.session = listener.handler.connect(conn)

    def _pause_accepting(self, listener: Listener, exc: OSError) -> None:
        # The listener stays readable while the backlog holds connections, so
        # retrying at once would spin the loop at full CPU. Stop watching it for
        # a moment instead (only it: the others may still have room, the admin
        # socket its reserve); say so once per episode, not once per retry.
        if not self._accept_paused:
            self._accept_paused = True
            log.error(
                "accept failed: %s; pausing new connections, retrying every %.1fs",
                exc.strerror,
                ACCEPT_RETRY_SECONDS,
            )
        self._unwatch_listener(listener)
        if not listener.paused:  # one retry pending per listener
            listener.paused = True
            self.timers.call_later(ACCEPT_RETRY_SECONDS, lambda: self._retry_accepting(listener))

    def _retry_accepting(self, listener: Listener) -> None:
        if self._stopping or listener not in self._listeners:
            return
        if self._spare is None and (spare := _open_spare()) is not None:
            self._spare = spare  # the admin socket's reserve comes first
        if self._spare is None:  # still no descriptor free: try again later
            self.timers.call_later(ACCEPT_RETRY_SECONDS, lambda: self._retry_accepting(listener))
            return
        listener.paused = False
        self._watch_listener(listener)

    def _resume_accepting(self) -> None:
        """An accept worked: the episode is over once no listener waits to retry."""
        if not any(listener.paused for listener in self._listeners):
            self._accept_paused = False
            log.info("accepting connections again")

    def _watch_listener(self, listener: Listener) -> None:
        if not listener.watched:
            self.selector.register(listener.sock, _READ, lambda mask: self._on_accept(listener))
            listener.watched = True

    def _unwatch_listener(self, listener: Listener) -> None:
        if listener.watched:
            self.selector.unregister(listener.sock)
            listener.watched = False

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
        if conn.listener.stats is not None:
            conn.listener.stats.bytes_in += len(data)
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
                handler.receive(session, decode_line(line))

    def _pause_reading(self, conn: Connection, bucket: TokenBucket) -> None:
        """Out of tokens: stop reading until the next one is earned (backpressure)."""
        conn.paused = True
        self._set_mask(conn, conn.mask & ~_READ)
        self.timers.call_later(bucket.wait(), lambda: self._resume_reading(conn))
        if not bucket.slowed:
            bucket.slowed = True
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
        if conn.listener.stats is not None:
            conn.listener.stats.bytes_out += sent
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
            if conn.listener.stats is not None:
                conn.listener.stats.bytes_out += sent
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
        if self._spare is None:  # a descriptor is free: the admin's reserve first
            self._spare = _open_spare()
        self.connections.discard(conn)
        listener = conn.listener
        listener.count -= 1
        if listener.hosts[conn.host] == 1:
            del listener.hosts[conn.host]
        else:
            listener.hosts[conn.host] -= 1
        listener.noisy.discard(conn.host)
        if listener.full and listener.count < (listener.limits.max_connections or 1 << 62):
            listener.full = False
            log.info("no longer full: accepting new connections")
        if listener.stats is not None:
            listener.stats.closed()
        listener.handler.disconnect(conn.session, conn.reason)

    # -- stopping ------------------------------------------------------------------

    def _on_wake(self, mask: int) -> None:
        try:
            data = self._wake_r.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
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
        handlers = {id(listener.handler): listener.handler for listener in self._listeners}
        self._close_listeners()
        for handler in handlers.values():
            handler.shutdown(self.shutdown_message)
        self._flush()
        deadline = self.timers.clock() + SHUTDOWN_FLUSH_SECONDS
        while self.connections and (left := deadline - self.timers.clock()) > 0:
            self.run_once(max_wait=left)

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            self._unwatch_listener(listener)
            listener.sock.close()
            if listener.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(listener.path)
        self._listeners.clear()

    def _close_all(self) -> None:
        for conn in list(self.connections):
            self._abort(conn, "server shutdown")
        self._close_listeners()
        if self._old_signals:
            signal.set_wakeup_fd(-1)
            for signum, handler in self._old_signals.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            self._old_signals.clear()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
