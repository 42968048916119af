"""Faults the server must survive: stuck readers, abrupt resets, running out of
file descriptors. Each runs the real server and checks that everyone else is
served, nothing accepted is lost, and nothing leaks."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

from chatd.core.reactor import ACCEPT_RETRY_SECONDS
from tests.helpers import (
    LIFTED_LIMITS_TOML,
    LINGER_ZERO,
    WAIT,
    Crowd,
    LineClient,
    PumpedServer,
    ServerProcess,
    lifted_limits,
    listener_for,
    make_config,
    non_reader,
    run_chatd,
    running_server,
    wait_until,
)


def _config_file(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "chatd.toml"
    path.write_text(f'[server]\nhost = "127.0.0.1"\nport = 0\n{LIFTED_LIMITS_TOML}{extra}')
    return str(path)


def test_a_client_that_never_reads_is_cut_at_its_sendq_and_20_others_lose_nothing() -> None:
    config = make_config(limits=lifted_limits(sendq_bytes=64 * 1024))
    with running_server(config) as server:
        assert server.address
        stuck = non_reader(server.address, "stuck")
        crowd = Crowd(server.address, 20)
        payload = "y" * 200

        def stuck_online() -> bool:
            return any(c.session.nick == "stuck" for c in server.reactor.connections)

        wait_until(stuck_online, what="the stuck client to register")
        # Rounds in which 4 of the 20 send while all 20 read everything; the
        # stuck client falls behind until the kernel's buffers and its 64 KiB
        # sendq are full, and is cut off, in the middle of the chat.
        rounds = 0
        while stuck_online():
            assert rounds < 2000, "the stuck client was never disconnected"
            for sender in range(4):
                crowd.send(sender, 25, payload)
            crowd.read()
            rounds += 1
        for sender in range(4, 20):  # and the chat goes on
            crowd.send(sender, 5)
        crowd.read()
        assert crowd.caught_up()
        for notices in crowd.notices:
            assert "*** stuck left (sendq exceeded)" in notices
        stuck.close()
        crowd.close()


def test_1000_abrupt_resets_leak_no_descriptor_and_log_no_traceback(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--config", _config_file(tmp_path))
    try:
        watcher = LineClient(server.address)
        watcher.register("watcher")
        baseline = server.open_files()
        n = 0
        for batch in range(10):
            socks = []
            for i in range(100):
                sock = socket.create_connection(server.address, timeout=WAIT)
                socks.append(sock)
                kind = i % 4
                if kind == 1:  # half a nickname
                    sock.sendall(b"hal")
                elif kind >= 2:  # named; the last kind also has output queued
                    sock.sendall(b"r%d\n" % n)
                n += 1
            # Some of the named ones have output waiting for them when they go.
            watcher.send(f"batch {batch}: " + "x" * 500)
            for sock in socks:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
                sock.close()
        wait_until(lambda: server.open_files() == baseline, what="every descriptor closed")
        watcher.send("/who")  # asked once all are gone, not while the last resets are read
        watcher.expect("*** 1 user in #lobby: watcher")
        assert "Traceback" not in server.log
        assert "internal error" not in server.log
    finally:
        server.stop()


def _fill_until_out_of_descriptors(
    server: ServerProcess, most: int
) -> tuple[list[LineClient], list[socket.socket]]:
    """Connect until one connection is not served: (those served, the one waiting).
    The kernel completes connections the server cannot accept (they wait in the
    backlog), so connecting never fails: the greeting just does not come."""
    inside: list[LineClient] = []
    while True:
        client = LineClient(server.address)
        try:
            client.expect(re.compile("Choose a nickname"), wait=1.0)
        except AssertionError:
            return inside, [client.sock]
        inside.append(client)
        assert len(inside) < most, "never ran out of descriptors"


def test_out_of_descriptors_pauses_accepting_without_spinning_then_recovers(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, "--config", _config_file(tmp_path), max_files=40)
    try:
        inside, waiting = _fill_until_out_of_descriptors(server, 40)
        waiting += [socket.create_connection(server.address) for _ in range(5)]
        server.wait_log(re.compile(r"accept failed: Too many open files; pausing new connections"))
        # Out of descriptors with connections waiting: the loop must sleep, not spin.
        cpu, start = server.cpu_seconds(), time.monotonic()
        time.sleep(1.0)
        used = (server.cpu_seconds() - cpu) / (time.monotonic() - start)
        assert used < 0.3, f"the server used {used:.0%} of a CPU while out of descriptors"
        assert server.log.count("pausing new connections") == 1  # once per episode
        for client in inside:
            client.close()
        # Descriptors are free again: every waiting connection is served.
        for sock in waiting:
            client = LineClient.adopt(sock)
            client.expect(re.compile("Choose a nickname"))
        server.wait_log(re.compile("accepting connections again"))
        late = LineClient(server.address)
        late.register("late")
        assert "Traceback" not in server.log
    finally:
        server.stop()


def test_a_client_cut_off_while_being_written_to_is_announced_in_that_iteration() -> None:
    pumped = PumpedServer(make_config(limits=lifted_limits(sendq_bytes=4096)))
    try:
        bob = pumped.connect("bob")
        alice = pumped.connect("alice")
        alice.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        pumped.clients.remove(alice)  # nobody reads for alice from now on
        turns = 0
        while pumped.server.hub.find("alice") is not None:
            assert turns < 10_000, "alice was never cut off"
            bob.send("x" * 500)
            pumped.pump()  # one loop iteration per line
            turns += 1
        # The loop is not turned again: the notice must already be on its way.
        deadline = time.monotonic() + WAIT
        while "*** alice left (sendq exceeded)" not in bob.lines:
            assert time.monotonic() < deadline, f"not announced; bob got {bob.lines[-3:]}"
            bob.poll()
        # Counted once, on the listener alice came in on (the chat's: the only one here).
        chat = listener_for(pumped.server, pumped.server.hub)
        assert chat.counts.sendq_disconnects == 1
        assert chat.counts.open == 1
        alice.sock.close()
    finally:
        pumped.close()


def test_out_of_descriptors_the_admin_socket_still_answers_and_nothing_breaks(
    tmp_path: Path,
) -> None:
    # Issue 12, item 7: with chat and admin connections both waiting, every
    # retry logged a KeyError traceback, admin requests went unanswered, SIGHUP
    # aborted the reload with an OSError traceback, and the startup warning
    # said "connections past about 0 will wait" while about 30 were served.
    server = ServerProcess(tmp_path, "--config", _config_file(tmp_path), max_files=40)
    admin_path = str(tmp_path / "chatd" / "admin.sock")
    waiting: list[socket.socket] = []
    held: list[socket.socket] = []
    try:
        promised = int(server.wait_log(re.compile(r"connections past about (\d+) will wait"))[1])
        inside, waiting = _fill_until_out_of_descriptors(server, 40)
        assert abs(len(inside) - promised) <= 2, (len(inside), promised)
        server.wait_log(re.compile(r"pausing new connections"))
        # An operator still gets in: the server keeps a descriptor for that.
        done = run_chatd("admin", "--socket", admin_path, "--json", "stats")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["connections"]["now"] == len(inside)
        # A reload while out of descriptors says what it could not read.
        server.proc.send_signal(signal.SIGHUP)
        server.wait_log(re.compile(r"reload: jumble: reload failed, kept the old data"))
        # Two operators at once while the chat waits too: the second waits
        # with it, and nothing is a traceback.
        for _ in range(2):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(WAIT)
            sock.connect(admin_path)
            held.append(sock)
        held[0].sendall(b'{"cmd": "stats"}\n')
        assert b'"ok":true' in held[0].recv(65536)
        waiting.append(socket.create_connection(server.address))
        time.sleep(ACCEPT_RETRY_SECONDS * 3)  # a few retries while out of descriptors
        for client in inside:
            client.close()
        for sock in waiting:
            LineClient.adopt(sock).expect(re.compile("Choose a nickname"))
        held[1].sendall(b'{"cmd": "users"}\n')
        assert held[1].recv(65536).startswith(b'{"ok":true')
        assert "Traceback" not in server.log, server.log
        assert server.log.count("pausing new connections") == 1
    finally:
        for sock in held + waiting:
            sock.close()
        server.stop()


def test_a_kicked_client_that_was_still_typing_gets_the_notice_in_full() -> None:
    # A requested close with unread input used to close() at once, which sends
    # a reset instead of a FIN: the kernel then drops what it has not yet
    # delivered, the kick notice last, and the client sees only "connection
    # reset" (so chatd connect reconnected, undoing the kick).
    pumped = PumpedServer(make_config())
    try:
        bob = pumped.connect("bob")
        alice = socket.socket()
        alice.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        alice.connect(pumped.address)
        alice.sendall(b"alice\n")
        pumped.until(lambda: pumped.server.hub.find("alice") is not None, "alice")
        for i in range(100):  # more than alice's window: the rest waits in the kernel
            bob.send(f"{i} " + "x" * 500)
        sender = pumped.server.hub.find("bob")
        assert sender is not None
        pumped.until(lambda: sender.lines == 100, "bob's lines handled")
        user = pumped.server.hub.find("alice")
        assert user is not None
        pumped.server.hub.kick(user, "spam")
        alice.sendall(b"one more line\n")  # still typing: unread when the server closes
        pumped.until(lambda: user.link.closed, "alice's connection closed")  # type: ignore[attr-defined]
        received = b""
        alice.settimeout(WAIT)
        while chunk := alice.recv(65536):
            received += chunk
        lines = received.decode().splitlines()
        assert lines[-1] == "*** You have been kicked by an operator: spam."
        assert sum(1 for line in lines if line.startswith("<bob> ")) == 100
    finally:
        pumped.close()
