"""The admin API end to end: a real server, its real Unix socket, real chat users."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatd.admin import wire
from chatd.admin.client import AdminClient, AdminFailed, AdminUnavailable
from chatd.admin.paths import SocketPathError, prepare_folder
from chatd.admin.service import AdminService
from chatd.config import AdminSettings, JumbleSettings
from chatd.core.plugins import Report
from chatd.irc_gateway import IrcGateway
from chatd.server import Server
from chatd.wire import jsontext
from tests.helpers import (
    WAIT,
    FakeLink,
    HubFixture,
    LineClient,
    ServerProcess,
    admin_session,
    make_config,
    named_client,
    run_chatd,
    running_server,
)


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[Server]:
    words = tmp_path / "words.txt"
    words.write_text("planet\n")
    config = make_config(
        admin=AdminSettings(enabled=True, socket=str(tmp_path / "run" / "admin.sock")),
        jumble=JumbleSettings(words_file=str(words)),
    )
    with running_server(config) as server:
        yield server


@pytest.fixture
def admin(admin_server: Server) -> Iterator[AdminClient]:
    yield from admin_session(admin_server)


def test_the_socket_is_0600_in_a_0700_folder(admin_server: Server) -> None:
    path = admin_server.admin_path
    assert path is not None
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_users_lists_everyone_with_the_fields(admin_server: Server, admin: AdminClient) -> None:
    alice, bob = named_client(admin_server, "alice"), named_client(admin_server, "bob")
    alice.send("hello")
    bob.expect("<alice> hello")
    bob.send("/game")
    bob.expect(re.compile("Unscramble"))
    users = admin.call("users")
    assert [u["nick"] for u in users] == ["alice", "bob"]
    by_nick = {u["nick"]: u for u in users}
    assert set(by_nick["alice"]) == {
        "nick", "address", "node", "protocol", "account", "connected_seconds", "idle_seconds",
        "lines", "rooms", "game",
    }  # fmt: skip
    assert by_nick["alice"]["address"] == "{}:{}".format(*alice.sock.getsockname())
    assert by_nick["alice"]["protocol"] == "line"
    assert by_nick["alice"]["account"] == ""  # a guest
    assert by_nick["alice"]["lines"] == 1 and by_nick["bob"]["lines"] == 1
    assert by_nick["alice"]["game"] is None
    assert re.fullmatch(r"jumble \(6 letters\), \d+s left", by_nick["bob"]["game"])
    for user in users:
        assert 0 <= user["idle_seconds"] <= user["connected_seconds"] < WAIT


def test_kick_tells_the_user_closes_it_and_tells_the_others(
    admin_server: Server, admin: AdminClient
) -> None:
    alice, bob = named_client(admin_server, "alice"), named_client(admin_server, "bob")
    assert admin.call("kick", {"nick": "ALICE", "reason": "flooding"}) == "kicked alice"
    assert alice.wait_closed()[-1] == "*** You have been kicked by an operator: flooding."
    bob.expect("*** alice left (kicked by an operator: flooding)")
    with pytest.raises(AdminFailed, match="no user called 'alice' is online"):
        admin.call("kick", {"nick": "alice"})


def test_reload_words_makes_the_next_game_use_them(
    admin_server: Server, admin: AdminClient, tmp_path: Path
) -> None:
    alice = named_client(admin_server, "alice")
    (tmp_path / "words.txt").write_text("garden\n")
    assert admin.call("reload", {"what": "words"}) == [
        f"jumble: words: 1 -> 1 (from {tmp_path / 'words.txt'})"
    ]
    alice.send("/game")
    alice.expect(re.compile("Unscramble"))
    alice.send("/guess garden")
    alice.expect(re.compile(r"^\*\*\* Correct! GARDEN"))
    with pytest.raises(AdminFailed, match="reload what"):
        admin.call("reload", {"what": "everything"})


def test_reload_config_without_a_file_says_so(admin: AdminClient) -> None:
    assert admin.call("reload", {"what": "config"}) == [
        "config: no file to reload (the server was started without --config)"
    ]


def test_stats_count_as_users_chat(admin_server: Server, admin: AdminClient) -> None:
    before = admin.call("stats")
    alice, bob = named_client(admin_server, "alice"), named_client(admin_server, "bob")
    alice.send("one")
    alice.send("/who")
    bob.expect("<alice> one")
    alice.expect(re.compile(r"^\*\*\* 2 users in #lobby"))
    after = admin.call("stats")
    assert after["connections"]["total"] == before["connections"]["total"] + 2
    assert after["connections"]["now"] == 2 and after["connections"]["peak"] >= 2
    assert after["lines"]["in"] == before["lines"]["in"] + 2
    assert after["lines"]["out"] >= before["lines"]["out"] + 1
    assert after["bytes"]["in"] > before["bytes"]["in"]
    assert after["bytes"]["out"] > before["bytes"]["out"]
    assert after["commands"] == {"who": 1}
    assert after["uptime_seconds"] >= before["uptime_seconds"]


def test_say_reaches_everyone(admin_server: Server, admin: AdminClient) -> None:
    alice, bob = named_client(admin_server, "alice"), named_client(admin_server, "bob")
    assert admin.call("say", {"text": "maintenance at noon"}) == "announced to 2 users"
    alice.expect("*** Announcement: maintenance at noon")
    bob.expect("*** Announcement: maintenance at noon")


def _in_games(server: Server) -> tuple[LineClient, LineClient, LineClient]:
    """alice makes #games (its operator; it is her current room), bob joins it and
    goes back to #lobby as his current room, carol stays in #lobby alone."""
    alice, bob, carol = (named_client(server, nick) for nick in ("alice", "bob", "carol"))
    alice.send("/join #games")
    alice.expect("*** 1 user in #games: @alice")
    bob.send("/join #games")
    bob.expect("*** 2 users in #games: @alice, bob")
    alice.expect("*** bob joined #games")
    bob.send("/join #lobby")
    bob.expect("*** Now talking in #lobby.")
    return alice, bob, carol


