"""The metrics (chatd.metrics): the text exposition format as prometheus_client's
own parser reads it back, and what a real server counts after real traffic
over real sockets, scraped on its loop as the web gateway will scrape it."""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample as Parsed

from chatd import metrics
from chatd.config import StoreSettings
from chatd.core.listeners import ListenerCounts
from chatd.core.stats import LOOP_BOUNDS, LoopTimes
from chatd.metrics import COUNTER, GAUGE, HISTOGRAM, Family, Histogram, Sample
from chatd.server import Server
from chatd.store.lines import SAID
from chatd.store.store import memory_store, open_store
from tests.helpers import (
    WAIT,
    HubFixture,
    listener_for,
    make_config,
    nc_and_irc_users,
    running_server,
)


def _parse(data: bytes) -> dict[str, list[Parsed]]:
    """Family name as the parser names it (a counter's without _total) -> samples."""
    return {f.name: f.samples for f in text_string_to_metric_families(data.decode())}


def _value(parsed: dict[str, list[Parsed]], family: str, name: str, **labels: str) -> float:
    (found,) = [s.value for s in parsed[family] if s.name == name and s.labels == labels]
    return float(found)


# -- the format --------------------------------------------------------------------------


def test_every_sample_reads_back_as_written() -> None:
    families = [
        Family("t_lines_total", COUNTER, "Lines.", (Sample(7), Sample(2**53, (("a", "b"),)))),
        Family(
            "t_temperature",
            GAUGE,
            "A gauge.",
            (
                Sample(-1.5, (("room", "#lobby"), ("kind", "x"))),
                Sample(0.1, (("room", "#games"), ("kind", "x"))),
                Sample(1e-7, (("room", "é ünïcode ✓"), ("kind", "x"))),
                Sample(math.inf, (("room", "inf"), ("kind", "x"))),
            ),
        ),
        Family("t_empty", GAUGE, "No samples yet.", ()),
    ]
    parsed = _parse(metrics.render(families))
    assert [s.value for s in parsed["t_lines"]] == [7, 2**53]
    assert parsed["t_lines"][0].name == "t_lines_total"
    assert [(s.labels, s.value) for s in parsed["t_temperature"]] == [
        ({"room": "#lobby", "kind": "x"}, -1.5),
        ({"room": "#games", "kind": "x"}, 0.1),
        ({"room": "é ünïcode ✓", "kind": "x"}, 1e-7),
        ({"room": "inf", "kind": "x"}, math.inf),
    ]
    assert parsed["t_empty"] == []


def test_label_values_and_help_are_escaped() -> None:
    tricky = 'back\\slash "quoted"\nnext line'
    family = Family(
        "t_odd", GAUGE, "Help with a \\ and a\nnewline.", (Sample(1, (("v", tricky),)),)
    )
    text = metrics.render([family]).decode()
    assert '{v="back\\\\slash \\"quoted\\"\\nnext line"}' in text
    assert "# HELP t_odd Help with a \\\\ and a\\nnewline.\n" in text
    assert text.count("\n") == 3  # HELP, TYPE, the sample: no raw newline got through
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.samples[0].labels == {"v": tricky}
    assert parsed.documentation == "Help with a \\ and a\nnewline."


def test_a_counter_is_named_total_and_only_a_counter_is() -> None:
    with pytest.raises(ValueError, match="ends _total"):
        Family("t_lines", COUNTER, "No _total.", ())
    with pytest.raises(ValueError, match="ends _total"):
        Family("t_open_total", GAUGE, "A gauge named like a counter.", ())
    with pytest.raises(ValueError, match="not a Prometheus metric name"):
        Family("t-lines_total", COUNTER, "A dash.", ())
    with pytest.raises(ValueError, match="label name"):
        Family("t_x", GAUGE, "A histogram's own label.", (Sample(1, (("le", "1"),)),))


