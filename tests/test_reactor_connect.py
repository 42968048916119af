"""Connections the loop dials out (Reactor.connect: the Redis backplane's): up
without blocking, served like accepted ones, ended exactly once, closed last
and drained at shutdown. Real sockets on loopback; every wait has a deadline."""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatd.core.buffers import Chunks, chunks
from chatd.core.connection import Connection
from chatd.core.link import Link
from chatd.core.listeners import Limits
from chatd.core.reactor import SHUTDOWN_FLUSH_SECONDS, Reactor
from chatd.core.timers import Timers
from tests.helpers import WAIT


class Recorder:
    """A handler that keeps what it is given; ``order`` is shared between
    handlers to see who was told to shut down first."""

    def __init__(self, name: str = "", order: list[str] | None = None) -> None:
        self.name = name
        self.order = order if order is not None else []
        self.links: list[Link] = []
        self.units: list[bytes] = []
        self.ended: list[str] = []
        self.on_connect: Callable[[Link], object] | None = None
        self.on_shutdown: Callable[[], object] | None = None

    def connect(self, link: Link) -> Any:
        self.links.append(link)
        if self.on_connect is not None:
            self.on_connect(link)
        return {"link": link}

    def receive_line(self, session: Any, line: bytes) -> None:
        self.units.append(line)

    def line_too_long(self, session: Any, limit: int) -> None:
        raise AssertionError("chunks are never too long")

    def slowed(self, session: Any, rate: float) -> None:
        raise AssertionError("no flood control on outbound connections")

    def refused(self, reason: str) -> bytes:
        return b""

    def disconnect(self, session: Any, reason: str) -> None:
        self.ended.append(reason)

    def shutdown(self, message: str) -> None:
        self.order.append(self.name)
        if self.on_shutdown is not None:
            self.on_shutdown()


def _turn_until(reactor: Reactor, done: Callable[[], object], what: str = "it") -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        reactor.run_once(max_wait=0.01)


def _turns(reactor: Reactor, n: int = 5) -> None:
    """A few more iterations: long enough for a second disconnect() to show."""
    for _ in range(n):
        reactor.run_once(max_wait=0.01)


@pytest.fixture
def server() -> Iterator[socket.socket]:
    """A plain listening socket on 127.0.0.1 (the peer the loop dials)."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(WAIT)
    yield sock
    sock.close()


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _accept(server: socket.socket, reactor: Reactor) -> socket.socket:
    """The peer's end, the loop turning meanwhile (a name's lookup comes back on it)."""
    server.setblocking(False)
    got: list[socket.socket] = []

    def accepted() -> bool:
        with contextlib.suppress(BlockingIOError):
            got.append(server.accept()[0])
        return bool(got)

    _turn_until(reactor, accepted, "the connection to arrive")
    got[0].setblocking(False)
    return got[0]


def _read_some(peer: socket.socket, into: bytearray) -> bool:
    """Read what is there without waiting; False once the peer has seen EOF."""
    try:
        data = peer.recv(1 << 20)
    except BlockingIOError:
        return True
    into += data
    return bool(data)


def _conn(reactor: Reactor) -> Connection:
    (conn,) = reactor.outbound_connections
    return conn


def _free_port() -> int:
    """A port nothing listens on: bound, then let go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return _port(sock)


@contextlib.contextmanager
def _black_hole() -> Iterator[int]:
    """A loopback port whose SYNs are dropped: a listener with listen(0)
    whose backlog is filled (and never accepted), so the kernel drops every
    further SYN (Linux counts them as ListenOverflows) and a connect stays in
    progress, as one to a host that does not answer."""
    server = socket.socket()
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        for _ in range(16):  # listen(0) holds one on Linux; a few on others
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
            fillers.append(filler)
            with socket.socket() as probe:  # stands for the loop: does a SYN get through?
                probe.setblocking(False)
                probe.connect_ex(server.getsockname())
                deadline = time.monotonic() + 0.2
                while time.monotonic() < deadline:
                    if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or _connected(probe):
                        break
                else:
                    break  # still in progress after 0.2 s: the backlog is full
        else:
            pytest.skip("could not fill a listen(0) backlog on this system")
        yield _port(server)
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError as exc:
        assert exc.errno == errno.ENOTCONN
        return False
    return True


