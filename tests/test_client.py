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
from prompt_toolkit.data_structures import Size
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.vt100 import Vt100_Output

from chatd.admin.client import AdminClient
from chatd.client.app import HELD_NOTICE, ChatApp, ChatCompleter
from chatd.client.model import (
    ACTION_STYLE,
    PRIVATE_STYLE,
    ROOM_STYLE,
    SERVER_STYLE,
    ClientModel,
    is_quit,
    nick_style,
)
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
    r"*** Choose a nickname (1-16 letters, digits or any of _-[]\^{}|`):",
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


def test_a_password_the_server_asks_for_is_masked_and_never_claimed_as_a_nick() -> None:
    model = ClientModel()
    _feed(model, *GREETING)
    model.typed("alice")
    assert not model.asking_password
    _feed(model, "*** The nickname alice is registered. Type its password (or /nick ANOTHER):")
    assert model.asking_password  # the app masks what is typed now
    model.typed("hunter2-secret")
    _feed(model, "*** Wrong password for alice; 2 more tries (the next after 1 second).")
    assert model.asking_password
    model.typed("too-soon-secret")
    _feed(model, "*** Wait 1 second more before the next password.")
    assert model.asking_password  # still: the next line is a password too
    model.typed("hunter3-secret")
    model.reconnected()  # the connection dropped before the answer
    assert _feed(model, *GREETING) == ["alice"]  # the nickname, never a password
    assert not model.asking_password


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


def _size() -> Size:
    return Size(rows=24, columns=80)


def _completer(model: ClientModel) -> Callable[[str], list[str]]:
    completer = ChatCompleter(model)

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    return complete


def test_the_completer_offers_commands_and_nicks() -> None:
    model = ClientModel("carol")
    _feed(
        model,  # an older server: no rooms
        "*** Welcome, carol! 3 users online. Type /help for commands.",
        "*** 3 users online: carol, bob, Barbara",
    )
    model.commands = {"game", "guess", "who"}
    complete = _completer(model)
    assert complete("/g") == ["/game", "/guess"]
    assert complete("hi b") == ["Barbara", "bob"]
    assert complete("c") == []  # not yourself
    assert complete("/game b") == ["Barbara", "bob"]
    assert complete("/join #") == [] and complete("/msg ") == ["Barbara", "bob"]


WELCOME_LOBBY = "*** Welcome, carol! 3 users online; you are in #lobby. Type /help for commands."
HELP_WITH_ROOMS = (
    "*** Commands (/help NAME shows how to use one):",
    "***   /join #room  Join a room (or make one) and talk in it.",
    "***   /rooms       List the rooms, their size and topic.",
    "*** Anything else you type goes to everyone; start it with // to send a /.",
)


def _prompt(model: ClientModel) -> str:
    return "".join(text for _, text in model.prompt())


def test_the_prompt_shows_the_current_room() -> None:
    model = ClientModel("carol")
    assert _prompt(model) == "> "
    _feed(model, *GREETING, WELCOME_LOBBY)
    assert model.room == "#lobby"
    assert model.prompt() == [("", "carol "), (ROOM_STYLE, "#lobby"), ("", "> ")]
    _feed(model, "*** Now talking in #games.", "*** #games has no topic.")
    assert _prompt(model) == "carol #games> "
    _feed(model, "*** You left #games.", "*** Now talking in #lobby.")
    assert _prompt(model) == "carol #lobby> "
    _feed(model, "*** You were kicked from #lobby by a server operator: spam")
    _feed(model, "*** You are in no room. /join #room to enter one.")
    assert model.room == "" and _prompt(model) == "carol (no room)> "
    _feed(model, "*** You are now known as caz.", "*** Now talking in #Dev.")
    assert _prompt(model) == "caz #Dev> "
    model.reconnected()
    assert model.room is None and _prompt(model) == "> " and model.rooms == []


