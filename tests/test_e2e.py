"""End to end: a real server on 127.0.0.1, an ephemeral port, real client sockets."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

from chatd.config import JumbleSettings
from chatd.server import Server
from tests.helpers import (
    LINGER_ZERO,
    LineClient,
    make_config,
    non_reader,
    running_server,
    wait_until,
)

Connect = Callable[..., LineClient]


def test_three_users_chat(connect: Connect) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.expect("*** bob joined")
    alice.expect("*** carol joined")
    bob.expect("*** carol joined")

    alice.send("hi all")
    assert bob.expect(re.compile("^<")) == "<alice> hi all"
    assert carol.expect(re.compile("^<")) == "<alice> hi all"
    bob.send("hey alice")
    carol.send("hello!")
    # alice gets both; no echo of her own line came before them
    got = {alice.expect(re.compile("^<")), alice.expect(re.compile("^<"))}
    assert got == {"<bob> hey alice", "<carol> hello!"}
    assert carol.expect(re.compile("^<")) == "<bob> hey alice"
    assert bob.expect(re.compile("^<")) == "<carol> hello!"


def test_sender_gets_no_echo_and_each_line_arrives_exactly_once(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    for i in range(20):
        alice.send(f"line {i}")
    bob_lines = bob.lines_until("<alice> line 19")
    assert [line for line in bob_lines if line.startswith("<")] == [
        f"<alice> line {i}" for i in range(19)
    ]
    bob.send("done")  # a marker: whatever alice got before it is all she got
    before = alice.lines_until("<bob> done")
    assert not any(line.startswith("<alice>") for line in before)


def test_duplicate_nickname_is_refused_then_another_accepted(connect: Connect) -> None:
    connect("alice")
    second = connect()
    second.expect(re.compile("Choose a nickname"))
    second.send("ALICE")
    second.expect("*** The nickname ALICE is taken; choose another.")
    second.expect(re.compile("Choose a nickname"))
    second.send("alice2")
    second.expect(
        "*** Welcome, alice2! 2 users online; you are in #lobby. Type /help for commands."
    )


def test_nick_me_who_and_quit(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect("*** bob joined")
    alice.send("/nick Alicia")
    alice.expect("*** You are now known as Alicia.")
    bob.expect("*** alice is now known as Alicia")
    alice.send("/me waves")
    bob.expect("* Alicia waves")
    bob.send("/who")
    bob.expect("*** 2 users in #lobby: Alicia, bob")
    alice.send("/quit see you")
    assert alice.wait_closed() == ["*** Goodbye, Alicia."]
    bob.expect("*** Alicia left (Quit: see you)")
    bob.send("/who")
    bob.expect("*** 1 user in #lobby: bob")


def test_abrupt_close_removes_the_user(connect: Connect, server: Server) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.reset()  # RST, as when a machine drops off the network
    bob.expect("*** alice left (connection reset by peer)")
    carol = connect()
    carol.register("alice")  # the name is free again
    wait_until(lambda: len(server.reactor.connections) == 2, what="the reset socket to close")


def test_ctrl_c_in_nc_removes_the_user(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.expect("*** bob joined")  # unread data would make the kernel send RST
    alice.close()  # FIN: what nc does when it exits
    bob.expect("*** alice left (connection closed)")


def _victim_queued(server: Server) -> bool:
    return any(len(c.outbuf) for c in server.reactor.connections if c.session.nick == "victim")


def test_server_survives_a_client_that_disconnects_mid_broadcast(server: Server) -> None:
    assert server.address
    small = non_reader(server.address, "victim")
    alice, bob = LineClient(server.address), LineClient(server.address)
    alice.register("alice")
    bob.register("bob")
    # Broadcast in rounds that bob keeps up with, until the server holds unsent
    # data for the victim (the kernel's buffers take a varying amount first).
    payload = "x" * 100
    sent = 0
    while not _victim_queued(server):
        assert sent < 100_000, "the victim's output never queued up"
        alice.send_raw("".join(f"{sent + i} {payload}\n" for i in range(500)).encode())
        sent += 500
        bob.expect(f"<alice> {sent - 1} {payload}")
    small.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    small.close()  # vanishes with broadcast data still queued for it
    alice.send_raw("".join(f"{sent + i} {payload}\n" for i in range(500)).encode())
    seen = bob.lines_until(f"<alice> {sent + 499} {payload}")
    assert [line for line in seen if line.startswith("<")] == [
        f"<alice> {i} {payload}" for i in range(sent, sent + 499)
    ]
    if "*** victim left (connection reset by peer)" not in seen:
        bob.expect("*** victim left (connection reset by peer)")
    carol = LineClient(server.address)
    carol.register("carol")
    carol.send("still serving")
    alice.expect("<carol> still serving")


def test_overlong_line_is_refused_and_the_connection_stays_usable(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send("z" * 5000)
    alice.expect("*** Line too long (over 1024 bytes); it was not sent.")
    alice.send("short one")
    assert bob.expect(re.compile("^<")) == "<alice> short one"


def test_control_bytes_never_reach_another_terminal(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send_raw(b"\x1b[2J\x1b]0;owned\x07clear\x00ed \xff\r\n")
    assert bob.expect(re.compile("^<")) == "<alice> cleared \ufffd"


def test_crlf_and_unicode_round_trip(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.send_raw("Grüße 👋\r\n".encode())
    assert bob.expect(re.compile("^<")) == "<alice> Grüße 👋"


def test_stop_tells_every_client_and_closes_them() -> None:
    with running_server() as server:
        assert server.address
        alice = LineClient(server.address)
        alice.register("alice")
        unnamed = LineClient(server.address)
        unnamed.expect(re.compile("Choose a nickname"))
        server.stop()
        assert alice.wait_closed()[-1] == "*** Server shutting down. Goodbye!"
        assert unnamed.wait_closed()[-1] == "*** Server shutting down. Goodbye!"


def test_a_jumble_round_over_real_sockets_while_others_chat(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("puzzle\n")
    config = make_config(jumble=JumbleSettings(words_file=str(words), round_seconds=60))
    with running_server(config) as server:
        assert server.address
        alice, bob = LineClient(server.address), LineClient(server.address)
        alice.register("alice")
        bob.register("bob")
        alice.send("/game")
        line = alice.expect(re.compile(r"^\*\*\* Unscramble: "))
        puzzle = line.split(": ", 1)[1].split(" (")[0].replace(" ", "")
        assert sorted(puzzle) == sorted("PUZZLE") and puzzle != "PUZZLE"
        bob.send("anyone around?")
        alice.expect("<bob> anyone around?")
        alice.send("/hint")
        alice.expect(re.compile(r"^\*\*\* Hint: P _ _ _ _ _ "))
        alice.send("/guess muzzle")
        alice.expect("*** MUZZLE is not it. Keep trying, or /hint, or /giveup.")
        alice.send("/guess puzzle")
        alice.expect(re.compile(r"^\*\*\* Correct! PUZZLE in \d+\.\ds: 4 points \(total 4\)\.$"))
        bob.expect(re.compile(r"^\*\*\* alice solved a jumble in \d+\.\ds\. /game to play\.$"))
        bob.send("/scores")
        bob.expect("*** Top players: 1. alice (guest) 4.")
        bob.expect("*** This week: 1. alice (guest) 4.")
        bob.send("/fact")
        bob.expect(re.compile(r"^\*\*\* Fact: \S"))
