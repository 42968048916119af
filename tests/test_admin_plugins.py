"""``chatd admin plugins`` and ``plugin on|off NAME`` end to end (issue 13, item 4):
a real server loading real drop-in plugins, its real admin socket, real chat users."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.admin.client import AdminClient, AdminFailed
from chatd.config import AdminSettings, PluginSettings
from chatd.plugins import BUILTIN_PLUGINS
from chatd.server import Server
from tests.helpers import (
    LIFTED_LIMITS_TOML,
    WAIT,
    LineClient,
    ServerProcess,
    admin_session,
    make_config,
    run_chatd,
    running_server,
    write_plugin,
)

#: A plugin that works: a command, and a message hook (to see hooks skipped when off).
DICE = """
    from chatd import Command, hookimpl

    def dice(ctx, args):
        ctx.reply("dice: 4")

    @hookimpl
    def chatd_commands():
        return [Command("dice", dice, "/dice", "Roll one die."), Command("d6", dice)]

    @hookimpl
    def chatd_message(ctx, text, action):
        return "pong dice" if text == "ping dice" else None
"""

#: A plugin whose command always raises.
FLAKY = """
    from chatd import Command, hookimpl

    def flaky(ctx, args):
        raise RuntimeError("flaky is broken")

    @hookimpl
    def chatd_commands():
        return [Command("flaky", flaky, "/flaky", "Fail.")]
