"""The server's counters (chatd.core.stats): the loop iteration histogram, on
its bucket edges and in a loop driven by a fake clock, and lines out counted
once per event beside the deliveries counted per reader."""

from __future__ import annotations

import math

import pytest

from chatd.core.reactor import Reactor
from chatd.core.stats import LOOP_BOUNDS, LoopTimes
from chatd.core.timers import Timers
from tests.helpers import FakeClock, HubFixture


def test_the_loop_buckets_run_from_a_tenth_of_a_millisecond_to_infinity() -> None:
    ms = 0.001
    assert LoopTimes.BOUNDS == LOOP_BOUNDS
    millis = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500]
    assert list(LOOP_BOUNDS) == pytest.approx([*(m * ms for m in millis), math.inf])
    assert list(LOOP_BOUNDS) == sorted(LOOP_BOUNDS)


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.0, 0),
        (0.0001, 0),  # on a bound: that bound's bucket (Prometheus' le)
        (0.00010001, 1),
        (0.001, 3),
        (0.0010001, 4),
        (2.5, 13),
        (2.5000001, 14),  # past the last finite bound: +Inf
        (3600.0, 14),
    ],
)
def test_an_iteration_falls_in_the_first_bucket_whose_bound_it_does_not_pass(
    seconds: float, bucket: int
) -> None:
    times = LoopTimes()
    times.observe(seconds)
    assert times.counts == [1 if i == bucket else 0 for i in range(len(LOOP_BOUNDS))]
    assert times.sum == seconds and times.count == 1


def test_the_loop_times_its_busy_part_on_its_timers_clock() -> None:
    clock = FakeClock()
    reactor = Reactor(Timers(clock))
    try:
        reactor.add_turn_hook(lambda: clock.advance(0.003))  # a turn hook's work counts
        reactor.run_once(max_wait=0)
        reactor.timers.call_later(0, lambda: clock.advance(0.010))  # and a timer's
        reactor.run_once(max_wait=0)
        times = reactor.loop_times
        assert times.counts[LOOP_BOUNDS.index(0.005)] == 1  # 3 ms
        assert times.counts[LOOP_BOUNDS.index(0.025)] == 1  # 13 ms
        assert times.count == 2
        assert times.sum == pytest.approx(0.016)
    finally:
        reactor.request_stop()
        reactor.run()


def test_a_line_to_a_room_is_one_line_out_and_a_delivery_per_reader() -> None:
    hub = HubFixture()
    alice, _ = hub.join("alice")
    hub.join("bob")
    hub.join("carol")
    stats = hub.hub.stats
    before_lines, before_deliveries = stats.events_out, stats.lines_out
    hub.hub.receive(alice, "hi")
    assert stats.events_out - before_lines == 1
    assert stats.lines_out - before_deliveries == 2  # bob and carol; not alice herself
    hub.hub.receive(alice, "/msg bob psst")
    assert stats.events_out - before_lines == 2
    assert stats.lines_out - before_deliveries == 3
