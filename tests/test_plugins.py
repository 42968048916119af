"""Plugins: drop-in files, entry points, every hook, reload, isolation, facts.

Each hook in chatd/hookspecs.py has a test here named after it
(tests/test_hookspecs.py checks that).
"""

from __future__ import annotations

import itertools
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from chatd.config import FactSettings, PluginSettings, from_dict
from chatd.core.commands import CommandError
from chatd.core.plugins import PluginError, PluginHost
from tests.helpers import HubFixture, make_config
from tests.helpers import write_plugin as _write

ROOT = Path(__file__).resolve().parent.parent


def _dropins(folder: Path, **tables: object) -> HubFixture:
    return HubFixture(config=make_config(plugins=PluginSettings(dirs=[str(folder)]), **tables))


ECHO = """
    from chatd import Command, Context, hookimpl

    def echo(ctx: Context, args: str) -> None:
        ctx.reply("{word}: " + args)

    @hookimpl
    def chatd_commands():
        return [Command("echo", echo, "/echo TEXT", "Say it back.")]
"""


def test_a_dropin_file_is_loaded_and_its_command_works(dropin_dir: Path) -> None:
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    _write(dropin_dir, "_private.py", "raise RuntimeError('never imported')")
    _write(dropin_dir, "notes.txt", "not a plugin")
    fx = _dropins(dropin_dir)
    assert fx.plugins.set.origins["echo"] == str(dropin_dir / "echo.py")
    assert "_private" not in fx.plugins.names
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/echo hi there")
    assert alice.take() == ["*** echo: hi there"]
    fx.hub.receive(alice_user, "/help echo")
    assert alice.take() == ["*** Usage: /echo TEXT  -  Say it back."]