def _nothing_more_before(client: LineClient, line: str) -> None:
    """``client`` got nothing between what it read so far and ``line``, which was
    sent after everything before it (the loop keeps an order per reader)."""
    assert client.lines_until(line) == []


def test_rooms_lists_every_room_and_users_their_rooms(
    admin_server: Server, admin: AdminClient
) -> None:
    alice, bob, _carol = _in_games(admin_server)
    alice.send("/topic Board games, Fridays")
    bob.expect("*** [#games] alice set the topic: Board games, Fridays")
    assert admin.call("rooms") == [
        {
            "name": "#games",
            "members": 2,
            "lines": 1,  # the topic, said
            "topic": "Board games, Fridays",
            "operators": ["alice"],
        },
        {"name": "#lobby", "members": 3, "lines": 0, "topic": "", "operators": []},
    ]
    rooms = {user["nick"]: user["rooms"] for user in admin.call("users")}
    both = ["#games", "#lobby"]
    assert rooms == {"alice": both, "bob": both, "carol": ["#lobby"]}
    alice.send("/part #lobby")
    alice.expect("*** You left #lobby.")
    assert {u["nick"]: u["rooms"] for u in admin.call("users")}["alice"] == ["#games"]
    assert [room["members"] for room in admin.call("rooms")] == [2, 2]


