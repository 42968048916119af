"""The interactive console, driven through prompt_toolkit's pipe input, on a real server."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from chatd.admin.client import AdminClient
from chatd.admin.console import AdminCompleter, run_console
from chatd.config import AdminSettings
from chatd.plugins import BUILTIN_PLUGINS
from chatd.server import Server
from tests.helpers import WAIT, LineClient, make_config, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "admin.sock")))
    with running_server(config) as srv:
        yield srv


def _chatter(server: Server, nick: str) -> LineClient:
    assert server.address
    client = LineClient(server.address)
    client.register(nick)
    return client


def _console(server: Server, keys: str, tmp_path: Path) -> tuple[int, str]:
    """Type ``keys`` into a console on ``server``; returns its exit status and what it printed."""
    assert server.admin_path
    out = io.StringIO()
    client = AdminClient(server.admin_path, timeout=WAIT)
    result: list[int] = []
    with create_pipe_input() as pipe:
        pipe.send_text(keys)

        def run() -> None:
            result.append(
                run_console(
                    client,
                    Console(file=out, width=100, color_system=None),
                    history=FileHistory(str(tmp_path / "history")),
                    input=pipe,
                    output=DummyOutput(),
                )
            )

        thread = threading.Thread(target=run, daemon=True)  # a stuck one must not hang pytest
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive(), f"console did not finish: {out.getvalue()}"
    client.close()
    return result[0], out.getvalue()


def test_users_table_is_rendered(server: Server, tmp_path: Path) -> None:
    chatters = [_chatter(server, "alice"), _chatter(server, "bob")]  # kept: GC would close them
    status, out = _console(server, "users\r\x04", tmp_path)
    assert status == 0
    assert "2 users online" in out
    assert re.search(r"nick\s+.*address\s+.*connected\s+.*idle\s+.*lines\s+.*game", out)
    assert re.search(r"alice\s+.\s+127\.0\.0\.1:\d+", out)
    assert re.search(r"bob\s+.\s+127\.0\.0\.1:\d+", out)
    assert all(c.sock.fileno() != -1 for c in chatters)


def test_tab_completes_a_nickname_from_the_server(server: Server, tmp_path: Path) -> None:
    alice = _chatter(server, "alicia")
    bob = _chatter(server, "bob")
    # "kick al<Tab>" completes to the only nick starting with al; then the reason.
    status, out = _console(server, "kick al\t spamming\r\x04", tmp_path)
    assert status == 0
    assert "kicked alicia" in out
    assert alice.wait_closed()[-1] == "*** You have been kicked by an operator: spamming."
    bob.expect("*** alicia left (kicked by an operator: spamming)")


def test_errors_are_shown_and_the_console_goes_on(server: Server, tmp_path: Path) -> None:
    status, out = _console(
        server, 'kick nobody\rfrobnicate\rsay "unclosed\rstats\rquit\r', tmp_path
    )
    assert status == 0
    assert "error: no user called 'nobody' is online" in out
    assert "error: unknown command 'frobnicate'" in out
    assert "error: No closing quotation" in out
    assert "uptime" in out and "connections" in out


def test_history_is_kept_in_the_file(server: Server, tmp_path: Path) -> None:
    _console(server, "stats\rusers\r\x04", tmp_path)
    history = (tmp_path / "history").read_text()
    assert "+stats" in history and "+users" in history


def test_help_lists_the_commands(server: Server, tmp_path: Path) -> None:
    _, out = _console(server, "help\r\x04", tmp_path)
    for usage in (
        "users",
        "rooms",
        "kick NICK [REASON]",
        "roomkick #ROOM NICK [REASON]",
        "topic #ROOM [TEXT]",
        "say [--room #ROOM] TEXT",
        "reload [words|facts|plugins|config|all]",
    ):
        assert usage in out


def test_the_completer_offers_commands_nicks_and_topics(server: Server) -> None:
    chatters = [_chatter(server, "alice"), _chatter(server, "Albert")]  # noqa: F841 - kept open
    assert server.admin_path
    completer = AdminCompleter(AdminClient(server.admin_path))

    def complete(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in completer.get_completions(doc, CompleteEvent())]

    assert complete("") == [
        "users", "rooms", "kick", "roomkick", "topic", "ban", "unban", "bans", "reload",
        "plugins", "plugin", "history", "accounts", "account", "stats", "say", "shutdown",
        "help", "quit",
    ]  # fmt: skip
    assert complete("s") == ["stats", "say", "shutdown"]
    assert complete("kick ") == ["Albert", "alice"]
    assert complete("kick AL") == ["Albert", "alice"]
    assert complete("reload w") == ["words"]
    assert complete("kick alice ") == []
    assert complete("stats ") == []


def test_the_completer_offers_rooms_from_the_server_where_a_room_goes(server: Server) -> None:
    alice, bob = _chatter(server, "alice"), _chatter(server, "bob")
    alice.send("/join #games")
    alice.expect("*** 1 user in #games: @alice")
    alice.send("/join #gardening")
    alice.expect("*** 1 user in #gardening: @alice")
    assert server.admin_path
    completer = AdminCompleter(AdminClient(server.admin_path, timeout=WAIT))

    def complete(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in completer.get_completions(doc, CompleteEvent())]

    assert complete("topic ") == ["#games", "#gardening", "#lobby"]
    assert complete("topic #ga") == ["#games", "#gardening"]
    assert complete("topic gam") == ["#games"]  # the # may be left out
    assert complete("topic #games ") == []  # then the topic: free text
    assert complete("roomkick #L") == ["#lobby"]
    assert complete("roomkick #games ") == ["alice"]  # members of that room only
    assert complete("roomkick lobby ") == ["alice", "bob"]
    assert complete("roomkick #games alice ") == []
    assert complete("say ") == ["--room"]
    assert complete("say --room #gar") == ["#gardening"]
    assert complete("say --room #games ") == []
    assert complete("say hello ") == []
    assert complete("say hello --room #l") == ["#lobby"]
    assert complete("say -- --room ") == []  # after "--", text
    assert bob.sock.fileno() != -1


def test_tab_completes_a_room_and_the_topic_is_set(server: Server, tmp_path: Path) -> None:
    alice = _chatter(server, "alice")
    alice.send("/join #games")
    alice.expect("*** 1 user in #games: @alice")
    # "topic #ga<Tab>" completes to the only room starting with #ga; then the text.
    status, out = _console(server, "topic #ga\t Chess tonight\rsay --room gam\t hi\r\x04", tmp_path)
    assert status == 0
    assert "set the topic of #games" in out
    assert "announced to 1 user in #games" in out
    alice.expect("*** a server operator set the topic of #games: Chess tonight")
    alice.expect("*** Announcement: hi")


def test_the_completer_offers_on_off_then_the_plugin_names_from_the_server(
    server: Server,
) -> None:
    assert server.admin_path
    completer = AdminCompleter(AdminClient(server.admin_path, timeout=WAIT))

    def complete(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in completer.get_completions(doc, CompleteEvent())]

    assert complete("p") == ["plugins", "plugin"]
    assert complete("plugin ") == ["on", "off"]
    assert complete("plugin of") == ["off"]
    assert complete("plugin off ") == [m.rpartition(".")[2] for m in BUILTIN_PLUGINS]
    assert complete("plugin ON J") == ["jumble"]
    assert complete("plugin off jumble ") == []
    assert complete("plugin toggle ") == []
    assert complete("plugins ") == []


class CountingClient(AdminClient):
    """A real admin client that notes each command it sends."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, timeout=WAIT)
        self.sent: list[str] = []

    def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        self.sent.append(cmd)
        return super().call(cmd, args)


