"""Slash-commands: the Command record, parsing "/name args", and the command table.

Rule: a command exists only because some plugin declared it through the
``chatd_commands`` hook, the built-in ones included; the table is rebuilt from
the plugin manager as a whole and is never patched in place, so a failed
(re)load can leave the previous table untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chatd.core.invocation import Invocation, parse

__all__ = ["Command", "CommandError", "CommandTable", "Invocation", "check_declared", "parse"]

#: ``handler(ctx, args)``: ctx is a chatd.Context (named loosely here so that
#: this module needs nothing of the hub's: the hub and context import it).
Handler = Callable[[Any, str], object]

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


def check_declared(declared: object) -> list[Command]:
    """What a ``chatd_commands`` implementation returned, checked: a list of Command.
    Raises TypeError saying what it got instead."""
    if isinstance(declared, str | bytes) or not isinstance(declared, Iterable):
        raise TypeError(
            f"chatd_commands must return a list of chatd.Command, got {type(declared).__name__}"
        )
    commands = list(declared)
    for command in commands:
        if not isinstance(command, Command):
            raise TypeError(
                f"chatd_commands returned {type(command).__name__}, not a chatd.Command"
            )
    return commands


class CommandTable:
    """Command name -> (Command, the name of the plugin that declared it)."""

    def __init__(self, entries: dict[str, tuple[Command, str]]) -> None:
        self._entries = entries

    @classmethod
    def build(
        cls,
        declared: Iterable[tuple[str, Iterable[Command]]],
        who: Callable[[str], str] = lambda name: f"plugin {name}",
    ) -> CommandTable:
        """The table for ``(plugin name, its commands)`` pairs in load order; raises
        CommandError, naming both plugins (``who(name)``), when two declare one name."""
        entries: dict[str, tuple[Command, str]] = {}
        for plugin, commands in declared:
            for command in commands:
                if command.name in entries:
                    other = entries[command.name][1]
                    raise CommandError(
                        f"command /{command.name} is declared by both {who(other)}"
                        f" and {who(plugin)}; disable one of them in [plugins] disabled"
                    )
                entries[command.name] = (command, plugin)
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
