"""chatd connect: the sans-IO model, terminal safety, and the app on pipe input against
a real server (register, send, show, Tab, reconnect after a restart, quit)."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prompt_toolkit import print_formatted_text
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.vt100 import Vt100_Output

from chatd.admin.client import AdminClient
from chatd.client.app import HELD_NOTICE, ChatApp, ChatCompleter
from chatd.client.model import ClientModel, is_quit, nick_style
from chatd.config import AdminSettings, Config, ServerSettings
from tests.helpers import (
    WAIT,
    LineClient,
    lifted_limits,
    make_config,
    run_chatd,
    running_server,
    wait_until,
)

# -- the model, without sockets ------------------------------------------------------


def _feed(model: ClientModel, *lines: str) -> list[str]:
    sent: list[str] = []
    for line in lines:
        sent += model.receive(line).send
    return sent


GREETING = (
    "*** Welcome to chatd, a chat server for terminals.",
    "*** Choose a nickname (1-16 letters, digits, _ or -):",
)


def test_the_nickname_is_claimed_once_then_left_to_the_user() -> None:
    model = ClientModel("carol")
    assert _feed(model, *GREETING) == ["carol"]
    # taken: the prompt comes again, and the user answers by hand
    assert _feed(model, "*** The nickname carol is taken; choose another.", GREETING[1]) == []
    model.typed("carol2")
    assert _feed(
        model, "*** Welcome, carol2! 2 users online; you are in #lobby. Type /help for commands."
    ) == [
        "/who",
        "/help",
    ]
    assert model.nick == "carol2" and model.registered


def test_without_a_nick_nothing_is_sent_for_the_user() -> None:
    model = ClientModel()
    assert _feed(model, *GREETING) == []


def test_a_nickname_typed_at_the_prompt_is_sent_once() -> None:
    model = ClientModel()
    assert _feed(model, *GREETING) == []
    model.typed("carol")  # the app sends it as typed
    # taken: the prompt comes again, and the client must not send "carol" a second time
    assert _feed(model, "*** The nickname carol is taken; choose another.", GREETING[1]) == []
    model.typed("carol2")
    assert _feed(model, GREETING[1]) == []
    # but a new connection claims it again
    model.reconnected()
    assert _feed(model, *GREETING) == ["carol2"]


def test_the_help_it_asked_for_is_learned_not_shown() -> None:
    model = ClientModel("carol")
    _feed(
        model,
        *GREETING,
        "*** Welcome, carol! 1 user online (you); you are in #lobby. Type /help for commands.",
    )
    help_lines = [
        "*** Commands (/help NAME shows how to use one):",
        "***   /game    Start a round.",
        "***   /who     List the users online.",
        "*** Anything else you type goes to everyone; start it with // to send a /.",
    ]
    assert [model.receive(line).show for line in help_lines] == [False] * 4
    assert model.commands == {"game", "who"}
    # a /help the user types is shown
    assert all(model.receive(line).show for line in help_lines)


def test_nicknames_online_are_tracked() -> None:
    model = ClientModel("carol")
    _feed(
        model,
        *GREETING,
        "*** Welcome, carol! 3 users online; you are in #lobby. Type /help for commands.",
        "*** 3 users online: alice, bob,",
        "*** carol",
        "*** dave joined",
        "*** alice left (Quit)",
        "*** bob is now known as Robert",
    )
    assert model.nicks == {"carol", "dave", "Robert"}
    _feed(model, "*** You are now known as caz.")
    assert model.nicks == {"caz", "dave", "Robert"} and model.nick == "caz"


def test_after_a_reconnect_the_same_nick_is_claimed() -> None:
    model = ClientModel()
    _feed(model, *GREETING)
    model.typed("erin")
    _feed(
        model, "*** Welcome, erin! 1 user online (you); you are in #lobby. Type /help for commands."
    )
    model.reconnected()
    assert not model.registered
    assert _feed(model, *GREETING) == ["erin"]


SENT_AWAY_LINES = {
    "*** You have been kicked by an operator.": "kicked",
    "*** You have been kicked by an operator: spam.": "kicked",
    "*** You have been kicked by an operator: no. really: stop.": "kicked",
    "*** You have been banned by an operator for 10m.": "banned",
    "*** You have been banned by an operator for 2h: flooding.": "banned",
    "*** You are banned from this server for another 1d.": "banned",
    "*** You are banned from this server for another 1h30m.": "banned",
    "*** Disconnected: nothing sent for 300 seconds (idle timeout).": "idle",
    "*** Disconnected: nothing sent for 0.5 seconds (idle timeout).": "idle",
    "*** Timed out: no nickname chosen in 60 seconds.": "unnamed",
}


def test_the_server_s_last_words_say_whether_to_reconnect() -> None:
    model = ClientModel("carol")
    _feed(
        model,
        *GREETING,
        "*** Welcome, carol! 1 user online (you); you are in #lobby. Type /help for commands.",
    )
    assert model.sent_away is None
    for line, why in SENT_AWAY_LINES.items():
        model.receive(line + "\r\n")
        assert model.sent_away == why, line
    for line in (
        "*** Server shutting down. Goodbye!",
        "*** Server shutting down: new version.",
        "*** Goodbye, carol.",
        "<bob> *** You have been kicked by an operator.",  # chat can't send anyone away
        "*** Announcement: You have been kicked by an operator.",
        "*** You have been kicked by an operator",  # not the server's sentence
        "*** You have been banned by an operator for ever.",
    ):
        model.receive(line)
        assert model.sent_away is None, line


def test_only_the_last_line_before_the_close_sends_the_client_away() -> None:
    model = ClientModel("carol")
    model.receive("*** You have been kicked by an operator.")
    model.receive("<bob> just kidding")  # a plugin's announcement, then the chat goes on
    assert model.sent_away is None
    model.receive("*** You have been kicked by an operator.")
    model.reconnected()
    assert model.sent_away is None


def test_quit_is_what_the_server_takes_for_quit() -> None:
    assert is_quit("/quit") and is_quit("/QUIT bye now") and is_quit("/quit ")
    # The server takes these as chat, so the client must not leave on them.
    assert not is_quit("  /quit") and not is_quit("//quit") and not is_quit("/quitter")


def test_lines_are_styled() -> None:
    model = ClientModel()
    assert model.look("<bob> hi") == [(nick_style("bob"), "<bob>"), ("", " hi")]
    assert model.look("*** bob joined") == [("ansiyellow", "*** bob joined")]
    assert model.look("* bob waves") == [
        ("italic", "* "),
        (nick_style("bob"), "bob"),
        ("italic", " waves"),
    ]
    assert nick_style("Bob") == nick_style("bob")  # stable, whatever the case


def test_an_escape_sequence_from_the_server_is_never_written_raw() -> None:
    model = ClientModel()
    hostile = "<mallory> \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\x00 text"
    incoming = model.receive(hostile)
    assert incoming.text == "<mallory> red text"
    out = io.StringIO()
    output = Vt100_Output(out, lambda: _size(), term="xterm")
    print_formatted_text(FormattedText(incoming.fragments), output=output)
    written = out.getvalue()
    assert "red text" in written
    assert "pwned" not in written and "\x1b[2J" not in written and "\x9b" not in written
    assert "\x00" not in written


def _size() -> object:
    from prompt_toolkit.data_structures import Size

    return Size(rows=24, columns=80)


def test_the_completer_offers_commands_and_nicks() -> None:
    model = ClientModel("carol")
    model.nick = "carol"
    model.commands = {"game", "guess", "who"}
    model.nicks = {"carol", "bob", "Barbara"}
    completer = ChatCompleter(model)

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert complete("/g") == ["/game", "/guess"]
    assert complete("hi b") == ["Barbara", "bob"]
    assert complete("c") == []  # not yourself
    assert complete("/game b") == ["Barbara", "bob"]


# -- the app against a real server ---------------------------------------------------


class RunningClient:
    """A ChatApp on pipe input in a thread of its own."""

    def __init__(self, port: int, nick: str | None = "carol") -> None:
        self._pipe_cm = create_pipe_input()
        self.pipe = self._pipe_cm.__enter__()
        self.app = ChatApp(
            "127.0.0.1", port, nick, input=self.pipe, output=DummyOutput(), first_retry=0.05
        )
        self.status: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.status.append(asyncio.run(self.app.run())), daemon=True
        )
        self.thread.start()

    def type(self, keys: str) -> None:
        self.pipe.send_text(keys)

    def wait_for(self, want: str | Callable[[str], bool], count: int = 1) -> None:
        def seen() -> bool:
            lines = list(self.app.transcript)
            match = (lambda t: t == want) if isinstance(want, str) else want
            return sum(1 for line in lines if match(line)) >= count

        wait_until(seen, what=f"{want!r} on the client; it has {self.app.transcript[-8:]}")

    def finish(self) -> int:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the client did not exit"
        self._pipe_cm.__exit__(None, None, None)
        return self.status[0]


@contextmanager
def _server(port: int = 0) -> Iterator[tuple[int, object]]:
    config = make_config(server=ServerSettings(host="127.0.0.1", port=port))
    with running_server(config) as server:
        assert server.address
        yield server.address[1], server


def test_the_client_chats_completes_and_survives_a_restart() -> None:
    with _server() as (port, _):
        client = RunningClient(port)
        client.wait_for(
            "*** Welcome, carol! 1 user online (you); you are in #lobby. Type /help for commands."
        )
        client.wait_for("*** 1 user in #lobby: carol")
        wait_until(lambda: "who" in client.app.model.commands, what="commands learned")
        assert not any(line.startswith("*** Commands") for line in client.app.transcript)
        bob = LineClient(("127.0.0.1", port))
        bob.register("bob")
        client.wait_for("*** bob joined")
        client.type("hello there\r")
        bob.expect("<carol> hello there")
        bob.send("hi carol")
        client.wait_for("<bob> hi carol")
        client.type("see you b\t\r")  # Tab completes the nickname
        bob.expect("<carol> see you bob")
        client.type("/gam\t\r")  # and a command
        client.wait_for(lambda line: line.startswith("*** Unscramble: "))
        bob.close()
    # The server is gone: the client says so, and keeps trying.
    client.wait_for(lambda line: line.startswith("*** Lost the connection to 127.0.0.1:"))
    with _server(port):
        client.wait_for(f"*** Reconnected to 127.0.0.1:{port}.")
        client.wait_for(
            "*** Welcome, carol! 1 user online (you); you are in #lobby. Type /help for commands.",
            2,
        )
        dave = LineClient(("127.0.0.1", port))
        dave.register("dave")
        client.wait_for("*** dave joined")
        client.type("back again\r")
        dave.expect("<carol> back again")
        client.type("/quit bye\r")
        dave.expect("*** carol left (Quit: bye)")
        assert client.finish() == 0


def test_the_app_sends_a_nickname_typed_by_hand_once() -> None:
    with _server() as (port, _):
        holder = LineClient(("127.0.0.1", port))
        holder.register("carol")
        client = RunningClient(port, nick=None)
        prompt = GREETING[1]
        client.wait_for(prompt)
        client.type("carol\r")
        client.wait_for(prompt, 2)  # after the refusal
        client.type("carol2\r")
        client.wait_for(
            "*** Welcome, carol2! 2 users online; you are in #lobby. Type /help for commands."
        )
        taken = "*** The nickname carol is taken; choose another."
        assert client.app.transcript.count(taken) == 1
        assert client.app.transcript.count(prompt) == 2
        client.type("/quit\r")
        assert client.finish() == 0


HELD = f"*** {HELD_NOTICE}"
#: How long a client that was sent away is watched for a reconnect it must not make.
#: Its retry delay is 0.05 s, so one that does reconnect does so well within it.
STAYS_AWAY_SECONDS = 1.0


def _holds(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """``condition`` is true every time it is polled for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.01)


