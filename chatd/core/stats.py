"""Counters for operators: what the server has done since it started.

Rule: plain integers bumped where the work happens (the reactor counts
connections and bytes, the hub lines and commands), never per recipient on the
fan-out path: a broadcast adds its recipient count once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    started: float
    connections_now: int = 0
    connections_peak: int = 0
    connections_total: int = 0
    refused: int = 0  # connections turned away (server full, too many from one address)
    users_peak: int = 0  # the most named users at once (IRC's LUSERS reports it)
    lines_in: int = 0
    lines_out: int = 0
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
