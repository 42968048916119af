"""``chatd admin top``: the model fed hand-made replies, the view rendered to a
string, and the app end to end on a real server through prompt_toolkit's pipe
input, refreshing every 50 ms."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import PipeInput, create_pipe_input
from rich.console import Console

from chatd import cli
from chatd.admin.client import AdminClient, AdminUnavailable
from chatd.admin.service import AdminService
from chatd.admin.top import (
    HISTORY,
    Snapshot,
    TopModel,
    bytes_per_second,
    per_second,
    render_top,
    run_top,
    sparkline,
)
from chatd.config import AdminSettings
from chatd.core.listeners import ListenerCounts
from chatd.core.plugins import Report
from chatd.server import Server
from tests.helpers import WAIT, HubFixture, make_config, named_client, running_server, wait_until

# -- hand-made replies -------------------------------------------------------------------


def _stats(
    *,
    uptime: float = 100.0,
    lines_in: int = 0,
    lines_out: int = 0,
    connections: int = 1,
    listeners: dict[str, dict[str, int]] | None = None,
    cluster: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A stats reply as the server sends it, with the figures a test sets."""
    stats: dict[str, Any] = {
        "uptime_seconds": uptime,
        "connections": {"now": connections, "peak": 9, "total": 40, "refused": 2},
        "lines": {"in": lines_in, "out": lines_out},
        "bytes": {"in": lines_in * 10, "out": lines_out * 10},
        "commands": {},
        "users": {"online": connections, "peak": 9},
        "store": {
            "path": "/var/lib/chatd/chatd.db",
            "bytes": 4096,
            "rows": {"lines": 7, "accounts": 1, "held_messages": 0, "scores": 0},
            "dropped_lines": 0,
        },
    }
    if listeners is not None:
        stats["listeners"] = listeners
    if cluster is not None:
        stats["cluster"] = cluster
    return stats


def _listener(open: int = 0, sendq: int = 0, floods: int = 0, total: int = 0) -> dict[str, int]:
    return {
        "open": open,
        "total": total,
        "refused": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "sendq_disconnects": sendq,
        "flood_slowdowns": floods,
    }


def _plugin(
    name: str, calls: int = 0, slowest_ms: float = 0.0, state: str = "on"
) -> dict[str, Any]:
    return {
        "name": name,
        "source": "built-in",
        "commands": [],
        "calls": calls,
        "errors": 0,
        "slow_calls": 0,
        "slowest_ms": slowest_ms,
        "slowest": "",
        "state": state,
        "why": "",
    }


def _room(name: str, members: int, topic: str = "", lines: int = 0) -> dict[str, Any]:
    return {"name": name, "members": members, "lines": lines, "topic": topic, "operators": []}


def _fed(*stats: dict[str, Any], every: float = 1.0, **rest: Any) -> TopModel:
    """A model given ``stats`` one ``every`` seconds apart (rooms and plugins
    from ``rest``, the same each time)."""
    model = TopModel()
    for i, reply in enumerate(stats):
        model.add(Snapshot(i * every, reply, rest.get("rooms", []), rest.get("plugins", [])))
    return model


# -- the model ---------------------------------------------------------------------------


def test_a_rate_is_a_counters_growth_over_the_time_between_replies() -> None:
    model = _fed(_stats(lines_in=10, lines_out=30))
    assert model.rate("lines", "in") is None  # one reply says nothing of a rate
    model.add(Snapshot(2.0, _stats(lines_in=30, lines_out=90), [], []))
    assert model.rate("lines", "in") == 10.0
    assert model.rate("lines", "out") == 30.0
    model.add(Snapshot(2.5, _stats(lines_in=31, lines_out=90), [], []))
    assert model.rates("lines", "in") == [10.0, 2.0]
    assert model.added("lines", "in") == 21
    assert model.window == 2.5


def test_a_counter_reset_by_a_restart_never_makes_a_rate_negative() -> None:
    before = _stats(uptime=3600, lines_in=5000, listeners={"nc": _listener(sendq=4)})
    after = _stats(uptime=1, lines_in=6, listeners={"nc": _listener(sendq=1)})
    model = _fed(before, after, every=2.0)
    # Counted from zero again: all of the new count is new.
    assert model.rates("lines", "in") == [3.0]
    assert model.added("listeners", "nc", "sendq_disconnects") == 1
    assert all(rate >= 0 for rate in model.rates("bytes", "in"))


