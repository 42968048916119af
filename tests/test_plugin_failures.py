"""A plugin's failure stays the plugin's: at import, in chatd_commands, in a command,
in a hook, and on reload (issue 12, items 2, 11 and 12).

Failures here include what is not an Exception: ``sys.exit()`` and
KeyboardInterrupt raised by plugin code must not stop the server either.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from chatd.config import AdminSettings, PluginSettings
from chatd.core.plugins import PluginError
from tests.helpers import (
    LIFTED_LIMITS_TOML,
    HubFixture,
    LineClient,
    ServerProcess,
    make_config,
    run_chatd,
)
from tests.helpers import (
    write_plugin as _write,
)
from tests.test_plugins import ECHO

#: A plugin whose commands end the way a careless plugin might.
EXITS = """
    import sys
    from chatd import Command, hookimpl

    def leave(ctx, args):
        sys.exit(3)

    def interrupt(ctx, args):
        raise KeyboardInterrupt

    @hookimpl
    def chatd_commands():
        return [Command("leave", leave), Command("interrupt", interrupt)]

    @hookimpl
    def chatd_message(ctx, text, action):
        if text == "exit please":
            raise SystemExit(4)
        return None
"""


def _config(tmp_path: Path, dropin_dir: Path, extra: str = "", admin: str = "") -> str:
    """A chatd.toml for a server process that loads the drop-ins in ``dropin_dir``."""
    path = tmp_path / "chatd.toml"
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\n{extra}[plugins]\ndirs = ["{dropin_dir}"]\n'
        f"[admin]\n{admin or 'enabled = false'}\n"
    )
    return str(path)


def _dropins(folder: Path) -> HubFixture:
    return HubFixture(config=make_config(plugins=PluginSettings(dirs=[str(folder)])))


def test_sys_exit_and_keyboard_interrupt_in_a_command_cost_only_its_reply(
    dropin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(dropin_dir, "exits.py", EXITS)
    fx = _dropins(dropin_dir)
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    with caplog.at_level(logging.ERROR):
        fx.hub.receive(alice_user, "/leave")
        fx.hub.receive(alice_user, "/interrupt")
        fx.hub.receive(alice_user, "exit please")  # the message hook raises SystemExit
    assert alice.take() == [
        "*** /leave failed (internal error).",
        "*** /interrupt failed (internal error).",
    ]
    assert bob.take() == ["<alice> exit please"]  # a failing filter is skipped
    assert "plugin exits: /leave for alice failed" in caplog.text
    assert "SystemExit" in caplog.text and "KeyboardInterrupt" in caplog.text
    assert not alice.closed and not bob.closed


def test_sys_exit_in_a_command_does_not_stop_a_real_server(
    tmp_path: Path, dropin_dir: Path
) -> None:
    _write(dropin_dir, "exits.py", EXITS)
    server = ServerProcess(tmp_path, "--config", _config(tmp_path, dropin_dir, LIFTED_LIMITS_TOML))
    try:
        alice, bob = LineClient(server.address), LineClient(server.address)
        alice.register("alice")
        bob.register("bob")
        alice.send("/leave")
        alice.expect("*** /leave failed (internal error).")
        alice.send("/interrupt")
        alice.expect("*** /interrupt failed (internal error).")
        alice.send("still here")
        bob.expect("<alice> still here")
        assert server.proc.poll() is None
        assert server.signal(signal.SIGTERM) == 0
        assert "*** Server shutting down. Goodbye!" in bob.wait_closed()
    finally:
        server.stop()


def test_sys_exit_at_import_skips_the_file_and_names_it(tmp_path: Path, dropin_dir: Path) -> None:
    path = _write(dropin_dir, "quitter.py", "import sys\nsys.exit(3)\n")
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    server = ServerProcess(tmp_path, "--config", _config(tmp_path, dropin_dir))
    try:
        server.wait_log(re.compile(re.escape(f"plugin file {path} skipped: SystemExit(3)")))
        alice = LineClient(server.address)
        alice.register("alice")
        alice.send("/echo hi")
        alice.expect("*** echo: hi")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("raise RuntimeError('no commands today')", "RuntimeError: no commands today"),
        ("return None", "must return a list of chatd.Command, got NoneType"),
        ("return 42", "must return a list of chatd.Command, got int"),
        ("return ['echo']", "chatd_commands returned str, not a chatd.Command"),
    ],
)
def test_a_dropin_whose_chatd_commands_fails_is_skipped_with_its_file_named(
    dropin_dir: Path, caplog: pytest.LogCaptureFixture, body: str, why: str
) -> None:
    path = _write(
        dropin_dir,
        "bad.py",
        f"from chatd import hookimpl\n\n@hookimpl\ndef chatd_commands():\n    {body}\n",
    )
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    with caplog.at_level(logging.ERROR):
        fx = _dropins(dropin_dir)
    assert "bad" not in fx.plugins.names and "echo" in fx.plugins.names
    assert f"plugin file {path} skipped: chatd_commands failed:" in caplog.text
    assert why in caplog.text


def test_a_builtin_whose_chatd_commands_fails_is_still_fatal() -> None:
    import types

    from chatd import hookimpl

    module = types.ModuleType("tests_bad_builtin")

    @hookimpl
    def chatd_commands() -> None:
        return None

    module.__dict__["chatd_commands"] = chatd_commands
    sys.modules["tests_bad_builtin"] = module
    try:
        with pytest.raises(PluginError, match="plugin tests_bad_builtin: chatd_commands failed"):
            HubFixture(("chatd.plugins.help", "tests_bad_builtin"))
    finally:
        del sys.modules["tests_bad_builtin"]


FILTER = """
    from chatd import Drop, hookimpl

    @hookimpl
    def chatd_message(ctx, text, action):
        if "{word}" in text:
            return Drop("no {word} here")
        return None
