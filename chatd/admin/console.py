"""The interactive admin console: a prompt_toolkit prompt, rich output.

Rule: the console is a loop of prompt -> request -> rendered result. It keeps
no state of the server's; what it completes (nicknames, room names, plugin
names) it asks the server for when Tab is pressed, and reuses for a moment.
Output is printed between prompts, never while one is shown (every result
answers a command just typed), so no patch_stdout is needed.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from rich.console import Console
from rich.markup import escape

from chatd.admin import render, wire
from chatd.admin.client import AdminClient, AdminFailed, AdminUnavailable
from chatd.tabcomplete import tab_bindings

#: Nicknames, rooms and plugin names fetched for completion are reused for this
#: long, so that a burst of Tab presses costs one request.
COMPLETION_CACHE_SECONDS = 2.0
CONSOLE_COMMANDS = ("help", "quit")
#: Commands whose first argument is a nickname.
NICK_COMMANDS = ("kick", "ban", "unban")
#: Commands whose first argument is a room (roomkick's second is one of its members).
ROOM_COMMANDS = ("roomkick", "topic", "history")


def history_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "chatd" / "admin_history"


class AdminCompleter(Completer):
    """Command names first; then what the command's next word can be: nicknames,
    rooms, plugin or account names (asked from the server), reload topics,
    on/off, delete."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client
        # command -> (when fetched, the items it gave)
        self._answers: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def _items(self, cmd: str) -> list[dict[str, Any]]:
        """What ``cmd`` returns, fetched at most every COMPLETION_CACHE_SECONDS;
        nothing when the server can't say."""
        now = time.monotonic()
        fetched, items = self._answers.get(cmd, (float("-inf"), []))
        if now - fetched > COMPLETION_CACHE_SECONDS:
            try:
                items = list(self.client.call(cmd))
            except (AdminUnavailable, AdminFailed, wire.WireError):
                items = []
            self._answers[cmd] = (now, items)
        return items

    def nicks(self, room: str = "") -> list[str]:
        """Everyone's nickname, or (``room``) only its members' ones."""
        users = self._items("users")
        if not room:
            return [user["nick"] for user in users]
        key = room.lower() if room.startswith("#") else "#" + room.lower()
        return [u["nick"] for u in users if key in (r.lower() for r in u.get("rooms", ()))]

    def rooms(self) -> list[str]:
        return [room["name"] for room in self._items("rooms")]

    def plugins(self) -> list[str]:
        return [plugin["name"] for plugin in self._items("plugins")]

    def accounts(self) -> list[str]:
        return [account["name"] for account in self._items("accounts")]

    def options(self, command: str, done: list[str]) -> list[str]:
        """What may follow ``command`` and the arguments ``done`` already typed."""
        spec = wire.COMMANDS.get(command)
        if spec is not None and spec.options:  # say [--room #ROOM] TEXT
            if done[-1:] == ["--room"] and "--" not in done:  # anywhere, as in wire
                return self.rooms()
            return [f"--{option}" for option in spec.options] if not done else []
        if not done:
            if command in NICK_COMMANDS:
                return self.nicks()
            if command in ROOM_COMMANDS:
                return self.rooms()
            if command == "reload":
                return list(wire.RELOAD_WHAT)
            if command == "plugin":
                return list(wire.PLUGIN_ACTIONS)
            if command == "account":
                return list(wire.ACCOUNT_ACTIONS)
        elif len(done) == 1 and command == "roomkick":
            return self.nicks(done[0])
        elif len(done) == 1 and command == "plugin" and done[0].lower() in wire.PLUGIN_ACTIONS:
            return self.plugins()
        elif len(done) == 1 and command == "account" and done[0].lower() in wire.ACCOUNT_ACTIONS:
            return self.accounts()
        return []

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        words = before.split()
        if not words or (len(words) == 1 and not before.endswith(" ")):
            word = words[0] if words else ""
            for name in [*wire.COMMANDS, *CONSOLE_COMMANDS]:
                if name.startswith(word.lower()):
                    yield Completion(name, -len(word))
            return
        word = "" if before.endswith(" ") else words[-1]
        done = words[1:] if before.endswith(" ") else words[1:-1]
        for option in self.options(words[0].lower(), done):
            # A room completes with its # typed or not ("ga" -> "#games").
            if option.lower().startswith(word.lower()) or (
                option.startswith("#") and option[1:].lower().startswith(word.lower())
            ):
                yield Completion(option, -len(word))


def help_text() -> str:
    width = max(len(spec.usage) for spec in wire.COMMANDS.values())
    lines = [f"  {spec.usage:<{width}}  {spec.help}" for spec in wire.COMMANDS.values()]
    lines += [f"  {'help':<{width}}  This list.", f"  {'quit':<{width}}  Leave (or Ctrl-D)."]
    return "\n".join(lines)


def run_command(client: AdminClient, words: list[str], console: Console) -> None:
    """Run one command line and print its result or its error."""
    request: dict[str, Any] = wire.from_words(words)
    value = client.send(request)
    console.print(render.result(request["cmd"], value))


def run_console(
    client: AdminClient,
    console: Console,
    *,
    history: History | None = None,
    input: Input | None = None,
    output: Output | None = None,
) -> int:
    """The interactive loop; returns the exit status."""
    if history is None:
        path = history_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    completer = AdminCompleter(client)
    session: PromptSession[str] = PromptSession(
        history=history,
        completer=completer,
        key_bindings=tab_bindings(completer),
        complete_while_typing=False,
        input=input,
        output=output,
    )
    console.print(f"chatd admin on {client.path}. Type help for commands, Ctrl-D to leave.")
    while True:
        try:
            line = session.prompt("chatd> ")
        except KeyboardInterrupt:
            continue  # Ctrl-C drops the line, as in a shell
        except EOFError:
            return 0
        try:
            words = shlex.split(line)
        except ValueError as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            continue
        if not words:
            continue
        if words[0] in ("quit", "exit"):
            return 0
        if words[0] == "help":
            console.print(help_text(), markup=False)
            continue
        try:
            run_command(client, words, console)
        except (AdminFailed, wire.WireError) as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
        except AdminUnavailable as exc:
            console.print(f"[red]{escape(str(exc))}[/]")
            return 1