def test_a_broken_file_is_skipped_with_its_name_and_the_rest_load(
    dropin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    _write(dropin_dir, "broken.py", "def oops(:\n    pass\n")
    _write(dropin_dir, "raises.py", "raise ImportError('no module named frobnitz')\n")
    _write(dropin_dir, "typo.py", ECHO.replace("chatd_commands", "chatd_comands").format(word="x"))
    with caplog.at_level(logging.ERROR):
        fx = _dropins(dropin_dir)
    assert fx.plugins.names == ["help", "basics", "jumble", "fact", "echo"]
    assert f"plugin file {dropin_dir / 'broken.py'} skipped: SyntaxError:" in caplog.text
    assert "(line 1)" in caplog.text
    assert (
        f"plugin file {dropin_dir / 'raises.py'} skipped: ImportError: no module named frobnitz"
        in caplog.text
    )
    assert (
        f"plugin file {dropin_dir / 'typo.py'} skipped: unknown hook chatd_comands" in caplog.text
    )


def test_an_edit_is_picked_up_by_reload_without_dropping_anyone(dropin_dir: Path) -> None:
    path = _write(dropin_dir, "echo.py", ECHO.format(word="old"))
    fx = _dropins(dropin_dir)
    alice_user, alice = fx.join("alice")
    path.write_text(textwrap.dedent(ECHO.format(word="new")))
    _write(dropin_dir, "shout.py", ECHO.replace('"echo"', '"shout"').format(word="SHOUT"))
    assert fx.plugins.reload("plugins") == ["plugins: 5 -> 6 loaded, commands 27 -> 28 (+/shout)"]
    fx.hub.receive(alice_user, "/echo hi")
    fx.hub.receive(alice_user, "/shout hi")
    assert alice.take() == ["*** new: hi", "*** SHOUT: hi"]
    path.unlink()
    assert fx.plugins.reload("plugins") == ["plugins: 6 -> 5 loaded, commands 28 -> 27 (-/echo)"]
    fx.hub.receive(alice_user, "/echo hi")
    assert alice.take() == ["*** Unknown command /echo. Type /help for the list of commands."]
    assert not alice.closed


def test_two_plugins_claiming_a_command_stop_startup_with_both_named(dropin_dir: Path) -> None:
    _write(dropin_dir, "who2.py", ECHO.replace('"echo"', '"who"').format(word="x"))
    with pytest.raises(CommandError) as caught:
        _dropins(dropin_dir)
    assert str(caught.value) == (
        f"command /who is declared by both plugin basics and plugin who2"
        f" ({dropin_dir / 'who2.py'}); disable one of them in [plugins] disabled"
    )


def test_a_reload_that_would_clash_is_refused_and_the_old_set_stays(dropin_dir: Path) -> None:
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    fx = _dropins(dropin_dir)
    alice_user, alice = fx.join("alice")
    _write(dropin_dir, "clash.py", ECHO.format(word="clash"))
    (line,) = fx.plugins.reload("plugins")
    assert line.startswith("plugins: reload refused, kept the previous 5 plugins: command /echo")
    fx.hub.receive(alice_user, "/echo still")
    assert alice.take() == ["*** echo: still"]


def test_a_name_that_is_taken_is_skipped(
    dropin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(dropin_dir, "fact.py", ECHO.format(word="x"))
    with caplog.at_level(logging.ERROR):
        fx = _dropins(dropin_dir)
    assert fx.plugins.set.origins["fact"] == "built-in"
    assert "a plugin named fact is already loaded (built-in)" in caplog.text


def test_disabled_plugins_are_not_loaded(dropin_dir: Path) -> None:
    _write(dropin_dir, "echo.py", ECHO.format(word="echo"))
    config = make_config(plugins=PluginSettings(dirs=[str(dropin_dir)], disabled=["echo", "fact"]))
    fx = HubFixture(config=config)
    assert fx.plugins.names == ["help", "basics", "jumble"]
    assert "fact" not in fx.plugins.commands and "echo" not in fx.plugins.commands


def test_plugin_dirs_are_relative_to_the_config_file(tmp_path: Path) -> None:
    _write(tmp_path / "extra", "echo.py", ECHO.format(word="echo"))
    config = from_dict({"plugins": {"dirs": ["extra"]}}, source=tmp_path / "chatd.toml")
    host = PluginHost(config, entry_points=False)
    assert host.set.origins["echo"] == str(tmp_path / "extra" / "echo.py")
    sys.modules.pop("chatd_plugin_echo", None)


def test_a_dropin_gets_its_own_config_table(dropin_dir: Path) -> None:
    _write(
        dropin_dir,
        "greeter.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_user_joined(ctx):
            ctx.reply(ctx.config.get("greeting", "hello") + ", " + ctx.nick)
        """,
    )
    config = from_dict({"plugins": {"dirs": [str(dropin_dir)]}, "greeter": {"greeting": "ahoy"}})
    fx = HubFixture(config=config)
    link_lines = fx.join("alice")[1].lines
    assert "*** ahoy, alice" in link_lines


def test_a_table_for_no_loaded_plugin_is_a_startup_error(dropin_dir: Path) -> None:
    from chatd.config import ConfigError

    config = from_dict({"plugins": {"dirs": [str(dropin_dir)]}, "greeter": {"x": 1}})
    with pytest.raises(ConfigError, match=r"unknown table \[greeter\]"):
        PluginHost(config, entry_points=False)


def test_an_entry_point_plugin_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real installed distribution, as importlib.metadata finds one on sys.path.
    (tmp_path / "shoutpkg.py").write_text(
        textwrap.dedent(ECHO.replace('"echo"', '"shout"').format(word="SHOUT"))
    )
    info = tmp_path / "shoutpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shoutpkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[chatd]\nshout = shoutpkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = PluginHost(make_config(), entry_points=True)
    assert host.set.origins["shout"] == "entry point shout = shoutpkg"
    assert "shout" in host.commands
    sys.modules.pop("shoutpkg", None)


def test_a_failing_builtin_is_fatal() -> None:
    with pytest.raises(ModuleNotFoundError):
        PluginHost(make_config(), ("chatd.plugins.nope",), entry_points=False)
    sys.modules["tests_typo_builtin"] = type(sys)("tests_typo_builtin")
    try:
        from chatd import hookimpl

        sys.modules["tests_typo_builtin"].chatd_startup_ = hookimpl(lambda: None)  # type: ignore[attr-defined]
        with pytest.raises(PluginError, match="plugin tests_typo_builtin: unknown hook"):
            PluginHost(make_config(), ("tests_typo_builtin",), entry_points=False)
    finally:
        del sys.modules["tests_typo_builtin"]


RECORDER = """
    from chatd import Drop, hookimpl

    EVENTS = []

    @hookimpl
    def chatd_startup(chat):
        EVENTS.append(("startup", chat.name))
        chat.state["seen"] = 0

    @hookimpl
    def chatd_shutdown(chat):
        EVENTS.append(("shutdown", chat.name))

    @hookimpl
    def chatd_user_joined(ctx):
        EVENTS.append(("joined", ctx.nick, ctx.user_id))

    @hookimpl
    def chatd_user_left(user_id, nick, reason):
        EVENTS.append(("left", nick, user_id, reason))

    @hookimpl
    def chatd_message(ctx, text, action):
        ctx.state["seen"] += 1
        if "darn" in text:
            return Drop("please keep it friendly")
        if action:
            return text + " (action)"
        return text.replace("colour", "color")

    @hookimpl
    def chatd_reload(chat, what):
        return f"recorder reloaded {what}" if what in ("all", "plugins") else None
"""


@pytest.fixture
def recorder(dropin_dir: Path) -> tuple[HubFixture, list[tuple[object, ...]]]:
    _write(dropin_dir, "recorder.py", RECORDER)
    fx = _dropins(dropin_dir)
    events = sys.modules["chatd_plugin_recorder"].EVENTS
    return fx, events


def test_chatd_startup_and_chatd_shutdown(recorder: tuple[HubFixture, list[object]]) -> None:
    fx, events = recorder
    assert events == [("startup", "recorder")]
    fx.hub.shutdown("bye")
    assert events[-1] == ("shutdown", "recorder")


def test_chatd_user_joined_and_chatd_user_left(recorder: tuple[HubFixture, list[object]]) -> None:
    fx, events = recorder
    alice_user, _ = fx.join("alice")
    assert events[-1] == ("joined", "alice", alice_user.id)
    fx.hub.receive(alice_user, "/quit bye")
    assert events[-1] == ("left", "alice", alice_user.id, "Quit: bye")


def test_chatd_message_rewrites_or_drops(recorder: tuple[HubFixture, list[object]]) -> None:
    fx, _ = recorder
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "nice colour")
    fx.hub.receive(alice_user, "/me waves")
    fx.hub.receive(alice_user, "darn it")
    assert bob.take() == ["<alice> nice color", "* alice waves (action)"]
    assert alice.take() == ["*** Not sent: please keep it friendly."]
    assert fx.plugins.states["recorder"]["seen"] == 3


def test_chatd_reload_reports_and_state_survives(recorder: tuple[HubFixture, list[object]]) -> None:
    fx, _ = recorder
    fx.plugins.states["recorder"]["seen"] = 41
    report = fx.plugins.reload("plugins")
    assert report[0] == "plugins: 5 -> 5 loaded, commands 26 -> 26"
    assert "recorder: recorder reloaded plugins" in report
    events = sys.modules["chatd_plugin_recorder"].EVENTS  # the re-imported module's
    assert events == [("startup", "recorder")]
    assert fx.plugins.states["recorder"]["seen"] == 0  # its startup ran again
    (words,) = fx.plugins.reload("words")  # not the recorder's topic: it says nothing
    assert words.startswith("jumble: words: 224 -> 224")
    assert fx.plugins.reload("bogus") == [
        "nothing to reload called 'bogus'; choose one of words, facts, plugins, config, all"
    ]


def test_chatd_commands_is_how_every_command_exists() -> None:
    fx = HubFixture(("chatd.plugins.basics",))
    assert [c.name for c in fx.plugins.commands] == [
        "deop", "history", "identify", "join", "kick", "me", "msg", "names", "nick", "op",
        "part", "password", "quit", "r", "register", "rooms", "topic", "unregister", "who",
    ]  # fmt: skip
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/help")
    assert alice.take() == ["*** Unknown command /help. Type /help for the list of commands."]


def test_a_hook_that_raises_is_logged_and_the_others_still_run(
    dropin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(
        dropin_dir,
        "aaa_bad.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_message(text):
            raise RuntimeError("filter bug")

        @hookimpl
        def chatd_user_joined(ctx):
            raise RuntimeError("greeter bug")
        """,
    )
    fx = _dropins(dropin_dir)
    with caplog.at_level(logging.ERROR):
        alice_user, _ = fx.join("alice")
        _, bob = fx.join("bob")
        fx.hub.receive(alice_user, "gets through")
    assert bob.take() == ["<alice> gets through"]
    assert "plugin aaa_bad: chatd_message failed" in caplog.text
    assert "plugin aaa_bad: chatd_user_joined failed" in caplog.text


def test_the_example_roll_plugin(tmp_path: Path) -> None:
    fx = HubFixture(config=make_config(plugins=PluginSettings(dirs=[str(ROOT / "plugins.d")])))
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "/roll 3d6")
    (line,) = alice.take()
    assert bob.take() == [line]
    rolls, total = line.removeprefix("*** alice rolls 3d6: ").split(" = ")
    dice = [int(d) for d in rolls.split(" + ")]
    assert len(dice) == 3 and all(1 <= d <= 6 for d in dice) and sum(dice) == int(total)
    fx.hub.receive(alice_user, "/roll d20")
    assert 1 <= int(alice.take()[0].removeprefix("*** alice rolls 1d20: ")) <= 20
    for bad in ("/roll 0d6", "/roll 1000d6", "/roll 2d1"):
        fx.hub.receive(alice_user, bad)
        assert alice.take() == ["*** Roll 1 to 100 dice of 2 to 1000 sides."]
    fx.hub.receive(alice_user, "/roll lots")
    assert alice.take() == ["*** Usage: /roll [NdM], for example /roll 2d6 or /roll d20."]
    sys.modules.pop("chatd_plugin_roll", None)


def test_facts_do_not_repeat_until_all_are_told(tmp_path: Path) -> None:
    path = tmp_path / "facts.txt"
    path.write_text("# five facts\n\nOne.\nTwo.\nThree.\n  Four.  \nFive.\n")
    fx = HubFixture(config=make_config(fact=FactSettings(str(path))))
    alice_user, alice = fx.join("alice")
    told: list[str] = []
    for _ in range(15):
        fx.hub.receive(alice_user, "/fact")
        (line,) = alice.take()
        told.append(line.removeprefix("*** Fact: "))
    expected = {"One.", "Two.", "Three.", "Four.", "Five."}
    for start in (0, 5, 10):
        assert set(told[start : start + 5]) == expected
    assert all(a != b for a, b in itertools.pairwise(told))


def test_facts_reload_and_a_bad_file_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "facts.txt"
    path.write_text("Old fact.\n")
    fx = HubFixture(config=make_config(fact=FactSettings(str(path))))
    path.write_text("New fact one.\nNew fact two.\n")
    assert fx.plugins.reload("facts") == [f"fact: facts: 1 -> 2 (from {path})"]
    path.write_bytes(b"\xff\xfe not utf-8\n")
    (line,) = fx.plugins.reload("facts")
    assert line == (
        f"fact: reload failed, kept the old data: [fact] facts_file: {path}: not UTF-8 (byte 0)"
    )
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/fact")
    assert alice.take()[0].startswith("*** Fact: New fact")


def test_the_bundled_facts() -> None:
    fx = HubFixture()
    facts = fx.plugins.states["fact"]["facts"]
    assert len(facts) >= 60 and len(set(facts)) == len(facts)


def test_chatd_user_status_tells_operators_about_games(tmp_path: Path) -> None:
    from chatd.config import JumbleSettings

    words = tmp_path / "words.txt"
    words.write_text("planet\n")
    fx = HubFixture(config=make_config(jumble=JumbleSettings(str(words), 60)))
    alice_user, _ = fx.join("alice")
    assert fx.plugins.user_status(alice_user) == []
    fx.hub.receive(alice_user, "/game")
    fx.clock.advance(15)
    # The operator sees that a round runs, not its answer.
    assert fx.plugins.user_status(alice_user) == ["jumble (6 letters), 45s left"]


def test_chatd_reload_hears_of_a_config_reload(dropin_dir: Path, tmp_path: Path) -> None:
    from chatd.config import load
    from tests.helpers import PumpedServer

    _write(
        dropin_dir,
        "cfg.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_reload(chat, what):
            return f"saw {what}, greeting {chat.config.get('greeting')!r}"
        """,
    )
    path = tmp_path / "chatd.toml"
    base = f'[server]\nport = 0\n[admin]\nenabled = false\n[plugins]\ndirs = ["{dropin_dir}"]\n'
    path.write_text(base + '[cfg]\ngreeting = "hi"\n')
    pumped = PumpedServer(load(path))
    try:
        path.write_text(base + '[cfg]\ngreeting = "hello"\n')
        report = pumped.server.reload("config")
        assert list(report) == [
            f"config: {path}: changed [cfg]",
            "cfg: saw config, greeting 'hello'",
        ]
        path.write_text(base + "[cfg]\ngreeting = \n")  # broken: the plugins hear nothing
        report = pumped.server.reload("config")
        assert report.failed and len(report) == 1
    finally:
        pumped.close()
