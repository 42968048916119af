"""The ``chatd connect`` program: a prompt_toolkit prompt and one TCP connection on asyncio.

Rule: incoming lines are printed above the input line (prompt_toolkit's
print_formatted_text does that while a prompt runs), so what the user is typing
is never torn; every line shown comes through the sans-IO ClientModel, which has
already removed anything a terminal would take as a command. When the server
goes away the client says so and reconnects with capped exponential backoff,
claiming the same nickname again; but when the server sent it away for good
(kicked, banned, timed out: the model's SENT_AWAY), it waits for the user to
press Enter, so that it never undoes an operator's decision by itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterable
from typing import Final

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText, StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

from chatd.client.model import SERVER_STYLE, ClientModel, Fragments, is_quit
from chatd.core.commands import Invocation, parse
from chatd.tabcomplete import tab_bindings

#: First wait before reconnecting, and the most it grows to (doubling each try).
FIRST_RETRY_SECONDS: Final = 1.0
MAX_RETRY_SECONDS: Final = 30.0
#: How long to wait for a connection to open.
CONNECT_TIMEOUT_SECONDS: Final = 10.0
#: After /quit, how long to wait for the server's goodbye before leaving anyway.
QUIT_WAIT_SECONDS: Final = 2.0
#: The longest line read from a server; a chatd server sends far shorter ones.
MAX_LINE_BYTES: Final = 1024 * 1024
#: Said under the server's last line when it sent us away for good.
HELD_NOTICE: Final = (
    "Disconnected by the server; not reconnecting."
    " Press Enter to connect again, or Ctrl-D to leave."
)


#: Commands whose first argument is a room: Tab there completes the rooms (the
#: ``#`` may be left out), and on an empty word lists them.
ROOM_COMMANDS: Final = frozenset({"join", "part", "who", "names"})
#: Commands whose first argument is a nickname: Tab there completes nicknames,
#: and on an empty word lists them.
NICK_COMMANDS: Final = frozenset({"msg", "kick", "op", "deop"})


class ChatCompleter(Completer):
    """/commands at the start of a line; rooms after /join, /part, /who and /names
    and for a word that starts with ``#``; otherwise the nicknames online."""

    def __init__(self, model: ClientModel) -> None:
        self.model = model

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if before.startswith("/") and " " not in before:
            for name in sorted(self.model.commands):
                if name.startswith(before[1:].lower()):
                    yield Completion("/" + name, -len(before))
            return
        word = document.get_word_before_cursor(WORD=True)
        command = _first_argument_of(before, word)
        if command in ROOM_COMMANDS or (word.startswith("#") and command not in NICK_COMMANDS):
            # /part leaves one of our rooms; the others take any room.
            rooms = self.model.my_rooms if command == "part" else self.model.rooms
            want = word.lower().removeprefix("#")
            for room in rooms:
                if room[1:].lower().startswith(want):
                    yield Completion(room, -len(word))
            return
        if not word and command not in NICK_COMMANDS:
            return
        for nick in sorted(self.model.nicks, key=str.lower):
            if nick.lower().startswith(word.lower()) and nick != self.model.nick:
                yield Completion(nick, -len(word))


def _first_argument_of(before: str, word: str) -> str:
    """The command whose first argument ``word`` (the word before the cursor) is, or ""."""
    parsed = parse(before)
    if isinstance(parsed, Invocation) and parsed.args == word:
        return parsed.name
    return ""


class _PrivateHistory(InMemoryHistory):
    """The prompt's history (Up recalls a line), less what was typed while a
    password was asked for."""

    def __init__(self, secret: Callable[[], bool]) -> None:
        super().__init__()
        self._secret = secret

    def append_string(self, string: str) -> None:
        if not self._secret():
            super().append_string(string)


