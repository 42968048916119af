"""chatd.testing, the kit for plugin authors, and its pytest fixture (issue 13, item 5).

Plugins here are real files in a temporary folder, loaded by path as a plugin
author's tests load theirs; the last tests run pytest in a subprocess, as a
plugin package would, to show the fixture arrives through the entry point.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chatd.config import ConfigError
from chatd.testing import (
    MAX_RUNS_AT_ONE_TIME,
    ChatHarness,
    ChatHarnessFactory,
    PluginFailed,
)
from tests.helpers import WAIT, write_plugin

ROOT = Path(__file__).resolve().parent.parent

WELCOME = "*** Welcome to chatd, a chat server for terminals."
PROMPT = r"*** Choose a nickname (1-16 letters, digits or any of _-[]\^{}|`):"

TICKER = """
    from chatd import Chat, Command, Context, hookimpl

    def remind(ctx: Context, args: str) -> None:
        ctx.call_later(30, lambda: ctx.reply("Time's up."))
        ctx.reply("In 30 seconds.")

    @hookimpl
    def chatd_startup(chat: Chat) -> None:
        chat.call_every(10, lambda: chat.announce("tick"))

    @hookimpl
    def chatd_commands() -> list[Command]:
        return [Command("remind", remind, "/remind", "Say time's up in 30 seconds.")]
"""

BOOM = """
    from chatd import Command, hookimpl

    def boom(ctx, args):
        return 1 / 0

    @hookimpl
    def chatd_commands():
        return [Command("boom", boom)]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "plugins.d"


# -- users: join, send, lines, leave ---------------------------------------------------


def test_join_reads_through_the_welcome_and_lines_are_what_nc_shows(
    chat_harness: ChatHarnessFactory,
) -> None:
    chat = chat_harness()
    alice = chat.join("alice")
    assert alice.lines() == []
    assert alice.all_lines == [
        WELCOME,
        PROMPT,
        "*** Welcome, alice! 1 user online (you); you are in #lobby. Type /help for commands.",
    ]
    bob = chat.join("bob")
    assert alice.lines() == ["*** bob joined"]
    assert bob.lines() == []
    assert chat.users() == ["alice", "bob"] and alice.online and alice.nick == "alice"


def test_join_fails_with_what_the_server_said(chat_harness: ChatHarnessFactory) -> None:
    chat = chat_harness()
    chat.join("alice")
    with pytest.raises(AssertionError, match=r"ALICE was not let in; .*The nickname ALICE is tak"):
        chat.join("ALICE")


def test_a_connection_chooses_its_nickname_line_by_line(chat_harness: ChatHarnessFactory) -> None:
    chat = chat_harness()
    carol = chat.connect()
    assert carol.lines() == [WELCOME, PROMPT]
    carol.send("no way")
    assert carol.lines()[0].startswith('*** "no way" is not a valid nickname')
    carol.send("carol")
    assert carol.online and chat.users() == ["carol"]


def test_send_is_handled_as_from_a_socket(chat_harness: ChatHarnessFactory) -> None:
    chat = chat_harness(config={"limits": {"max_line_bytes": 64}})
    alice, bob = chat.join("alice"), chat.join("bob")
    alice.lines()
    alice.send("hi \x1b[2Jthere\r")  # cleaned as the server cleans what nc sends
    alice.send("one\ntwo")
    alice.send("/me waves")
    assert bob.lines() == ["<alice> hi there", "<alice> one", "<alice> two", "* alice waves"]
    assert alice.lines() == []  # nobody gets their own line back
    alice.send("x" * 65)
    assert alice.lines() == ["*** Line too long (over 64 bytes); it was not sent."]