"""


def test_a_file_broken_by_an_edit_keeps_its_previous_version_on_reload(
    dropin_dir: Path,
) -> None:
    path = _write(dropin_dir, "nospam.py", FILTER.format(word="spam"))
    fx = _dropins(dropin_dir)
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    path.write_text("def oops(:\n")  # a syntax error, saved by mistake
    report = fx.plugins.reload("plugins")
    assert report.failed
    assert list(report) == [
        "plugins: 5 -> 5 loaded, commands 26 -> 26",
        f"plugins: plugin file {path} failed to load, kept the previous version:"
        " SyntaxError: invalid syntax (line 1)",
    ]
    assert "nospam" in fx.plugins.names
    fx.hub.receive(alice_user, "buy spam")  # the filter still filters
    assert alice.take() == ["*** Not sent: no spam here."]
    assert bob.take() == []
    # Fixed: the new version is loaded.
    path.write_text(textwrap.dedent(FILTER.format(word="eggs")))
    report = fx.plugins.reload("plugins")
    assert not report.failed
    fx.hub.receive(alice_user, "buy spam")
    assert bob.take() == ["<alice> buy spam"]


def test_a_failed_reload_exits_non_zero_from_chatd_admin(tmp_path: Path, dropin_dir: Path) -> None:
    path = _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    sock = tmp_path / "admin.sock"
    config = Path(_config(tmp_path, dropin_dir, admin=f'socket = "{sock}"\n'))
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        done = run_chatd("admin", "--socket", str(sock), "reload", "plugins")
        assert done.returncode == 0, done.stderr
        path.write_text("def oops(:\n")
        done = run_chatd("admin", "--socket", str(sock), "reload", "plugins")
        assert done.returncode == 1
        assert "kept the previous version: SyntaxError" in done.stderr
        config.write_text("[limits]\nmax_line_bytes = 1\n")
        done = run_chatd("admin", "--socket", str(sock), "reload", "config")
        assert done.returncode == 1
        assert "config: reload failed, kept the old settings" in done.stderr
    finally:
        server.stop()


def test_an_admin_reload_that_fails_is_an_error_response(tmp_path: Path, dropin_dir: Path) -> None:
    from chatd.admin.client import AdminClient, AdminFailed
    from tests.helpers import running_server

    path = _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    config = make_config(
        plugins=PluginSettings(dirs=[str(dropin_dir)]),
        admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")),
    )
    with running_server(config) as server:
        assert server.admin_path
        admin = AdminClient(server.admin_path)
        try:
            assert admin.call("reload", {"what": "plugins"}) == [
                "plugins: 5 -> 5 loaded, commands 27 -> 27"
            ]
            path.write_text("raise SystemExit(3)\n")
            with pytest.raises(AdminFailed, match="reload failed: plugins: 5 -> 5 loaded"):
                admin.call("reload", {"what": "plugins"})
        finally:
            admin.close()


ANYTHING = """
    import asyncio
    import sys
    from chatd import Command, hookimpl

    class Mine(BaseException):
        pass

    def later(ctx, args):
        ctx.call_later(0, lambda: sys.exit(4))
        ctx.call_later(0, lambda: (_ for _ in ()).throw(KeyboardInterrupt))
        ctx.reply("scheduled")

    def cancel(ctx, args):
        raise asyncio.CancelledError

    def custom(ctx, args):
        raise Mine("mine")

    def leave(ctx, args):
        ctx.quit("bye\\nsecond <root> line")

    @hookimpl
    def chatd_commands():
        return [Command(n, f) for n, f in
                (("later", later), ("cancel", cancel), ("custom", custom), ("leave", leave))]