class ChatApp:
    def __init__(
        self,
        host: str,
        port: int,
        nick: str | None = None,
        *,
        input: Input | None = None,
        output: Output | None = None,
        first_retry: float = FIRST_RETRY_SECONDS,
        max_retry: float = MAX_RETRY_SECONDS,
    ) -> None:
        self.host, self.port = host, port
        self.model = ClientModel(nick)
        self.first_retry, self.max_retry = first_retry, max_retry
        #: Every line shown, as plain text (what a screen reader or a test sees).
        self.transcript: list[str] = []
        self._input, self._output = input, output
        self._session: PromptSession[str] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._quitting = False
        #: While the server has sent us away: what the user's Enter (connect
        #: again) or leaving sets; None the rest of the time.
        self._held: asyncio.Event | None = None

    @property
    def session(self) -> PromptSession[str]:
        """The prompt, made once connected (so an unreachable server is one plain line)."""
        if self._session is None:
            completer = ChatCompleter(self.model)
            self._session = PromptSession(
                completer=completer,
                key_bindings=tab_bindings(completer),
                complete_while_typing=False,
                history=_PrivateHistory(lambda: self.model.asking_password),
                # A password the server asked for is typed masked.
                is_password=Condition(lambda: self.model.asking_password),
                input=self._input,
                output=self._output,
            )
        return self._session

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- showing ---------------------------------------------------------------

    def show(self, fragments: Fragments, text: str) -> None:
        self.transcript.append(text)
        print_formatted_text(FormattedText(fragments), output=self.session.output)

    def say(self, text: str) -> None:
        """A line from the client itself, styled like the server's."""
        self.show([(SERVER_STYLE, f"*** {text}")], f"*** {text}")

    # -- the connection ----------------------------------------------------------

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_LINE_BYTES),
            CONNECT_TIMEOUT_SECONDS,
        )

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def send(self, line: str) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
        except OSError:
            return False
        return True

    async def _read_forever(self) -> None:
        while True:
            reader = self._reader
            raw = b""
            if reader is not None:
                try:
                    raw = await reader.readline()
                except (OSError, ValueError):  # reset, or a line over MAX_LINE_BYTES
                    raw = b""
            if raw:
                incoming = self.model.receive(raw.decode("utf-8", "replace"))
                if incoming.show:
                    self.show(incoming.fragments, incoming.text)
                for line in incoming.send:
                    await self.send(line)
                continue
            self._drop()
            if self._quitting:
                return
            if self.model.sent_away:
                if not await self._wait_for_user():
                    return
                self.say(f"Connecting to {self.where}.")
                await self._reconnect(0.0)
            else:
                self.say(f"Lost the connection to {self.where}; reconnecting.")
                await self._reconnect(self.first_retry)

    async def _wait_for_user(self) -> bool:
        """Kicked, banned or timed out: reconnecting by ourselves would undo that.

        True when the user asks to connect again, False when they leave.
        """
        self._held = asyncio.Event()
        self.say(HELD_NOTICE)
        await self._held.wait()
        self._held = None
        return not self._quitting

    def _release(self) -> None:
        if self._held is not None:
            self._held.set()

    async def _reconnect(self, delay: float) -> None:
        while not self._quitting:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except (OSError, TimeoutError):
                delay = min(delay * 2, self.max_retry) if delay else self.first_retry
                self.say(f"No answer from {self.where}; trying again in {delay:.0f}s.")
                continue
            self.model.reconnected()
            self.say(f"Reconnected to {self.where}.")
            return

    async def _unreachable(self, exc: OSError) -> str:
        """Why the first connection failed, in words (a lookup error's errno is no errno)."""
        if isinstance(exc, TimeoutError):
            return f"cannot reach {self.where}: no answer in {CONNECT_TIMEOUT_SECONDS:g} s"
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.getaddrinfo(self.host, self.port), CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError):
            return f"cannot resolve the host name {self.host!r}; check it, or give an IP address"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"cannot reach {self.where}: {reason}"

    # -- the program ---------------------------------------------------------------

    def prompt(self) -> StyleAndTextTuples:
        """What the prompt shows now (asked at each redraw): the nickname and current room."""
        return FormattedText(self.model.prompt())

    async def run(self) -> int:
        """Chat until the user leaves; 0 then, 1 if the server can't be reached at first."""
        try:
            await self._connect()
        except (OSError, TimeoutError) as exc:
            print(f"chatd connect: {await self._unreachable(exc)}", file=sys.stderr)
            return 1
        reading = asyncio.create_task(self._read_forever())
        try:
            while True:
                line = await self.session.prompt_async(self.prompt)
                if is_quit(line):
                    self._quitting = True
                    self._release()
                    await self.send(line)
                    break
                if self._held is not None:  # the user's go-ahead to connect again
                    self._release()
                    if line:
                        self.say("Not connected: that line was not sent.")
                    continue
                self.model.typed(line)
                if not await self.send(line) and line:
                    self.say("Not connected: that line was not sent.")
        except (EOFError, KeyboardInterrupt):
            self._quitting = True
            self._release()
            await self.send("/quit")
        try:
            await asyncio.wait_for(reading, QUIT_WAIT_SECONDS)
        except TimeoutError:
            reading.cancel()
        self._drop()
        return 0


def main(host: str, port: int, nick: str | None) -> int:
    return asyncio.run(ChatApp(host, port, nick).run())