def test_say_to_a_room_reaches_only_its_members(admin_server: Server, admin: AdminClient) -> None:
    alice, bob, carol = _in_games(admin_server)
    result = admin.call("say", {"room": "#GAMES", "text": "chess at eight"})
    assert result == "announced to 2 users in #games"
    alice.expect("*** Announcement: chess at eight")  # #games is her current room
    bob.expect("*** [#games] Announcement: chess at eight")  # it is one of his others
    # The # may be left out (a shell reads "#games" as a comment).
    assert admin.call("say", {"room": "games", "text": "board"}) == "announced to 2 users in #games"
    alice.expect("*** Announcement: board")
    assert admin.call("say", {"text": "to all"}) == "announced to 3 users"
    _nothing_more_before(carol, "*** Announcement: to all")  # neither room line reached her
    _nothing_more_before(alice, "*** Announcement: to all")
    with pytest.raises(AdminFailed) as failed:
        admin.call("say", {"room": "#chess", "text": "x"})
    assert str(failed.value) == "no room called '#chess'; the rooms command lists them"
    with pytest.raises(AdminFailed) as failed:
        admin.call("say", {"room": "#no room", "text": "x"})
    assert str(failed.value) == (
        '"#no room" is not a room name: use # and 1-32 letters, digits, _ or - (like #games).'
    )


def test_a_server_operator_sets_and_clears_any_rooms_topic(
    admin_server: Server, admin: AdminClient
) -> None:
    alice, bob, carol = _in_games(admin_server)
    bob.send("/join #games")
    bob.send("/topic mine")  # only alice, its operator, may
    bob.expect("*** Only the operators of #games may set its topic.")
    bob.send("/join #lobby")
    bob.expect("*** Now talking in #lobby.")
    assert admin.call("topic", {"room": "#games", "text": "Chess tonight"}) == (
        "set the topic of #games"
    )
    alice.expect("*** a server operator set the topic of #games: Chess tonight")
    bob.expect("*** [#games] a server operator set the topic: Chess tonight")
    assert admin.call("rooms")[0]["topic"] == "Chess tonight"
    carol.send("/join #games")  # a newcomer is told it
    carol.expect("*** Topic of #games: Chess tonight")
    assert admin.call("topic", {"room": "#lobby", "text": "Welcome all"}) == (
        "set the topic of #lobby"
    )
    carol.expect("*** [#lobby] a server operator set the topic: Welcome all")
    bob.expect("*** a server operator set the topic of #lobby: Welcome all")
    assert admin.call("topic", {"room": "#games"}) == "cleared the topic of #games"
    alice.expect("*** a server operator cleared the topic of #games")
    assert admin.call("rooms")[0]["topic"] == ""
    admin.call("topic", {"room": "#games", "text": "back"})
    assert admin.call("topic", {"room": "#games", "text": "-"}) == "cleared the topic of #games"
    assert admin.call("rooms")[0]["topic"] == ""  # "-" clears, as /topic - does in chat
    with pytest.raises(AdminFailed, match=r"^That topic is 301 characters; the most is 300\.$"):
        admin.call("topic", {"room": "#games", "text": "x" * 301})
    with pytest.raises(AdminFailed, match=r"^no room called '#chess'; the rooms command"):
        admin.call("topic", {"room": "#chess", "text": "x"})


def test_a_server_operator_kicks_from_any_room_and_the_user_stays_on(
    admin_server: Server, admin: AdminClient
) -> None:
    alice, bob, carol = _in_games(admin_server)
    result = admin.call("roomkick", {"room": "#games", "nick": "ALICE", "reason": "too loud"})
    assert result == "kicked alice from #games"  # its own operator, too
    bob.expect("*** [#games] alice was kicked by a server operator (too loud)")
    alice.expect("*** You were kicked from #games by a server operator: too loud")
    alice.expect("*** Now talking in #lobby.")  # #games was her current room
    assert admin.call("rooms")[0] == {
        "name": "#games", "members": 1, "lines": 0, "topic": "", "operators": [],
    }  # fmt: skip
    with pytest.raises(AdminFailed) as failed:
        admin.call("roomkick", {"room": "#games", "nick": "carol"})
    assert str(failed.value) == "carol is not in #games."
    assert admin.call("roomkick", {"room": "games", "nick": "bob"}) == "kicked bob from #games"
    bob.expect("*** You were kicked from #games by a server operator.")
    assert [room["name"] for room in admin.call("rooms")] == ["#lobby"]  # empty: gone
    with pytest.raises(AdminFailed, match=r"^no room called '#games'"):
        admin.call("roomkick", {"room": "#games", "nick": "bob"})
    alice.send("/join #games")  # a room kick keeps nobody out
    alice.expect("*** Now talking in #games.")
    bob.send("hello")
    carol.expect("<bob> hello")  # all three are still on the server
    alice.expect("[#lobby] <bob> hello")


