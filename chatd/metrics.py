"""Metrics for operators: the server's counts in the Prometheus text
exposition format (version 0.0.4), as ``GET /metrics`` serves them.

Rule: pure, and off the hot path. The loop's parts keep plain integers where
the work happens (chatd.core.stats, the listeners' counts, the guard's
records, the store's writer); :func:`collect` reads them into
:class:`Family` values once per scrape, and :func:`render` writes those as
text. Neither does I/O or keeps state between scrapes, and nothing here is
imported by the loop.

The format is written here rather than with prometheus_client: it is a few
dozen lines (HELP and TYPE lines, escaped label values, cumulative histogram
buckets), and prometheus_client's registry is process-global state built for
instrumenting code as it runs, where chatd already has its counts and only
needs them read out. The tests parse what this writes with prometheus_client's
own parser, so the two cannot drift apart.

Names follow Prometheus' conventions: ``chatd_`` first, the unit last
(``_seconds``, ``_bytes``), a counter's name ending ``_total`` (in the 0.0.4
text format the family is named with it too).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from chatd import __version__
from chatd.core.guard import ON, PluginRecord

if TYPE_CHECKING:
    from chatd.core.guard import Guard
    from chatd.core.hub import Hub
    from chatd.core.listeners import ListenerCounts
    from chatd.core.stats import LoopTimes
    from chatd.store.store import Store

#: What ``GET /metrics`` answers with: the text format, version 0.0.4.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "histogram"]
COUNTER: Final = "counter"
GAUGE: Final = "gauge"
HISTOGRAM: Final = "histogram"

#: Label names and values, in the order they are written.
Labels = tuple[tuple[str, str], ...]

_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a counter or gauge family."""

    value: float
    labels: Labels = ()


@dataclass(frozen=True, slots=True)
class Histogram:
    """One histogram of a histogram family: ``counts[i]`` observations fell in
    the bucket whose upper bound is ``bounds[i]`` (not cumulative: rendering
    adds them up); the last bound is +Inf."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    labels: Labels = ()

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.counts) or not self.bounds:
            raise ValueError(f"a histogram needs one count per bound, got {self!r}")
        if self.bounds[-1] != math.inf or list(self.bounds) != sorted(self.bounds):
            raise ValueError(f"a histogram's bounds rise to +Inf, got {self.bounds!r}")


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its name (a counter's ends ``_total``), kind, help text
    and samples (histograms for a histogram family, else samples)."""

    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...] | tuple[Histogram, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric {self.name!r}: not a Prometheus metric name")
        if (self.kind == COUNTER) != self.name.endswith("_total"):
            raise ValueError(
                f"metric {self.name!r}: a counter's name, and only a counter's, ends _total"
            )
        for sample in self.samples:
            if isinstance(sample, Histogram) != (self.kind == HISTOGRAM):
                raise ValueError(f"metric {self.name!r}: a {self.kind} cannot hold {sample!r}")
            for label, _ in sample.labels:
                if not _LABEL.match(label) or label.startswith("__") or label == "le":
                    raise ValueError(f"metric {self.name!r}: {label!r} is not a label name to use")


# -- rendering ---------------------------------------------------------------------------


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample value or an ``le`` bound as the format spells it: an int as
    itself, a float as Python's shortest repr (which reads back exactly)."""
    if isinstance(value, int):
        return str(int(value))  # a bool too: 1, not True
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_value(value)}"' for name, value in labels) + "}"


def render(families: Iterable[Family]) -> bytes:
    """``families`` in the text exposition format, UTF-8, ending in a newline
    (a name that cannot be encoded, a plugin file's undecodable name, is
    written with a replacement character, never an error at a scrape)."""
    out: list[str] = []
    for family in families:
        name = family.name
        out.append(f"# HELP {name} {_escape_help(family.help)}")
        out.append(f"# TYPE {name} {family.kind}")
        for sample in family.samples:
            if isinstance(sample, Histogram):
                running = 0
                for bound, count in zip(sample.bounds, sample.counts, strict=True):
                    running += count
                    le = _labels((*sample.labels, ("le", _number(bound))))
                    out.append(f"{name}_bucket{le} {running}")
                labels = _labels(sample.labels)
                out.append(f"{name}_sum{labels} {_number(sample.sum)}")
                out.append(f"{name}_count{labels} {running}")
            else:
                out.append(f"{name}{_labels(sample.labels)} {_number(sample.value)}")
    return ("\n".join(out) + "\n").encode("utf-8", "replace")