def test_chunks_hand_each_read_on_as_it_came() -> None:
    framer = chunks(None)
    assert framer.max_line_bytes == 64 * 1024  # one read: no unit is ever too long
    framer.feed(b"+OK\r\n*1\r")
    framer.feed(b"")
    framer.feed(b"\n:1\r\n")
    assert framer.has_line()
    assert [framer.next_line(), framer.next_line(), framer.next_line()] == [
        b"+OK\r\n*1\r",
        b"\n:1\r\n",
        None,
    ]
    assert not framer.has_line()


# -- up, and both ways -------------------------------------------------------------------


def test_what_is_sent_before_the_connection_is_up_goes_first_then_both_ways(
    reactor: Reactor, server: socket.socket
) -> None:
    handler = Recorder()
    handler.on_connect = lambda link: link.send(b"HELLO 3\r\n")  # pipelined at once
    link = reactor.connect("127.0.0.1", _port(server), handler, framing=chunks, name="redis")
    assert handler.links == [link]  # told inside connect(), before it is up
    link.send(b"PING\r\n")
    assert link not in reactor.connections  # the clients' set: healthz, max_clients
    (owner,) = reactor.outbound
    assert (owner.name, owner.counts.open, owner.counts.total) == ("redis", 0, 0)
    peer = _accept(server, reactor)
    with peer:
        got = bytearray()
        _turn_until(reactor, lambda: _read_some(peer, got) and got == b"HELLO 3\r\nPING\r\n")
        assert link.peer == f"127.0.0.1:{_port(server)}"
        assert link.host == "127.0.0.1"
        sock = _conn(reactor).sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        peer.sendall(b"+PONG\r\n*2\r\n$1\r\na\r\n:1")  # no line ends where RESP has none
        _turn_until(reactor, lambda: b"".join(handler.units).endswith(b":1"))
        assert b"".join(handler.units) == b"+PONG\r\n*2\r\n$1\r\na\r\n:1"
        assert isinstance(_conn(reactor).inbuf, Chunks)
        counts = owner.counts
        assert (counts.open, counts.total, counts.bytes_in, counts.bytes_out) == (1, 1, 20, 15)
    assert handler.ended == []


def test_a_name_is_looked_up_and_its_addresses_tried(
    reactor: Reactor, server: socket.socket
) -> None:
    handler = Recorder()
    link = reactor.connect("localhost", _port(server), handler, framing=chunks)
    assert handler.links == [link]  # at once, the lookup still under way
    link.send(b"hi")
    peer = _accept(
        server, reactor
    )  # if localhost is ::1 first, that one is refused: the next is tried
    with peer:
        got = bytearray()
        _turn_until(reactor, lambda: _read_some(peer, got) and got == b"hi")
        assert link.peer == f"localhost:{_port(server)}"
        assert link.host == "127.0.0.1"
    assert handler.ended == []


def test_an_ipv6_address(reactor: Reactor) -> None:
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        server.settimeout(WAIT)
        handler = Recorder()
        link = reactor.connect("::1", _port(server), handler, framing=chunks)
        link.send(b"six")
        with _accept(server, reactor) as peer:
            got = bytearray()
            _turn_until(reactor, lambda: _read_some(peer, got) and got == b"six")
            assert (link.peer, link.host) == (f"[::1]:{_port(server)}", "::1")


def test_a_hook_before_the_flush_is_written_in_the_same_iteration(
    reactor: Reactor, server: socket.socket
) -> None:
    handler = Recorder()
    link = reactor.connect("127.0.0.1", _port(server), handler, framing=chunks)
    with _accept(server, reactor) as peer:
        _turn_until(reactor, lambda: reactor.outbound[0].counts.open, "the connection")
        batch: list[bytes] = [b"EVALSHA"]
        reactor.add_turn_hook(lambda: batch and link.send(batch.pop()), before_flush=True)
        reactor.run_once(max_wait=0)  # one iteration, no more
        peer.settimeout(WAIT)
        assert peer.recv(100) == b"EVALSHA"


