"""rich rendering of admin results, as pure functions rendered to a string."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType

from chatd.admin.render import duration, result, stats_table, users_table


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
                "connected_seconds": 3725,
                "idle_seconds": 75,
                "lines": 12,
                "game": "jumble (6 letters), 40s left",
            },
            {
                "nick": "bob",
                "address": "[::1]:6000",
                "connected_seconds": 5,
                "idle_seconds": 5,
                "lines": 0,
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
    assert all(len(line) <= 80 for line in lines)  # wraps to fit, never wider


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