def test_the_history_is_bounded_and_the_trend_spans_it() -> None:
    model = _fed(*(_stats(lines_in=i * 2, connections=i) for i in range(200)))
    assert len(model.values("connections", "now")) == HISTORY + 1
    assert model.rates("lines", "in") == [2.0] * HISTORY
    assert model.window == HISTORY
    assert model.change("connections", "now") == HISTORY  # now, less a minute ago


def test_a_listener_that_appears_later_is_followed_from_then() -> None:
    model = _fed(
        _stats(listeners={"nc": _listener(open=1)}),
        _stats(listeners={"nc": _listener(open=2), "irc": _listener(open=1, floods=1)}),
        _stats(listeners={"nc": _listener(open=2), "irc": _listener(open=3, floods=4)}),
    )
    assert model.values("listeners", "irc", "open") == [1, 3]
    assert model.change("listeners", "irc", "open") == 2
    assert model.added("listeners", "irc", "flood_slowdowns") == 3
    assert model.change("listeners", "nc", "open") == 1


def test_the_busiest_rooms_come_first_and_only_the_top_few() -> None:
    rooms = [_room(f"#r{i}", i % 4) for i in range(12)]
    model = _fed(_stats(), rooms=rooms)
    busiest = model.busiest_rooms(3)
    assert [(r["name"], r["members"]) for r in busiest] == [("#r11", 3), ("#r3", 3), ("#r7", 3)]


def test_the_rooms_where_most_is_said_now_come_before_the_fullest() -> None:
    model = TopModel()
    model.add(Snapshot(0.0, _stats(), [_room("#big", 50, lines=100), _room("#chat", 3)], []))
    assert model.room_rate(model.rooms[0]) is None  # seen once: no rate yet
    later = [_room("#big", 50, lines=102), _room("#chat", 3, lines=40)]
    model.add(Snapshot(2.0, _stats(), later, []))
    assert [(r["name"], model.room_rate(r)) for r in model.busiest_rooms()] == [
        ("#chat", 20.0), ("#big", 1.0),
    ]  # fmt: skip


def test_the_slowest_plugins_come_first_with_their_calls_a_second() -> None:
    model = TopModel()
    first = [_plugin("fact", 10, 1.5), _plugin("jumble", 100, 40.0), _plugin("new", 0, 0.1)]
    model.add(Snapshot(0.0, _stats(), [], first))
    assert [calls for _, calls in model.slowest_plugins()] == [None, None, None]
    # jumble reloaded (its counts start again); new gives way to one loaded since.
    then = [_plugin("fact", 14, 1.5), _plugin("jumble", 3, 40.0), _plugin("newer", 5, 0.2)]
    model.add(Snapshot(2.0, _stats(), [], then))
    slowest = [(p["name"], calls) for p, calls in model.slowest_plugins(2)]
    assert slowest == [("jumble", 1.5), ("fact", 2.0)]
    assert model.slowest_plugins()[-1][1] is None  # newer: no calls before to compare


# -- the view ----------------------------------------------------------------------------


def test_a_sparkline_scales_from_zero_to_the_largest_and_fills_from_the_right() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5], 5) == "  ███"  # steady: level, not noise
    assert sparkline([0, 0], 3) == " ▁▁"
    assert sparkline(range(8), 4) == "▅▆▇█"  # only the latest
    assert sparkline([], 3) == "   "


def test_rates_are_written_short() -> None:
    assert [per_second(r) for r in (None, 0.25, 12.34, 1234.5)] == [
        "-",
        "0.2/s",
        "12.3/s",
        "1,234/s",
    ]
    assert [bytes_per_second(r) for r in (None, 12, 1234, 5_600_000)] == [
        "-",
        "12 B/s",
        "1.2 kB/s",
        "5.6 MB/s",
    ]


