"""Command results -> rich renderables. Pure functions: data in, a table or text out.

Rule: nothing here talks to the server or prints; the console and ``chatd admin
COMMAND`` print what these return, and tests render them to a string.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from chatd.wire.text import one_line


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


def when(seconds: float) -> str:
    """Seconds since the epoch -> local time, "2024-05-01 10:32"."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def size(count: int) -> str:
    """Bytes, and megabytes past one: "4,096 bytes", "12,582,912 bytes (12.6 MB)"."""
    shown = _plural(count, "byte")
    return f"{shown} ({count / 1e6:,.1f} MB)" if count >= 1_000_000 else shown


def _plural(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


def users_table(users: list[dict[str, Any]]) -> Table:
    count = f"{len(users)} user{'s' if len(users) != 1 else ''} online"
    table = Table(title=count, title_justify="left")
    # The nick and address stay whole (what a kick or a ban needs); in a narrow
    # terminal the rest wraps, rooms and game (the free-form ones) folding.
    table.add_column("nick", style="bold", no_wrap=True)
    # In a cluster, the node each is on (its address is that node's business).
    nodes = any(user.get("node") for user in users)
    if nodes:
        table.add_column("node", no_wrap=True)
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
            *([Text(user.get("node") or "")] if nodes else []),
            Text(user["address"]),  # as Text: an IPv6 "::1234:" is no emoji code
            # How it came in (a server from before IRC: all line), and as which
            # account if it proved one's password: "irc (alice)".
            Text(
                user.get("protocol", "line")
                + (f" ({user['account']})" if user.get("account") else "")
            ),
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
    store = stats.get("store")  # a server from before the store sends none
    if store is not None:
        path = store["path"]
        # A path may hold any character a file name can: shown clean, folded whole.
        table.add_row("store", Text(one_line(path) if path else "in memory", overflow="fold"))
        table.add_row("store size", size(store["bytes"]))
        rows = store["rows"]
        table.add_row(
            "store rows",
            f"{_plural(rows['lines'], 'line')}, {_plural(rows['accounts'], 'account')},"
            f" {_plural(rows['held_messages'], 'held message')},"
            f" {_plural(rows['scores'], 'score')}",
        )
        table.add_row("store dropped", _plural(store["dropped_lines"], "line"))
    cluster = stats.get("cluster")  # a node of a cluster
    if cluster is not None:
        table.add_row("cluster", Text(f"node {cluster['node']}, {cluster['state']}"))
        table.add_row("redis", Text(cluster["redis"]))
        table.add_row(
            "cluster log",
            f"at {cluster['log_position']:,}; {cluster['entries_out']:,} entries out,"
            f" {cluster['entries_in']:,} in, {cluster['entries_fetched']:,} fetched,"
            f" {cluster['entries_missed']:,} missed, {cluster['history_entries']:,} read as"
            f" history; {_plural(cluster['outages'], 'outage')}",
        )
    return table


def _kept_line(line: dict[str, Any]) -> str:
    """A kept line as a chat client shows it: ``<alice> hi``, ``* alice waves``,
    ``-alice- psst`` (a notice), ``alice set the topic: ...``."""
    kind, nick, text = line["kind"], one_line(line["nick"]), one_line(line["text"])
    if kind == "acted":
        return f"* {nick} {text}"
    if kind == "notice":
        return f"-{nick}- {text}"
    if kind == "topic":
        by = nick or "a server operator"
        return f"{by} set the topic: {text}" if text else f"{by} cleared the topic"
    return f"<{nick}> {text}"


def history_table(history: dict[str, Any]) -> RenderableType:
    """``history``: a room's kept lines, oldest first, each with its local
    time. The lines are anyone's words (users, plugins): cleaned again here,
    and Text, never read as markup; a long one wraps, never cut off."""
    room, lines = one_line(history["room"]), history["lines"]
    if not lines:
        return Text(f"{room} has no lines kept yet")
    title = Text(f"{room}: the last {_plural(len(lines), 'line')} kept")  # never markup
    # No box: read (and copied) as a log is.
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column("time", style="dim", no_wrap=True)
    table.add_column("line", overflow="fold")
    for line in lines:
        table.add_row(when(line["at"]), Text(_kept_line(line)))
    return table


def accounts_table(accounts: list[dict[str, Any]]) -> RenderableType:
    """``accounts``: one row per account, by name (there is no hash to show)."""
    if not accounts:
        return Text("no accounts")
    table = Table(title=_plural(len(accounts), "account"), title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("last seen", no_wrap=True)
    table.add_column("held", justify="right")
    for account in accounts:
        seen = when(account["last_seen"])
        table.add_row(
            Text(one_line(account["name"])),
            when(account["created"]),
            f"{seen}, on now" if account.get("identified") else seen,
            f"{account['held_messages']:,}",
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
    if cmd == "history":
        return history_table(value)
    if cmd == "accounts":
        return accounts_table(value)
    if cmd == "plugins":
        return plugins_table(value)
    if isinstance(value, list):
        return Text("\n".join(str(v) for v in value))
    return Text(str(value))
