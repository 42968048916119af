"""The interactive admin console: a prompt_toolkit prompt, rich output.

Rule: the console is a loop of prompt -> request -> rendered result. It keeps
no state of the server's; what it completes (nicknames) it asks the server for
when Tab is pressed. Output is printed between prompts, never while one is
shown (every result answers a command just typed), so no patch_stdout is needed.
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

#: Nicknames fetched for completion are reused for this long, so that a burst
#: of Tab presses costs one request.
NICK_CACHE_SECONDS = 2.0
CONSOLE_COMMANDS = ("help", "quit")


def history_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "chatd" / "admin_history"


class AdminCompleter(Completer):
    """Command names first; then nicknames (asked from the server) or reload topics."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client
        self._nicks: list[str] = []
        self._fetched = float("-inf")

    def nicks(self) -> list[str]:
        if time.monotonic() - self._fetched > NICK_CACHE_SECONDS:
            try:
                self._nicks = [u["nick"] for u in self.client.call("users")]
            except (AdminUnavailable, AdminFailed, wire.WireError):
                self._nicks = []
            self._fetched = time.monotonic()
        return self._nicks

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
        if len(words) > 2 or (len(words) == 2 and before.endswith(" ")):
            return
        word = "" if before.endswith(" ") else words[-1]
        command = words[0].lower()
        if command in ("kick", "ban", "unban"):
            options = self.nicks()
        elif command == "reload":
            options = list(wire.RELOAD_WHAT)
        else:
            return
        for option in options:
            if option.lower().startswith(word.lower()):
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
