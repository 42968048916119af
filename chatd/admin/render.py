"""Command results -> rich renderables. Pure functions: data in, a table or text out.

Rule: nothing here talks to the server or prints; the console and ``chatd admin
COMMAND`` print what these return, and tests render them to a string.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text


def duration(seconds: float) -> str:
    """3725 -> "1h 02m", 75 -> "1m 15s", 4.2 -> "4s"."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def users_table(users: list[dict[str, Any]]) -> Table:
    count = f"{len(users)} user{'s' if len(users) != 1 else ''} online"
    table = Table(title=count, title_justify="left")
    table.add_column("nick", style="bold")
    table.add_column("address")
    table.add_column("connected", justify="right")
    table.add_column("idle", justify="right")
    table.add_column("lines", justify="right")
    table.add_column("game")
    for user in users:
        table.add_row(
            user["nick"],
            user["address"],
            duration(user["connected_seconds"]),
            duration(user["idle_seconds"]),
            str(user["lines"]),
            user["game"] or "",
        )
    return table


def stats_table(stats: dict[str, Any]) -> Table:
    table = Table(title="chatd", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    conns, lines, volume = stats["connections"], stats["lines"], stats["bytes"]
    table.add_row("uptime", duration(stats["uptime_seconds"]))
    table.add_row(
        "connections",
        f"{conns['now']} now, {conns['peak']} peak, {conns['total']} total,"
        f" {conns['refused']} refused",
    )
    table.add_row("lines", f"{lines['in']:,} in, {lines['out']:,} out")
    table.add_row("bytes", f"{volume['in']:,} in, {volume['out']:,} out")
    commands = stats["commands"]
    table.add_row(
        "commands", ", ".join(f"/{n} {c:,}" for n, c in commands.items()) if commands else "none"
    )
    return table


def bench_table(summary: dict[str, Any]) -> Table:
    """A ``chatd bench`` result."""
    table = Table(title="chatd bench", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    lat = summary["latency_ms"]
    table.add_row("clients", f"{summary['ready']} ready of {summary['clients']}")
    table.add_row("senders", f"{summary['senders']}, {summary['msgs_per_s']:,.0f} lines/s")
    table.add_row("deliveries/s", f"{summary['deliveries_per_s']:,.0f}")
    table.add_row(
        "delivery ratio",
        f"{summary['delivery_ratio']} ({summary['deliveries']:,}"
        f" of {summary['expected_deliveries']:,})",
    )
    table.add_row(
        "latency p50 / p90 / p99",
        f"{lat['p50']} / {lat['p90']} / {lat['p99']} ms ({lat['samples']:,} samples)",
    )
    table.add_row("order errors", f"{summary['order_errors']} in {summary['checked_lines']:,}")
    table.add_row("bench CPU", f"{summary['bench_cpu']:.0%} of a core")
    return table


def bans_table(bans: list[dict[str, Any]]) -> RenderableType:
    if not bans:
        return Text("no bans in force")
    table = Table(title=f"{len(bans)} ban{'s' if len(bans) != 1 else ''}", title_justify="left")
    table.add_column("target", style="bold")
    table.add_column("kind")
    table.add_column("left", justify="right")
    table.add_column("reason")
    for ban in bans:
        table.add_row(ban["target"], ban["kind"], duration(ban["seconds_left"]), ban["reason"])
    return table


def result(cmd: str, value: Any) -> RenderableType:
    """How the console shows the result of ``cmd``."""
    if cmd == "users":
        return users_table(value)
    if cmd == "bans":
        return bans_table(value)
    if cmd == "stats":
        return stats_table(value)
    if isinstance(value, list):
        return Text("\n".join(str(v) for v in value))
    return Text(str(value))
