"""rich rendering of admin results, as pure functions rendered to a string."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console, RenderableType

from chatd.admin.render import (
    accounts_table,
    duration,
    history_table,
    plugins_table,
    result,
    rooms_table,
    size,
    stats_table,
    users_table,
    when,
)


def _text(renderable: RenderableType, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_durations() -> None:
    assert [duration(s) for s in (0, 4.9, 75, 3725, 90061)] == [
        "0s", "4s", "1m 15s", "1h 02m", "1d 01h",
    ]  # fmt: skip


def test_users_table() -> None:
    table = users_table(
        [
            {
                "nick": "alice",
                "address": "127.0.0.1:5000",
                "protocol": "irc",
                "account": "alice",
                "connected_seconds": 3725,
                "idle_seconds": 75,
                "lines": 12,
                "rooms": ["#games", "#lobby"],
                "game": "jumble (6 letters), 40s left",
            },
            {
                "nick": "bob",
                "address": "[::1]:6000",
                "connected_seconds": 5,
                "idle_seconds": 5,
                "lines": 0,
                "rooms": [],
                "game": None,
            },
        ]
    )
    text = _text(table, width=120)
    lines = _text(table).splitlines()
    assert lines[0].strip() == "2 users online"
    assert "alice" in text and "1h 02m" in text and "1m 15s" in text and "12" in text
    assert "jumble (6 letters), 40s left" in text
    assert "[::1]:6000" in text
    assert re.search(r"127\.0\.0\.1:5000 +│ irc \(alice\) +│", text)  # how, as which account
    assert re.search(r"\[::1\]:6000 +│ line +│", text)  # no protocol: an older server's
    assert re.search(r"┃ lines ┃ rooms +┃ game", text)
    assert "#games, #lobby" in text
    assert all(len(line) <= 80 for line in lines)  # wraps to fit, never wider


def test_users_table_keeps_nick_and_address_whole_at_80_columns() -> None:
    # Found with the rooms column: an IPv6 address was cut to "…", and its
    # ":1234:" read as an emoji code.
    user = {
        "nick": "alice_the_great1", "address": "[2001:db8::1234:5678]:50000",
        "connected_seconds": 3725, "idle_seconds": 75, "lines": 12,
        "rooms": ["#games", "#lobby", "#a-long-room-name"], "game": "jumble (6 letters), 40s left",
    }  # fmt: skip
    text = _text(users_table([user]))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "│ alice_the_great1 │ [2001:db8::1234:5678]:50000 │" in text
    rooms = "".join(line.split("│")[7] for line in text.splitlines() if "│" in line)
    assert rooms.replace(" ", "") == "#games,#lobby,#a-long-room-name"  # folded, not cut


def test_users_from_a_server_before_rooms_have_an_empty_rooms_column() -> None:
    user = {
        "nick": "bob", "address": "a", "connected_seconds": 1, "idle_seconds": 1, "lines": 0,
        "game": None,
    }  # fmt: skip
    assert "bob" in _text(users_table([user]))


ROOMS = [
    {"name": "#games", "members": 12, "topic": "Chess tonight", "operators": ["alice", "Bob"]},
    {"name": "#lobby", "members": 1, "topic": "", "operators": []},
]


def test_rooms_table() -> None:
    text = _text(rooms_table(ROOMS))
    lines = text.splitlines()
    assert lines[0].strip() == "2 rooms"
    assert re.search(r"┃ room +┃ users ┃ operators +┃ topic +┃", text)
    assert re.search(r"│ #games +│ +12 │ alice, Bob +│ Chess tonight +│", text)
    assert re.search(r"│ #lobby +│ +1 │ - +│ - +│", text)  # no operators, no topic
    assert "2 rooms" in _text(result("rooms", ROOMS))
    assert _text(rooms_table([])).splitlines()[0].strip() == "0 rooms"
    assert _text(rooms_table(ROOMS[1:])).splitlines()[0].strip() == "1 room"


def test_a_rooms_long_topic_wraps_whole_and_markup_is_shown_as_typed() -> None:
    topic = "[bold]not bold[/bold] " + "word " * 60 + "[/red] the end"  # users' words
    room = {"name": "#x", "members": 2, "topic": topic, "operators": ["[red]op"]}
    text = _text(rooms_table([room]))
    assert all(len(line) <= 80 for line in text.splitlines())
    body = "".join(line.split("│")[-2].strip() for line in text.splitlines() if "│" in line)
    assert body.replace(" ", "") == topic.replace(" ", "")  # wrapped, nothing lost
    assert "[red]op" in text


def test_one_user_is_singular() -> None:
    assert _text(users_table([])).splitlines()[0].strip() == "0 users online"


def test_stats_table() -> None:
    text = _text(
        stats_table(
            {
                "uptime_seconds": 90061,
                "connections": {"now": 3, "peak": 10, "total": 1234, "refused": 7},
                "lines": {"in": 5000, "out": 123456},
                "bytes": {"in": 99, "out": 1048576},
                "commands": {"game": 4, "who": 1},
            }
        )
    )
    assert "1d 01h" in text
    assert "3 now, 10 peak, 1234 total, 7 refused" in text
    assert "5,000 in, 123,456 out" in text
    assert "99 in, 1,048,576 out" in text
    assert "/game 4, /who 1" in text


def test_stats_from_a_server_before_the_store_have_no_store_rows() -> None:
    stats: dict[str, Any] = {
        "uptime_seconds": 5,
        "connections": {"now": 0, "peak": 0, "total": 0, "refused": 0},
        "lines": {"in": 0, "out": 0},
        "bytes": {"in": 0, "out": 0},
        "commands": {},
    }
    assert "store" not in _text(stats_table(stats))
    stats["store"] = {
        "path": "/var/lib/[bold]chatd[/bold]/chatd.db\x1b[2J",
        "bytes": 12_582_912,
        "rows": {"lines": 10_001, "accounts": 1, "held_messages": 2, "scores": 0},
        "dropped_lines": 3,
    }
    text = _text(stats_table(stats))
    assert re.search(r"│ store +│ +/var/lib/\[bold\]chatd\[/bold\]/chatd\.db │", text)
    assert "\x1b" not in text
    assert re.search(r"│ store size +│ +12,582,912 bytes \(12\.6 MB\) │", text)
    assert re.search(r"│ store rows +│ 10,001 lines, 1 account, 2 held messages, 0 scores │", text)
    assert re.search(r"│ store dropped +│ +3 lines │", text)
    stats["store"]["path"] = None
    assert re.search(r"│ store +│ +in memory │", _text(stats_table(stats)))


def test_sizes() -> None:
    assert [size(n) for n in (0, 1, 4096, 999_999, 1_000_000, 12_582_912)] == [
        "0 bytes", "1 byte", "4,096 bytes", "999,999 bytes", "1,000,000 bytes (1.0 MB)",
        "12,582,912 bytes (12.6 MB)",
    ]  # fmt: skip


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (and what it was after)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


#: 2023-11-14 22:13:20 UTC.
AT = 1_700_000_000.0


def test_times_are_local_to_the_minute(utc: None) -> None:
    assert when(0) == "1970-01-01 00:00"
    assert when(AT) == "2023-11-14 22:13"
    assert when(AT + 39.9) == "2023-11-14 22:13"  # to the minute, not rounded


def _line(kind: str, nick: str, text: str, at: float = AT) -> dict[str, Any]:
    return {"id": 1, "at": at, "kind": kind, "nick": nick, "text": text}


def test_history_shows_each_kind_as_chat_does_with_its_time(utc: None) -> None:
    history = {
        "room": "#games",
        "lines": [
            _line("said", "alice", "hi"),
            _line("acted", "alice", "waves", AT + 60),
            _line("notice", "bob", "quiet please", AT + 120),
            _line("topic", "alice", "Chess", AT + 180),
            _line("topic", "", "", AT + 240),
            _line("joined?", "carol", "a kind from a newer server", AT + 300),
        ],
    }
    rows = [line.rstrip() for line in _text(history_table(history)).splitlines()]
    assert rows == [
        "#games: the last 6 lines kept",
        " 2023-11-14 22:13  <alice> hi",
        " 2023-11-14 22:14  * alice waves",
        " 2023-11-14 22:15  -bob- quiet please",
        " 2023-11-14 22:16  alice set the topic: Chess",
        " 2023-11-14 22:17  a server operator cleared the topic",
        " 2023-11-14 22:18  <carol> a kind from a newer server",
    ]
    assert _text(result("history", history)) == _text(history_table(history))
    one = {"room": "#games", "lines": history["lines"][:1]}
    assert _text(history_table(one)).splitlines()[0].rstrip() == "#games: the last 1 line kept"
    assert _text(history_table({"room": "#games", "lines": []})) == "#games has no lines kept yet\n"


def test_history_lines_wrap_whole_and_are_clean_and_not_markup(utc: None) -> None:
    """What a kept line holds may be anyone's (a plugin's, a database's from
    elsewhere): no control character reaches the terminal, markup is shown as
    typed, a long line wraps with nothing lost."""
    long = "[bold]not bold[/bold] " + "word " * 40 + "[/red] end"
    history = {
        "room": "#[red]x",
        "lines": [
            _line("said", "bob\x1b[31m", "a\x1b]0;title\x07b\x9b2J\nforged\r\n<root> x"),
            _line("said", "alice", long),
        ],
    }
    text = _text(history_table(history))
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)
    assert text.splitlines()[0].rstrip() == "#[red]x: the last 2 lines kept"
    assert "<bob> ab forged <root> x" in text
    assert all(len(row) <= 80 for row in text.splitlines())
    body = "".join(row[19:].strip() for row in text.splitlines()[2:])
    assert body.replace(" ", "") == f"<alice> {long}".replace(" ", "")


def test_accounts_table(utc: None) -> None:
    accounts = [
        {
            "name": "alice",
            "created": AT,
            "last_seen": AT + 3600,
            "held_messages": 0,
            "identified": True,
        },
        {
            "name": "[b]bob",
            "created": AT,
            "last_seen": AT + 86400,
            "held_messages": 1234,
            "identified": False,
        },
    ]
    text = _text(accounts_table(accounts))
    assert text.splitlines()[0].rstrip() == "2 accounts"
    assert re.search(r"┃ name +┃ created +┃ last seen +┃ +held ┃", text)
    assert "│ alice  │ 2023-11-14 22:13 │ 2023-11-14 23:13, on now │     0 │" in text
    assert "│ [b]bob │ 2023-11-14 22:13 │ 2023-11-15 22:13         │ 1,234 │" in text
    assert _text(accounts_table(accounts[:1])).splitlines()[0].rstrip() == "1 account"
    assert _text(result("accounts", [])) == "no accounts\n"
    assert _text(result("accounts", accounts)) == text


def test_other_results_are_text() -> None:
    assert _text(result("reload", ["words: 1 -> 2", "facts: 3 -> 3"])) == (
        "words: 1 -> 2\nfacts: 3 -> 3\n"
    )
    assert _text(result("kick", "kicked alice")) == "kicked alice\n"


def _plugin(name: str, source: str = "built-in", **fields: object) -> dict[str, object]:
    """A ``plugins`` item as the server sends it: on, nothing counted, unless ``fields``."""
    base = {
        "name": name, "source": source, "commands": [], "calls": 0, "errors": 0,
        "slow_calls": 0, "slowest_ms": 0.0, "slowest": "", "state": "on", "why": "",
    }  # fmt: skip
    return {**base, **fields}


def _rows(text: str) -> list[list[str]]:
    """The body rows of a boxed table with lines between rows, each cell's
    lines joined with their spaces taken out (a folded or wrapped cell reads
    whole again)."""
    rows: list[list[str]] = []
    body = text.split("┩", 1)[1]
    for line in body.splitlines():
        if line.startswith(("├", "└")) or "│" not in line:
            rows.append([])
            continue
        cells = ["".join(cell.split()) for cell in line.split("│")[1:-1]]
        if not rows or not rows[-1]:
            rows.append(cells)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
    return [row for row in rows if row]


def _squeezed(*cells: str) -> list[str]:
    return ["".join(cell.split()) for cell in cells]


PATH = "/home/operator/chatd/plugins.d/roll.py"


def test_plugins_table_shows_every_field_and_the_whole_path_at_80_columns() -> None:
    plugins = [
        _plugin(
            "jumble",
            commands=["game", "guess"],
            calls=1234,
            slowest_ms=0.42,
            slowest="chatd_user_status",
        ),
        _plugin(
            "roll",
            PATH,
            commands=["roll"],
            calls=12,
            errors=7,
            slow_calls=3,
            slowest_ms=2001.25,
            slowest="/roll",
            state="switched off",
            why="3 slow calls in 60s",
        ),
        _plugin("quiet", "entry point quiet = chatd_quiet:plugin", state="off", why="by hand"),
    ]
    text = _text(plugins_table(plugins))
    lines = text.splitlines()
    assert lines[0].strip() == "3 plugins: 1 on, 1 off, 1 switched off"
    assert all(len(line) <= 80 for line in lines)
    assert re.search(r"┃ plugin +┃ commands +┃ calls ┃ errors ┃ slow ┃ slowest +┃ state +┃", text)
    # Long cells fold or wrap onto more lines; nothing is cut off.
    assert _rows(text) == [
        _squeezed(
            "jumble built-in", "/game /guess", "1,234", "0", "0", "0.4 ms chatd_user_status", "on"
        ),
        _squeezed(
            f"roll {PATH}",
            "/roll",
            "12",
            "7",
            "3",
            "2,001.2 ms /roll",
            "switched off: 3 slow calls in 60s",
        ),
        _squeezed(
            "quiet entry point quiet = chatd_quiet:plugin", "-", "0", "0", "0", "-", "off: by hand"
        ),
    ]


def test_plugins_table_is_safe_from_markup_and_counts_one_plugin_alone() -> None:
    text = _text(plugins_table([_plugin("odd", "/srv/[bold]odd[/bold].py")]), width=120)
    assert text.splitlines()[0].strip() == "1 plugin, all on"
    assert "/srv/[bold]odd[/bold].py" in text
    assert _text(plugins_table([])).splitlines()[0].strip() == "0 plugins"
    assert "plugins, all on" in _text(result("plugins", [_plugin("a"), _plugin("b")]))


def test_operator_and_plugin_words_are_shown_not_read_as_markup() -> None:
    # Found in review: a ban reason "[/bold] x" made `chatd admin bans` crash.
    out = io.StringIO()
    console = Console(file=out, width=100)
    console.print(
        result(
            "bans", [{"kind": "nick", "target": "bob", "seconds_left": 60, "reason": "[/bold] x"}]
        )
    )
    user = {
        "nick": "bob", "address": "a", "connected_seconds": 1, "idle_seconds": 1, "lines": 0,
        "game": "[red]jumble",
    }  # fmt: skip
    console.print(result("users", [user]))
    assert "[/bold] x" in out.getvalue() and "[red]jumble" in out.getvalue()