def test_chatd_admin_rooms_topic_and_say_to_a_room_as_a_subprocess(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        alice = LineClient(server.address)
        alice.register("alice")
        alice.send("/join #games")
        alice.expect("*** 1 user in #games: @alice")
        env = {"XDG_RUNTIME_DIR": str(tmp_path)}  # where the server put its socket
        done = run_chatd("admin", "topic", "games", "Chess", "tonight", env=env)
        assert (done.returncode, done.stdout, done.stderr) == (0, "set the topic of #games\n", "")
        alice.expect("*** a server operator set the topic of #games: Chess tonight")
        done = run_chatd("admin", "rooms", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [
            {
                "name": "#games",
                "members": 1,
                "lines": 1,
                "topic": "Chess tonight",
                "operators": ["alice"],
            },
            {"name": "#lobby", "members": 1, "lines": 0, "topic": "", "operators": []},
        ]
        done = run_chatd("admin", "say", "--room", "games", "chess", "at", "eight", env=env)
        assert (done.returncode, done.stdout) == (0, "announced to 1 user in #games\n")
        alice.expect("*** Announcement: chess at eight")
        # --room may come anywhere; after "--", a word is text.
        done = run_chatd("admin", "say", "hi", "--room", "#games", "--", "--all", env=env)
        assert (done.returncode, done.stdout) == (0, "announced to 1 user in #games\n")
        alice.expect("*** Announcement: hi --all")
        done = run_chatd("admin", "users", "--room", "#games", env=env)
        assert (done.returncode, done.stderr) == (
            2,
            "chatd admin: users takes no --room; usage: users\n",
        )
    finally:
        server.stop()


def _raw(path: Path, payload: bytes, replies: int) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(path))
        sock.sendall(payload)
        buf = b""
        while buf.count(b"\n") < replies:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {buf!r}"
            buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def test_bad_requests_get_errors_and_the_connection_stays_usable(admin_server: Server) -> None:
    assert admin_server.admin_path
    replies = _raw(
        admin_server.admin_path,
        b'not json\n[1, 2]\n{"args": {}}\n{"cmd": "nope"}\n{"cmd": "kick", "args": {}}\n'
        b'{"cmd": "say", "args": {"text": 5}}\n\n' + b"x" * 70000 + b'\n{"cmd": "stats"}\n',
        replies=8,
    )
    assert [r["ok"] for r in replies] == [False] * 7 + [True]
    errors = [r["error"] for r in replies[:7]]
    assert errors[0].startswith("not JSON: ")
    assert errors[1] == 'a request is a JSON object: {"cmd": "...", "args": {...}}'
    assert errors[2] == 'missing "cmd" (a string)'
    assert errors[3] == (
        "unknown command 'nope'; commands: users, rooms, kick, roomkick, topic,"
        " ban, unban, bans, reload, plugins, plugin, history, accounts, account, stats,"
        " say, shutdown"
    )
    assert errors[4] == "kick: missing 'nick'; usage: kick NICK [REASON]"
    assert errors[5] == "say: 'text' must be a string"
    assert errors[6] == "request too long (over 65536 bytes)"
    assert replies[7]["result"]["connections"]["now"] == 0


def test_a_request_nested_too_deep_is_an_error_and_nothing_to_log(
    admin_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    assert admin_server.admin_path
    deep = b"[" * 32000 + b"]" * 32000  # under the 64 KiB a request may be
    with caplog.at_level(logging.INFO):
        replies = _raw(admin_server.admin_path, deep + b'\n{"cmd": "stats"}\n', replies=2)
    assert replies[0] == {
        "ok": False,
        "error": f"request nested too deep (at most {jsontext.MAX_NESTING} levels)",
    }
    assert replies[1]["ok"]  # the connection stays usable
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_client_survives_a_reply_nested_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "fake.sock"
    with socket.socket(socket.AF_UNIX) as fake:  # a broken or hostile server
        fake.bind(str(path))
        fake.listen()
        client = AdminClient(path, timeout=WAIT)
        conn, _ = fake.accept()
        with conn:
            conn.sendall(b'{"ok": true, "result": ' + b"[" * 32000 + b"]" * 32000 + b"}\n")
            with pytest.raises(wire.WireError, match=r"^the server sent a reply nested too deep"):
                client.call("stats")
        client.close()


def test_shutdown_is_the_graceful_path(tmp_path: Path) -> None:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")))
    with running_server(config) as server:
        alice = named_client(server, "alice")
        assert server.admin_path
        admin = AdminClient(server.admin_path)
        assert admin.call("shutdown", {"message": "back in 5"}) == "shutting down"
        assert alice.wait_closed()[-1] == "*** Server shutting down: back in 5."
        admin.close()
    assert not (tmp_path / "a.sock").exists()  # removed on the way out


def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens: a crashed server's leftover
    config = make_config(admin=AdminSettings(enabled=True, socket=str(path)))
    with running_server(config) as first:
        assert first.admin_path == path
        AdminClient(path).close()
        assert _refusal(path) == (
            f"another chatd is serving the admin socket {path}; stop it,"
            " or give this one its own [admin] socket"
        )
        AdminClient(path).close()  # and the first one still serves


def _refusal(path: Path) -> str:
    """The one line a server gives when it must not serve the admin socket at ``path``."""
    config = make_config(admin=AdminSettings(enabled=True, socket=str(path)))
    server = Server(config, entry_points=False)
    try:
        with pytest.raises(SocketPathError) as refused:
            server.listen()
    finally:
        server.reactor._close_all()
    return str(refused.value)


def _serve_args(tmp_path: Path, socket_path: str) -> tuple[str, ...]:
    """``chatd serve`` arguments for a config in ``tmp_path`` whose admin socket is
    ``socket_path`` (relative to the config), logging only warnings and worse."""
    config = tmp_path / "chatd.toml"
    config.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f"[admin]\nsocket = {json.dumps(socket_path)}\n[plugins]\ndirs = []\n"
    )
    return ("serve", "--config", str(config), "--log-level", "WARNING")


def test_the_config_file_at_the_socket_path_survives_and_is_named(tmp_path: Path) -> None:
    args = _serve_args(tmp_path, "chatd.toml")  # the careless operator's setting
    config = tmp_path / "chatd.toml"
    before = config.read_bytes()
    result = run_chatd(*args)
    assert result.returncode == 2
    assert result.stderr == (
        f"chatd: admin socket path {config} is a regular file, not a socket, and chatd"
        " replaces only a socket a stopped server left: move it away or set"
        " [admin] socket to another path\n"
    )
    assert config.read_bytes() == before


def test_a_dangling_symbolic_link_at_the_socket_path_is_named_not_the_chat_port(
    tmp_path: Path,
) -> None:
    link = tmp_path / "admin.sock"
    link.symlink_to(tmp_path / "gone")
    result = run_chatd(*_serve_args(tmp_path, "admin.sock"))
    assert result.returncode == 2
    assert result.stderr == (
        f"chatd: admin socket path {link} is a symbolic link to {tmp_path / 'gone'}, which"
        " does not exist, not a socket, and chatd replaces only a socket a stopped server"
        " left: move it away or set [admin] socket to another path\n"
    )
    assert os.readlink(link) == str(tmp_path / "gone")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _folder(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("kept")


def _link_to_a_file(path: Path) -> None:
    (path.parent / "precious").write_text("kept")
    path.symlink_to(path.parent / "precious")


def _link_to_a_stale_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path.parent / "stale.sock"))
    path.symlink_to(path.parent / "stale.sock")


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_fifo, "a FIFO"),
        (_folder, "a folder"),
        (_link_to_a_file, "a symbolic link to {folder}/precious"),
        (_link_to_a_stale_socket, "a symbolic link to {folder}/stale.sock"),
    ],
)
def test_only_a_socket_at_the_socket_path_may_be_replaced(
    tmp_path: Path, make: Callable[[Path], None], kind: str
) -> None:
    path = tmp_path / "admin.sock"
    make(path)
    before = {p: (p.lstat().st_ino, p.lstat().st_mode) for p in tmp_path.rglob("*")}
    assert _refusal(path) == (
        f"admin socket path {path} is {kind.format(folder=tmp_path)}, not a socket, and chatd"
        " replaces only a socket a stopped server left: move it away or set"
        " [admin] socket to another path"
    )
    assert {p: (p.lstat().st_ino, p.lstat().st_mode) for p in tmp_path.rglob("*")} == before


