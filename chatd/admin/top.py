"""``chatd admin top``: a live view of a running server, refreshed every second.

Rule: everything shown comes from the admin API (``stats``, ``rooms`` and
``plugins``, asked once a refresh), so the view works against any server whose
admin socket it can reach; and of its three parts only the last does I/O:

* :class:`TopModel` takes successive replies, each with the time it was
  fetched, and works out what one reply cannot say: rates (lines, bytes and
  plugin calls a second, from the growth of counters), trends (connections now
  against a minute ago) and the short histories the sparklines draw. Its
  memory is bounded: the last ``history`` + 1 stats replies, and only the
  latest rooms and plugins (a room list may be long).
* :func:`render_top` turns a model into one rich renderable for a given width.
* :func:`run_top` asks the server, shows the result with rich's Live on the
  terminal's alternate screen (as top does, so the shell's scrollback is left
  as it was) and reads keys with prompt_toolkit: q or Ctrl-C quits at once,
  not at the next refresh.

When the server goes away, run_top leaves the screen and raises
AdminUnavailable, which ``chatd admin`` reports in one line with exit status 1.
It does not keep retrying: a view that goes on showing the last figures it
had looks alive when nothing is, and a restarted server is a new process whose
counters start again anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

from prompt_toolkit.input import Input, create_input
from prompt_toolkit.keys import Keys
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chatd.admin.client import AdminClient
from chatd.admin.render import STATE_STYLES, duration, size
from chatd.wire.text import one_line

#: Intervals kept: the sparklines' and trends' reach, a minute at the default
#: refresh; a stats reply is about a kilobyte.
HISTORY: Final = 60
#: Seconds between refreshes; each costs the server three replies (stats,
#: rooms, plugins), the rooms one as long as the server has rooms.
REFRESH_SECONDS: Final = 1.0
#: Refreshes between two readings of the room list: with a thousand rooms it
#: is a few milliseconds of the server's loop and some 200 KB.
ROOMS_EVERY: Final = 5
#: Rows in the busiest-rooms and slowest-plugins lists.
TOP_ROWS: Final = 5
#: From this many columns, panels go two side by side.
WIDE: Final = 100
#: The characters a sparkline is drawn with, lowest first.
SPARKS: Final = "▁▂▃▄▅▆▇█"
#: The width of a listener's sparkline of its open connections.
LISTENER_SPARK: Final = 12
#: What quits: q (or Q, with Caps Lock on) and Ctrl-C, which the terminal's raw
#: mode delivers as a key rather than as SIGINT.
QUIT_KEYS: Final = frozenset({"q", "Q", Keys.ControlC})


# -- the model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One round of replies, and when (on the app's clock) it was fetched."""

    at: float
    stats: dict[str, Any]
    rooms: list[dict[str, Any]] | None  # None: not asked this time (the last ones hold)
    plugins: list[dict[str, Any]]


def increase(new: float, old: float) -> float:
    """How much a counter grew from ``old`` to ``new``. A counter never goes
    down; one that did was reset (the server restarted, a plugin reloaded), so
    all of its new value is new, as Prometheus' rate() counts it."""
    return new - old if new >= old else new


def _lookup(stats: dict[str, Any], path: Sequence[str]) -> float | None:
    """The number at ``path`` in a stats reply, or None where it has none."""
    value: Any = stats
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, int | float) else None