# -- failing to come up ----------------------------------------------------------------------


def test_refused_is_told_once_and_not_from_inside_connect(reactor: Reactor) -> None:
    handler = Recorder()
    reactor.connect("127.0.0.1", _free_port(), handler, framing=chunks)
    assert handler.ended == []  # the handler is still inside connect(): told later
    _turn_until(reactor, lambda: handler.ended, "the refusal")
    _turns(reactor)
    assert handler.ended == ["connection refused"]
    assert not reactor.outbound_connections
    counts = reactor.outbound[0].counts
    assert (counts.open, counts.total) == (0, 0)  # never up: not a connection


def test_a_connect_that_gets_no_answer_times_out(reactor: Reactor) -> None:
    handler = Recorder()
    with _black_hole() as port:
        link = reactor.connect("127.0.0.1", port, handler, framing=chunks, timeout=0.3)
        link.send(b"never sent")
        started = time.monotonic()
        _turn_until(reactor, lambda: handler.ended, "the timeout")
        assert 0.25 < time.monotonic() - started < WAIT
        _turns(reactor)
    assert handler.ended == ["connect timed out after 0.3s"]
    assert not reactor.outbound_connections


def test_a_name_that_does_not_exist(reactor: Reactor) -> None:
    handler = Recorder()
    reactor.connect("no-such-host.invalid", 6379, handler, framing=chunks)  # RFC 6761
    _turn_until(reactor, lambda: handler.ended, "the lookup")
    _turns(reactor)
    assert handler.ended == ["name not found: no-such-host.invalid"]
    assert not reactor.outbound_connections


def test_a_link_closed_before_it_is_up_with_nothing_to_send_ends_at_once(
    reactor: Reactor,
) -> None:
    handler = Recorder()
    with _black_hole() as port:
        handler.connect = lambda link: link.close()  # type: ignore[method-assign]
        reactor.connect("127.0.0.1", port, handler, framing=chunks)
        _turn_until(reactor, lambda: handler.ended, "the close")
        _turns(reactor)
    assert handler.ended == ["closed by server"]


def test_bad_arguments_are_refused_at_once(reactor: Reactor) -> None:
    handler = Recorder()
    with pytest.raises(ValueError, match="port must be 1 to 65535, got 70000"):
        reactor.connect("127.0.0.1", 70000, handler)
    with pytest.raises(ValueError, match="no flood control"):
        reactor.connect("127.0.0.1", 1, handler, limits=Limits(flood_burst=5, flood_rate=1.0))
    assert handler.links == []


# -- ending once it is up ---------------------------------------------------------------------


def test_the_peer_closing_is_told_once(reactor: Reactor, server: socket.socket) -> None:
    handler = Recorder()
    reactor.connect("127.0.0.1", _port(server), handler, framing=chunks, name="redis")
    peer = _accept(server, reactor)
    _turn_until(reactor, lambda: reactor.outbound[0].counts.open, "the connection")
    peer.sendall(b"+OK\r\n")
    peer.close()
    _turn_until(reactor, lambda: handler.ended, "the end")
    _turns(reactor)
    assert handler.units == [b"+OK\r\n"]  # what came before the end is handed over first
    assert handler.ended == ["connection closed"]
    assert reactor.outbound[0].counts.open == 0


def test_a_client_closing_is_told_once_too(reactor: Reactor) -> None:
    handler = Recorder()
    listener = reactor.listen("127.0.0.1", 0, handler)
    with socket.create_connection(listener.sock.getsockname(), timeout=WAIT):
        _turn_until(reactor, lambda: handler.links, "the client")
    _turn_until(reactor, lambda: handler.ended, "the end")
    _turns(reactor)
    assert handler.ended == ["connection closed"]  # once, not again when the socket closes


