"""Counters for operators: what the server has done since it started.

Rule: plain integers bumped where the work happens (the reactor counts
connections and bytes, the hub lines and commands), never per recipient on the
fan-out path: a broadcast adds its recipient count once. The loop's iteration
times are a histogram of fixed buckets (:class:`LoopTimes`): one bisect and two
adds an iteration, whatever the load.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

#: The upper bounds (seconds) of the loop iteration histogram's buckets, the
#: last +Inf: from 0.1 ms (an idle turn, a line or two) to 2.5 s (a stall the
#: watchdog would name), about three to a decade, as Prometheus' defaults are
#: spaced, so the quantiles an operator reads are within a factor of ~2.5.
LOOP_BOUNDS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    math.inf,
)


class LoopTimes:
    """How long the loop's iterations took (their busy part, not the wait in
    select()): ``counts[i]`` iterations took more than ``LOOP_BOUNDS[i - 1]``
    and at most ``LOOP_BOUNDS[i]`` seconds (Prometheus' ``le``: a time equal to
    a bound falls in that bound's bucket); ``sum`` is their total."""

    __slots__ = ("counts", "sum")

    BOUNDS: Final = LOOP_BOUNDS

    def __init__(self) -> None:
        self.counts = [0] * len(LOOP_BOUNDS)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LOOP_BOUNDS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        """Iterations observed."""
        return sum(self.counts)


@dataclass
class Stats:
    started: float
    connections_now: int = 0
    connections_peak: int = 0
    connections_total: int = 0
    refused: int = 0  # connections turned away (server full, too many from one address)
    users_peak: int = 0  # the most named users at once (IRC's LUSERS reports it)
    lines_in: int = 0
    #: Deliveries: a line handed to one reader (a line to a room of N counts N).
    lines_out: int = 0
    #: Lines (events) the hub sent, once each however many read them.
    events_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    commands: Counter[str] = field(default_factory=Counter)

    def opened(self) -> None:
        self.connections_now += 1
        self.connections_total += 1
        self.connections_peak = max(self.connections_peak, self.connections_now)

    def closed(self) -> None:
        self.connections_now -= 1

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "uptime_seconds": round(now - self.started, 3),
            "connections": {
                "now": self.connections_now,
                "peak": self.connections_peak,
                "total": self.connections_total,
                "refused": self.refused,
            },
            "lines": {"in": self.lines_in, "out": self.lines_out},
            "bytes": {"in": self.bytes_in, "out": self.bytes_out},
            "commands": dict(sorted(self.commands.items())),
        }
