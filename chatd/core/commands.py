"""Slash-commands: the Command record, parsing "/name args", and the command table.

Rule: a command exists only because some plugin declared it through the
``chatd_commands`` hook, the built-in ones included; the table is rebuilt from
the plugin manager as a whole and is never patched in place, so a failed
(re)load can leave the previous table untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from chatd.core.context import Context

Handler = Callable[["Context", str], object]

_COMMAND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class Command:
    """A slash-command a plugin provides.

    :param name: what users type after the slash, lower case (``"roll"``).
    :param handler: ``handler(ctx, args)``; ``args`` is the text after the name,
        stripped (``""`` when there is none). Its return value is ignored.
    :param usage: the synopsis ``/help NAME`` shows, e.g. ``"/roll [NdM]"``.
    :param help: one line for the ``/help`` list.
    """

    name: str
    handler: Handler
    usage: str = ""
    help: str = ""

    def __post_init__(self) -> None:
        if not _COMMAND_NAME.fullmatch(self.name):
            raise ValueError(
                f"command name {self.name!r} must be 1-32 lower-case letters, digits, _ or -,"
                " starting with a letter"
            )
        if not self.usage:
            object.__setattr__(self, "usage", "/" + self.name)


class CommandError(Exception):
    """The plugins' command declarations do not fit together (a user never sees this)."""


@dataclass(frozen=True)
class Invocation:
    """A parsed ``/name args`` line."""

    name: str
    args: str


def parse(text: str) -> Invocation | str:
    """Split a line into a command invocation, or return the plain text to send.

    ``/name args`` is a command (the name is matched case-insensitively);
    ``//text`` is the plain message ``/text``; anything else is plain text.
    """
    if not text.startswith("/"):
        return text
    if text.startswith("//"):
        return text[1:]
    name, _, args = text[1:].partition(" ")
    return Invocation(name.lower(), args.strip())


class CommandTable:
    """Command name -> (Command, the name of the plugin that declared it)."""

    def __init__(self, entries: dict[str, tuple[Command, str]]) -> None:
        self._entries = entries

    @classmethod
    def from_plugins(
        cls, pm: pluggy.PluginManager, origins: Mapping[str, str] | None = None
    ) -> CommandTable:
        """Collect every plugin's ``chatd_commands``; ``origins`` adds where each came from."""
        origins = origins or {}

        def who(name: str) -> str:
            origin = origins.get(name, "built-in")
            return f"plugin {name}" if origin == "built-in" else f"plugin {name} ({origin})"

        entries: dict[str, tuple[Command, str]] = {}
        for impl in pm.hook.chatd_commands.get_hookimpls():
            plugin_name = impl.plugin_name
            try:
                declared = impl.function()
            except Exception as exc:
                raise CommandError(
                    f"{who(plugin_name)}: chatd_commands failed: {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(declared, Iterable):
                raise CommandError(
                    f"{who(plugin_name)}: chatd_commands must return a list of Command,"
                    f" got {type(declared).__name__}"
                )
            for command in declared:
                if not isinstance(command, Command):
                    raise CommandError(
                        f"{who(plugin_name)}: chatd_commands returned"
                        f" {type(command).__name__}, not a chatd.Command"
                    )
                if command.name in entries:
                    other = entries[command.name][1]
                    raise CommandError(
                        f"command /{command.name} is declared by both {who(other)}"
                        f" and {who(plugin_name)}; disable one of them in [plugins] disabled"
                    )
                entries[command.name] = (command, plugin_name)
        return cls(entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Command]:
        """Commands sorted by name."""
        return (self._entries[name][0] for name in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Command | None:
        entry = self._entries.get(name)
        return entry[0] if entry else None

    def plugin_of(self, name: str) -> str:
        return self._entries[name][1]