def test_leave_and_quit(chat_harness: ChatHarnessFactory) -> None:
    chat = chat_harness()
    alice, bob = chat.join("alice"), chat.join("bob")
    alice.lines()
    bob.leave()
    assert alice.lines() == ["*** bob left (connection closed)"]
    assert chat.users() == ["alice"] and not bob.online
    alice.send("/quit")
    assert alice.lines() == ["*** Goodbye, alice."] and alice.closed and chat.users() == []
    with pytest.raises(AssertionError, match="the server closed it"):
        alice.send("hello?")


# -- time ---------------------------------------------------------------------------


def test_advance_runs_each_timer_at_its_own_time(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    ticker = write_plugin(folder, "ticker.py", TICKER)
    chat = chat_harness(plugins=[ticker], builtins=False)
    alice = chat.join("alice")
    started = chat.clock()
    assert chat.advance(59) == 5
    assert alice.lines() == ["*** tick"] * 5
    assert chat.clock() == started + 59
    alice.send("/remind")
    assert chat.advance(29.9) == 3  # ticks at 60, 70 and 80
    assert alice.lines() == ["*** In 30 seconds.", "*** tick", "*** tick", "*** tick"]
    chat.advance(0.1)
    assert alice.lines() == ["*** Time's up."]


def test_advance_gives_up_on_a_timer_that_re_arms_itself_with_no_delay(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    spinner = write_plugin(
        folder,
        "spinner.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_startup(chat):
            def again():
                chat.call_later(0, again)
            chat.call_later(1, again)
        """,
    )
    chat = chat_harness(plugins=[spinner], builtins=False)
    with pytest.raises(AssertionError, match=f"again ran {MAX_RUNS_AT_ONE_TIME} times at one inst"):
        chat.advance(5)
    with pytest.raises(ValueError, match="seconds >= 0"):
        chat.advance(-1)


# -- plugin failures ------------------------------------------------------------------


def test_a_failing_command_fails_the_test_naming_the_plugin(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    boom = write_plugin(folder, "boom.py", BOOM)
    chat = chat_harness(plugins=[boom])
    alice = chat.join("alice")
    with pytest.raises(PluginFailed) as failed:
        alice.send("/boom")
    assert str(failed.value) == (
        f"plugin boom ({boom}): /boom failed: ZeroDivisionError: division by zero"
    )
    assert isinstance(failed.value, AssertionError)  # pytest reports it as a failure
    assert isinstance(failed.value.__cause__, ZeroDivisionError)  # with the plugin's traceback
    assert alice.lines() == ["*** /boom failed (internal error)."]  # as a server answers
    assert [(f.plugin, f.what) for f in chat.errors] == [("boom", "/boom")]


def test_not_strict_collects_failures_and_the_breaker_switches_the_plugin_off(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    chat = chat_harness(plugins=[write_plugin(folder, "boom.py", BOOM)], strict=False)
    alice = chat.join("alice")
    for _ in range(chat.config.plugins.breaker_errors):
        alice.send("/boom")
    alice.send("/boom")
    assert alice.lines()[-1] == (
        "*** /boom is switched off: it failed repeatedly. An operator can turn it back on."
    )
    assert len(chat.errors) == chat.config.plugins.breaker_errors
    assert chat.plugins.guard.records["boom"].state == "switched off"


def test_a_wrong_result_and_a_failing_timer_are_failures_too(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    odd = write_plugin(
        folder,
        "odd.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_message(ctx, text, action):
            return 42

        @hookimpl
        def chatd_startup(chat):
            def tock():
                raise RuntimeError("tock")
            chat.call_later(5, tock)
        """,
    )
    chat = chat_harness(plugins=[odd], builtins=False)
    alice, bob = chat.join("alice"), chat.join("bob")
    with pytest.raises(PluginFailed, match=r"chatd_message failed: TypeError: returned int, not"):
        alice.send("hello")
    assert bob.lines() == ["<alice> hello"]  # delivered as it was, as on a server
    with pytest.raises(PluginFailed, match=r"plugin odd \(.*\): timer .*tock failed: Runtime"):
        chat.advance(5)


def test_a_stuck_plugin_is_cut_off_and_fails_the_test(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    spin = write_plugin(
        folder,
        "spin.py",
        f"""
        import time

        from chatd import Command, hookimpl

        def spin(ctx, args):
            until = time.monotonic() + {WAIT}  # a bound, so that this test cannot hang
            while time.monotonic() < until:
                pass

        @hookimpl
        def chatd_commands():
            return [Command("spin", spin)]
        """,
    )
    chat = chat_harness(plugins=[spin], config={"plugins": {"call_timeout": 0.1}})
    alice = chat.join("alice")
    started = time.monotonic()
    with pytest.raises(PluginFailed, match=r"/spin still running after 0\.1s, stopped at .*spin"):
        alice.send("/spin")
    assert time.monotonic() - started < WAIT / 2
    assert alice.lines() == ["*** /spin failed (internal error)."]
    # The deadline was the harness's for that turn only.
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_chatd_reload_that_raises_is_its_answer_not_a_failure(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    picky = write_plugin(
        folder,
        "picky.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_reload(chat, what):
            raise ValueError("words.txt has no words")
        """,
    )
    chat = chat_harness(plugins=[picky], builtins=False)
    report = chat.reload("words")
    assert report.failed
    assert report == ["picky: reload failed, kept the old data: words.txt has no words"]


# -- loading: files, modules, settings ------------------------------------------------------


def test_a_file_by_path_is_loaded_alone_of_its_folder(
    chat_harness: ChatHarnessFactory, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(folder, "boom.py", BOOM)
    ticker = write_plugin(folder, "ticker.py", TICKER)
    monkeypatch.chdir(folder.parent)
    chat = chat_harness(plugins="plugins.d/ticker.py")
    assert chat.plugins.names == ["help", "basics", "jumble", "fact", "ticker"]
    assert chat.plugins.set.origins["ticker"] == str(ticker)
    chat.close()
    assert "chatd_plugin_ticker" not in sys.modules  # the next harness imports it afresh
    assert chat_harness(plugins=[ticker], builtins=False).plugins.names == ["ticker"]


def test_a_module_by_name_is_loaded_as_the_built_ins_are(
    chat_harness: ChatHarnessFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path, "kit_ticker.py", TICKER)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        chat = chat_harness(plugins=["kit_ticker", "chatd.plugins.help"], builtins=False)
        assert chat.plugins.names == ["kit_ticker", "help"]
        alice = chat.join("alice")
        alice.send("/remind")
        assert alice.lines() == ["*** In 30 seconds."]
    finally:
        sys.modules.pop("kit_ticker", None)


def test_a_file_that_cannot_be_loaded_is_named(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    bad = write_plugin(folder, "bad.py", "def oops(:\n")
    with pytest.raises(PluginFailed, match=rf"plugin file {re.escape(str(bad))} skipped: Syntax"):
        chat_harness(plugins=[bad])
    chat = chat_harness(plugins=[bad], strict=False)
    assert chat.problems == [f"plugin file {bad} skipped: SyntaxError: invalid syntax (line 1)"]
    with pytest.raises(FileNotFoundError, match=r"plugin file nowhere\.py: no such file"):
        chat_harness(plugins=["nowhere.py"])
    hidden = write_plugin(folder, "_hidden.py", BOOM)
    with pytest.raises(ValueError, match="names do not start with _; rename it"):
        chat_harness(plugins=[hidden])


def test_config_tables_reach_the_plugins_chat_config(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    greet = write_plugin(
        folder,
        "greet.py",
        """
        from chatd import Command, hookimpl

        def greet(ctx, args):
            ctx.reply(f"{ctx.config['greeting']}, {ctx.nick}!")

        @hookimpl
        def chatd_reload(chat, what):
            if what == "config":
                return f"greeting is now {chat.config['greeting']}"

        @hookimpl
        def chatd_commands():
            return [Command("greet", greet)]
        """,
    )
    chat = chat_harness(plugins=[greet], config={"greet": {"greeting": "Hello"}})
    assert chat.config.section("greet") == {"greeting": "Hello"}
    alice = chat.join("alice")
    alice.send("/greet")
    assert alice.lines() == ["*** Hello, alice!"]
    report = chat.reload("config", config={"greet": {"greeting": "Howdy"}})
    assert report == ["greet: greeting is now Howdy"]
    alice.send("/greet")
    assert alice.lines() == ["*** Howdy, alice!"]
    with pytest.raises(ConfigError, match=r"unknown table \[gret\]"):
        chat_harness(plugins=[greet], config={"gret": {"greeting": "Hello"}})


def test_a_reload_imports_the_file_again_and_keeps_the_plugins_state(
    chat_harness: ChatHarnessFactory, folder: Path
) -> None:
    body = """
        from chatd import Command, hookimpl

        def count(ctx, args):
            ctx.state["n"] = ctx.state.get("n", 0) + 1
            ctx.reply(f"{WORD} {ctx.state['n']}")

        @hookimpl
        def chatd_commands():
            return [Command("count", count)]
    """
    counter = write_plugin(folder, "counter.py", 'WORD = "count"\n' + textwrap.dedent(body))
    chat = chat_harness(plugins=[counter], builtins=False)
    alice = chat.join("alice")
    alice.send("/count")
    counter.write_text('WORD = "tally"\n' + textwrap.dedent(body))
    assert chat.reload("plugins") == ["plugins: 1 -> 1 loaded, commands 1 -> 1"]
    alice.send("/count")
    assert alice.lines() == ["*** count 1", "*** tally 2"]


def test_close_tells_everyone_and_runs_the_shutdown_hooks(folder: Path, tmp_path: Path) -> None:
    said = tmp_path / "said.txt"
    bye = write_plugin(
        folder,
        "bye.py",
        f"""
        from pathlib import Path

        from chatd import hookimpl

        @hookimpl
        def chatd_shutdown(chat):
            Path({str(said)!r}).write_text("bye")
        """,
    )
    with ChatHarness(plugins=[bye]) as chat:
        alice = chat.join("alice")
    assert alice.lines() == ["*** Server shutting down. Goodbye!"] and alice.closed
    assert said.read_text() == "bye"
    with pytest.raises(AssertionError, match="this ChatHarness is closed"):
        chat.join("bob")
    chat.close()  # a second time does nothing


# -- the fixture, as a plugin package's tests get it -----------------------------------------


def _pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # hypothesis's plugin takes most of a second to load, and this needs none of it
    plugins = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-q", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_a_plugin_packages_tests_get_the_fixture_by_name(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "plugins.d",
        "hello.py",
        """
        from chatd import Command, hookimpl

        def hello(ctx, args):
            ctx.reply(f"Hello, {ctx.nick}!")

        @hookimpl
        def chatd_commands():
            return [Command("hello", hello)]
        """,
    )
    write_plugin(
        tmp_path,
        "test_hello.py",
        """
        def test_hello(chat_harness):
            chat = chat_harness(plugins=["plugins.d/hello.py"], builtins=False)
            alice = chat.join("alice")
            alice.send("/hello")
            assert alice.lines() == ["*** Hello, alice!"]
        """,
    )
    ran = _pytest_in(tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout
    off = _pytest_in(tmp_path, "-p", "no:chatd")  # the plugin's name, as documented
    assert off.returncode == 1 and "fixture 'chat_harness' not found" in off.stdout


def test_the_readme_shows_tests_test_roll_example() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.partition("\n### Testing a plugin\n")[2]
    assert section, "README.md has no '### Testing a plugin' section"
    block = section.partition("```python\n")[2].partition("```\n")[0]
    example = (ROOT / "tests" / "test_roll_example.py").read_text().split('"""', 2)[2]
    assert block == example.lstrip("\n"), "README's example and tests/test_roll_example.py differ"
