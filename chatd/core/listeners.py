"""Listeners and admission: the sockets the loop listens on, and who gets in.

Rule: the reactor's modules (chatd.core.reactor, chatd.core.listeners,
chatd.core.connection) alone import socket and selectors; everything else in
chatd is sans-IO. This one opens the listening sockets, accepts, and decides
whether a new connection is let in; it knows nothing of a connection once it
is admitted (the loop's ``admit`` takes it from there) except the counts the
loop gives back through :meth:`Listener.closed` and :meth:`Admission.freed`.
It imports neither the loop nor the connection: the arrows point here.

Admission: a connection past the listener's max_connections or max_per_host
gets one line from its handler (handler.refused) and is closed before the
handler ever sees it. A Unix socket lets in only peers whose uid is allowed
(SO_PEERCRED), and is created 0600.

Out of descriptors: accept() failing with EMFILE and friends pauses that one
listener (it would stay readable and spin the loop) and retries every
ACCEPT_RETRY_SECONDS. One descriptor is held in reserve for the admin socket,
so an operator can still get in when the chat has taken all the others.

Outbound connections (the loop dialling out, as the Redis backplane does) have
an :class:`Outbound` owner instead of a listener: the same :class:`Owner`
shape to the loop (a handler, limits, framing, counts), without a socket,
admission or a tally, so a chat limit never counts them. The sockets they
dial with are opened here too (:func:`open_dial`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import ssl
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from chatd.core.buffers import DEFAULT_MAX_LINE_BYTES, DEFAULT_SENDQ_BYTES, RECV_BYTES
from chatd.core.link import Framing, Handler
from chatd.core.stats import Stats
from chatd.core.timers import Timers

log = logging.getLogger(__name__)

#: Connections accepted per readiness event before the loop serves others again.
ACCEPT_BATCH: Final = 64
#: Listen backlog; the kernel caps it at net.core.somaxconn.
BACKLOG: Final = 1024
#: When accept() fails for want of file descriptors, wait this long before trying
#: again instead of spinning on a listener that stays readable.
ACCEPT_RETRY_SECONDS: Final = 0.5

_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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


def _open_spare() -> int | None:
    """A descriptor to hold in reserve (see Admission.spare), or None if none is free."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


# -- opening listening sockets -------------------------------------------------------