def test_a_histogram_is_cumulative_ends_at_inf_and_its_edges_read_back_exactly() -> None:
    times = LoopTimes()
    for seconds in (0.00005, 0.0001, 0.0003, 0.003, 0.003, 0.2, 7.0):
        times.observe(seconds)
    family = Family(
        "t_loop_seconds",
        HISTOGRAM,
        "Loop.",
        (Histogram(tuple(times.BOUNDS), tuple(times.counts), times.sum),),
    )
    text = metrics.render([family]).decode()
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.type == "histogram"
    buckets = [s for s in parsed.samples if s.name == "t_loop_seconds_bucket"]
    assert [float(s.labels["le"]) for s in buckets] == list(LOOP_BOUNDS)  # exactly, not nearly
    assert buckets[-1].labels["le"] == "+Inf"
    assert [s.value for s in buckets] == [2, 2, 3, 3, 3, 5, 5, 5, 5, 5, 6, 6, 6, 6, 7]
    by_name = {s.name: s.value for s in parsed.samples}
    assert by_name["t_loop_seconds_count"] == 7
    assert by_name["t_loop_seconds_sum"] == pytest.approx(times.sum)
    with pytest.raises(ValueError, match="rise to \\+Inf"):
        Histogram((0.1, 1.0), (0, 0), 0.0)


# -- collected --------------------------------------------------------------------------


@dataclass
class FakeListener:
    name: str
    counts: ListenerCounts = field(default_factory=ListenerCounts)


def test_listeners_of_one_name_are_one_series_and_a_plugin_switched_off_reads_0() -> None:
    chat = HubFixture()
    first, second, admin = FakeListener("nc"), FakeListener("nc"), FakeListener("admin")
    first.counts.bytes_in, second.counts.bytes_in, admin.counts.bytes_in = 10, 5, 1
    chat.plugins.guard.switch("fact", False)
    families = metrics.collect(
        hub=chat.hub,
        store=chat.hub.store,
        listeners=[first, admin, second],
        plugins=chat.plugins.names,
        guard=chat.plugins.guard,
        loop_times=LoopTimes(),
    )
    parsed = _parse(metrics.render(families))
    assert [(s.labels, s.value) for s in parsed["chatd_bytes_in"]] == [
        ({"listener": "nc"}, 15),
        ({"listener": "admin"}, 1),
    ]
    assert _value(parsed, "chatd_plugin_enabled", "chatd_plugin_enabled", plugin="fact") == 0
    assert _value(parsed, "chatd_plugin_enabled", "chatd_plugin_enabled", plugin="help") == 1
    assert _value(parsed, "chatd_users_online", "chatd_users_online", protocol="line") == 0
    assert "chatd_http_requests" not in parsed  # no web gateway, no such family


# -- collected from a real server --------------------------------------------------------


def _scrape(server: Server, http: dict[tuple[str, int], int] | None = None) -> bytes:
    """The server's metrics, collected on its own loop (as the web gateway will)."""
    done = threading.Event()
    out: list[bytes] = []

    def collect() -> None:
        families = metrics.collect(
            hub=server.hub,
            store=server.store,
            listeners=server.reactor.listeners,
            plugins=server.plugins.names,
            guard=server.plugins.guard,
            loop_times=server.reactor.loop_times,
            http=http,
        )
        out.append(metrics.render(families))
        done.set()

    server.reactor.call_soon_threadsafe(collect)
    assert done.wait(WAIT), "the loop never ran the scrape"
    return out[0]


