"""Command results -> rich renderables. Pure functions: data in, a table or text out.

Rule: nothing here talks to the server or prints; the console and ``chatd admin
COMMAND`` print what these return, and tests render them to a string.
"""

from __future__ import annotations

from collections import Counter
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
    # The nick and address stay whole (what a kick or a ban needs); in a narrow
    # terminal the rest wraps, rooms and game (the free-form ones) folding.
    table.add_column("nick", style="bold", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("via", no_wrap=True)
    table.add_column("connected", justify="right")
    table.add_column("idle", justify="right")
    table.add_column("lines", justify="right")
    table.add_column("rooms", overflow="fold")
    table.add_column("game", overflow="fold")
    for user in users:
        table.add_row(
            Text(user["nick"]),
            Text(user["address"]),  # as Text: an IPv6 "::1234:" is no emoji code
            Text(user.get("protocol", "line")),  # a server from before IRC: all line
            duration(user["connected_seconds"]),
            duration(user["idle_seconds"]),
            str(user["lines"]),
            # A server from before rooms sends none: the column stays empty.
            Text(", ".join(user.get("rooms", ()))),
            Text(user["game"] or ""),  # a plugin's words: shown, never read as markup
        )
    return table


def rooms_table(rooms: list[dict[str, Any]]) -> Table:
    """``rooms``: one row per room. Topics are users' words and nicknames and
    names came from users too, so all are Text, never read as rich markup; a
    long topic wraps, never cut off."""
    table = Table(title=f"{len(rooms)} room{'s' if len(rooms) != 1 else ''}", title_justify="left")
    table.add_column("room", style="bold", no_wrap=True)
    table.add_column("users", justify="right")
    table.add_column("operators")
    table.add_column("topic", overflow="fold")
    for room in rooms:
        table.add_row(
            Text(room["name"]),
            str(room["members"]),
            Text(", ".join(room["operators"]) or "-"),
            Text(room["topic"] or "-"),
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
        table.add_row(  # the operator's words: shown, never read as markup
            Text(ban["target"]), ban["kind"], duration(ban["seconds_left"]), Text(ban["reason"])
        )
    return table


#: How a plugin's state is shown: off by an operator is a choice, switched off
#: by the breaker is a fault to look into.
STATE_STYLES = {"on": "green", "off": "yellow", "switched off": "bold red"}


def _plugin_state(plugin: dict[str, Any]) -> Text:
    state = plugin["state"]
    text = Text(state, style=STATE_STYLES.get(state, ""))
    if plugin["why"]:
        text.append(f": {plugin['why']}")
    return text


def _plugins_title(plugins: list[dict[str, Any]]) -> str:
    """The title: "5 plugins, all on" or "5 plugins: 3 on, 1 off, 1 switched off"."""
    title = f"{len(plugins)} plugin{'s' if len(plugins) != 1 else ''}"
    states = Counter(p["state"] for p in plugins)
    if set(states) <= {"on"}:
        return f"{title}, all on" if plugins else title
    order = [*STATE_STYLES, *sorted(set(states) - set(STATE_STYLES))]
    return f"{title}: " + ", ".join(f"{states[s]} {s}" for s in order if states[s])


def plugins_table(plugins: list[dict[str, Any]]) -> Table:
    """``plugins``: one row per plugin, its source under its name. Names, sources
    and reasons come from files and packages, so they are Text, never read as
    rich markup; long ones fold, never cut off (the path is what an operator needs)."""
    table = Table(title=_plugins_title(plugins), title_justify="left", show_lines=True)
    table.add_column("plugin", overflow="fold")
    table.add_column("commands", overflow="fold")
    table.add_column("calls", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("slow", justify="right")
    table.add_column("slowest", overflow="fold")
    table.add_column("state", overflow="fold")
    for plugin in plugins:
        name = Text(plugin["name"], style="bold")
        name.append(f"\n{plugin['source']}", style="dim")
        calls = plugin["calls"]
        slowest = f"{plugin['slowest_ms']:,.1f} ms {plugin['slowest']}" if calls else "-"
        table.add_row(
            name,
            Text(" ".join(f"/{c}" for c in plugin["commands"]) or "-"),
            f"{calls:,}",
            f"{plugin['errors']:,}",
            f"{plugin['slow_calls']:,}",
            Text(slowest),
            _plugin_state(plugin),
        )
    return table


def result(cmd: str, value: Any) -> RenderableType:
    """How the console shows the result of ``cmd``."""
    if cmd == "users":
        return users_table(value)
    if cmd == "rooms":
        return rooms_table(value)
    if cmd == "bans":
        return bans_table(value)
    if cmd == "stats":
        return stats_table(value)
    if cmd == "plugins":
        return plugins_table(value)
    if isinstance(value, list):
        return Text("\n".join(str(v) for v in value))
    return Text(str(value))