class TopModel:
    """Successive snapshots -> the figures the view shows. A path names a number
    in a stats reply: ``("lines", "in")``, ``("listeners", "nc", "open")``."""

    def __init__(self, history: int = HISTORY) -> None:
        # One more reply than intervals: ``history`` rates need history + 1.
        self._stats: deque[tuple[float, dict[str, Any]]] = deque(maxlen=history + 1)
        self.rooms: list[dict[str, Any]] = []
        self.plugins: list[dict[str, Any]] = []
        self._calls_before: dict[str, int] = {}
        self._lines_before: dict[str, int] = {}
        self._interval = 0.0  # seconds between the latest two room lists
        self._rooms_at: float | None = None  # when the latest was had

    def add(self, snapshot: Snapshot) -> None:
        self._calls_before = {plugin["name"]: plugin["calls"] for plugin in self.plugins}
        if snapshot.rooms is not None:  # rooms are asked for less often: their own interval
            self._lines_before = {room["name"]: room.get("lines", 0) for room in self.rooms}
            self._interval = snapshot.at - self._rooms_at if self._rooms_at is not None else 0.0
            self._rooms_at = snapshot.at
            self.rooms = snapshot.rooms
        self._stats.append((snapshot.at, snapshot.stats))
        self.plugins = snapshot.plugins

    @property
    def stats(self) -> dict[str, Any]:
        """The latest stats reply."""
        return self._stats[-1][1]

    @property
    def window(self) -> float:
        """The seconds the kept replies span."""
        return self._stats[-1][0] - self._stats[0][0]

    def values(self, *path: str) -> list[float]:
        """A gauge's values, oldest first (a reply without it is skipped)."""
        found = (_lookup(stats, path) for _, stats in self._stats)
        return [value for value in found if value is not None]

    def change(self, *path: str) -> float:
        """How much a gauge moved over the window: now less the oldest kept."""
        values = self.values(*path)
        return values[-1] - values[0] if values else 0

    def rates(self, *path: str) -> list[float]:
        """A counter's growth a second over each interval, oldest first."""
        rates = []
        for (then, old), (now, new) in pairwise(self._stats):
            before, after = _lookup(old, path), _lookup(new, path)
            if before is not None and after is not None and now > then:
                rates.append(increase(after, before) / (now - then))
        return rates

    def rate(self, *path: str) -> float | None:
        """A counter's growth a second over the latest interval; None until
        there have been two replies with it."""
        rates = self.rates(*path)[-1:]
        return rates[0] if rates else None

    def added(self, *path: str) -> float:
        """How much a counter grew over the window."""
        values = self.values(*path)
        return sum(increase(after, before) for before, after in pairwise(values))

    def room_rate(self, room: dict[str, Any]) -> float | None:
        """Lines a second said in ``room`` over the latest interval (None until
        it has been seen twice, or from a server that does not count them)."""
        before = self._lines_before.get(room["name"])
        if before is None or "lines" not in room or self._interval <= 0:
            return None
        return increase(room["lines"], before) / self._interval

    def busiest_rooms(self, count: int = TOP_ROWS) -> list[dict[str, Any]]:
        """The rooms where most is said now (lines a second), then the most
        members, then by name."""
        return sorted(
            self.rooms,
            key=lambda room: (
                -(self.room_rate(room) or 0),
                -room["members"],
                room["name"].lower(),
            ),
        )[:count]

    def slowest_plugins(self, count: int = TOP_ROWS) -> list[tuple[dict[str, Any], float | None]]:
        """The plugins whose slowest call took longest, slowest first, each with
        its calls a second over the latest interval (None for a new one)."""
        times = [at for at, _ in self._stats][-2:]
        seconds = times[-1] - times[0]
        slowest = sorted(self.plugins, key=lambda p: (-p["slowest_ms"], p["name"].lower()))
        return [
            (
                plugin,
                increase(plugin["calls"], self._calls_before[plugin["name"]]) / seconds
                if plugin["name"] in self._calls_before and seconds > 0
                else None,
            )
            for plugin in slowest[:count]
        ]