def test_an_older_server_gets_the_old_prompt_and_no_rooms() -> None:
    model = ClientModel("carol")
    welcome = "*** Welcome, carol! 3 users online. Type /help for commands."
    assert _feed(model, *GREETING, welcome) == ["carol", "/who", "/help"]
    assert model.room is None and _prompt(model) == "carol> "
    # its /help has no /rooms, so none is asked for
    assert _feed(model, HELP_WITH_ROOMS[0], HELP_WITH_ROOMS[1], HELP_WITH_ROOMS[3]) == []
    assert model.settled
    _feed(model, "*** 3 users online: alice, bob,", "*** carol", "*** dave joined")
    assert model.nicks == {"alice", "bob", "carol", "dave"} and model.rooms == []
    assert model.look("*** You have been kicked by an operator.") == [
        (SERVER_STYLE, "*** You have been kicked by an operator.")
    ]


def test_the_rooms_are_listed_quietly_after_the_help() -> None:
    model = ClientModel("carol")
    assert _feed(model, *GREETING, WELCOME_LOBBY) == ["carol", "/who", "/help"]
    assert [model.receive(line).show for line in HELP_WITH_ROOMS] == [False] * 4
    assert model.receive(HELP_WITH_ROOMS[-1]).send == []  # a /help typed by hand: no /rooms
    model.receive(HELP_WITH_ROOMS[0])
    assert not model.settled  # the hidden /help is answered, the hidden /rooms is not
    assert _feed(model, *HELP_WITH_ROOMS[1:]) == []
    model = ClientModel("carol")
    _feed(model, *GREETING, WELCOME_LOBBY, *HELP_WITH_ROOMS[:-1])
    assert model.receive(HELP_WITH_ROOMS[-1]).send == ["/rooms"]
    assert not model.settled
    listing = [
        "*** 3 rooms:",
        "***   #games (2 users): chess, go",
        "***   #lobby (5 users)",
        "***   #Quiet (1 user)",
    ]
    shown = [model.receive(line).show for line in [listing[0], "<bob> hi", *listing[1:]]]
    assert shown == [False, True, False, False, False]
    assert model.settled
    assert model.rooms == ["#games", "#lobby", "#Quiet"]
    # a /rooms typed by hand is shown, and says which rooms are gone
    assert all(model.receive(line).show for line in ["*** 1 room:", "***   #lobby (5 users)"])
    assert model.rooms == ["#lobby"]
    assert model.receive("***   #Quiet (1 user)").show  # after the listing: not taken as one


def test_rooms_are_learned_from_what_the_server_says() -> None:
    model = ClientModel("carol")
    _feed(
        model,
        *GREETING,
        WELCOME_LOBBY,
        "*** 2 users in #lobby: @alice, carol",
        "*** 2 users in #chess: bob, dave",  # /who #chess: a room we are not in
        "*** Now talking in #games.",
        "*** Topic of #games: go",
        "*** 2 users in #games: @carol, erin",
        "*** Now talking in #solo.",
        "*** #solo has no topic.",
        "*** 1 user in #solo: @carol",
        "[#dev] <frank> hi",  # a room of ours, though we never saw the join
        "*** [#ops] gina joined",
    )
    assert model.rooms == ["#chess", "#dev", "#games", "#lobby", "#ops", "#solo"]
    assert model.my_rooms == ["#dev", "#games", "#lobby", "#ops", "#solo"]
    _feed(model, "*** You left #solo.", "*** Now talking in #games.")  # nobody left: removed
    _feed(model, "*** You left #games.", "*** Now talking in #lobby.")  # erin is still there
    _feed(model, "*** You were kicked from #ops by alice.")
    assert model.rooms == ["#chess", "#dev", "#games", "#lobby", "#ops"]
    assert model.my_rooms == ["#dev", "#lobby"]
    _feed(model, "*** alice left (Quit)", "*** You left #lobby.")  # the default room stays
    assert "#lobby" in model.rooms and model.my_rooms == ["#dev"]


