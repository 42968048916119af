"""Flood control, connection limits and timeouts, against the real server.

The flood and timeout tests turn the server's loop by hand on a fake clock
(PumpedServer), so they see exactly how many lines pass at each moment; the
connection-limit tests run a server in a thread on real time.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import termios
from pathlib import Path

import pytest

from chatd.config import ServerSettings, load
from chatd.core.reactor import Connection
from chatd.server import Server
from tests.helpers import (
    LINGER_ZERO,
    LineClient,
    PumpedClient,
    PumpedServer,
    lifted_limits,
    listener_for,
    make_config,
    running_server,
    wait_until,
)

SLOWED = "*** You are sending too fast: your lines go out at 2 a second now."


@pytest.fixture
def pumped() -> PumpedServer:
    config = make_config(
        limits=lifted_limits(flood_burst=5, flood_rate=2, register_timeout=30, idle_timeout=0)
    )
    server = PumpedServer(config)
    yield server  # type: ignore[misc]
    server.close()


def _connection(server: Server, nick: str) -> Connection:
    return next(c for c in server.reactor.connections if c.session.nick == nick)


def _kernel_holds(conn: Connection) -> int:
    """Bytes the kernel has received for ``conn`` that the server has not read."""
    raw = fcntl.ioctl(conn.sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


# -- flood control -------------------------------------------------------------------


def test_a_flood_is_slowed_to_the_rate_and_every_line_arrives_in_order(
    pumped: PumpedServer,
) -> None:
    alice, bob = pumped.connect("alice"), pumped.connect("bob")
    # bob spent 1 of his 5 tokens on his nickname: 4 lines pass at once.
    bob.send("\n".join(f"line {i}" for i in range(12)))
    pumped.until(lambda: len(alice.chat()) == 4, "the burst")
    pumped.settle()
    assert len(alice.chat()) == 4
    assert bob.lines.count(SLOWED) == 1
    # Then one line every 1/rate seconds, never more.
    for delivered in range(5, 13):
        pumped.clock.advance(0.5)
        pumped.until(lambda: len(alice.chat()) >= delivered, f"line {delivered}")  # noqa: B023
        pumped.settle(10)
        assert len(alice.chat()) == delivered
    assert alice.chat() == [f"<bob> line {i}" for i in range(12)]
    assert bob.lines.count(SLOWED) == 1  # told once per flood, not once per line
    assert not bob.closed


def test_each_flood_is_counted_once_on_its_listener_as_its_user_is_told(
    pumped: PumpedServer,
) -> None:
    alice, bob = pumped.connect("alice"), pumped.connect("bob")
    chat = listener_for(pumped.server, pumped.server.hub)
    bob.send("\n".join(f"line {i}" for i in range(8)))
    pumped.until(lambda: bob.lines.count(SLOWED) == 1, "the notice")
    assert chat.counts.flood_slowdowns == 1
    for delivered in range(5, 9):  # the rest at the rate: the same flood
        pumped.clock.advance(0.5)
        pumped.until(lambda: len(alice.chat()) >= delivered, f"line {delivered}")  # noqa: B023
    assert chat.counts.flood_slowdowns == 1
    pumped.clock.advance(10)  # the bucket fills up again: the next flood is another
    bob.send("\n".join(f"again {i}" for i in range(8)))
    pumped.until(lambda: bob.lines.count(SLOWED) == 2, "the second notice")
    assert chat.counts.flood_slowdowns == 2


def test_a_flooder_is_read_no_faster_than_it_may_send(pumped: PumpedServer) -> None:
    alice, bob = pumped.connect("alice"), pumped.connect("bob")
    line = "z" * 100
    paste = "\n".join(f"{i} {line}" for i in range(2000))  # ~200 KB at once
    bob.sock.settimeout(0.2)
    with contextlib.suppress(TimeoutError):  # the kernel's buffers are full
        bob.sock.sendall(paste.encode() + b"\n")
    bob.sock.setblocking(False)
    pumped.until(lambda: len(alice.chat()) == 4, "the burst")
    pumped.settle()
    conn = _connection(pumped.server, "bob")
    # The server holds at most the lines it may take now (a line's room for
    # each token, 4 here); the rest waits in the kernel, which slows bob down.
    assert len(conn.inbuf) <= 4 * (1024 + 2)
    assert _kernel_holds(conn) > 50_000
    assert conn.paused


def test_lines_sent_before_a_flooder_leaves_are_still_delivered(pumped: PumpedServer) -> None:
    alice, bob = pumped.connect("alice"), pumped.connect("bob")
    bob.send("\n".join(f"last words {i}" for i in range(8)))
    bob.sock.close()
    pumped.clients.remove(bob)
    pumped.until(lambda: len(alice.chat()) == 4, "the burst")
    for _ in range(4):
        pumped.clock.advance(0.5)
        pumped.settle(5)
    pumped.until(lambda: "*** bob left (connection closed)" in alice.lines, "bob leaving")
    assert alice.chat() == [f"<bob> last words {i}" for i in range(8)]


def test_a_flooder_that_resets_while_others_chat_still_has_every_line_delivered(
    pumped: PumpedServer,
) -> None:
    # Issue 12, item 3: a paste of 30 lines, then a reset while someone else
    # chats. The server read all 30 in its first recv; only the burst had gone
    # out when the next broadcast's write to the flooder failed, and the rest
    # was thrown away with the connection.
    alice, bob, carol = (pumped.connect(nick) for nick in ("alice", "bob", "carol"))
    bob.send("\n".join(f"paste {i}" for i in range(30)))
    pumped.until(lambda: SLOWED in bob.lines, "the flood notice")
    pumped.settle(5)
    conn = _connection(pumped.server, "bob")
    assert conn.inbuf.has_line() and _kernel_holds(conn) == 0  # all read, most unsent
    # The server reads bob no more for now, so only writing to him can find
    # that he is gone.
    bob.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    bob.sock.close()
    pumped.clients.remove(bob)
    alice.send("anyone there?")
    pumped.until(lambda: "<alice> anyone there?" in carol.lines, "alice's line")
    pumped.settle(5)
    assert conn.gone and conn.sock.fileno() == -1  # its descriptor is freed at once
    assert pumped.server.hub.find("bob") is not None  # his lines are not done
    for _ in range(30):
        pumped.clock.advance(0.5)
        pumped.settle(3)
    pumped.until(lambda: "*** bob left (connection reset by peer)" in carol.lines, "bob leaving")
    paste = [f"<bob> paste {i}" for i in range(30)]
    assert [line for line in carol.chat() if line.startswith("<bob>")] == paste
    assert [line for line in alice.chat() if line.startswith("<bob>")] == paste
    assert carol.lines.index("*** bob left (connection reset by peer)") > carol.lines.index(
        paste[-1]
    )
    assert pumped.server.hub.find("bob") is None
    assert conn not in pumped.server.reactor.connections


def test_a_flood_holds_back_only_the_flooder() -> None:
    config = make_config(limits=lifted_limits(flood_burst=10, flood_rate=100))
    with running_server(config) as server:
        assert server.address
        alice, bob, carol = (LineClient(server.address) for _ in range(3))
        for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            client.register(nick)
        bob.send_raw(b"".join(b"flood %d\n" % i for i in range(100)))
        bob.expect("*** You are sending too fast: your lines go out at 100 a second now.")
        carol.send("meanwhile")
        seen = alice.lines_until("<bob> flood 99")
        assert [x for x in seen if x.startswith("<bob>")] == [f"<bob> flood {i}" for i in range(99)]
        # carol was not queued behind bob's flood.
        assert "<carol> meanwhile" in seen


# -- timeouts ------------------------------------------------------------------------


def test_a_connection_that_never_picks_a_nickname_is_closed_at_the_timeout(
    pumped: PumpedServer,
) -> None:
    silent = pumped.connect()
    slowloris = pumped.connect()
    slowloris.sock.send(b"ali")  # a nickname that never ends
    alice = pumped.connect("alice")
    pumped.clock.advance(29)
    pumped.settle()
    assert not silent.closed and not slowloris.closed
    pumped.clock.advance(1)
    pumped.until(lambda: silent.closed and slowloris.closed, "the timeout")
    assert silent.lines[-1] == "*** Timed out: no nickname chosen in 30 seconds."
    assert slowloris.lines[-1] == "*** Timed out: no nickname chosen in 30 seconds."
    assert not alice.closed  # it chose a nickname in time
    assert len(pumped.server.reactor.connections) == 1


def test_idle_users_are_disconnected_when_an_idle_timeout_is_set(tmp_path: Path) -> None:
    path = tmp_path / "chatd.toml"
    path.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n[limits]\nflood_rate = 0\n'
        "[admin]\nenabled = false\n[plugins]\ndirs = []\n"
    )
    pumped = PumpedServer(load(path))
    try:
        alice, bob = pumped.connect("alice"), pumped.connect("bob")
        pumped.clock.advance(1000)
        pumped.settle()
        assert not alice.closed  # off by default
        # Turned on by a reload, it applies to those already online.
        path.write_text(
            path.read_text().replace("flood_rate = 0", "flood_rate = 0\nidle_timeout = 100")
        )
        assert pumped.server.reload("config") == [f"config: {path}: changed [limits] idle_timeout"]
        pumped.clock.advance(60)
        bob.send("still here")
        pumped.until(lambda: "<bob> still here" in alice.lines, "bob's line")
        pumped.clock.advance(40)
        pumped.until(lambda: alice.closed, "alice's idle timeout")
        assert alice.lines[-1] == "*** Disconnected: nothing sent for 100 seconds (idle timeout)."
        pumped.settle()
        assert not bob.closed  # he spoke 40 s ago
        assert "*** alice left (idle timeout)" in bob.lines
        pumped.clock.advance(60)
        pumped.until(lambda: bob.closed, "bob's idle timeout")
    finally:
        pumped.close()


# -- connection limits -----------------------------------------------------------------


def test_max_clients_refuses_with_a_message_until_someone_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "chatd")
    config = make_config(server=ServerSettings(host="127.0.0.1", port=0, max_clients=3))
    with running_server(config) as server:
        assert server.address
        inside = [LineClient(server.address) for _ in range(3)]
        inside[0].register("alice")
        for _ in range(2):
            extra = LineClient(server.address)
            assert extra.wait_closed() == ["*** Server full."]
        assert server.stats.refused == 2
        assert caplog.text.count("server full (3 connections): refusing new ones") == 1
        inside[1].close()
        wait_until(lambda: server.stats.connections_now == 2, what="a free place")
        LineClient(server.address).register("bob")
        assert "no longer full: accepting new connections" in caplog.text


def test_max_per_ip_refuses_a_further_connection_from_the_same_address() -> None:
    config = make_config(limits=lifted_limits(max_per_ip=2))
    with running_server(config) as server:
        assert server.address
        first, second = LineClient(server.address), LineClient(server.address)
        third = LineClient(server.address)
        assert third.wait_closed() == ["*** Too many connections from your address (at most 2)."]
        # Another address is counted on its own (all of 127/8 is loopback on Linux).
        other = LineClient(server.address, source="127.0.0.2")
        other.register("carol")
        first.register("alice")
        second.close()
        wait_until(lambda: server.stats.connections_now == 2, what="a free place")
        LineClient(server.address).register("bob")


def test_a_timer_of_any_length_does_not_stop_the_loop() -> None:
    # Issue 12, item 1: a register or idle timeout of 2147484 s or more made
    # select() raise OverflowError at the first connection, killing the server.
    # The settings are checked now, but the loop must not depend on that.
    config = make_config(limits=lifted_limits(register_timeout=1e12, idle_timeout=float("inf")))
    with running_server(config) as server:
        assert server.address
        alice, bob = LineClient(server.address), LineClient(server.address)
        alice.register("alice")
        bob.register("bob")
        alice.send("still here")
        bob.expect("<alice> still here")


def test_socket_errors_read_as_the_leave_reasons_the_readme_lists() -> None:
    from chatd.core.reactor import _reason

    def err(code: int) -> OSError:
        return OSError(code, os.strerror(code))

    assert _reason(err(errno.ECONNRESET)) == "connection reset by peer"
    assert _reason(err(errno.EPIPE)) == "connection reset by peer"  # a broken pipe
    assert _reason(err(errno.ETIMEDOUT)) == "connection timed out"
    assert _reason(err(errno.EACCES)) == "connection error: permission denied"


# -- the same limits for IRC connections ------------------------------------------------


def _irc_client(pumped: PumpedServer) -> PumpedClient:
    assert pumped.server.irc_address is not None
    client = PumpedClient(pumped.server.irc_address)
    pumped.clients.append(client)
    return client


def test_an_irc_flood_is_slowed_and_every_line_arrives_in_order(pumped: PumpedServer) -> None:
    alice = pumped.connect("alice")
    bob = _irc_client(pumped)
    bob.send("NICK bob\r\nUSER bob 0 * :Bob")  # 2 of bob's 5 tokens
    pumped.until(lambda: any(" 366 bob " in line for line in bob.lines), "bob's autojoin")
    bob.send("\r\n".join(f"PRIVMSG #lobby :line {i}" for i in range(8)))
    pumped.until(lambda: len(alice.chat()) == 3, "the burst")
    pumped.settle()
    assert len(alice.chat()) == 3
    slowed = [line for line in bob.lines if "You are sending too fast" in line]
    assert slowed == [":chatd!chatd@chatd NOTICE bob :You are sending too fast: your lines go"
                      " out at 2 a second now.\r"]  # fmt: skip
    for delivered in range(4, 9):
        pumped.clock.advance(0.5)
        pumped.until(lambda: len(alice.chat()) >= delivered, f"line {delivered}")  # noqa: B023
        pumped.settle(10)
        assert len(alice.chat()) == delivered
    assert alice.chat() == [f"<bob> line {i}" for i in range(8)]
    assert not bob.closed


def test_an_irc_connection_that_never_registers_is_closed_at_register_timeout(
    pumped: PumpedServer,
) -> None:
    lurker = _irc_client(pumped)
    lurker.send("NICK lurker")  # no USER: registration never completes
    pumped.settle()
    pumped.clock.advance(29)
    pumped.settle()
    assert not lurker.closed
    pumped.clock.advance(1)
    pumped.until(lambda: lurker.closed, "the register timeout")
    assert any("Timed out" in line for line in lurker.lines)