"""


def test_any_base_exception_from_a_command_or_a_timer_is_the_plugins(dropin_dir: Path) -> None:
    # Found in review: a timer callback raising SystemExit, and a command
    # raising CancelledError or a BaseException of its own, stopped the server.
    _write(dropin_dir, "anything.py", ANYTHING)
    fx = _dropins(dropin_dir)
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "/later")
    fx.clock.advance(1)
    assert fx.timers.run_due() == 2  # nothing escaped the timers
    fx.hub.receive(alice_user, "/cancel")
    fx.hub.receive(alice_user, "/custom")
    assert alice.take() == [
        "*** scheduled",
        "*** /cancel failed (internal error).",
        "*** /custom failed (internal error).",
    ]
    assert fx.plugins.guard.records["anything"].errors == 4
    # A line break in a plugin's quit reason is a space, not a second line.
    fx.hub.receive(alice_user, "/leave")
    assert bob.take() == ["*** alice left (Quit: bye second <root> line)"]


def test_a_fifo_in_a_plugin_folder_is_skipped_not_read(dropin_dir: Path) -> None:
    os.mkfifo(dropin_dir / "pipe.py")  # reading it would block the loop
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    fx = _dropins(dropin_dir)
    assert "pipe" not in fx.plugins.names and "echo" in fx.plugins.names
    report = fx.plugins.reload("plugins")
    assert f"plugins: plugin file {dropin_dir / 'pipe.py'} skipped: not a regular file" in report


def test_a_reload_brings_back_only_a_new_version_and_never_overrules_an_operator(
    dropin_dir: Path,
) -> None:
    path = _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    _write(dropin_dir, "shout.py", ECHO.replace('"echo"', '"shout"').format(word="SHOUT"))
    fx = _dropins(dropin_dir)
    guard = fx.plugins.guard
    guard.record("echo").state = "switched off"  # as the breaker leaves it
    guard.switch("shout", False)
    fx.plugins.reload("plugins")  # the same files again: no news
    assert not guard.enabled("echo") and not guard.enabled("shout")
    path.write_text(textwrap.dedent(ECHO.format(word="fixed")))
    _write(dropin_dir, "shout.py", ECHO.replace('"echo"', '"shout"').format(word="LOUDER"))
    fx.plugins.reload("plugins")
    assert guard.enabled("echo")  # a new version comes back on
    assert not guard.enabled("shout")  # the operator said off