@contextmanager
def _admin_server(tmp_path: Path, config: Config) -> Iterator[tuple[int, AdminClient]]:
    with running_server(config) as server:
        assert server.address and server.admin_path
        admin = AdminClient(server.admin_path, timeout=WAIT)
        try:
            yield server.address[1], admin
        finally:
            admin.close()


def _connections(admin: AdminClient) -> int:
    total: int = admin.call("stats")["connections"]["total"]
    return total


def test_a_kicked_client_waits_for_the_user_to_reconnect(tmp_path: Path) -> None:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")))
    with _admin_server(tmp_path, config) as (port, admin):
        client = RunningClient(port)
        welcome = (
            "*** Welcome, carol! 1 user online (you); you are in #lobby. Type /help for commands."
        )
        client.wait_for(welcome)
        # Kicked only once the /who and /help it sends on joining are answered: a
        # server that closes with input unread resets the connection, and the reset
        # can destroy the kick notice before the client reads it.
        client.wait_for("*** 1 user in #lobby: carol")
        wait_until(lambda: "who" in client.app.model.commands, what="commands learned")
        before = _connections(admin)
        assert admin.call("kick", {"nick": "carol", "reason": "spam"}) == "kicked carol"
        client.wait_for(HELD)
        last_words = ["*** You have been kicked by an operator: spam.", HELD]
        assert client.app.transcript[-2:] == last_words
        _holds(
            lambda: _connections(admin) == before and client.app.transcript[-2:] == last_words,
            STAYS_AWAY_SECONDS,
            f"the kicked client came back: {client.app.transcript[-4:]}",
        )
        client.type("\r")  # Enter: connect again, and claim the same nickname
        client.wait_for(f"*** Reconnected to 127.0.0.1:{port}.")
        client.wait_for(welcome, 2)
        assert _connections(admin) == before + 1
        client.type("/quit\r")
        assert client.finish() == 0


