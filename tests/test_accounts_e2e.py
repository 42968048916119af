"""Accounts end to end: a real ``chatd serve`` process with its database in
a temporary folder, nc clients on real sockets. scrypt runs on the server's
password thread here (not at once, as in the sans-IO tests); accounts and
the private messages kept for them survive a restart; the password is in
no line of the server's log."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.helpers import LineClient, ServerProcess

PASSWORD = "tr0ub4dor-and-3"
WRONG = "not-the-one-123"


def _register_account(address: tuple[str, int], nick: str) -> None:
    client = LineClient(address)
    client.register(nick)
    client.send(f"/register {PASSWORD}")
    client.expect(re.compile(rf"^\*\*\* Registered: the nickname {nick} is yours\."))
    client.send("/quit")
    client.wait_closed()


def test_an_account_survives_a_restart_and_guards_its_nick(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        _register_account(server.address, "alice")
        assert server.signal(signal.SIGTERM) == 0
    finally:
        server.stop()
    server = ServerProcess(tmp_path)  # the same database
    try:
        # From another address: its wrong password makes its own address wait.
        intruder = LineClient(server.address, source="127.0.0.2")
        intruder.expect(re.compile(r"^\*\*\* Choose a nickname"))
        intruder.send("alice")
        intruder.expect(
            "*** The nickname alice is registered. Type its password"
            " (or /nick ANOTHER for another nickname):"
        )
        intruder.send(WRONG)
        intruder.expect(re.compile(r"^\*\*\* Wrong password for alice; 2 more tries"))
        intruder.send("/nick mallory")
        intruder.expect(re.compile(r"^\*\*\* Welcome, mallory!"))
        intruder.send("/nick alice")
        intruder.expect(re.compile(r"^\*\*\* The nickname alice is registered; /identify"))
        owner = LineClient(server.address)
        owner.expect(re.compile(r"^\*\*\* Choose a nickname"))
        owner.send(f"alice:{PASSWORD}")
        owner.expect(re.compile(r"^\*\*\* Welcome, alice!"))
        owner.expect("*** You are identified: alice is your account.")
        assert server.signal(signal.SIGTERM) == 0
        log = server.log
        assert PASSWORD not in log and WRONG not in log
        assert "alice identified" in log
    finally:
        server.stop()


def test_a_message_kept_for_an_away_account_reaches_it_after_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        _register_account(server.address, "bob")
        alice = LineClient(server.address)
        alice.register("alice")
        alice.send("/msg bob the keys are under the mat")
        alice.expect("*** bob is offline; your message is kept until they identify.")
        assert server.signal(signal.SIGTERM) == 0
    finally:
        server.stop()
    server = ServerProcess(tmp_path)
    try:
        carol = LineClient(server.address)
        carol.register("carol")
        bob = LineClient(server.address)
        bob.expect(re.compile(r"^\*\*\* Choose a nickname"))
        bob.send(f"bob:{PASSWORD}")
        bob.expect("*** 1 private message while you were away:")
        bob.expect(re.compile(r"^\*\*\* \[[^]]+\] \*alice\* the keys are under the mat$"))
        bob.expect("*** End of private messages kept for you.")
        carol.send("/history 500")
        carol.expect("*** #lobby has no history yet.")  # a private message is in no room
    finally:
        server.stop()