# -- collecting --------------------------------------------------------------------------


class Counted(Protocol):
    """A listener as metrics sees it (chatd.core.listeners.Listener is one)."""

    name: str
    counts: ListenerCounts


def _family(name: str, text: str, values: float | Mapping[str, float], label: str = "") -> Family:
    """A counter (its name ends ``_total``) or gauge: one value, or one per
    ``label`` value."""
    kind: Kind = COUNTER if name.endswith("_total") else GAUGE
    if isinstance(values, Mapping):
        return Family(name, kind, text, tuple(Sample(v, ((label, k),)) for k, v in values.items()))
    return Family(name, kind, text, (Sample(values),))


#: The families counted per listener: (ListenerCounts slot, name, help).
_PER_LISTENER: Final = (
    ("open", "chatd_connections_open", "Connections open now."),
    ("total", "chatd_connections_total", "Connections admitted."),
    (
        "refused",
        "chatd_connections_refused_total",
        "Connections turned away (server full, too many from one address, a uid not allowed).",
    ),
    ("bytes_in", "chatd_bytes_in_total", "Bytes read from clients (or from Redis)."),
    ("bytes_out", "chatd_bytes_out_total", "Bytes written to clients (or to Redis)."),
    (
        "sendq_disconnects",
        "chatd_sendq_disconnects_total",
        "Connections cut off with their sendq full (a client that stopped reading).",
    ),
    (
        "flood_slowdowns",
        "chatd_flood_slowdowns_total",
        "Floods slowed down by flood control, once per flood.",
    ),
)


def _per_listener(listeners: Iterable[Counted]) -> list[Family]:
    # Listeners of one name (a host listened on twice, IPv4 and IPv6) are one series.
    totals: dict[str, Counter[str]] = {}
    for listener in listeners:
        summed = totals.setdefault(listener.name, Counter())
        for slot, _, _ in _PER_LISTENER:
            summed[slot] += getattr(listener.counts, slot)
    return [
        _family(name, text, {n: counts[slot] for n, counts in totals.items()}, "listener")
        for slot, name, text in _PER_LISTENER
    ]


