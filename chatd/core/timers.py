"""Timers for the event loop: call_later and call_every on an injectable clock.

Rule: time comes only from the clock this object was given, so tests move time
by hand instead of sleeping. The reactor asks :meth:`Timers.next_delay` how long
it may wait in select() and calls :meth:`Timers.run_due` after every wake-up. A
callback that raises is logged and does not stop the loop or other timers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

Clock = Callable[[], float]


#: The longest delay a timer takes: anything longer (inf included) is this. A
#: year is "never" for a chat server, and it keeps every deadline a float that
#: the loop can wait on (select() refuses timeouts past ~24 days).
MAX_DELAY: Final = 365 * 24 * 3600.0

#: A heap this large, more than half cancelled, is rebuilt without the
#: cancelled timers (as asyncio does): a server where every connection arms a
#: timer and most cancel it early must not hold them all until they are due.
_COMPACT_MIN: Final = 100


def _bounded(delay: float, what: str) -> float:
    """``delay`` within [0, MAX_DELAY]; a NaN would break the heap's order."""
    if math.isnan(delay):
        raise ValueError(f"{what} must be a number of seconds, got nan")
    return min(max(0.0, float(delay)), MAX_DELAY)


class Timer:
    """A handle to a scheduled call; :meth:`cancel` it to stop it from running."""

    __slots__ = ("_owner", "callback", "cancelled", "interval", "when")

    def __init__(
        self,
        when: float,
        callback: Callable[[], object],
        interval: float | None,
        owner: Timers | None = None,
    ):
        self.when = when
        self.callback = callback
        self.interval = interval
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self._owner is not None:
                self._owner._cancelled_one()


class Timers:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        # (when, tie-breaker, timer): the counter keeps equal deadlines in FIFO
        # order and stops heapq from ever comparing two Timer objects.
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._cancelled = 0  # cancelled timers still in the heap

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` once, ``delay`` seconds from now (a negative delay is
        now, one past MAX_DELAY is MAX_DELAY; NaN is a ValueError)."""
        return self._push(
            Timer(self.clock() + _bounded(delay, "call_later delay"), callback, None, self)
        )

    def call_every(self, interval: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` every ``interval`` seconds, the first time one interval from now."""
        if not interval > 0:  # NaN too
            raise ValueError(f"call_every interval must be positive, got {interval!r}")
        interval = _bounded(interval, "call_every interval")
        return self._push(Timer(self.clock() + interval, callback, interval, self))

    def _push(self, timer: Timer) -> Timer:
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        if self._cancelled > _COMPACT_MIN and 2 * self._cancelled > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _pop(self) -> Timer:
        timer = heapq.heappop(self._heap)[2]
        if timer.cancelled:
            self._cancelled -= 1
        return timer

    def next_delay(self) -> float | None:
        """Seconds until the next timer is due (0 if one is), None if none is scheduled."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            self._pop()
            heap = self._heap
        if not heap:
            return None
        return max(0.0, heap[0][0] - self.clock())

    def run_due(self) -> int:
        """Run every timer whose time has come; returns how many ran."""
        now = self.clock()
        ran = 0
        # Timers scheduled by the callbacks of this pass wait for the next one
        # (as asyncio's do): a callback that re-arms itself with no delay must
        # not keep the loop inside this pass forever.
        last = next(self._seq)
        later: list[tuple[float, int, Timer]] = []
        while self._heap and self._heap[0][0] <= now:
            if self._heap[0][1] > last:
                later.append(heapq.heappop(self._heap))
                continue
            timer = self._pop()
            if timer.cancelled:
                continue
            if timer.interval is not None:
                # Reschedule from the planned time, not from now, so a late loop
                # does not make a periodic timer drift; skip missed beats.
                timer.when += timer.interval
                if timer.when <= now:
                    timer.when = now + timer.interval
                self._push(timer)
            else:
                timer._owner = None  # out of the heap: a late cancel() is not counted
            ran += 1
            try:
                timer.callback()
            except Exception:
                log.exception("timer callback %r failed", timer.callback)
        for entry in later:
            heapq.heappush(self._heap, entry)
        return ran