def test_the_reactor_itself_never_removes_what_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("kept")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    server = Server(make_config(), entry_points=False)
    try:
        for target in (path, tmp_path / "link"):
            with pytest.raises(FileExistsError) as refused:
                server.reactor.listen_unix(
                    str(target), server.admin, allowed_uids=frozenset({os.getuid()})
                )
            assert refused.value.errno == errno.EEXIST and refused.value.filename == str(target)
    finally:
        server.reactor._close_all()
    assert path.read_text() == "kept" and (tmp_path / "link").is_symlink()


def test_a_socket_of_another_user_is_not_replaced(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give the socket to another user")
    path = tmp_path / "admin.sock"
    with socket.socket(socket.AF_UNIX) as theirs:
        theirs.bind(str(path))
    os.chown(path, 65534, 65534)
    assert _refusal(path) == (
        f"admin socket {path} is a socket of uid 65534, not of this user (uid 0); remove it"
        " if no server uses it, or set [admin] socket to another path"
    )
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_a_live_server_with_a_full_backlog_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX) as busy:
        busy.bind(str(path))
        busy.listen(0)  # room for one pending connection, never accepted
        waiting = socket.socket(socket.AF_UNIX)
        waiting.connect(str(path))
        lines: list[str] = []
        probe = threading.Thread(target=lambda: lines.append(_refusal(path)), daemon=True)
        probe.start()
        probe.join(WAIT)  # a blocking probe would wait here for an accept that never comes
        waiting.close()
    assert not probe.is_alive(), "the probe blocked on a full backlog"
    assert lines == [
        f"another chatd is serving the admin socket {path}; stop it,"
        " or give this one its own [admin] socket"
    ]
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_a_folder_someone_else_owns_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give the folder to another user")
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(SocketPathError, match=r"belongs to uid 65534, not to this user"):
        prepare_folder(folder / "admin.sock")


