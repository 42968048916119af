"""A listener's own framing (the seam the web listener stands on): its units take
one flood-control token each, survive an abort like lines, and leave sendq and
the shared connection limits as they are. Real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from chatd.core.buffers import OVERLONG, Overlong
from chatd.core.link import Link
from chatd.core.listeners import Limits, Tally
from chatd.core.reactor import Reactor
from tests.helpers import WAIT


class Semicolons:
    """A framer that cuts on b";" (and refuses units over its limit)."""

    def __init__(self, limit: int) -> None:
        self.max_line_bytes = limit
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def has_line(self) -> bool:
        return b";" in self.buffer

    def next_line(self) -> bytes | Overlong | None:
        end = self.buffer.find(b";")
        if end < 0:
            return None
        unit = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return OVERLONG if len(unit) > self.max_line_bytes else unit


class Recorder:
    """A handler that keeps what it is given."""

    def __init__(self) -> None:
        self.units: list[bytes] = []
        self.overlong = 0
        self.slowdowns = 0
        self.ended: list[str] = []
        self.links: list[Link] = []

    def connect(self, link: Link) -> Any:
        self.links.append(link)
        return {"link": link}

    def receive_line(self, session: Any, line: bytes) -> None:
        self.units.append(line)

    def line_too_long(self, session: Any, limit: int) -> None:
        self.overlong += 1

    def slowed(self, session: Any, rate: float) -> None:
        self.slowdowns += 1

    def refused(self, reason: str) -> bytes:
        return f"refused: {reason};".encode()

    def disconnect(self, session: Any, reason: str) -> None:
        self.ended.append(reason)

    def shutdown(self, message: str) -> None:
        pass


def _turn_until(reactor: Reactor, done: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, "timed out"
        reactor.run_once(max_wait=0.01)


def _client(reactor: Reactor, port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def _listen(reactor: Reactor, handler: Recorder, limits: Limits, **kw: Any) -> int:
    def framing(session: Any) -> Semicolons:
        return Semicolons(8)

    listener = reactor.listen("127.0.0.1", 0, handler, limits, framing=framing, **kw)
    return int(listener.sock.getsockname()[1])


def test_each_unit_takes_one_token_and_the_rest_wait_for_theirs(reactor: Reactor) -> None:
    handler = Recorder()
    port = _listen(reactor, handler, Limits(flood_burst=2, flood_rate=20.0))
    with _client(reactor, port) as sock:
        sock.sendall(b"a;b;c;d;toolongforit;e")
        _turn_until(reactor, lambda: len(handler.units) >= 2)
        assert handler.units[:2] == [b"a", b"b"]
        reactor.run_once(max_wait=0)
        assert len(handler.units) == 2  # the third waits for a token, not for a line end
        assert handler.slowdowns == 1
        _turn_until(reactor, lambda: len(handler.units) == 4 and handler.overlong == 1)
        assert handler.units == [b"a", b"b", b"c", b"d"]  # "e" has no end yet


def test_units_read_before_the_peer_goes_still_reach_the_handler(reactor: Reactor) -> None:
    handler = Recorder()
    port = _listen(reactor, handler, Limits(flood_burst=1, flood_rate=50.0))
    with _client(reactor, port) as sock:
        sock.sendall(b"one;two;three;")
    _turn_until(reactor, lambda: len(handler.units) == 3 and handler.ended)
    assert handler.units == [b"one", b"two", b"three"]


def test_a_reader_that_never_reads_is_cut_off_at_its_sendq(reactor: Reactor) -> None:
    handler = Recorder()
    port = _listen(reactor, handler, Limits(sendq_bytes=64 * 1024))
    sock = _client(reactor, port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        _turn_until(reactor, lambda: handler.links)
        chunk = b"x" * 16 * 1024
        deadline = time.monotonic() + WAIT
        while not handler.ended:
            assert time.monotonic() < deadline, "never cut off"
            handler.links[0].send(chunk)
            reactor.run_once(max_wait=0)
        assert handler.ended == ["sendq exceeded"]
    finally:
        sock.close()


def test_two_framed_listeners_on_one_tally_count_together(reactor: Reactor) -> None:
    handler = Recorder()
    tally = Tally()
    limits = Limits(max_per_host=1)
    first = _listen(reactor, handler, limits, tally=tally)
    second = _listen(reactor, handler, limits, tally=tally)
    with _client(reactor, first):
        _turn_until(reactor, lambda: len(handler.links) == 1)
        with _client(reactor, second) as refused:
            deadline = time.monotonic() + WAIT
            answer = b""
            while not answer.endswith(b";"):
                assert time.monotonic() < deadline, "no refusal"
                reactor.run_once(max_wait=0.01)
                refused.settimeout(0.01)
                with contextlib.suppress(TimeoutError):
                    answer += refused.recv(100)
            assert answer.startswith(b"refused: ")
    assert len(handler.links) == 1
