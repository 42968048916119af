"""The plugin guard, sans-IO: timing, the breaker, results of the wrong type,
and the deadline (issue 13, items 1-3)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.core.guard import OFF, ON, SWITCHED_OFF, Guard, GuardSettings, PluginTimeout
from tests.helpers import FakeClock, HubFixture, write_plugin


class Ticks:
    """A perf_counter stand-in: each call moves on by ``step`` seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _guard(**settings: float) -> tuple[Guard, FakeClock, Ticks]:
    clock, ticks = FakeClock(), Ticks()
    return Guard(GuardSettings(**settings), clock=clock, timer=ticks), clock, ticks  # type: ignore[arg-type]


def test_a_call_is_timed_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    guard, _, ticks = _guard(slow_call_ms=100)
    assert guard.run("roll", "/roll", lambda a, b=0: a + b, 2, b=3) == (5, None)
    ticks.step = 0.1005  # the call takes 201 ms: start, then end
    with caplog.at_level(logging.WARNING):
        guard.run("roll", "/roll", lambda: None)
    rec = guard.records["roll"]
    assert (rec.calls, rec.slow, rec.errors, rec.state) == (2, 1, 0, ON)
    assert rec.snapshot()["slowest_ms"] == pytest.approx(100.5) and rec.slowest_what == "/roll"
    assert "plugin roll: /roll was slow: 100 ms (slow_call_ms is 100)" in caplog.text


def test_whatever_a_plugin_raises_is_returned_not_raised() -> None:
    guard, _, _ = _guard()

    def leave() -> None:
        raise SystemExit(3)

    _, error = guard.run("x", "/leave", leave)
    assert isinstance(error, SystemExit)
    _, error = guard.run("x", "/stop", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    assert isinstance(error, KeyboardInterrupt)
    assert guard.records["x"].errors == 2


def test_the_breaker_opens_after_breaker_slow_slow_calls_in_the_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard, clock, ticks = _guard(slow_call_ms=100, breaker_slow=3, breaker_window=60)
    ticks.step = 0.15  # every call takes 150 ms
    guard.run("nap", "/nap", lambda: None)
    clock.advance(61)  # the first falls out of the window
    guard.run("nap", "/nap", lambda: None)
    guard.run("nap", "/nap", lambda: None)
    assert guard.enabled("nap")
    with caplog.at_level(logging.ERROR):
        guard.run("nap", "/nap", lambda: None)
    assert not guard.enabled("nap") and guard.records["nap"].state == SWITCHED_OFF
    assert "plugin nap switched off: 3 slow calls in 60s" in caplog.text
    assert "chatd admin plugin on nap" in caplog.text
    guard.switch("nap", True)
    assert guard.enabled("nap")
    guard.run("nap", "/nap", lambda: None)  # its old slow calls are forgotten
    assert guard.enabled("nap")


def test_the_breaker_opens_after_breaker_errors_errors_and_bad_results() -> None:
    guard, _, _ = _guard(breaker_errors=3)

    def boom() -> None:
        raise ValueError("boom")

    guard.run("b", "/boom", boom)
    guard.bad_result("b", "chatd_message", "an int")
    assert guard.enabled("b")
    guard.run("b", "/boom", boom)
    assert guard.records["b"].state == SWITCHED_OFF


def test_an_operator_can_switch_a_plugin_off_and_a_new_version_starts_on() -> None:
    guard, _, _ = _guard()
    assert guard.switch("x", False).state == OFF and not guard.enabled("x")
    guard.fresh("x")
    assert guard.enabled("x")
    guard.record("y")
    guard.forget({"x"})
    assert set(guard.records) == set()


def test_a_plugins_hooks_are_skipped_and_commands_answer_while_it_is_off(
    dropin_dir: Path,
) -> None:
    from chatd.config import PluginSettings
    from tests.helpers import make_config

    folder = dropin_dir
    write_plugin(
        folder,
        "shout.py",
        """
        from chatd import Command, hookimpl

        def shout(ctx, args):
            ctx.reply(args.upper())

        @hookimpl
        def chatd_commands():
            return [Command("shout", shout)]

        @hookimpl
        def chatd_message(ctx, text, action):
            return text + "!"
        """,
    )
    fx = HubFixture(config=make_config(plugins=PluginSettings(dirs=[str(folder)])))
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "hi")
    assert bob.take() == ["<alice> hi!"]
    fx.plugins.guard.switch("shout", False)
    fx.hub.receive(alice_user, "hi")
    fx.hub.receive(alice_user, "/shout hey")
    assert bob.take() == ["<alice> hi"]
    assert alice.take() == [
        "*** /shout is switched off: an operator turned it off. An operator can turn it back on."
    ]


def test_a_hook_returning_the_wrong_type_is_a_plugin_error(
    dropin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from chatd.config import PluginSettings
    from tests.helpers import make_config

    folder = dropin_dir
    write_plugin(
        folder,
        "odd.py",
        """
        from chatd import hookimpl

        @hookimpl
        def chatd_message(ctx, text, action):
            return 42
        """,
    )
    fx = HubFixture(config=make_config(plugins=PluginSettings(dirs=[str(folder)])))
    alice_user, _ = fx.join("alice")
    _, bob = fx.join("bob")
    with caplog.at_level(logging.ERROR):
        fx.hub.receive(alice_user, "hello")
    assert bob.take() == ["<alice> hello"]  # delivered as it was
    assert "plugin odd: chatd_message returned int, not None or str or Drop" in caplog.text
    assert fx.plugins.guard.records["odd"].errors == 1


# -- the deadline: a real SIGALRM, in the main thread ---------------------------------


@pytest.fixture
def armed() -> Iterator[Guard]:
    assert threading.current_thread() is threading.main_thread()
    guard = Guard(GuardSettings(call_timeout=0.2))
    assert guard.deadline.install()
    yield guard
    guard.deadline.uninstall()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_deadline_stops_an_endless_loop(armed: Guard) -> None:
    def spin() -> None:
        while True:
            pass

    started = time.monotonic()
    _, error = armed.run("spin", "/spin", spin)
    assert isinstance(error, PluginTimeout)
    assert time.monotonic() - started < 2


def test_the_deadline_interrupts_a_blocking_sleep(armed: Guard) -> None:
    started = time.monotonic()
    _, error = armed.run("nap", "/nap", time.sleep, 30)
    assert isinstance(error, PluginTimeout)
    assert time.monotonic() - started < 2


def test_the_deadline_comes_again_after_a_bare_except(armed: Guard) -> None:
    def careless() -> None:
        try:
            while True:
                pass
        except BaseException:  # what a careless plugin does: it swallows the first
            pass
        while True:  # ...and spins on: the deadline fires again
            pass

    _, error = armed.run("careless", "/careless", careless)
    assert isinstance(error, PluginTimeout)


def test_the_deadline_does_not_outlive_the_call(armed: Guard) -> None:
    assert armed.run("quick", "/quick", lambda: 1) == (1, None)
    time.sleep(0.3)  # past the deadline: nothing may fire now
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