def test_a_path_too_long_for_a_unix_socket_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120) / "admin.sock"
    with pytest.raises(SocketPathError, match=r"longer than a Unix socket allows \(107 bytes\)"):
        prepare_folder(path)


def test_a_folder_of_ours_that_others_can_enter_is_used_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)  # others may look, not write; the socket itself is 0600
    prepare_folder(folder / "admin.sock")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_a_sticky_folder_open_to_all_keeps_its_mode_and_serves(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"  # as /tmp is: anyone may add, only an owner may remove
    folder.mkdir()
    folder.chmod(0o1777)
    config = make_config(admin=AdminSettings(enabled=True, socket=str(folder / "a.sock")))
    with running_server(config) as server:
        assert server.admin_path
        admin = AdminClient(server.admin_path, timeout=WAIT)
        assert admin.call("stats")["connections"]["now"] == 0
        admin.close()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o1777
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_folder_others_can_write_is_refused_and_left_alone(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(mode)
    assert _refusal(folder / "a.sock") == (
        f"admin socket folder {folder} can be written by other users (mode {mode:04o}), who"
        f" could replace the socket; make it private (chmod 700 {folder}) or set"
        " [admin] socket to a path in a folder of your own"
    )
    assert stat.S_IMODE(folder.stat().st_mode) == mode
    assert list(folder.iterdir()) == []


def test_a_sticky_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give the folder to another user")
    folder = tmp_path / "theirs"  # its owner may remove whatever is in it
    folder.mkdir()
    folder.chmod(0o1777)
    os.chown(folder, 65534, 65534)
    with pytest.raises(SocketPathError, match=r"belongs to uid 65534, not to this user"):
        prepare_folder(folder / "admin.sock")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777


def test_a_folder_that_is_a_link_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give the link to another user")
    (tmp_path / "real").mkdir(mode=0o700)
    link = tmp_path / "run"  # its owner could point it elsewhere once we have checked
    link.symlink_to(tmp_path / "real")
    os.lchown(link, 65534, 65534)
    with pytest.raises(SocketPathError, match=r"is a symbolic link of uid 65534"):
        prepare_folder(link / "admin.sock")


def test_a_folder_that_is_a_link_of_ours_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(tmp_path / "real")
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "run/a.sock")))
    with running_server(config):
        assert stat.S_ISSOCK((tmp_path / "real" / "a.sock").lstat().st_mode)