def _shown(model: TopModel, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(render_top(model, width, "/run/chatd/admin.sock"))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert all(len(line) <= width for line in text.splitlines()), text
    return str(text)


def _busy_model(cluster: dict[str, Any] | None = None) -> TopModel:
    return _fed(
        _stats(
            lines_in=100,
            lines_out=300,
            connections=3,
            listeners={"nc": _listener(open=2, sendq=1, floods=5), "irc": _listener(open=1)},
            cluster=cluster,
        ),
        _stats(
            uptime=101,
            lines_in=112,
            lines_out=336,
            connections=4,
            listeners={"nc": _listener(open=3, sendq=3, floods=5), "irc": _listener(open=1)},
            cluster=cluster,
        ),
        rooms=[_room("#lobby", 3, "[red]no markup[/red]"), _room("#games", 1)],
        plugins=[_plugin("jumble", slowest_ms=42.5), _plugin("fact", state="switched off")],
    )


def test_the_view_shows_the_key_figures() -> None:
    text = _shown(_busy_model())
    assert "/run/chatd/admin.sock" in text and "up 1m 41s" in text
    assert "4 users online (9 peak)" in text
    assert re.search(r"lines in\s+12\.0/s\s+█\s+112 in all", text)
    assert re.search(r"lines out\s+36\.0/s", text)
    assert re.search(r"connections\s+4 \+1\s+▆█\s+9 peak, 40 in all, 2 refused", text)
    assert re.search(r"sendq drops\s+floods slowed", text)
    # nc: 3 open (one more than a second ago), 3 sendq drops, 2 of them new.
    assert re.search(r"nc\s+3 \+1\s+.*\s3 \(\+2\)\s+5\s", text)
    # lines a second (none said), users, topic: words, not markup
    assert re.search(r"#lobby\s+0\.0\s+3\s+\[red\]no mar", text)
    assert re.search(r"jumble\s+42\.5 ms", text)
    assert "switched off" in text
    assert "/var/lib/chatd/chatd.db" in text and re.search(r"lines\s+7\s", text)
    assert "not in a cluster" in text


def test_a_cluster_node_shows_its_backplane() -> None:
    cluster = {
        "redis": "redis://127.0.0.1:6379/0",
        "node": "east",
        "state": "down",
        "log_position": 1200,
        "entries_out": 10,
        "entries_in": 20,
        "entries_fetched": 0,
        "entries_missed": 3,
        "outages": 1,
        "nickname_leases": 2,
        "history_entries": 0,
        "fenced": 0,
    }
    text = _shown(_busy_model(cluster), width=120)
    assert "east, down" in text and "redis://127.0.0.1:6379/0" in text
    assert "at 1,200;" in text and re.search(r"missed\s+3\s", text)


def test_a_narrow_terminal_gets_the_panels_one_above_the_other() -> None:
    text = _shown(_busy_model(), width=72)
    assert re.search(r"nc\s+3 \+1\s+0\s+0\s+3 \(\+2\)\s+5", text)  # no trend, no bytes
    assert text.index("busiest rooms") < text.index("slowest plugins") < text.index("store")
    assert re.search(r"lines in\s+12\.0/s", text)


def test_a_server_without_listener_counts_is_shown_without_them() -> None:
    stats = _stats()
    del stats["users"]  # a server from before this view
    text = _shown(_fed(stats))
    assert "this server's stats give no counts per listener" in text
    assert "users online" not in text
    assert re.search(r"lines in\s+-", text)  # no rate from one reply


# -- what the service adds to stats ------------------------------------------------------


@dataclass
class _Listener:
    name: str
    counts: ListenerCounts


def test_stats_counts_users_and_each_listener_by_name() -> None:
    fixture = HubFixture()
    fixture.join("alice")
    v4, v6, irc = ListenerCounts(), ListenerCounts(), ListenerCounts()
    v4.open, v6.open, v4.sendq_disconnects, irc.flood_slowdowns = 2, 1, 1, 4

    def service(listeners: Callable[[], list[_Listener]] | None) -> AdminService:
        return AdminService(
            fixture.hub,
            fixture.plugins,
            fixture.hub.stats,
            clock=fixture.clock,
            reload=lambda what: Report(),
            stop=lambda message: None,
            listeners=listeners,
        )

    counted = service(lambda: [_Listener("nc", v4), _Listener("irc", irc), _Listener("nc", v6)])
    stats = counted.stats({})
    assert stats["users"] == {"online": 1, "peak": 1}
    assert list(stats["listeners"]) == ["nc", "irc"]  # as opened; the two nc ones summed
    assert stats["listeners"]["nc"] == {**_listener(open=3, sendq=1)}
    assert stats["listeners"]["irc"] == {**_listener(floods=4)}
    assert "listeners" not in service(None).stats({})


# -- the app, end to end -----------------------------------------------------------------

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "admin.sock")))
    with running_server(config) as srv:
        yield srv


class _Top:
    """run_top on a thread, with pipe input and its screen in a string."""

    def __init__(self, server: Server, pipe: PipeInput, interval: float) -> None:
        assert server.admin_path
        self.client = AdminClient(server.admin_path, timeout=WAIT)
        self.out = io.StringIO()
        console = Console(file=self.out, force_terminal=True, width=100, height=40)
        self.status: list[int] = []
        self.error: list[BaseException] = []

        def run() -> None:
            try:
                self.status.append(run_top(self.client, console, input=pipe, interval=interval))
            except BaseException as exc:
                self.error.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)  # a stuck one must not hang pytest
        self.thread.start()

    def screen(self) -> str:
        """Everything drawn so far, without the terminal's escape codes."""
        return _ESCAPES.sub("", self.out.getvalue())

    def finish(self) -> None:
        self.thread.join(WAIT)
        self.client.close()
        assert not self.thread.is_alive(), f"top did not finish: {self.screen()[-2000:]}"