def test_an_idle_timeout_is_not_undone_and_ctrl_d_then_leaves(tmp_path: Path) -> None:
    config = make_config(
        admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")),
        limits=lifted_limits(idle_timeout=0.5),
    )
    with _admin_server(tmp_path, config) as (port, admin):
        client = RunningClient(port)
        client.wait_for(HELD)
        last_words = ["*** Disconnected: nothing sent for 0.5 seconds (idle timeout).", HELD]
        assert client.app.transcript[-2:] == last_words
        before = _connections(admin)
        _holds(
            lambda: _connections(admin) == before and client.app.transcript[-2:] == last_words,
            STAYS_AWAY_SECONDS,
            f"the idle client came back: {client.app.transcript[-4:]}",
        )
        client.type("\x04")
        assert client.finish() == 0
        assert _connections(admin) == before


class BanningServer:
    """Not chatd: a listener that answers each connection with the line a chatd that
    bans the address sends, then closes it; it counts the connections."""

    LINE = b"*** You are banned from this server for another 10m.\n"

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so that close() is seen soon
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            with conn:
                conn.sendall(self.LINE)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.sock.close()


def test_a_banned_client_waits_and_enter_tries_again() -> None:
    server = BanningServer()
    try:
        client = RunningClient(server.port)
        client.wait_for(HELD)
        assert client.app.transcript == [BanningServer.LINE.decode().rstrip(), HELD]
        _holds(lambda: server.accepted == 1, STAYS_AWAY_SECONDS, "the banned client came back")
        client.type("\r")
        client.wait_for(HELD, 2)  # banned again: and again it waits
        assert server.accepted == 2
        client.type("/quit\r")
        assert client.finish() == 0
    finally:
        server.close()


def test_ctrl_d_leaves_cleanly() -> None:
    with _server() as (port, _):
        bob = LineClient(("127.0.0.1", port))
        bob.register("bob")
        client = RunningClient(port)
        bob.expect("*** carol joined")
        client.type("\x04")
        bob.expect("*** carol left (Quit)")
        assert client.finish() == 0


def test_an_unreachable_server_is_one_line_and_status_1() -> None:
    with _server() as (port, _):
        pass  # the port was free a moment ago, and nothing listens on it now
    started = time.monotonic()
    result = run_chatd("connect", "127.0.0.1", str(port), "--nick", "carol")
    assert result.returncode == 1
    assert result.stderr == f"chatd connect: cannot reach 127.0.0.1:{port}: Connection refused\n"
    assert time.monotonic() - started < WAIT


def test_a_bad_nick_argument_is_one_line() -> None:
    result = run_chatd("connect", "--nick", "no spaces")
    assert result.returncode == 2
    assert re.fullmatch(r"chatd: connect: --nick .*not a valid nickname.*\n", result.stderr)