# -- the view ------------------------------------------------------------------------


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as block characters, from ▁ (zero) to █ (the
    largest shown), right-aligned: blank where there is no history yet. Scaled
    from zero, not from the smallest, so a steady load draws level."""
    shown = list(values)[-width:]
    top = max(shown, default=0)
    steps = len(SPARKS) - 1
    marks = "".join(SPARKS[round(value / top * steps) if top > 0 else 0] for value in shown)
    return marks.rjust(width)


def per_second(rate: float | None) -> str:
    """12.34 -> "12.3/s", 1234.5 -> "1,234/s"; None -> "-" (not known yet)."""
    if rate is None:
        return "-"
    return f"{rate:,.1f}/s" if rate < 100 else f"{rate:,.0f}/s"


def bytes_per_second(rate: float | None) -> str:
    """1234 -> "1.2 kB/s"; None -> "-"."""
    if rate is None:
        return "-"
    for factor, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if rate >= factor:
            return f"{rate / factor:.1f} {unit}/s"
    return f"{rate:.0f} B/s"


def _with_added(model: TopModel, *path: str) -> str:
    """A counter, and how much it grew over the window when it did: "12 (+3)"."""
    now, added = model.values(*path)[-1], model.added(*path)
    return f"{now:,.0f} (+{added:,.0f})" if added else f"{now:,.0f}"


def _grid() -> Table:
    return Table.grid(padding=(0, 2))


def _panel(body: RenderableType, title: str) -> Panel:
    return Panel(body, title=title, title_align="left")


def _traffic(model: TopModel, width: int) -> Panel:
    """Lines and bytes a second, and connections, each with a sparkline."""
    # What the label, the figure and the totals need, and the rest for the line.
    spark = max(8, min(HISTORY, width - 66))
    grid = _grid()
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(no_wrap=True, style="cyan")
    grid.add_column(overflow="fold", style="dim")
    for label, path, shown in (
        ("lines in", ("lines", "in"), per_second),
        ("lines out", ("lines", "out"), per_second),
        ("bytes in", ("bytes", "in"), bytes_per_second),
        ("bytes out", ("bytes", "out"), bytes_per_second),
    ):
        total = f"{model.values(*path)[-1]:,.0f} in all"
        grid.add_row(label, shown(model.rate(*path)), sparkline(model.rates(*path), spark), total)
    conns = model.stats["connections"]
    grid.add_row(
        "connections",
        f"{conns['now']:,} {model.change('connections', 'now'):+,.0f}",
        sparkline(model.values("connections", "now"), spark),
        f"{conns['peak']:,} peak, {conns['total']:,} in all, {conns['refused']:,} refused",
    )
    return _panel(grid, f"traffic: now, and the last {duration(model.window)}")


def _listeners(model: TopModel, width: int) -> Panel:
    """One row per listener: connections, trouble (sendq drops, floods slowed),
    and where there is room, the trend of its connections and its bytes a second."""
    title = f"listeners (+N: in the last {duration(model.window)})"
    listeners = model.stats.get("listeners")
    if not listeners:
        return _panel(Text("this server's stats give no counts per listener", style="dim"), title)
    table = Table(box=None, pad_edge=False, expand=True)
    table.add_column("listener", style="bold", no_wrap=True)
    table.add_column("open", justify="right", no_wrap=True)
    wide = width >= WIDE
    if wide:
        table.add_column("trend", no_wrap=True, style="cyan")
    for heading in ("admitted", "refused", "sendq drops", "floods slowed"):
        table.add_column(heading, justify="right", no_wrap=True)
    if wide:
        table.add_column("in", justify="right", no_wrap=True)
        table.add_column("out", justify="right", no_wrap=True)
    for name in listeners:
        opened = model.values("listeners", name, "open")
        table.add_row(
            Text(name or "-"),  # a name from the server's settings: never markup
            f"{opened[-1]:,.0f} {model.change('listeners', name, 'open'):+,.0f}",
            *([sparkline(opened, LISTENER_SPARK)] if wide else []),
            _with_added(model, "listeners", name, "total"),
            _with_added(model, "listeners", name, "refused"),
            _with_added(model, "listeners", name, "sendq_disconnects"),
            _with_added(model, "listeners", name, "flood_slowdowns"),
            *(
                [
                    bytes_per_second(model.rate("listeners", name, "bytes_in")),
                    bytes_per_second(model.rate("listeners", name, "bytes_out")),
                ]
                if wide
                else []
            ),
        )
    return _panel(table, title)


def _rooms(model: TopModel, rows: int = TOP_ROWS) -> Panel:
    title = f"busiest rooms ({len(model.rooms):,} in all)"
    if not model.rooms:
        return _panel(Text("no rooms", style="dim"), title)
    table = Table(box=None, pad_edge=False, expand=True)
    table.add_column("room", style="bold", no_wrap=True)
    table.add_column("lines/s", justify="right", no_wrap=True)
    table.add_column("users", justify="right", no_wrap=True)
    table.add_column("topic", no_wrap=True, overflow="ellipsis", ratio=1)
    for room in model.busiest_rooms(rows):
        rate = model.room_rate(room)
        # Names and topics are users' words: cleaned, and never read as markup.
        table.add_row(
            Text(one_line(room["name"])),
            "" if rate is None else f"{rate:.1f}",
            f"{room['members']:,}",
            Text(one_line(room["topic"])),
        )
    return _panel(table, title)


def _plugins(model: TopModel, rows: int = TOP_ROWS) -> Panel:
    title = f"slowest plugins ({len(model.plugins):,} loaded)"
    if not model.plugins:
        return _panel(Text("no plugins", style="dim"), title)
    table = Table(box=None, pad_edge=False, expand=True)
    table.add_column("plugin", style="bold", no_wrap=True, overflow="ellipsis", ratio=1)
    for heading in ("slowest", "slow", "errors", "calls"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for plugin, calls in model.slowest_plugins(rows):
        state = plugin["state"]
        table.add_row(
            Text(plugin["name"]),  # a file's or a package's name: never markup
            f"{plugin['slowest_ms']:,.1f} ms",
            f"{plugin['slow_calls']:,}",
            f"{plugin['errors']:,}",
            per_second(calls),
            Text(state, style=STATE_STYLES.get(state, "")),
        )
    return _panel(table, title)


def _store(model: TopModel) -> Panel:
    store = model.stats["store"]
    grid = _grid()
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    path = store["path"]
    grid.add_row("file", Text(one_line(path) if path else "in memory"))
    grid.add_row("size", size(store["bytes"]))
    grid.add_row("lines", f"{store['rows']['lines']:,}")
    grid.add_row("accounts", f"{store['rows']['accounts']:,}")
    # Lines its writer could not keep: its queue full, or the disk failing.
    grid.add_row("dropped", _with_added(model, "store", "dropped_lines") + " lines")
    return _panel(grid, "store")


def _cluster(model: TopModel) -> Panel:
    cluster = model.stats.get("cluster")
    if cluster is None:
        return _panel(Text("not in a cluster (no [cluster] redis)", style="dim"), "cluster")
    grid = _grid()
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    up = cluster["state"] == "up"
    grid.add_row(
        "node", Text(f"{cluster['node']}, ").append(cluster["state"], "green" if up else "bold red")
    )
    grid.add_row("redis", Text(cluster["redis"]))
    grid.add_row(
        "log",
        f"at {cluster['log_position']:,}; {per_second(model.rate('cluster', 'entries_out'))} out,"
        f" {per_second(model.rate('cluster', 'entries_in'))} in",
    )
    grid.add_row("missed", _with_added(model, "cluster", "entries_missed"))
    grid.add_row("outages", _with_added(model, "cluster", "outages"))
    grid.add_row("fenced", _with_added(model, "cluster", "fenced"))
    return _panel(grid, "cluster")


def _pair(left: RenderableType, right: RenderableType, width: int) -> RenderableType:
    """Two panels side by side when there is room, else one above the other;
    the right one is the wider (the plugins' table has more columns)."""
    if width < WIDE:
        return Group(left, right)
    pair = Table.grid(expand=True)
    pair.add_column(ratio=2)
    pair.add_column(ratio=3)
    pair.add_row(left, right)
    return pair


def render_top(
    model: TopModel, width: int, where: str, height: int | None = None
) -> RenderableType:
    """The whole view of ``model`` (which has had a snapshot) for a terminal
    ``width`` columns wide, under a header naming ``where`` it comes from;
    with a ``height``, the lists are cut short (to one row each at least)
    until it fits, as far as it can."""
    view = _view(model, width, where, TOP_ROWS)
    if height is None:
        return view
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True)
    for rows in range(TOP_ROWS, 0, -1):
        view = _view(model, width, where, rows)
        if len(console.render_lines(view, pad=False)) <= height:
            break
    return view