def test_nicknames_in_rooms_and_private_talk_are_tracked() -> None:
    model = ClientModel("carol")
    _feed(
        model,
        *GREETING,
        WELCOME_LOBBY,
        "*** 4 users in #lobby: @alice, bob,",
        "*** carol, @erin",
        "*** Now talking in #games.",
        "*** 3 users in #games: @alice, carol, dave",
    )
    assert model.nicks == {"alice", "bob", "carol", "dave", "erin"}  # no @
    _feed(
        model,
        "*** frank joined #games",
        "*** [#lobby] gina joined",
        "*** [#lobby] bob left (bye)",
        "*** alice left #games (later)",  # still in #lobby
        "*** [#lobby] erin was kicked by alice (spam)",
        "*** dave was kicked from #games by a server operator",
        "*** gina is now known as Gina",
    )
    assert model.nicks == {"alice", "carol", "frank", "Gina"}
    _feed(model, "*** alice left (Quit: bye)", "*hal* psst", "-> *ivy* hello?")
    assert model.nicks == {"carol", "frank", "Gina", "hal", "ivy"}
    _feed(model, "*** No such user: ivy.", "*** hal is now known as Hal")
    assert model.nicks == {"carol", "frank", "Gina", "Hal"}
    _feed(model, "[#lobby] <jo> hi", "* kim waves")  # whoever speaks is there
    assert {"jo", "kim"} <= model.nicks
    _feed(model, "*** 1 user in #games: carol")  # a /who replaces what was known
    assert "frank" not in model.nicks and "kim" not in model.nicks


def test_lines_from_another_room_and_private_messages_are_styled() -> None:
    model = ClientModel()
    bob = nick_style("bob")
    assert model.look("[#games] <bob> hi") == [
        (ROOM_STYLE, "[#games]"),
        ("", " "),
        (bob, "<bob>"),
        ("", " hi"),
    ]
    assert model.look("[#games] * bob waves") == [
        (ROOM_STYLE, "[#games]"),
        ("", " "),
        (ACTION_STYLE, "* "),
        (bob, "bob"),
        (ACTION_STYLE, " waves"),
    ]
    assert model.look("*** [#games] carol joined") == [
        (SERVER_STYLE, "*** "),
        (ROOM_STYLE, "[#games]"),
        (SERVER_STYLE, " carol joined"),
    ]
    assert model.look("*bob* psst") == [(f"{bob} {PRIVATE_STYLE}", "*bob*"), ("", " psst")]
    assert model.look("-> *bob* hello") == [
        ("", "-> "),
        (f"{bob} {PRIVATE_STYLE}", "*bob*"),
        ("", " hello"),
    ]
    # what only looks like them is not styled so
    assert model.look("[games] <bob> hi") == [("", "[games] <bob> hi")]
    assert model.look("*** [#games]") == [(SERVER_STYLE, "*** [#games]")]


def test_the_completer_offers_rooms_and_nicks_after_msg() -> None:
    model = ClientModel("carol")
    _feed(
        model,
        *GREETING,
        WELCOME_LOBBY,
        "*** 3 users in #lobby: @alice, bob, carol",
        "*** 4 rooms:",
        "***   #dev (1 user)",
        "***   #games (2 users)",
        "***   #Gamma (1 user)",
        "***   #lobby (3 users)",
        "*** Now talking in #games.",
        "*** 2 users in #games: carol, dave",
    )
    complete = _completer(model)
    assert complete("/join #g") == ["#games", "#Gamma"]
    assert complete("/join ga") == ["#games", "#Gamma"]  # the # may be left out
    assert complete("/JOIN #gam") == ["#games", "#Gamma"]
    assert complete("/join ") == ["#dev", "#games", "#Gamma", "#lobby"]
    assert complete("/part ") == ["#games", "#lobby"]  # only the rooms we are in
    assert complete("/who #d") == ["#dev"] and complete("/names l") == ["#lobby"]
    assert complete("see you in #D") == ["#dev"]
    assert complete("/msg ") == ["alice", "bob", "dave"]  # not yourself
    assert complete("/msg d") == ["dave"] and complete("/msg  A") == ["alice"]
    assert complete("/msg #") == []  # a message goes to a nick, not a room
    assert complete("/msg dave see b") == ["bob"]  # the text: nicks, as anywhere
    assert complete("/msg dave ") == [] and complete("/join #games ") == []


