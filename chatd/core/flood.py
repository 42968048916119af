"""Flood control: a token bucket per connection, on the reader's clock.

Rule: a line costs one token; a connection holds at most ``burst`` tokens and
earns ``rate`` a second. When it has none, the reactor stops reading its socket
until :meth:`TokenBucket.wait` has passed: the lines already read wait in the
connection's input buffer, the rest in the kernel, and TCP slows the sender.
Nothing is dropped and nobody is disconnected for typing fast (the same idea as
the penalty timers of IRC servers, without their kill). No I/O here; time comes
in as arguments.
"""

from __future__ import annotations

from typing import Final

#: Lines a client may send at once before it is slowed: a short paste, or a
#: few quick lines, pass untouched.
DEFAULT_FLOOD_BURST: Final = 10
#: Lines a second a client may keep up: faster than anyone types, slow enough
#: that one client cannot keep the loop busy for everyone else.
DEFAULT_FLOOD_RATE: Final = 5.0


class TokenBucket:
    """``burst`` tokens at most, ``rate`` more a second; one line takes one."""

    __slots__ = ("burst", "rate", "slowed", "stamp", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError(f"a token bucket needs burst >= 1 and rate > 0, got {burst}, {rate}")
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.stamp = now
        #: Set by the reader when it has told the client it is being slowed;
        #: cleared when the bucket fills up again, so one flood gets one notice.
        self.slowed = False

    def ready(self, now: float) -> bool:
        """Whether a line may be taken now (adds what was earned since the last call)."""
        if self.tokens < self.burst:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
            if self.tokens == self.burst:
                self.slowed = False
        self.stamp = now
        return self.tokens >= 1.0

    def take(self) -> None:
        """Spend a token on a line (after :meth:`ready` said yes)."""
        self.tokens -= 1.0

    def wait(self) -> float:
        """Seconds until the next token, counted from the last :meth:`ready`."""
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def allowance(self) -> int:
        """Whole lines that may be taken now, as of the last :meth:`ready`."""
        return int(self.tokens)