def test_a_scrape_after_real_traffic_shows_it_by_listener() -> None:
    with running_server() as server:
        assert server.address and server.irc_address
        # What the server will pass to Reactor.listen when it names its listeners.
        listener_for(server, server.hub).name = "nc"
        listener_for(server, server.irc).name = "irc"
        alice, bob, carol = nc_and_irc_users(server)
        carol.send("JOIN #lobby")
        carol.expect_message("JOIN")
        alice.send("hi")
        alice.send("/me waves")
        alice.send("/help")
        bob.expect("* alice waves")
        carol.expect_message("PRIVMSG", lambda m: "waves" in m.params[-1])
        alice.expect(lambda line: line.startswith("*** Anything else you type"))  # /help's end
        parsed = _parse(_scrape(server, http={("/metrics", 200): 2, ("other", 404): 1}))
        stats = server.stats  # the traffic is over: these no longer move

    def value(family: str, name: str = "", **labels: str) -> float:
        return _value(parsed, family, name or family, **labels)

    assert value("chatd_connections_open", listener="nc") == 2
    assert value("chatd_connections_open", listener="irc") == 1
    assert value("chatd_connections", "chatd_connections_total", listener="nc") == 2
    assert value("chatd_connections_refused", "chatd_connections_refused_total", listener="nc") == 0
    nc_in = value("chatd_bytes_in", "chatd_bytes_in_total", listener="nc")
    assert nc_in == len(b"alice\nbob\nhi\n/me waves\n/help\n")  # every byte sent was read
    assert value("chatd_bytes_in", "chatd_bytes_in_total", listener="irc") > 0
    assert value("chatd_bytes_out", "chatd_bytes_out_total", listener="nc") > 0
    assert value("chatd_bytes_out", "chatd_bytes_out_total", listener="irc") > 0
    assert value("chatd_sendq_disconnects", "chatd_sendq_disconnects_total", listener="nc") == 0
    assert value("chatd_users_online", protocol="line") == 2
    assert value("chatd_users_online", protocol="irc") == 1
    assert value("chatd_rooms") == 1
    assert value("chatd_lines_in", "chatd_lines_in_total") == stats.lines_in >= 3
    # Each line once however many read it; "hi" and the /me each to two readers.
    lines_out = value("chatd_lines_out", "chatd_lines_out_total")
    assert lines_out == stats.events_out >= 2
    assert value("chatd_deliveries", "chatd_deliveries_total") == stats.lines_out > lines_out
    assert value("chatd_commands", "chatd_commands_total", command="help") == 1
    assert value("chatd_commands", "chatd_commands_total", command="me") == 1
    assert value("chatd_plugin_calls", "chatd_plugin_calls_total", plugin="help") >= 1
    assert value("chatd_plugin_errors", "chatd_plugin_errors_total", plugin="help") == 0
    assert value("chatd_plugin_enabled", plugin="fact") == 1
    assert value("chatd_store_up") == 1
    assert value("chatd_store_rows", kind="lines") >= 2
    assert value("chatd_loop_iteration_seconds", "chatd_loop_iteration_seconds_count") > 0
    assert value("chatd_uptime_seconds") > 0
    assert value("chatd_info", version=metrics.__version__) == 1
    assert value("chatd_http_requests", "chatd_http_requests_total", route="other", code="404") == 1


# -- health ------------------------------------------------------------------------------


def test_health_is_ok_in_memory_and_with_a_file_that_is_written() -> None:
    config = make_config()
    assert metrics.health(memory_store(config)) == (True, {"status": "ok", "store": "memory"})


def test_health_is_unavailable_while_the_store_cannot_write_and_ok_again_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chatd.db"
    store = open_store(make_config(store=StoreSettings(path=str(path))))
    try:
        assert metrics.health(store) == (True, {"status": "ok", "store": "ok"})
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        store.lines.append("lobby", SAID, "alice", "alice", "lost")
        store.lines.flush()  # type: ignore[attr-defined]
        assert metrics.health(store) == (False, {"status": "unavailable", "store": "failing"})
        blocker.execute("ROLLBACK")
        blocker.close()
        store.lines.append("lobby", SAID, "alice", "alice", "kept")
        store.lines.flush()  # type: ignore[attr-defined]
        assert metrics.health(store) == (True, {"status": "ok", "store": "ok"})
    finally:
        store.close()
    assert metrics.health(store)[1]["store"] == "failing"  # its writer is gone