def test_another_user_is_refused_by_peer_credentials(caplog: pytest.LogCaptureFixture) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another user")
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        pytest.skip("no interpreter another user may run")
    base = Path(tempfile.mkdtemp(prefix="chatd-peercred-"))
    try:
        base.chmod(0o755)  # pytest's own tmp_path is closed to other users
        _refuses_another_user(base / "run" / "admin.sock", python, caplog)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _refuses_another_user(path: Path, python: str, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(path)))
    with running_server(config):
        # Open the folder and socket so the other user can reach the socket at
        # all: what is left to stop it is the SO_PEERCRED check.
        path.parent.chmod(0o755)
        path.chmod(0o666)
        _probe_as_nobody(path, python, caplog)
        AdminClient(path).close()  # and the server's own user still gets in


def _probe_as_nobody(path: Path, python: str, caplog: pytest.LogCaptureFixture) -> None:
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
        "try:\n"
        "    s.sendall(b'STATS')\n"
        "    print('answered' if s.recv(100) else 'closed')\n"
        "except ConnectionError:  # reset or broken pipe: closed on us all the same\n"
        "    print('closed')\n"
    ).replace("STATS", '{"cmd": "stats"}\\n')
    with caplog.at_level(logging.WARNING):
        done = subprocess.run(
            [python, "-c", probe, str(path)],
            user=65534,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    assert done.stdout.strip() == "closed", done.stderr  # closed without an answer
    assert "admin socket: refused a connection from uid 65534" in caplog.text


def test_chatd_admin_users_json_as_a_subprocess(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        alice = LineClient(server.address)
        alice.register("alice")
        env = {"XDG_RUNTIME_DIR": str(tmp_path)}  # where the server put its socket
        done = run_chatd("admin", "users", "--json", env=env)
        assert done.returncode == 0, done.stderr
        (user,) = json.loads(done.stdout)
        assert user["nick"] == "alice" and user["lines"] == 0
        done = run_chatd("admin", "kick", "bob", env=env)
        assert done.returncode == 1
        assert done.stderr == "chatd admin: no user called 'bob' is online\n"
    finally:
        server.stop()


def test_chatd_admin_without_a_server_names_the_socket(tmp_path: Path) -> None:
    result = run_chatd("admin", "--socket", str(tmp_path / "none.sock"), "users")
    assert result.returncode == 1
    assert result.stderr == (
        f"chatd admin: no chatd server is answering at {tmp_path / 'none.sock'}"
        " (is 'chatd serve' running?)\n"
    )


def test_chatd_admin_usage_errors(tmp_path: Path) -> None:
    result = run_chatd("admin", "--socket", str(tmp_path / "none.sock"), "kick")
    assert result.returncode == 2
    assert result.stderr == "chatd admin: usage: kick NICK [REASON]\n"
    result = run_chatd("admin", "--socket", str(tmp_path / "none.sock"), "--room", "#games")
    assert (result.returncode, result.stderr) == (
        2,
        "chatd admin: --room goes with a command: say --room #ROOM TEXT\n",
    )


def test_the_client_reports_a_server_that_goes_away(tmp_path: Path) -> None:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")))
    with running_server(config) as server:
        assert server.admin_path
        client = AdminClient(server.admin_path)
    with pytest.raises(AdminUnavailable, match=r"closed the connection|lost the server"):
        client.call("users")


def test_reload_config_applies_what_it_can_and_names_what_needs_a_restart(
    tmp_path: Path,
) -> None:
    from chatd.config import load

    path = tmp_path / "chatd.toml"
    base = (
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[admin]\nsocket = "{tmp_path / "admin.sock"}"\n'
        "[plugins]\ndirs = []\n"
    )
    path.write_text(base + "[jumble]\nround_seconds = 60\n")
    with running_server(load(path)) as server:
        assert server.admin_path
        admin = AdminClient(server.admin_path)
        alice = named_client(server, "alice")
        assert admin.call("reload", {"what": "config"}) == [f"config: {path}: nothing changed"]
        path.write_text(
            base.replace("port = 0", "port = 7")
            + "[jumble]\nround_seconds = 30\n[limits]\nsendq_bytes = 65536\n"
        )
        assert admin.call("reload", {"what": "config"}) == [
            f"config: {path}: changed [limits] sendq_bytes, [jumble] round_seconds;"
            " needs a restart: [server] port"
        ]
        alice.send("/game")
        alice.expect(re.compile(r"^\*\*\* Unscramble: .*, 30s\)\.$"))
        path.write_text(base + "[jumble]\nround_seconds = 'soon'\n")
        with pytest.raises(AdminFailed) as failed:
            admin.call("reload", {"what": "config"})
        assert str(failed.value) == (
            f"reload failed: config: reload failed, kept the old settings: {path}:"
            " [jumble] round_seconds must be an integer, got 'soon'"
        )
        assert server.config.jumble.round_seconds == 30
        admin.close()


def test_the_service_is_built_from_its_parts_without_a_server() -> None:
    # The service gets what it needs passed in (no Server, no import of chatd.server):
    # here a sans-IO hub, and reload and stop callables that note what they were asked.
    fixture = HubFixture()
    fixture.join("alice")
    asked: list[str | None] = []

    def reload(what: str) -> Report:
        asked.append(what)
        return Report([f"{what}: reloaded"])

    service = AdminService(
        fixture.hub,
        fixture.plugins,
        fixture.hub.stats,
        clock=fixture.clock,
        reload=reload,
        stop=asked.append,
    )

    def call(cmd: str, **args: str) -> Any:
        return service.handle(json.dumps(wire.request(cmd, args)))

    assert call("reload", what="words") == wire.ok(["words: reloaded"])
    assert call("shutdown", message="back soon") == wire.ok("shutting down")
    assert asked == ["words", "back soon"]
    assert [u["nick"] for u in call("users")["result"]] == ["alice"]
    assert call("stats")["result"]["uptime_seconds"] == 0


def test_users_says_which_protocol_each_came_in_on() -> None:
    fixture = HubFixture()
    fixture.join("alice")
    gateway = IrcGateway(fixture.hub)
    session = gateway.connect(FakeLink())
    for line in (b"CAP LS 302", b"CAP REQ :server-time", b"NICK bob", b"USER b 0 * :B", b"CAP END"):
        gateway.receive_line(session, line)
    service = AdminService(
        fixture.hub, fixture.plugins, fixture.hub.stats, clock=fixture.clock,
        reload=lambda what: Report(), stop=lambda message: None,
    )  # fmt: skip
    users = service.users({})
    assert {u["nick"]: u["protocol"] for u in users} == {"alice": "line", "bob": "irc"}
