"""rich rendering of admin results, as pure functions rendered to a string."""

from __future__ import annotations

import io
import re

from rich.console import Console, RenderableType

from chatd.admin.render import (
    duration,
    plugins_table,
    result,
    rooms_table,
    stats_table,
    users_table,
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
    assert re.search(r"127\.0\.0\.1:5000 +│ irc +│", text)  # how each came in
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