def collect(
    *,
    hub: Hub,
    store: Store,
    listeners: Iterable[Counted],
    plugins: Iterable[str],
    guard: Guard,
    loop_times: LoopTimes,
    http: Mapping[tuple[str, int], int] | None = None,
) -> list[Family]:
    """Every metric, read now from the server's parts: the ``hub`` (its stats,
    users and rooms), the ``store``, the ``listeners`` (named, with their
    counts), the loaded ``plugins`` by name and the ``guard`` that keeps their
    records, the reactor's ``loop_times``, and ``http``: the requests the web
    gateway answered, by (route, status code), when there is one."""
    stats = hub.stats
    users: Counter[str] = Counter({hub.wire.NAME: 0})  # nc's, even when nobody is on
    for user in hub.users():  # 10,000 users: about a millisecond, once a scrape
        users[user.protocol] += 1
    names = list(plugins)
    # A plugin never called yet has no record: it is on, with zeros.
    records = {name: guard.records.get(name) or PluginRecord(name) for name in names}
    lines = store.lines
    families = [
        _family(
            "chatd_info", "The chatd running, by version (always 1).", {__version__: 1}, "version"
        ),
        _family(
            "chatd_uptime_seconds", "Seconds since the server started.", hub.clock() - stats.started
        ),
        *_per_listener(listeners),
        _family(
            "chatd_connections_peak",
            "The most chat connections open at once.",
            stats.connections_peak,
        ),
        _family("chatd_users_online", "Named users online now, by protocol.", users, "protocol"),
        _family("chatd_users_peak", "The most named users online at once.", stats.users_peak),
        _family("chatd_rooms", "Rooms now.", len(hub.rooms())),
        _family("chatd_lines_in_total", "Chat lines received from users.", stats.lines_in),
        _family(
            "chatd_lines_out_total",
            "Lines (events) sent to users, each once however many read it.",
            stats.events_out,
        ),
        _family(
            "chatd_deliveries_total",
            "Lines handed to readers: a line to a room of N readers counts N.",
            stats.lines_out,
        ),
        _family(
            "chatd_commands_total",
            "Commands run, by name.",
            dict(sorted(stats.commands.items())),
            "command",
        ),
        _family(
            "chatd_plugin_calls_total",
            "Plugin calls.",
            {n: r.calls for n, r in records.items()},
            "plugin",
        ),
        _family(
            "chatd_plugin_errors_total",
            "Plugin calls that failed.",
            {n: r.errors for n, r in records.items()},
            "plugin",
        ),
        _family(
            "chatd_plugin_slow_calls_total",
            "Plugin calls slower than [plugins] slow_call_ms.",
            {n: r.slow for n, r in records.items()},
            "plugin",
        ),
        _family(
            "chatd_plugin_enabled",
            "1 if the plugin is on, 0 if it is off (an operator's doing, or the breaker's).",
            {n: int(r.state == ON) for n, r in records.items()},
            "plugin",
        ),
        Family(
            "chatd_loop_iteration_seconds",
            HISTOGRAM,
            "Seconds each loop iteration was busy (its wait for input not counted).",
            (Histogram(tuple(loop_times.BOUNDS), tuple(loop_times.counts), loop_times.sum),),
        ),
        _family(
            "chatd_store_up",
            "1 if the store's writer is running and writing, else 0.",
            int(lines.up),
        ),
        _family(
            "chatd_store_dropped_lines_total",
            "Lines not kept: the writer's queue was full, or a write failed.",
            lines.dropped,
        ),
        _family("chatd_store_queued_lines", "Lines waiting for the store's writer.", lines.queued),
        _family("chatd_store_rows", "Rows kept in the store, by kind.", store.rows(), "kind"),
        _family(
            "chatd_store_bytes", "The database's bytes on disk, its WAL included.", store.size()
        ),
    ]
    if hub.peers is not None:
        families += _cluster(hub)
    if http is not None:
        families.append(
            Family(
                "chatd_http_requests_total",
                COUNTER,
                "HTTP requests answered, by route and status code.",
                tuple(
                    Sample(count, (("route", route), ("code", str(code))))
                    for (route, code), count in sorted(http.items())
                ),
            )
        )
    return families


def _cluster(hub: Hub) -> list[Family]:
    """The backplane's families, for a node of a cluster."""
    assert hub.peers is not None
    state = hub.peers.describe()
    by_node: Counter[str] = Counter({hub.node: 0})
    for user in hub.users():
        by_node[user.node or hub.node] += 1
    up = int(state["state"] == "up")
    entries = {
        "out": state["entries_out"],
        "in": state["entries_in"],
        "fetched": state["entries_fetched"],
        "missed": state["entries_missed"],
        "history": state["history_entries"],
    }
    return [
        _family("chatd_cluster_up", "1 while this node is in touch with Redis.", up),
        _family(
            "chatd_cluster_log_position", "The cluster log's latest entry applied here.",
            state["log_position"],
        ),
        _family(
            "chatd_cluster_entries_total",
            "Log entries: sent, applied, fetched from the log to fill a gap, missed (trimmed),"
            " read as history (from before this node joined).",
            entries,
            "direction",
        ),
        _family(
            "chatd_cluster_outages_total", "Times this node lost touch with Redis.",
            state["outages"],
        ),
        _family(
            "chatd_cluster_nickname_leases", "Nickname leases this node holds.",
            state["nickname_leases"],
        ),
        _family(
            "chatd_cluster_fenced_total",
            "Times this node gave up its users' nicknames, out of touch past their leases.",
            state["fenced"],
        ),
        _family("chatd_cluster_users", "Named users, by the node they are on.", by_node, "node"),
    ]  # fmt: skip


# -- health ----------------------------------------------------------------------------


def health(store: Store) -> tuple[bool, dict[str, Any]]:
    """Whether the server can do its work, and the one-line body that says so:
    ok unless the store keeps a file and its writer is failing or has died
    (chat goes on then, but history is not kept)."""
    if store.path is None:
        state = "memory"
    elif store.lines.up:
        state = "ok"
    else:
        state = "failing"
    ok = state != "failing"
    return ok, {"status": "ok" if ok else "unavailable", "store": state}