def _view(model: TopModel, width: int, where: str, rows: int) -> RenderableType:
    stats = model.stats
    about = Text.assemble(("chatd top", "bold"), f"  up {duration(stats['uptime_seconds'])}")
    users = stats.get("users")
    if users is not None:  # a server from before this view does not count them
        online = users["online"]
        about.append(
            f"  {online:,} user{'' if online == 1 else 's'} online ({users['peak']:,} peak)"
        )
    about.append(f"  {where}", style="dim")  # last: a long path is what gets cut short
    header = Table.grid(expand=True, padding=(0, 1))
    header.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    header.add_column(justify="right", no_wrap=True)
    header.add_row(about, Text("q quits", style="dim"))
    return Group(
        header,
        _traffic(model, width),
        _listeners(model, width),
        _pair(_rooms(model, rows), _plugins(model, rows), width),
        _pair(_store(model), _cluster(model), width),
    )


# -- the app -------------------------------------------------------------------------


def _fetch(client: AdminClient, at: float, rooms: bool) -> Snapshot:
    """One round of requests: what a refresh shows (the rooms only when
    ``rooms``: their list is the one that grows with the server)."""
    listed = client.call("rooms") if rooms else None
    return Snapshot(at, client.call("stats"), listed, client.call("plugins"))


def run_top(
    client: AdminClient,
    console: Console,
    *,
    input: Input | None = None,
    interval: float = REFRESH_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Show the live view, refreshed every ``interval`` seconds (of ``clock``),
    until q or Ctrl-C, or the end of ``input`` (the terminal hung up); returns
    the exit status, 0. Raises AdminUnavailable when the server goes away and
    AdminFailed when it refuses a request, the terminal's screen put back
    first. ``input`` defaults to the terminal."""
    keys = input if input is not None else create_input()
    # Raw mode makes Ctrl-C a key; a SIGINT sent from elsewhere ends it the same way.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch(client, console, keys, interval, clock))
    return 0


async def _watch(
    client: AdminClient,
    console: Console,
    keys: Input,
    interval: float,
    clock: Callable[[], float],
) -> None:
    model = TopModel()
    done = asyncio.Event()

    def keys_ready() -> None:
        pressed = {press.key for press in keys.read_keys()}
        if keys.closed or pressed & QUIT_KEYS:
            done.set()

    live = Live(console=console, screen=True, auto_refresh=False)
    with keys.raw_mode(), keys.attach(keys_ready), live:
        turn = 0
        while not done.is_set():
            # The requests run on a thread, so that the keys are read
            # meanwhile: a server that has stopped answering is not waited
            # for once q is pressed.
            rooms = turn % ROOMS_EVERY == 0
            fetch = asyncio.ensure_future(asyncio.to_thread(_fetch, client, clock(), rooms))
            quit_ = asyncio.ensure_future(done.wait())
            await asyncio.wait({fetch, quit_}, return_when=asyncio.FIRST_COMPLETED)
            if done.is_set():
                fetch.cancel()  # (its thread ends with the client's timeout, unwaited)
                return
            quit_.cancel()
            model.add(fetch.result())
            turn += 1
            shown = render_top(model, console.width, str(client.path), console.height)
            live.update(shown, refresh=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), interval)
