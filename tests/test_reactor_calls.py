"""The loop's two seams for work done beside it: calls from other threads, and
a hook at the end of every iteration (what the history store will use)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from chatd.core.reactor import Reactor
from tests.helpers import WAIT


def test_a_call_from_another_thread_wakes_the_loop_and_runs_on_it(reactor: Reactor) -> None:
    ran: list[str] = []
    thread = threading.Thread(
        target=lambda: reactor.call_soon_threadsafe(
            lambda: ran.append(threading.current_thread().name)
        )
    )
    started = time.monotonic()
    thread.start()
    thread.join(WAIT)
    deadline = time.monotonic() + WAIT
    while not ran and time.monotonic() < deadline:
        reactor.run_once(max_wait=WAIT)  # woken at once: no timer is due
    assert ran == [threading.current_thread().name]  # the loop's thread, not the caller's
    assert time.monotonic() - started < WAIT


def test_calls_run_in_order_and_a_failing_one_costs_only_itself(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[int] = []
    reactor.call_soon_threadsafe(lambda: ran.append(1))
    reactor.call_soon_threadsafe(lambda: 1 / 0)
    reactor.call_soon_threadsafe(lambda: ran.append(3))
    with caplog.at_level(logging.ERROR):
        reactor.run_once(max_wait=WAIT)
    assert ran == [1, 3]
    assert "internal error in a call from another thread" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_a_turn_hook_runs_once_per_iteration_after_the_output(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    turns: list[int] = []
    reactor.add_turn_hook(lambda: turns.append(len(turns)))
    reactor.add_turn_hook(lambda: 1 / 0)  # logged each time; the first still runs
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            reactor.run_once(max_wait=0)
    assert turns == [0, 1, 2]
    assert caplog.text.count("internal error in a turn hook") == 3