def open_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket listening on (host, port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def notify_service(state: str) -> bool:
    """Tell the service manager ``state`` (systemd's sd_notify protocol:
    "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..." lines): one datagram
    to $NOTIFY_SOCKET, never waited for. False when there is none (not run
    as a Type=notify service) or it cannot be sent (logged)."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # "@": the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("systemd: cannot tell %s %r: %s", path, state.split("\n")[0], exc)
        return False
    return True


def open_unix(path: str) -> socket.socket:
    """A Unix socket listening at ``path``, created with mode 0600.

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
    return sock


#: Where one connect() attempt goes: the family of its socket, and its address.
Address = tuple[socket.AddressFamily, tuple[Any, ...]]


def numeric_addresses(host: str, port: int) -> list[Address] | None:
    """The addresses to connect to for (host, port) if ``host`` is a numeric
    IPv4 or IPv6 address (no lookup, so no wait); None if it is a name."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None
    return [(family, address) for family, _, _, _, address in infos]


def resolve(host: str, port: int) -> list[Address]:
    """The addresses a name stands for, in the order to try them. Blocks for
    as long as DNS takes: never call it on the loop's thread."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, address) for family, _, _, _, address in infos]


def open_dial(family: socket.AddressFamily) -> socket.socket:
    """A non-blocking TCP socket to connect() with. Nagle off: a pipelined
    command must not wait for the ACK of the one before (40 ms). Keepalive on:
    a peer gone without a word (its host powered off) is found out in the
    end, even if nothing is sent to it."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:
        sock.close()
        raise
    return sock


# -- one listener ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """What one listener allows each connection, and how many connections."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    sendq_bytes: int = DEFAULT_SENDQ_BYTES
    flood_burst: int = 0  # lines at once; 0 with flood_rate 0: no flood control
    flood_rate: float = 0.0  # lines a second after the burst
    max_connections: int = 0  # 0: no limit
    max_per_host: int = 0  # connections from one address; 0: no limit


#: A listener's limits when none are given: the buffers' defaults, no others.
NO_LIMITS: Final = Limits()


class Tally:
    """The connections open through one or more listeners, in all and per
    address: what max_connections and max_per_host are counted against. The
    chat's listeners (nc and IRC) share one, so that a limit is the server's,
    not each port's."""

    __slots__ = ("count", "full", "hosts", "noisy")

    def __init__(self) -> None:
        self.count = 0  # connections open
        self.hosts: dict[str, int] = {}  # address -> connections open from it
        self.full = False  # refusing for max_connections (logged once per episode)
        self.noisy: set[str] = set()  # addresses refused for max_per_host, and logged


class ListenerCounts:
    """What one listener has done since it started, for operators (metrics):
    plain integers, each bumped once where the loop already counts (an accept,
    a refusal, a close, a read, a write, a sendq disconnect, a flood slowed).
    ``open`` is this listener's own, where the tally's count is shared."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "flood_slowdowns",
        "open",
        "refused",
        "sendq_disconnects",
        "total",
    )

    def __init__(self) -> None:
        self.open = 0  # connections open now
        self.total = 0  # connections admitted
        self.refused = 0  # connections turned away (full, too many from one address, uid)
        self.bytes_in = 0
        self.bytes_out = 0
        self.sendq_disconnects = 0  # connections cut off for not reading their output
        self.flood_slowdowns = 0  # floods slowed down (once per flood, as its user is told)


class Tls:
    """A listener's TLS: the context new connections get (replaced on a
    reload: those already up keep theirs), and how long a handshake may take."""

    __slots__ = ("context", "handshake_timeout")

    def __init__(self, context: ssl.SSLContext, handshake_timeout: float) -> None:
        self.context = context
        self.handshake_timeout = handshake_timeout


class Listener:
    """A listening socket, what serves its connections, their limits and counts."""

    __slots__ = (
        "allowed_uids",
        "counts",
        "framing",
        "handler",
        "limits",
        "name",
        "path",
        "paused",
        "sock",
        "stats",
        "tally",
        "tls",
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
        tally: Tally | None = None,
        framing: Framing | None = None,
        name: str = "",
        tls: Tls | None = None,
    ) -> None:
        self.sock = sock
        #: What operators call it ("nc", "irc", "web", "admin"): its metrics' label.
        self.name = name
        self.counts = ListenerCounts()
        #: How its connections' input is cut into units (None: lines): given
        #: the session the handler's connect() returned, it returns its Framer.
        self.framing = framing
        self.handler = handler
        self.limits = limits  # replaceable; applies to connections accepted from then on
        self.stats = stats
        self.allowed_uids = allowed_uids  # Unix sockets: peers' uids let in (SO_PEERCRED)
        self.path = path  # Unix sockets: the file, removed on close
        self.tally = tally if tally is not None else Tally()  # shared with other listeners
        self.watched = False  # registered with the selector
        self.paused = False  # accept() found no descriptor free: a retry is scheduled
        #: TLS for its connections (None: plain).
        self.tls = tls

    @property
    def count(self) -> int:
        """Connections open through this listener and those it shares its tally with."""
        return self.tally.count

    def refusal(self, host: str) -> str:
        """Why a new connection from ``host`` is turned away, or "" if it is not."""
        limits, tally = self.limits, self.tally
        if limits.max_connections and tally.count >= limits.max_connections:
            if not tally.full:
                tally.full = True
                log.warning(
                    "server full (%d connections): refusing new ones", limits.max_connections
                )
            return "Server full."
        if limits.max_per_host and tally.hosts.get(host, 0) >= limits.max_per_host:
            if host not in tally.noisy:  # once until one of its connections ends
                tally.noisy.add(host)
                log.warning(
                    "%s: refusing connections, %d open from there", host, limits.max_per_host
                )
            return f"Too many connections from your address (at most {limits.max_per_host})."
        return ""

    def refuse(self, sock: socket.socket, reason: str) -> None:
        """Tell a connection why it is turned away, in one line, and close it."""
        self.counts.refused += 1
        if self.stats is not None:
            self.stats.refused += 1
        with contextlib.suppress(OSError):
            # What the client already sent is read first: closing a socket with
            # unread input sends a reset, which can destroy the line below
            # before the client reads it.
            sock.recv(RECV_BYTES)
        if self.tls is None:  # (over TLS, a plain line would be noise: just closed)
            with contextlib.suppress(OSError):  # a fresh socket's buffer takes one line
                sock.send(self.handler.refused(reason))
        sock.close()

    def opened(self, host: str) -> None:
        """A connection from ``host`` was admitted: count it."""
        tally = self.tally
        tally.count += 1
        tally.hosts[host] = tally.hosts.get(host, 0) + 1
        counts = self.counts
        counts.open += 1
        counts.total += 1
        if self.stats is not None:
            self.stats.opened()

    def closed(self, host: str) -> None:
        """A connection from ``host`` has ended: count it out."""
        tally = self.tally
        tally.count -= 1
        if tally.hosts[host] == 1:
            del tally.hosts[host]
        else:
            tally.hosts[host] -= 1
        tally.noisy.discard(host)
        self.counts.open -= 1
        if tally.full and tally.count < (self.limits.max_connections or 1 << 62):
            tally.full = False
            log.info("no longer full: accepting new connections")
        if self.stats is not None:
            self.stats.closed()


class Owner(Protocol):
    """What a connection came through, as the loop sees it: a :class:`Listener`
    for the connections it accepted, an :class:`Outbound` for those it dialled."""

    name: str
    counts: ListenerCounts
    handler: Handler
    limits: Limits
    stats: Stats | None
    framing: Framing | None

    def opened(self, host: str) -> None: ...

    def closed(self, host: str) -> None: ...


class Outbound:
    """What owns the connections the loop dialled for one handler under one
    name (Reactor.connect): a listener without a socket. No admission and no
    tally (a chat limit such as max_clients never counts them), no flood
    control, no server-wide stats (they are not the chat's bytes); its counts
    are its own, kept across reconnects."""

    __slots__ = ("counts", "framing", "handler", "limits", "name", "stats")

    def __init__(
        self, handler: Handler, limits: Limits, *, framing: Framing | None, name: str
    ) -> None:
        #: What operators call it ("redis"): its metrics' label.
        self.name = name
        self.counts = ListenerCounts()
        self.handler = handler
        #: Those of the latest connect(); each connection keeps the ones it began with.
        self.limits = limits
        self.framing = framing
        self.stats: Stats | None = None

    def opened(self, host: str) -> None:
        """A connection to ``host`` is up: count it."""
        self.counts.open += 1
        self.counts.total += 1

    def closed(self, host: str) -> None:
        """A connection that was up has ended: count it out."""
        self.counts.open -= 1


# -- admission ---------------------------------------------------------------------------


#: What takes an admitted connection: (listener, socket, peer, host) -> None.
Admit = Callable[[Listener, socket.socket, str, str], None]


class Admission:
    """The listeners of one loop: accepting, refusing, pausing for want of
    descriptors, and the descriptor held in reserve for the admin socket."""

    def __init__(
        self,
        selector: selectors.BaseSelector,
        timers: Timers,
        *,
        admit: Admit,
        stopping: Callable[[], bool],
    ) -> None:
        self.selector = selector
        self.timers = timers
        self._admit = admit  # the loop's: registers the connection, tells the handler
        self._stopping = stopping  # the loop is shutting down: retry nothing
        self.listeners: list[Listener] = []
        self.paused = False  # some listener is paused for want of descriptors
        # One descriptor held in reserve for the admin socket: when the chat has
        # taken every descriptor, it is given up so an operator's connection can
        # be accepted, and taken back as soon as a descriptor is free again
        # (before the chat listener may accept more).
        self.spare: int | None = _open_spare()

    def add(self, listener: Listener) -> Listener:
        listener.sock.setblocking(False)
        self.listeners.append(listener)
        self._watch(listener)
        return listener

    def freed(self) -> None:
        """A descriptor was just freed (a connection closed): the admin's reserve first."""
        if self.spare is None:
            self.spare = _open_spare()

    def close_listeners(self) -> None:
        for listener in self.listeners:
            self._unwatch(listener)
            listener.sock.close()
            if listener.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(listener.path)
        self.listeners.clear()

    def close_spare(self) -> None:
        if self.spare is not None:
            os.close(self.spare)
            self.spare = None

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
                elif listener.path and self.spare is not None:
                    os.close(self.spare)  # the admin socket gets the reserve
                    self.spare = None
                    continue
                else:
                    self._pause(listener, exc)
                return
            if self.paused:
                self._resume()
            sock.setblocking(False)
            if sock.family == socket.AF_UNIX:
                uid = _peer_uid(sock)
                if listener.allowed_uids is not None and uid not in listener.allowed_uids:
                    log.warning("admin socket: refused a connection from uid %s", uid)
                    listener.counts.refused += 1
                    sock.close()
                    continue
                host = peer = f"uid {uid}"
            else:
                host, peer = address[0], format_address(address)
                refusal = listener.refusal(host)
                if refusal:
                    listener.refuse(sock, refusal)
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._admit(listener, sock, peer, host)

    def _pause(self, listener: Listener, exc: OSError) -> None:
        # The listener stays readable while the backlog holds connections, so
        # retrying at once would spin the loop at full CPU. Stop watching it for
        # a moment instead (only it: the others may still have room, the admin
        # socket its reserve); say so once per episode, not once per retry.
        if not self.paused:
            self.paused = True
            log.error(
                "accept failed: %s; pausing new connections, retrying every %.1fs",
                exc.strerror,
                ACCEPT_RETRY_SECONDS,
            )
        self._unwatch(listener)
        if not listener.paused:  # one retry pending per listener
            listener.paused = True
            self.timers.call_later(ACCEPT_RETRY_SECONDS, lambda: self._retry(listener))

    def _retry(self, listener: Listener) -> None:
        if self._stopping() or listener not in self.listeners:
            return
        if self.spare is None and (spare := _open_spare()) is not None:
            self.spare = spare  # the admin socket's reserve comes first
        if self.spare is None:  # still no descriptor free: try again later
            self.timers.call_later(ACCEPT_RETRY_SECONDS, lambda: self._retry(listener))
            return
        listener.paused = False
        self._watch(listener)

    def _resume(self) -> None:
        """An accept worked: the episode is over once no listener waits to retry."""
        if not any(listener.paused for listener in self.listeners):
            self.paused = False
            log.info("accepting connections again")

    def _watch(self, listener: Listener) -> None:
        if not listener.watched:
            self.selector.register(
                listener.sock, selectors.EVENT_READ, lambda mask: self._on_accept(listener)
            )
            listener.watched = True

    def _unwatch(self, listener: Listener) -> None:
        if listener.watched:
            self.selector.unregister(listener.sock)
            listener.watched = False