"""

SWITCHED_OFF = "*** /{} is switched off: it failed repeatedly. An operator can turn it back on."
TURNED_OFF = "*** /{} is switched off: an operator turned it off. An operator can turn it back on."
FIELDS = {
    "name", "source", "commands", "calls", "errors", "slow_calls", "slowest_ms", "slowest",
    "state", "why",
}  # fmt: skip


@pytest.fixture
def server(tmp_path: Path, dropin_dir: Path) -> Iterator[Server]:
    write_plugin(dropin_dir, "dice.py", DICE)
    write_plugin(dropin_dir, "flaky.py", FLAKY)
    config = make_config(
        admin=AdminSettings(enabled=True, socket=str(tmp_path / "admin.sock")),
        # Two errors switch a plugin off, so a test sees the breaker open quickly.
        plugins=PluginSettings(dirs=[str(dropin_dir)], breaker_errors=2),
    )
    with running_server(config) as srv:
        yield srv


@pytest.fixture
def admin(server: Server) -> Iterator[AdminClient]:
    yield from admin_session(server)


@pytest.fixture
def alice(server: Server) -> Iterator[LineClient]:
    assert server.address
    client = LineClient(server.address)
    client.register("alice")
    yield client
    client.close()


def _plugin(admin: AdminClient, name: str) -> dict[str, object]:
    (found,) = [p for p in admin.call("plugins") if p["name"] == name]
    assert isinstance(found, dict)
    return found


def _switch(admin: AdminClient, action: str, name: str) -> str:
    result = admin.call("plugin", {"action": action, "name": name})
    assert isinstance(result, str)
    return result


def test_plugins_lists_every_plugin_where_it_came_from_and_its_commands(
    admin: AdminClient, alice: LineClient, dropin_dir: Path
) -> None:
    alice.send("/dice")
    alice.expect("*** dice: 4")
    plugins = admin.call("plugins")
    builtins = [m.rpartition(".")[2] for m in BUILTIN_PLUGINS]
    assert [p["name"] for p in plugins] == [*builtins, "dice", "flaky"]  # load order
    assert all(set(p) == FIELDS for p in plugins)
    by_name = {p["name"]: p for p in plugins}
    assert {by_name[n]["source"] for n in builtins} == {"built-in"}
    assert by_name["jumble"]["commands"] == ["game", "giveup", "guess", "hint", "scores"]
    dice = by_name["dice"]
    assert dice["source"] == str(dropin_dir / "dice.py")
    assert dice["commands"] == ["d6", "dice"]
    assert (dice["calls"], dice["errors"], dice["slow_calls"]) == (1, 0, 0)
    assert dice["slowest"] == "/dice" and 0 <= dice["slowest_ms"] < WAIT * 1000
    assert (dice["state"], dice["why"]) == ("on", "")
    flaky = by_name["flaky"]  # never called: on, with nothing counted
    assert (flaky["calls"], flaky["errors"], flaky["slowest"], flaky["state"]) == (0, 0, "", "on")


def test_a_plugin_that_raises_is_counted_then_switched_off_and_turned_back_on(
    admin: AdminClient, alice: LineClient
) -> None:
    alice.send("/flaky")
    alice.expect("*** /flaky failed (internal error).")
    flaky = _plugin(admin, "flaky")
    assert (flaky["calls"], flaky["errors"], flaky["state"]) == (1, 1, "on")
    alice.send("/flaky")  # the second error in the window opens the breaker
    alice.expect("*** /flaky failed (internal error).")
    flaky = _plugin(admin, "flaky")
    assert (flaky["calls"], flaky["errors"], flaky["slowest"]) == (2, 2, "/flaky")
    assert (flaky["state"], flaky["why"]) == ("switched off", "2 errors in 60s")
    alice.send("/flaky")
    alice.expect(SWITCHED_OFF.format("flaky"))
    assert _plugin(admin, "flaky")["calls"] == 2  # not called while switched off
    already = "plugin flaky is already switched off (2 errors in 60s)"
    assert _switch(admin, "off", "flaky") == already  # as asked already: nothing changes
    assert _switch(admin, "on", "flaky") == "plugin flaky is on"
    alice.send("/flaky")  # called again, and one error is not enough to open it again
    alice.expect("*** /flaky failed (internal error).")
    flaky = _plugin(admin, "flaky")
    assert (flaky["calls"], flaky["errors"], flaky["state"], flaky["why"]) == (3, 3, "on", "")


def test_an_operator_turns_a_plugin_off_and_on(
    server: Server, admin: AdminClient, alice: LineClient
) -> None:
    assert server.address
    bob = LineClient(server.address)
    bob.register("bob")
    alice.send("ping dice")
    bob.expect("<alice> pong dice")
    assert _switch(admin, "off", "dice") == "plugin dice is off"
    dice = _plugin(admin, "dice")
    assert (dice["state"], dice["why"]) == ("off", "turned off by an operator")
    alice.send("/dice")
    alice.expect(TURNED_OFF.format("dice"))
    alice.send("/d6")
    alice.expect(TURNED_OFF.format("d6"))
    alice.send("ping dice")  # and its hooks are skipped
    bob.expect("<alice> ping dice")
    assert _switch(admin, "OFF", "dice") == "plugin dice is already off (turned off by an operator)"
    assert _switch(admin, "on", "dice") == "plugin dice is on"
    alice.send("/dice")
    alice.expect("*** dice: 4")
    alice.send("ping dice")
    bob.expect("<alice> pong dice")
    assert _switch(admin, "on", "dice") == "plugin dice is already on"
    bob.close()


def test_an_unknown_plugin_or_action_is_a_clear_error(admin: AdminClient) -> None:
    loaded = ", ".join([*(m.rpartition(".")[2] for m in BUILTIN_PLUGINS), "dice", "flaky"])
    with pytest.raises(AdminFailed) as failed:
        admin.call("plugin", {"action": "off", "name": "roll"})
    assert str(failed.value) == f"no plugin called 'roll' is loaded; loaded plugins: {loaded}"
    with pytest.raises(AdminFailed) as failed:
        admin.call("plugin", {"action": "toggle", "name": "dice"})
    assert str(failed.value) == "plugin: 'toggle' is neither on nor off; usage: plugin on|off NAME"
    with pytest.raises(AdminFailed, match=r"^plugin: missing 'name'; usage: plugin on\|off NAME$"):
        admin.call("plugin", {"action": "on"})
    assert _plugin(admin, "dice")["state"] == "on"  # nothing changed


def test_chatd_admin_plugins_json_and_plugin_off_as_subprocesses(
    tmp_path: Path, dropin_dir: Path
) -> None:
    write_plugin(dropin_dir, "dice.py", DICE)
    sock = tmp_path / "admin.sock"
    config = tmp_path / "chatd.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\n{LIFTED_LIMITS_TOML}'
        f'[plugins]\ndirs = ["{dropin_dir}"]\n[admin]\nsocket = "{sock}"\n'
    )
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        alice = LineClient(server.address)
        alice.register("alice")
        alice.send("/dice")
        alice.expect("*** dice: 4")
        done = run_chatd("admin", "--socket", str(sock), "plugins", "--json")
        assert done.returncode == 0, done.stderr
        plugins = json.loads(done.stdout)
        (dice,) = [p for p in plugins if p["name"] == "dice"]
        assert set(dice) == FIELDS
        assert dice["source"] == str(dropin_dir / "dice.py") and dice["calls"] == 1
        done = run_chatd("admin", "--socket", str(sock), "plugin", "off", "dice")
        assert (done.returncode, done.stdout, done.stderr) == (0, "plugin dice is off\n", "")
        server.wait_log(re.compile(r"plugin dice: turned off by an operator"))
        alice.send("/dice")
        alice.expect(TURNED_OFF.format("dice"))
        # The table, on a terminal wide enough for one line a row.
        done = run_chatd("admin", "--socket", str(sock), "plugins", env={"COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].rstrip() == "5 plugins: 4 on, 1 off"
        row = r"│ dice +│ /d6 /dice +│ +1 │ +0 │ +0 │ [\d.]+ ms /dice +│ off: turned off by an op"
        assert re.search(row, done.stdout), done.stdout
        done = run_chatd("admin", "--socket", str(sock), "plugin", "on", "nope")
        assert done.returncode == 1
        assert done.stderr.startswith("chatd admin: no plugin called 'nope' is loaded; loaded")
        done = run_chatd("admin", "--socket", str(sock), "plugin", "on")
        assert (done.returncode, done.stderr) == (2, "chatd admin: usage: plugin on|off NAME\n")
    finally:
        server.stop()