def test_top_follows_a_real_server_and_q_quits(server: Server) -> None:
    with create_pipe_input() as pipe:
        top = _Top(server, pipe, interval=0.05)
        wait_until(lambda: "0 users online" in top.screen(), what="the first refresh")
        alice = named_client(server, "alice")  # kept: collected, it would hang up
        alice.send("hello")
        # Two refreshes after alice came: the rate is known by the second.
        wait_until(lambda: top.screen().count("1 user online") >= 2, what="two refreshes")
        # Her room, its lines a second once its list was read twice, and her
        # listener's row (the server's own counts, through the admin socket).
        lobby = re.compile(r"#lobby\s+\d+\.\d\s+1\s")
        wait_until(lambda: lobby.search(top.screen()) is not None, what="alice's room, rated")
        wait_until(lambda: re.search(r"\bnc\s+1 \+1\s", top.screen()) is not None, what="nc")
        pipe.send_text("q")
        top.finish()
    assert top.status == [0] and not top.error
    screen = top.screen()
    assert re.search(r"slowest plugins \(\d+ loaded\)", screen)
    assert "in memory" in screen
    assert top.out.getvalue().endswith("\x1b[?1049l")  # the terminal's own screen back


@pytest.mark.parametrize("key", ["q", "\x03"], ids=["q", "ctrl-c"])
def test_a_key_quits_at_once_not_at_the_next_refresh(server: Server, key: str) -> None:
    with create_pipe_input() as pipe:
        top = _Top(server, pipe, interval=60.0)  # longer than the test may wait
        wait_until(lambda: "chatd top" in top.screen(), what="the first refresh")
        pipe.send_text(key)
        top.finish()
    assert top.status == [0] and not top.error


def test_the_end_of_the_input_quits(server: Server) -> None:
    with create_pipe_input() as pipe:
        top = _Top(server, pipe, interval=60.0)
        wait_until(lambda: "chatd top" in top.screen(), what="the first refresh")
        pipe.close()
        top.finish()
    assert top.status == [0]


def test_a_server_that_goes_away_ends_top_with_the_reason(tmp_path: Path) -> None:
    config = make_config(admin=AdminSettings(enabled=True, socket=str(tmp_path / "admin.sock")))
    with running_server(config) as server, create_pipe_input() as pipe:
        top = _Top(server, pipe, interval=0.05)
        wait_until(lambda: "chatd top" in top.screen(), what="the first refresh")
        server.stop()
        top.finish()
    assert not top.status
    assert isinstance(top.error[0], AdminUnavailable)
    assert "admin.sock" in str(top.error[0])
    assert top.out.getvalue().endswith("\x1b[?1049l")


# -- the command -------------------------------------------------------------------------


def test_chatd_admin_top_takes_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["admin", "top", "now"]) == 2
    assert capsys.readouterr().err == (
        "chatd admin: top is a live view: it takes no arguments, --room or --json\n"
    )
    assert cli.main(["admin", "--json", "top"]) == 2


def test_chatd_admin_top_needs_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's stdin is no terminal: there would be no keys to read, no q to quit.
    assert cli.main(["admin", "top"]) == 2
    assert capsys.readouterr().err == (
        "chatd admin: top is a live view: run it in a terminal (stdin and stdout)\n"
    )


def test_q_quits_while_the_server_does_not_answer(server: Server) -> None:
    with create_pipe_input() as pipe:
        top = _Top(server, pipe, interval=0.05)
        wait_until(lambda: "chatd top" in top.screen(), what="the first refresh")
        hung = threading.Event()

        def hang() -> None:  # the server's loop stops answering for a while
            hung.set()
            time.sleep(3)

        server.reactor.call_soon_threadsafe(hang)
        hung.wait(WAIT)
        began = time.monotonic()
        pipe.send_text("q")
        top.finish()
        assert time.monotonic() - began < 2  # not the hung request's time
    assert top.status == [0] and not top.error


def test_a_short_terminal_gets_shorter_lists_not_a_cut_view() -> None:
    model = _busy_model()
    for width, height in ((100, 24), (80, 40)):
        console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True)
        lines = console.render_lines(render_top(model, width, "/run/chatd/admin.sock", height))
        text = "\n".join("".join(seg.text for seg in line) for line in lines)
        assert len(lines) <= height, (width, height, len(lines))
        assert "store" in text and "cluster" in text, text
