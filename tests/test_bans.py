"""Operators keep someone out: chatd admin ban / unban / bans (issue 12, item 15)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from chatd.admin import render
from chatd.admin.client import AdminClient, AdminFailed
from chatd.config import AdminSettings
from chatd.core.bans import MAX_BANS, BanError, Bans, format_duration, parse_duration
from tests.helpers import (
    WAIT,
    FakeLink,
    HubFixture,
    LineClient,
    lifted_limits,
    make_config,
    running_server,
)

PROMPT = re.compile(r"^\*\*\* Choose a nickname \(")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("45s", 45),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1W", 7 * 86400),
    ],
)
def test_durations_are_read_as_operators_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5m", "0", "1.5h", "400d", "m10"])
def test_a_bad_duration_says_what_a_duration_is(text: str) -> None:
    with pytest.raises(BanError):
        parse_duration(text)


def test_durations_are_shown_in_at_most_two_units() -> None:
    assert [format_duration(s) for s in (0.2, 45, 600, 598.2, 7200, 5400, 90061)] == [
        "1s", "45s", "10m", "9m 59s", "2h", "1h 30m", "1d 1h",
    ]  # fmt: skip


def test_the_table_is_bounded_and_drops_the_ban_that_ends_soonest() -> None:
    bans = Bans()
    for i in range(MAX_BANS):
        bans.add("nick", f"n{i}", until=1000.0 + i, reason="")
    bans.add("address", "10.0.0.1", until=5000.0, reason="")
    assert len(bans) == MAX_BANS
    assert bans.find("nick", "n0", now=0) is None  # ended soonest: dropped
    assert bans.find("nick", "N1", now=0) is not None  # nicknames ignore case
    assert bans.find("address", "10.0.0.1", now=0) is not None


def test_a_ban_ends_by_itself() -> None:
    fx = HubFixture()
    _, alice = fx.join("alice")
    _, bob = fx.join("bob")
    assert fx.hub.ban("alice", 600, "spam") == ("banned alice and the address 127.0.0.1 for 10m")
    assert alice.take() == ["*** You have been banned by an operator for 10m: spam."]
    assert alice.closed
    assert bob.take() == ["*** alice left (banned by an operator: spam)"]
    # A new connection from that address is told and closed before the greeting.
    again = FakeLink("127.0.0.1:40001")
    fx.hub.connect(again)
    assert again.take() == ["*** You are banned from this server for another 10m."]
    assert again.closed
    # From elsewhere, the nickname is refused; so is /nick to it.
    other = FakeLink("10.1.2.3:5555")
    carol = fx.hub.connect(other)
    other.take()
    fx.hub.receive(carol, "Alice")
    assert other.take()[0] == "*** The nickname Alice is banned for another 10m; choose another."
    fx.clock.advance(601)
    fx.hub.receive(carol, "alice")
    assert other.take()[0].startswith("*** Welcome, alice!")
    assert fx.hub.bans.active(fx.clock()) == []


def test_ban_unban_and_bans_over_the_admin_socket(tmp_path: Path) -> None:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")))
    with running_server(config) as server:
        assert server.address and server.admin_path
        alice, bob = LineClient(server.address), LineClient(server.address)
        alice.register("alice")
        bob.register("bob")
        admin = AdminClient(server.admin_path, timeout=WAIT)
        try:
            with pytest.raises(AdminFailed, match="is not a duration"):
                admin.call("ban", {"nick": "alice", "duration": "soon"})
            assert admin.call("ban", {"nick": "alice", "duration": "10m", "reason": "spam"}) == (
                "banned alice and the address 127.0.0.1 for 10m"
            )
            assert (
                alice.wait_closed()[-1] == "*** You have been banned by an operator for 10m: spam."
            )
            bob.expect("*** alice left (banned by an operator: spam)")
            back = LineClient(server.address)
            assert back.wait_closed() == ["*** You are banned from this server for another 10m."]
            listed = admin.call("bans")
            assert [(b["kind"], b["target"], b["reason"]) for b in listed] == [
                ("address", "127.0.0.1", "spam"),
                ("nick", "alice", "spam"),
            ]
            assert all(590 < b["seconds_left"] <= 600 for b in listed)
            shown = io.StringIO()
            Console(file=shown, width=80).print(render.result("bans", listed))
            assert "127.0.0.1" in shown.getvalue() and "spam" in shown.getvalue()
            assert admin.call("unban", {"target": "127.0.0.1"}) == (
                "lifted the ban on address 127.0.0.1"
            )
            # The address may come back; the nickname stays banned.
            back = LineClient(server.address)
            back.expect(PROMPT)
            back.send("alice")
            back.expect("*** The nickname alice is banned for another 10m; choose another.")
            assert admin.call("unban", {"target": "ALICE"}) == "lifted the ban on nick alice"
            back.send("alice")
            back.expect(re.compile(r"^\*\*\* Welcome, alice!"))
            with pytest.raises(AdminFailed, match="no ban on 'alice'"):
                admin.call("unban", {"target": "alice"})
            assert admin.call("bans") == []
        finally:
            admin.close()


def test_chatd_connect_reads_the_servers_own_words_as_stay_away() -> None:
    # The client does not reconnect after these lines; they must be the ones
    # the server really sends, not a copy of them that could drift.
    from chatd.client.model import sent_away

    fx = HubFixture(config=make_config(limits=lifted_limits(idle_timeout=30)))
    _, banned = fx.join("alice")
    bob, kicked = fx.join("bob")
    _, idle = fx.join("carol")
    fx.hub.ban("alice", 5400, "spam")
    fx.hub.kick(bob)
    refused = FakeLink("127.0.0.1:40001")
    fx.hub.connect(refused)
    unnamed = FakeLink("10.0.0.9:1")
    fx.hub.connect(unnamed)
    fx.clock.advance(61)  # past the idle and the register timeouts
    fx.timers.run_due()
    last = {name: link.lines[-1] for name, link in (
        ("banned", banned), ("kicked", kicked), ("refused", refused), ("idle", idle),
        ("unnamed", unnamed),
    )}  # fmt: skip
    assert {name: sent_away(line) for name, line in last.items()} == {
        "banned": "banned", "kicked": "kicked", "refused": "banned", "idle": "idle",
        "unnamed": "unnamed",
    }, last  # fmt: skip