def test_close_drains_the_output_first(reactor: Reactor, server: socket.socket) -> None:
    handler = Recorder()
    payload = bytes(range(256)) * 8192  # 2 MiB: more than one write takes
    limits = Limits(sendq_bytes=4 * len(payload))
    link = reactor.connect("127.0.0.1", _port(server), handler, framing=chunks, limits=limits)
    link.send(payload)
    link.close()  # before it is even up
    with _accept(server, reactor) as peer:
        got = bytearray()
        _turn_until(reactor, lambda: not _read_some(peer, got), "EOF")
    assert got == payload
    _turns(reactor)
    assert handler.ended == ["closed by server"]


def test_a_peer_that_does_not_read_is_cut_off_at_the_sendq(
    reactor: Reactor, server: socket.socket
) -> None:
    handler = Recorder()
    limits = Limits(sendq_bytes=64 * 1024)
    link = reactor.connect("127.0.0.1", _port(server), handler, framing=chunks, limits=limits)
    peer = _accept(server, reactor)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with peer:
        _turn_until(reactor, lambda: reactor.outbound[0].counts.open, "the connection")
        chunk = b"x" * 16 * 1024
        deadline = time.monotonic() + WAIT
        while not handler.ended:
            assert time.monotonic() < deadline, "never cut off"
            link.send(chunk)
            reactor.run_once(max_wait=0)
        _turns(reactor)
    assert handler.ended == ["sendq exceeded"]
    assert reactor.outbound[0].counts.sendq_disconnects == 1


# -- shutdown ------------------------------------------------------------------------------------


def _stopped(reactor: Reactor) -> float:
    """Shut ``reactor`` down; how long it took."""
    started = time.monotonic()
    reactor.request_stop()
    reactor.run()
    return time.monotonic() - started


def test_shutdown_tells_the_chat_first_then_drains_the_outbound_last_words(
    server: socket.socket,
) -> None:
    reactor = Reactor(Timers(time.monotonic))
    order: list[str] = []
    hub, plane = Recorder("hub", order), Recorder("backplane", order)
    listener = reactor.listen("127.0.0.1", 0, hub)
    plane_link = reactor.connect("127.0.0.1", _port(server), plane, framing=chunks)
    release = b"EVALSHA release\r\n" * 1024  # what the kernel takes: the peer reads later

    def hub_shutdown() -> None:
        for link in hub.links:
            link.send(b"Goodbye!\n")
            link.close()

    hub.on_shutdown = hub_shutdown
    plane.on_shutdown = lambda: plane_link.send(release)
    with socket.create_connection(listener.sock.getsockname(), timeout=WAIT) as client:
        peer = _accept(server, reactor)
        _turn_until(reactor, lambda: hub.links and reactor.outbound[0].counts.open)
        elapsed = _stopped(reactor)
        got = bytearray()
        peer.settimeout(WAIT)
        while data := peer.recv(1 << 20):
            got += data
        peer.close()
        assert client.recv(100) == b"Goodbye!\n"
    assert order == ["hub", "backplane"]
    assert got == release  # all of it, then EOF
    assert plane.ended == ["server shutdown"]
    assert elapsed < SHUTDOWN_FLUSH_SECONDS


def test_shutdown_waits_for_no_idle_outbound_connection(server: socket.socket) -> None:
    reactor = Reactor(Timers(time.monotonic))
    handler = Recorder()
    reactor.connect("127.0.0.1", _port(server), handler, framing=chunks)
    with _accept(server, reactor) as peer:  # stays open, says nothing
        _turn_until(reactor, lambda: reactor.outbound[0].counts.open, "the connection")
        elapsed = _stopped(reactor)
        peer.settimeout(WAIT)
        assert peer.recv(100) == b""  # closed, with a FIN
    assert elapsed < SHUTDOWN_FLUSH_SECONDS / 3
    assert handler.ended == ["server shutdown"]
    assert handler.order == [""]


def test_shutdown_aborts_a_connect_still_under_way() -> None:
    reactor = Reactor(Timers(time.monotonic))
    handler = Recorder()
    with _black_hole() as port:
        reactor.connect("127.0.0.1", port, handler, framing=chunks).send(b"lost")
        reactor.run_once(max_wait=0)
        elapsed = _stopped(reactor)
    assert elapsed < SHUTDOWN_FLUSH_SECONDS / 3
    assert handler.ended == ["server shutdown"]