# -- the app against a real server ---------------------------------------------------


#: A terminal control sequence (CSI ...), as prompt_toolkit's renderer writes them.
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class RunningClient:
    """A ChatApp on pipe input in a thread of its own."""

    def __init__(self, port: int, nick: str | None = "carol", *, screen: bool = False) -> None:
        self._pipe_cm = create_pipe_input()
        self.pipe = self._pipe_cm.__enter__()
        #: With ``screen``, what a terminal would get is written here (see seen_on_screen).
        self._screen = io.StringIO()
        output = Vt100_Output(self._screen, _size, term="xterm") if screen else DummyOutput()
        self.app = ChatApp(
            "127.0.0.1", port, nick, input=self.pipe, output=output, first_retry=0.05
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

    def screen_text(self) -> str:
        """What went to the terminal, with the escape sequences taken out."""
        return _ESCAPE.sub("", self._screen.getvalue())

    def wait_on_screen(self, text: str, after: str) -> None:
        """``text`` is drawn after the last ``after`` on the screen (a space before
        the cursor is drawn as a cursor move, so leave it out of ``text``)."""

        def drawn() -> bool:
            screen = self.screen_text()
            start = screen.rfind(after)
            return start >= 0 and text in screen[start + len(after) :]

        wait_until(drawn, what=f"{text!r} on the screen after {after!r}: {self.screen_text()!r}")

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
        wait_until(lambda: client.app.model.settled, what="commands and rooms learned")
        assert "who" in client.app.model.commands and client.app.model.rooms == ["#lobby"]
        hidden = ("*** Commands", "*** 1 room:", "***   #lobby")
        assert not any(line.startswith(hidden) for line in client.app.transcript)
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


def test_the_client_follows_rooms_and_completes_rooms_and_nicks_after_msg() -> None:
    with _server() as (port, _):
        bob, dave = LineClient(("127.0.0.1", port)), LineClient(("127.0.0.1", port))
        bob.register("bob")
        bob.send("/join #games")
        bob.expect("*** 1 user in #games: @bob")
        dave.register("dave")
        dave.send("/join #games")
        dave.expect("*** 2 users in #games: @bob, dave")
        dave.send("/part #lobby")  # dave shares no room with carol when she arrives
        dave.expect("*** You left #lobby.")
        client = RunningClient(port, screen=True)
        client.wait_for(
            "*** Welcome, carol! 3 users online; you are in #lobby. Type /help for commands."
        )
        wait_until(lambda: client.app.model.settled, what="commands and rooms learned")
        client.wait_on_screen("carol #lobby>", after="you are in #lobby.")
        client.type("/join #ga\t\r")  # Tab completes the room, from the quiet /rooms
        client.wait_for("*** Now talking in #games.")
        bob.expect("*** carol joined #games")
        client.wait_for("*** 3 users in #games: @bob, carol, dave")
        client.wait_on_screen("carol #games>", after="*** 3 users in #games: @bob, carol, dave")
        bob.send("/join #lobby")  # now #games is another room of bob's, not his current one
        bob.expect("*** Now talking in #lobby.")
        bob.send("/msg carol hi")
        client.wait_for("*bob* hi")
        client.type("/msg d\t psst\r")  # Tab completes a nick learned from #games' /who
        dave.expect("*carol* psst")
        client.wait_for("-> *dave* psst")
        client.type("/part\r")
        client.wait_for("*** Now talking in #lobby.")
        client.wait_on_screen("carol #lobby>", after="*** Now talking in #lobby.")
        client.type("/quit\r")
        bob.expect("*** carol left (Quit)")
        assert client.finish() == 0
        bob.close()
        dave.close()


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
        # Kicked only once the /who, /help and /rooms it sends on joining are answered:
        # a server that closes with input unread resets the connection, and the reset
        # can destroy the kick notice before the client reads it.
        client.wait_for("*** 1 user in #lobby: carol")
        wait_until(lambda: client.app.model.settled, what="the joining questions answered")
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
