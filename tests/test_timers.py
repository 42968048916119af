from __future__ import annotations

import logging

import pytest

from chatd.core.timers import MAX_DELAY, Timers
from tests.helpers import FakeClock


def test_call_later_runs_once_when_due() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(5, lambda: ran.append("a"))
    assert timers.next_delay() == 5
    clock.advance(4.9)
    assert timers.run_due() == 0 and ran == []
    clock.advance(0.1)
    assert timers.run_due() == 1 and ran == ["a"]
    clock.advance(100)
    assert timers.run_due() == 0 and timers.next_delay() is None


def test_equal_deadlines_run_in_the_order_scheduled() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[int] = []
    for i in range(5):
        timers.call_later(1, lambda i=i: ran.append(i))
    clock.advance(1)
    timers.run_due()
    assert ran == [0, 1, 2, 3, 4]


def test_call_every_repeats_without_drift_and_skips_missed_beats() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ticks: list[float] = []
    timer = timers.call_every(2, lambda: ticks.append(clock()))
    for _ in range(3):
        clock.advance(2)
        timers.run_due()
    assert ticks == [1002, 1004, 1006]
    clock.advance(7)  # the loop was late: one tick, not three
    timers.run_due()
    assert ticks[-1] == 1013 and len(ticks) == 4
    assert timers.next_delay() == 2
    timer.cancel()
    clock.advance(10)
    assert timers.run_due() == 0


def test_cancelled_timer_never_runs() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[str] = []
    timer = timers.call_later(1, lambda: ran.append("x"))
    timer.cancel()
    assert timers.next_delay() is None
    clock.advance(2)
    timers.run_due()
    assert ran == []


def test_a_failing_callback_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(1, lambda: 1 / 0)
    timers.call_later(1, lambda: ran.append("after"))
    clock.advance(1)
    with caplog.at_level(logging.ERROR):
        timers.run_due()
    assert ran == ["after"]
    assert "ZeroDivisionError" in caplog.text


def test_call_every_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        Timers(FakeClock()).call_every(0, lambda: None)


def test_cancelled_timers_do_not_pile_up() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    keep = timers.call_later(1000, lambda: None)
    for _ in range(10_000):
        timers.call_later(60, lambda: None).cancel()
    assert len(timers._heap) < 300  # compacted as it went, not 10,001 entries
    assert len(timers) == 1 and not keep.cancelled


def test_a_timer_cancelled_after_it_ran_changes_nothing() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[int] = []
    done = timers.call_later(1, lambda: ran.append(1))
    clock.advance(1)
    timers.run_due()
    done.cancel()
    later = timers.call_later(1, lambda: ran.append(2))
    clock.advance(1)
    assert timers.run_due() == 1 and ran == [1, 2] and not later.cancelled


def test_any_delay_is_taken_and_none_breaks_the_heap() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(float("inf"), lambda: ran.append("never"))
    timers.call_later(1e308, lambda: ran.append("never either"))
    timers.call_later(-5, lambda: ran.append("now"))
    with pytest.raises(ValueError, match="nan"):
        timers.call_later(float("nan"), lambda: ran.append("nan"))
    with pytest.raises(ValueError, match="nan"):
        timers.call_every(float("nan"), lambda: ran.append("nan"))
    assert timers.next_delay() == 0
    assert timers.run_due() == 1 and ran == ["now"]
    assert timers.next_delay() == MAX_DELAY  # as far as a timer goes: finite
    timers.call_later(1, lambda: ran.append("soon"))
    clock.advance(1)
    assert timers.run_due() == 1 and ran == ["now", "soon"]


def test_a_timer_that_re_arms_itself_with_no_delay_waits_for_the_next_pass() -> None:
    # Found while building the plugin test kit: call_later(0, itself) spun
    # inside one run_due forever, and the loop never turned.
    clock = FakeClock()
    timers = Timers(clock)
    ran: list[int] = []

    def again() -> None:
        ran.append(1)
        timers.call_later(0, again)

    timers.call_later(0, again)
    timers.call_later(0, lambda: ran.append(2))
    assert timers.run_due() == 2 and ran == [1, 2]
    assert timers.run_due() == 1 and ran == [1, 2, 1]
