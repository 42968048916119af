from __future__ import annotations

import sys
import types

import pytest

from chatd import Command, Context, hookimpl
from chatd.core.commands import CommandError, Invocation, parse
from chatd.core.plugins import PluginError, load_plugins
from tests.helpers import make_config


def _noop(ctx: Context, args: str) -> None:
    pass


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("hello", "hello"),
        ("/who", Invocation("who", "")),
        ("/NICK  Bob ", Invocation("nick", "Bob")),
        ("/me waves  slowly", Invocation("me", "waves  slowly")),
        ("//etc/passwd is a path", "/etc/passwd is a path"),
        ("/", Invocation("", "")),
        (" /who", " /who"),
    ],
)
def test_parse(line: str, parsed: object) -> None:
    assert parse(line) == parsed


def test_command_names_are_checked_and_usage_defaults() -> None:
    assert Command("roll", _noop).usage == "/roll"
    for bad in ["", "Roll", "1up", "has space", "x" * 33]:
        with pytest.raises(ValueError, match="command name"):
            Command(bad, _noop)


def _register(name: str, commands: list[object]) -> types.ModuleType:
    @hookimpl
    def chatd_commands() -> list[object]:
        return commands

    module = types.ModuleType(name)
    module.chatd_commands = chatd_commands  # type: ignore[attr-defined]
    sys.modules[name] = module
    return module


@pytest.fixture
def plugin_modules() -> list[str]:
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def test_two_plugins_claiming_one_name_is_an_error_naming_both(plugin_modules: list[str]) -> None:
    _register("plug_one", [Command("roll", _noop)])
    _register("plug_two", [Command("roll", _noop)])
    plugin_modules += ["plug_one", "plug_two"]
    with pytest.raises(CommandError, match=r"/roll .*plug_(one|two).*plug_(one|two)"):
        load_plugins(make_config(), ("plug_one", "plug_two"), entry_points=False)


def test_a_plugin_returning_junk_is_named(plugin_modules: list[str]) -> None:
    _register("plug_junk", ["roll"])
    plugin_modules.append("plug_junk")
    # A built-in: fatal. (A drop-in is skipped instead: tests/test_plugin_failures.py.)
    with pytest.raises(PluginError, match=r"plugin plug_junk: .*str, not a chatd\.Command"):
        load_plugins(make_config(), ("plug_junk",), entry_points=False)


def test_a_misspelt_hook_is_an_error_naming_the_plugin(plugin_modules: list[str]) -> None:
    module = types.ModuleType("plug_typo")

    @hookimpl
    def chatd_comands() -> list[Command]:
        return []

    module.chatd_comands = chatd_comands  # type: ignore[attr-defined]
    sys.modules["plug_typo"] = module
    plugin_modules.append("plug_typo")
    with pytest.raises(PluginError) as caught:
        load_plugins(make_config(), ("plug_typo",), entry_points=False)
    assert str(caught.value).startswith(
        "plugin plug_typo: unknown hook chatd_comands; chatd's hooks are: chatd_commands, "
    )


def test_table_lists_commands_sorted_with_their_plugin() -> None:
    table = load_plugins(make_config(), entry_points=False).commands
    assert [c.name for c in table] == [
        "deop", "fact", "game", "giveup", "guess", "help", "hint", "history", "identify",
        "join", "kick", "me", "msg", "names", "nick", "op", "part", "password", "quit", "r",
        "register", "rooms", "scores", "topic", "unregister", "who",
    ]  # fmt: skip
    assert table.plugin_of("who") == "basics"
    assert table.plugin_of("nick") == "basics"
    assert "who" in table and "nope" not in table
    assert table.get("nope") is None