def test_names_for_completion_are_asked_once_per_burst_of_tabs(server: Server) -> None:
    assert server.admin_path
    client = CountingClient(server.admin_path)
    completer = AdminCompleter(client)
    texts = ("plugin on ", "plugin on j", "plugin off b", "kick ", "ban a", "unban ")
    texts += ("topic ", "topic #l", "say --room ", "roomkick #lobby ")
    for text in texts:
        list(completer.get_completions(Document(text, len(text)), CompleteEvent()))
    assert client.sent == ["plugins", "users", "rooms"]
    client.close()


def test_tab_completes_a_plugin_name_and_the_plugin_is_switched(
    server: Server, tmp_path: Path
) -> None:
    alice = _chatter(server, "alice")
    # "plugin of<Tab>" -> "plugin off"; " ju<Tab>" -> the only plugin starting with ju.
    status, out = _console(server, "plugin of\t ju\t\rplugins\r\x04", tmp_path)
    assert status == 0
    assert "plugin jumble is off" in out
    assert "4 plugins: 3 on, 1 off" in out  # the plugins table that followed
    alice.send("/game")
    alice.expect(
        "*** /game is switched off: an operator turned it off. An operator can turn it back on."
    )
    status, out = _console(server, "plugin on jum\t\r\x04", tmp_path)
    assert "plugin jumble is on" in out
    alice.send("/game")
    alice.expect(re.compile(r"^\*\*\* Unscramble"))


def test_history_of_a_room_is_rendered(server: Server, tmp_path: Path) -> None:
    alice, bob = _chatter(server, "alice"), _chatter(server, "bob")
    alice.send("hello from the lobby")
    alice.send("/me waves")
    bob.expect("* alice waves")
    status, out = _console(
        server, "history #lobby\rhistory lobby 1\rhistory #nowhere\r\x04", tmp_path
    )
    assert status == 0
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert "#lobby: the last 2 lines kept" in out
    assert re.search(rf"{stamp}  <alice> hello from the lobby *\n {stamp}  \* alice waves", out)
    assert "#lobby: the last 1 line kept" in out
    assert (
        "error: no room called '#nowhere' and no lines kept of one; the rooms command lists them"
        in out
    )


def test_the_completer_offers_rooms_for_history_and_account_names_for_delete(
    server: Server, tmp_path: Path
) -> None:
    alice = _chatter(server, "alice")
    alice.send("/register tr0ub4dor-and-3")
    alice.expect(re.compile(r"^\*\*\* Registered: the nickname alice is yours\."))
    assert server.admin_path
    completer = AdminCompleter(AdminClient(server.admin_path, timeout=WAIT))

    def complete(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in completer.get_completions(doc, CompleteEvent())]

    assert complete("h") == ["history", "help"]
    assert complete("history ") == ["#lobby"]
    assert complete("history #lobby ") == []
    assert complete("acc") == ["accounts", "account"]
    assert complete("account ") == ["delete"]
    assert complete("account delete ") == ["alice"]
    assert complete("account remove ") == []
    assert complete("account delete alice ") == []
    assert complete("accounts ") == []
    # Typed with Tab in the console: the account goes, and its user is told.
    status, out = _console(server, "account d\t al\t\raccounts\r\x04", tmp_path)
    assert status == 0
    assert "deleted the account alice" in out and "no accounts" in out
    alice.expect("*** An operator deleted the account alice.")
