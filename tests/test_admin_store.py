"""The admin commands for what the store keeps, end to end: a real server, its
admin socket, chat users on real sockets (issue 16, "Operators"): ``history
#ROOM [N]``, ``accounts``, ``account delete NAME``, and the store in ``stats``."""

from __future__ import annotations

import io
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chatd.admin import render
from chatd.admin.client import AdminClient, AdminFailed
from chatd.config import AdminSettings, StoreSettings
from chatd.core.hub import MAX_HISTORY_LINES
from chatd.core.rooms import room_problem
from chatd.server import Server
from tests.helpers import (
    WAIT,
    IrcLineClient,
    LineClient,
    ServerProcess,
    admin_session,
    make_config,
    named_client,
    run_chatd,
    running_server,
    wait_until,
)

PASSWORD = "tr0ub4dor-and-3"


def _config(tmp_path: Path, store: str = ":memory:") -> Any:
    return make_config(
        admin=AdminSettings(enabled=True, socket=str(tmp_path / "run" / "admin.sock")),
        store=StoreSettings(path=store),
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(_config(tmp_path)) as srv:
        yield srv


@pytest.fixture
def admin(server: Server) -> Iterator[AdminClient]:
    yield from admin_session(server)


def _registered(server: Server, nick: str) -> LineClient:
    """``nick`` on a real socket, with an account it is identified as."""
    client = named_client(server, nick)
    client.send(f"/register {PASSWORD}")
    client.expect(re.compile(rf"^\*\*\* Registered: the nickname {nick} is yours\."))
    return client


def _shown(renderable: Any, width: int = 100) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


# -- history ---------------------------------------------------------------------------


def test_history_shows_a_rooms_lines_in_order_with_their_kinds_and_times(
    server: Server, admin: AdminClient
) -> None:
    alice = named_client(server, "alice")
    alice.send("/join #games")
    alice.expect("*** 1 user in #games: @alice")
    assert server.irc_address is not None
    bob = IrcLineClient(server.irc_address)  # NOTICE: the one kind nc has no command for
    bob.register("bob")
    bob.send("JOIN #games")
    alice.expect("*** bob joined #games")
    before = time.time()
    alice.send("hello there")
    alice.send("/me waves")
    alice.send("/topic Board games, Fridays")
    alice.expect("*** alice set the topic of #games: Board games, Fridays")
    bob.send("NOTICE #games :quiet please")
    alice.expect(re.compile("quiet please"))
    after = time.time()

    history = admin.call("history", {"room": "games"})  # the # may be left out
    assert history["room"] == "#games"
    lines = history["lines"]
    assert [(line["kind"], line["nick"], line["text"]) for line in lines] == [
        ("said", "alice", "hello there"),
        ("acted", "alice", "waves"),
        ("topic", "alice", "Board games, Fridays"),
        ("notice", "bob", "quiet please"),
    ]
    assert all(set(line) == {"id", "at", "kind", "nick", "text"} for line in lines)
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
    assert all(before - 1 <= line["at"] <= after + 1 for line in lines)
    # Shown for people: local time to the minute, each line as chat shows it.
    text = _shown(render.result("history", history))
    assert text.splitlines()[0].rstrip() == "#games: the last 4 lines kept"
    at = render.when(lines[0]["at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", at)
    assert re.search(rf"{at}\s+<alice> hello there", text)
    for shown in ("* alice waves", "alice set the topic: Board games, Fridays", "-bob- quiet"):
        assert shown in text
    # N: the last N of them, still oldest first.
    last = admin.call("history", {"room": "#GAMES", "count": "2"})["lines"]
    assert [line["text"] for line in last] == ["Board games, Fridays", "quiet please"]


def test_history_takes_20_lines_by_default_and_at_most_500(
    server: Server, admin: AdminClient
) -> None:
    alice, bob = named_client(server, "alice"), named_client(server, "bob")
    for i in range(25):
        alice.send(f"line {i}")
    bob.expect("<alice> line 24")
    default = admin.call("history", {"room": "#lobby"})["lines"]
    assert [line["text"] for line in default] == [f"line {i}" for i in range(5, 25)]
    everything = admin.call("history", {"room": "#lobby", "count": str(MAX_HISTORY_LINES)})
    assert len(everything["lines"]) == 25
    for count in ("0", str(MAX_HISTORY_LINES + 1), "ten", "-3", "9" * 5000):
        with pytest.raises(AdminFailed) as failed:
            admin.call("history", {"room": "#lobby", "count": count})
        assert str(failed.value) == (
            f"history: N is a number of lines from 1 to {MAX_HISTORY_LINES};"
            " usage: history #ROOM [N]"
        )


def test_history_of_a_bad_name_no_room_or_an_empty_room_is_one_line(
    server: Server, admin: AdminClient
) -> None:
    _alice = named_client(server, "alice")  # kept: a client collected is a client gone
    with pytest.raises(AdminFailed) as failed:
        admin.call("history", {"room": "#no good"})
    assert str(failed.value) == room_problem("#no good")
    assert str(failed.value).startswith('"#no good" is not a room name: use #')
    with pytest.raises(AdminFailed) as failed:
        admin.call("history", {"room": "#nowhere"})
    assert str(failed.value) == (
        "no room called '#nowhere' and no lines kept of one; the rooms command lists them"
    )
    empty = admin.call("history", {"room": "lobby"})
    assert empty == {"room": "#lobby", "lines": []}
    assert _shown(render.result("history", empty)) == "#lobby has no lines kept yet\n"


def test_history_shows_what_plugins_and_users_put_in_it_clean(
    server: Server, admin: AdminClient
) -> None:
    """A kept line may hold anything (a plugin's words, a database from
    elsewhere): the reply and its rendering hold no control character, and
    rich markup in it is shown as typed."""
    alice, bob = named_client(server, "alice"), named_client(server, "bob")
    alice.send("[bold red]not markup[/]")
    bob.expect("<alice> [bold red]not markup[/]")
    server.hub.store.lines.append("#lobby", 1, "alice", "alice", "a\x1b[31mred\x9b2J\nforged")
    history = admin.call("history", {"room": "#lobby"})
    assert [line["text"] for line in history["lines"]] == [
        "[bold red]not markup[/]",
        "ared forged",
    ]
    text = _shown(render.result("history", history))
    assert "<alice> [bold red]not markup[/]" in text
    assert "<alice> ared forged" in text
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)


def test_history_survives_a_restart_and_chatd_admin_shows_it(tmp_path: Path) -> None:
    """The lines come back from the database file (not the memory of a run),
    through ``chatd admin history`` as a person and a script run it."""
    server = ServerProcess(tmp_path)
    try:
        alice = LineClient(server.address)
        alice.register("alice")
        alice.send("kept on disk")
        alice.send("/me stays")
        alice.send("/quit")
        alice.wait_closed()
        assert server.signal(signal.SIGTERM) == 0
    finally:
        server.stop()
    server = ServerProcess(tmp_path)  # the same database
    try:
        env = {"XDG_RUNTIME_DIR": str(tmp_path)}  # where the server put its socket
        done = run_chatd("admin", "history", "lobby", "--json", env=env)
        assert done.returncode == 0, done.stderr
        kept = json.loads(done.stdout)
        assert kept["room"] == "#lobby"
        assert [(line["kind"], line["text"]) for line in kept["lines"]] == [
            ("said", "kept on disk"),
            ("acted", "stays"),
        ]
        done = run_chatd("admin", "history", "lobby", "1", env=env)
        assert done.returncode == 0, done.stderr
        assert "* alice stays" in done.stdout and "kept on disk" not in done.stdout
        done = run_chatd("admin", "history", "nowhere", env=env)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == (
            "chatd admin: no room called '#nowhere' and no lines kept of one;"
            " the rooms command lists them\n"
        )
    finally:
        server.stop()


# -- accounts --------------------------------------------------------------------------


def test_accounts_lists_names_times_and_held_messages_never_a_hash(
    server: Server, admin: AdminClient
) -> None:
    assert admin.call("accounts") == []
    assert _shown(render.result("accounts", [])) == "no accounts\n"
    before = time.time()
    alice = _registered(server, "alice")
    (account,) = admin.call("accounts")
    assert set(account) == {"name", "created", "last_seen", "held_messages", "identified"}
    assert account["name"] == "alice" and account["identified"] is True
    assert before - 1 <= account["created"] <= account["last_seen"] <= time.time() + 1
    assert account["held_messages"] == 0
    alice.send("/quit")
    alice.wait_closed()
    bob = named_client(server, "bob")
    bob.send("/msg alice see you tomorrow")
    bob.expect("*** alice is offline; your message is kept until they identify.")
    (account,) = admin.call("accounts")
    assert account["held_messages"] == 1 and account["identified"] is False

    stored = server.hub.store.accounts.get("alice")
    assert stored is not None and stored.hash
    reply = json.dumps(admin.call("accounts"))
    text = _shown(render.result("accounts", admin.call("accounts")), width=200)
    for shown in (reply, text):
        assert stored.hash not in shown and "hash" not in shown and "scrypt" not in shown
    rows = text.splitlines()
    assert rows[0].rstrip() == "1 account"
    assert re.search(r"name\s+.*created\s+.*last seen\s+.*held", text)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.search(rf"alice\s+.\s+{stamp}\s+.\s+{stamp}\s+.\s+1 ", text)


def test_account_delete_removes_it_tells_its_user_and_a_second_is_an_error(
    server: Server, admin: AdminClient
) -> None:
    alice = _registered(server, "alice")
    carol = _registered(server, "carol")
    carol.send("/quit")
    carol.wait_closed()
    alice.send("/msg carol one for later")
    alice.expect("*** carol is offline; your message is kept until they identify.")
    rows = admin.call("stats")["store"]["rows"]
    assert (rows["accounts"], rows["held_messages"]) == (2, 1)

    assert admin.call("account", {"action": "delete", "name": "ALICE"}) == (
        "deleted the account alice"
    )
    alice.expect("*** An operator deleted the account alice.")
    assert admin.call("account", {"action": "DELETE", "name": "carol"}) == (
        "deleted the account carol"
    )
    assert admin.call("accounts") == []
    rows = admin.call("stats")["store"]["rows"]
    assert (rows["accounts"], rows["held_messages"]) == (0, 0)
    with pytest.raises(AdminFailed) as failed:
        admin.call("account", {"action": "delete", "name": "alice"})
    assert str(failed.value) == "no account called 'alice'; the accounts command lists them"
    with pytest.raises(AdminFailed) as failed:
        admin.call("account", {"action": "remove", "name": "alice"})
    assert str(failed.value) == "account: 'remove' is not delete; usage: account delete NAME"
    # alice stays on, as a guest: the nickname is free to register again.
    alice.send(f"/register {PASSWORD}")
    alice.expect(re.compile(r"^\*\*\* Registered: the nickname alice is yours\."))


# -- stats -----------------------------------------------------------------------------


def test_stats_shows_a_store_in_memory(server: Server, admin: AdminClient) -> None:
    alice, bob = named_client(server, "alice"), named_client(server, "bob")
    alice.send("one")
    alice.send("two")
    bob.expect("<alice> two")
    stats = admin.call("stats")
    assert stats["store"] == {
        "path": None,
        "bytes": 0,
        "rows": {"lines": 2, "accounts": 0, "held_messages": 0, "scores": 0},
        "dropped_lines": 0,
    }
    text = _shown(render.result("stats", stats))
    assert re.search(r"store\s+.\s+in memory", text)
    assert re.search(r"store size\s+.\s+0 bytes", text)
    assert "2 lines, 0 accounts, 0 held messages, 0 scores" in text
    assert re.search(r"store dropped\s+.\s+0 lines", text)


def test_stats_shows_a_database_file_its_size_and_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    with running_server(_config(tmp_path, str(db))) as server:
        assert server.admin_path
        admin = AdminClient(server.admin_path, timeout=WAIT)
        try:
            alice, bob = _registered(server, "alice"), named_client(server, "bob")
            alice.send("written down")
            bob.expect("<alice> written down")

            def written() -> bool:  # the writer thread commits off the loop
                rows = admin.call("stats")["store"]["rows"]
                return bool(rows == {"lines": 1, "accounts": 1, "held_messages": 0, "scores": 0})

            wait_until(written, what="the line and the account in the file")
            store = admin.call("stats")["store"]
            assert store["path"] == str(db)
            wal = db.with_name(db.name + "-wal")
            on_disk = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
            assert store["bytes"] > 0 and abs(store["bytes"] - on_disk) < 1 << 20
            assert store["dropped_lines"] == 0
            text = _shown(render.result("stats", admin.call("stats")), width=200)
            assert re.search(rf"store\s+.\s+{re.escape(str(db))}", text)
            assert re.search(r"store size\s+.\s+[\d,]+ bytes", text)
            assert "1 line, 1 account, 0 held messages, 0 scores" in text
        finally:
            admin.close()


def test_the_help_for_history_says_the_hubs_numbers() -> None:
    """The console's help is written in the protocol's module, which imports
    no hub: the numbers it gives must be the hub's."""
    from chatd.admin import wire
    from chatd.core.hub import HISTORY_LINES

    assert (
        f"(default {HISTORY_LINES}, at most {MAX_HISTORY_LINES})" in wire.COMMANDS["history"].help
    )
