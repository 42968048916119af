"""Room lines kept (chatd.store.lines): appended on the loop, written by the
writer thread, read back in order; the same behaviour in memory. Real SQLite
files in tmp_path."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatd.store import lines as lines_module
from chatd.store.database import open_database
from chatd.store.lines import ACTED, SAID, Line, Lines, LineStore, MemoryLines
from chatd.testing import FakeClock
from tests.helpers import WAIT

MakeStore = Callable[..., Lines]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_795_000_000.0)


@pytest.fixture
def opened(tmp_path: Path, clock: FakeClock) -> Iterator[MakeStore]:
    stores: list[Lines] = []

    def make(max_per_room: int = 1000, **kwargs: object) -> LineStore:
        store = LineStore(
            open_database(tmp_path / "chatd.db"),
            max_per_room,
            wall=clock,
            **kwargs,  # type: ignore[arg-type]
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, opened: MakeStore, clock: FakeClock) -> Lines:
    if request.param == "memory":
        return MemoryLines(1000, wall=clock)
    return opened()


def _texts(lines: list[Line]) -> list[str]:
    return [line.text for line in lines]


def test_lines_come_back_in_order_by_room_bounded(store: Lines, clock: FakeClock) -> None:
    for i in range(30):
        store.append("lobby", SAID, "alice", "alice", f"l{i}")
        store.append("games", ACTED, "bob", "~bob", f"g{i}")
        clock.advance(1)
    store.end_turn()
    assert _texts(store.last("lobby", 3)) == ["l27", "l28", "l29"]
    assert _texts(store.last("lobby", 100)) == [f"l{i}" for i in range(30)]
    first = store.last("games", 30)[0]
    assert (first.kind, first.nick, first.ident, first.at) == (
        ACTED,
        "bob",
        "~bob",
        1_795_000_000.0,
    )
    mark = store.last("lobby", 10)[0].id  # "last seen" before l20
    assert _texts(store.since("lobby", mark, 5)) == ["l21", "l22", "l23", "l24", "l25"]
    assert store.last("nowhere", 5) == [] and store.since("nowhere", 0, 5) == []
    assert store.last("lobby", 0) == [] and store.since("lobby", 0, 0) == []


def test_reads_see_lines_not_yet_written_and_a_reopened_store_keeps_them(
    opened: MakeStore, tmp_path: Path
) -> None:
    store = opened()
    for i in range(250):  # past the tail: the oldest come from the database
        store.append("lobby", SAID, "alice", "alice", f"l{i}")
    assert _texts(store.last("lobby", 2)) == ["l248", "l249"]  # before any write
    store.end_turn()
    store.flush()  # type: ignore[attr-defined]
    assert _texts(store.last("lobby", 250)) == [f"l{i}" for i in range(250)]
    assert _texts(store.since("lobby", 0, 3)) == ["l0", "l1", "l2"]
    store.close()
    again = opened()  # the same file, as after a restart: the tail is empty
    assert _texts(again.last("lobby", 3)) == ["l247", "l248", "l249"]
    newest = again.append("lobby", SAID, "bob", "bob", "after the restart")
    assert newest.id == 251  # ids go on from the file's
    assert _texts(again.since("lobby", 248, 10)) == ["l248", "l249", "after the restart"]


def test_a_room_keeps_its_newest_max_lines_and_others_are_untouched(
    opened: MakeStore, tmp_path: Path
) -> None:
    store = opened(max_per_room=150)
    store.append("games", SAID, "bob", "bob", "keep me")
    for i in range(600):
        store.append("lobby", SAID, "alice", "alice", f"l{i}")
        if i % 50 == 49:
            store.end_turn()
    store.flush()  # type: ignore[attr-defined]
    with sqlite3.connect(tmp_path / "chatd.db") as conn:
        kept = conn.execute(
            "SELECT count(*), min(text) FROM lines JOIN rooms ON rooms.id = lines.room"
            " WHERE rooms.key = 'lobby'"
        ).fetchone()
        counted = conn.execute("SELECT lines FROM rooms WHERE key = 'lobby'").fetchone()[0]
    assert 150 <= kept[0] <= 150 + 100 and counted == kept[0]  # pruned once per 100 past it
    assert _texts(store.last("lobby", 150)) == [f"l{i}" for i in range(450, 600)]
    assert _texts(store.last("games", 5)) == ["keep me"]


def test_a_writer_far_behind_drops_a_batch_and_never_waits(
    opened: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = opened(max_queued=10)
    for i in range(11):  # one iteration's batch past the bound
        store.append("lobby", SAID, "alice", "alice", f"l{i}")
    with caplog.at_level(logging.WARNING):
        store.end_turn()
    assert store.dropped == 11  # type: ignore[attr-defined]
    assert "history: the writer is behind" in caplog.text
    assert _texts(store.last("lobby", 2)) == ["l9", "l10"]  # still shown this session


def test_a_write_that_fails_is_logged_once_and_writing_resumes(
    opened: MakeStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = opened()
    blocker = sqlite3.connect(tmp_path / "chatd.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    with caplog.at_level(logging.INFO):
        for turn in range(3):
            store.append("lobby", SAID, "alice", "alice", f"lost {turn}")
            store.flush()  # type: ignore[attr-defined]
        blocker.execute("ROLLBACK")
        blocker.close()
        store.append("lobby", SAID, "alice", "alice", "kept")
        store.flush()  # type: ignore[attr-defined]
    assert caplog.text.count("cannot write") == 1
    assert "writing " in caplog.text and " again" in caplog.text
    assert store.dropped == 3  # type: ignore[attr-defined]
    with sqlite3.connect(tmp_path / "chatd.db") as conn:
        assert conn.execute("SELECT text FROM lines").fetchall() == [("kept",)]


def test_the_writer_is_failing_while_another_holds_the_database_and_up_again_after(
    opened: MakeStore, tmp_path: Path
) -> None:
    store = opened()
    assert store.up and not store.failing
    blocker = sqlite3.connect(tmp_path / "chatd.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    store.append("lobby", SAID, "alice", "alice", "lost")
    store.flush()  # type: ignore[attr-defined]
    assert store.failing and not store.up
    store.append("lobby", SAID, "alice", "alice", "lost too")
    store.flush()  # type: ignore[attr-defined]
    assert store.failing  # still: each write fails
    blocker.execute("ROLLBACK")
    blocker.close()
    store.append("lobby", SAID, "alice", "alice", "kept")
    store.flush()  # type: ignore[attr-defined]
    assert store.up and not store.failing
    assert store.dropped == 2 and store.queued == 0


def test_queued_counts_what_the_writer_has_not_written_yet(
    opened: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened()
    assert isinstance(store, LineStore)
    writing, go_on = threading.Event(), threading.Event()
    commit = store._commit

    def held(*args: Any) -> None:
        writing.set()
        assert go_on.wait(WAIT), "never let go"
        commit(*args)

    monkeypatch.setattr(store, "_commit", held)
    for i in range(3):
        store.append("lobby", SAID, "alice", "alice", f"l{i}")
    store.mark_seen("alice", "lobby", 3)
    store.end_turn()
    assert writing.wait(WAIT), "the writer never started"
    assert store.queued == 4 and store.up  # three lines and a mark, in the writer's hands
    go_on.set()
    store.flush()
    assert store.queued == 0


def test_a_closed_store_is_not_up(tmp_path: Path, clock: FakeClock) -> None:
    store = LineStore(open_database(tmp_path / "chatd.db"), 1000, wall=clock)
    store.close()
    assert not store.up and not store.failing


def test_memory_lines_are_always_up_with_nothing_queued_or_dropped(clock: FakeClock) -> None:
    store = MemoryLines(3, wall=clock)
    store.append("lobby", SAID, "alice", "alice", "hi")
    store.end_turn()
    assert store.up and not store.failing
    assert (store.queued, store.dropped) == (0, 0)


def test_memory_lines_keep_the_newest_max_per_room(clock: FakeClock) -> None:
    store = MemoryLines(3, wall=clock)
    for i in range(5):
        store.append("lobby", SAID, "alice", "alice", f"l{i}")
    assert _texts(store.last("lobby", 10)) == ["l2", "l3", "l4"]


def test_lines_past_their_age_go_and_each_rooms_count_stays_right(
    opened: MakeStore, tmp_path: Path, clock: FakeClock
) -> None:
    day = 86_400.0
    store = opened(keep_seconds=30 * day)
    for i in range(1500):  # more than one chunk of old lines
        store.append("lobby" if i % 3 else "games", SAID, "alice", "alice", f"old {i}")
    store.flush()  # type: ignore[attr-defined]  # the first check: nothing is old yet
    clock.advance(31 * day)
    store.append("lobby", SAID, "alice", "alice", "new")
    store.flush()  # type: ignore[attr-defined]
    with sqlite3.connect(tmp_path / "chatd.db") as conn:
        texts = [row[0] for row in conn.execute("SELECT text FROM lines")]
        counts = dict(conn.execute("SELECT key, lines FROM rooms").fetchall())
    assert texts == ["new"]
    assert counts == {"lobby": 1, "games": 0}
    assert _texts(store.last("lobby", 5)) == ["new"]  # nor from the tail
    assert _texts(store.since("games", 0, 5)) == []


def test_seen_marks_are_read_back_now_and_after_a_restart(store: Lines) -> None:
    line = store.append("lobby", SAID, "alice", "alice", "hi")
    assert store.seen("nick:bob", "lobby") is None
    store.mark_seen("nick:bob", "lobby", line.id)
    store.mark_seen("nick:bob", "games", 0)  # a room with no lines yet
    store.end_turn()
    seen = store.seen("nick:bob", "lobby")
    assert seen is not None and seen.last_id == line.id
    assert seen.at == line.at  # when it left: what "While you were away (since ...)" shows
    games = store.seen("nick:bob", "games")
    assert games is not None and games.last_id == 0
    assert store.seen("nick:carol", "lobby") is None


def test_seen_marks_survive_a_restart_and_the_newest_counts(opened: MakeStore) -> None:
    store = opened()
    first = store.append("lobby", SAID, "alice", "alice", "one")
    second = store.append("lobby", SAID, "alice", "alice", "two")
    store.mark_seen("@bob", "lobby", first.id)
    store.end_turn()
    store.mark_seen("@bob", "lobby", second.id)  # a later turn moves it on
    store.close()
    again = opened()
    seen = again.seen("@bob", "lobby")
    assert seen is not None and seen.last_id == second.id
    assert _texts(again.since("lobby", first.id, 10)) == ["two"]


def test_a_write_runs_in_the_writers_transaction_in_order(opened: MakeStore) -> None:
    store = opened()
    sql = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
    store.write(sql, ("greeting", "one"))
    store.write(sql, ("greeting", "two"))  # the later one wins: they run in order
    store.append("lobby", SAID, "alice", "alice", "hi")
    store.close()
    conn = sqlite3.connect(store._db.path)  # type: ignore[attr-defined]
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'greeting'").fetchone() == ("two",)
        assert conn.execute("SELECT text FROM lines").fetchall() == [("hi",)]
    finally:
        conn.close()


def test_count_counts_a_rooms_lines_between_two_ids_up_to_a_bound(
    opened: MakeStore, clock: FakeClock
) -> None:
    store = opened()
    lines = [store.append("lobby", SAID, "alice", "alice", f"l{i}") for i in range(300)]
    store.append("games", SAID, "bob", "bob", "elsewhere")
    store.flush()
    store.close()
    again = opened()  # the tail is empty: every count is read from the file
    assert again.count("lobby", lines[9].id, lines[20].id, 1000) == 10
    assert again.count("lobby", 0, lines[-1].id + 10, 1000) == 300
    assert again.count("lobby", 0, lines[-1].id + 10, 50) == 50  # it stops counting
    more = [again.append("lobby", SAID, "alice", "alice", f"m{i}") for i in range(5)]
    # Half in the file, half in the tail (not yet written): each counted once.
    assert again.count("lobby", lines[-3].id, more[-1].id, 1000) == 2 + 4
    assert again.count("games", 0, more[-1].id, 1000) == 1
    again.flush()
    assert again.total() == 306  # every room's, as written
    memory = MemoryLines(1000, wall=clock)
    kept = [memory.append("lobby", SAID, "a", "a", str(i)) for i in range(5)]
    assert memory.count("lobby", kept[0].id, kept[4].id, 1000) == 3
    assert memory.count("lobby", 0, 99, 2) == 2
    assert memory.total() == 5


def test_ids_are_never_given_twice_even_when_lines_were_dropped(opened: MakeStore) -> None:
    store = opened(max_queued=3)
    store.append("lobby", SAID, "alice", "alice", "kept")
    store.end_turn()
    store.flush()
    dropped = [store.append("lobby", SAID, "alice", "alice", f"d{i}") for i in range(5)]
    store.end_turn()  # past the queue's bound: this batch is dropped
    store.mark_seen("nick:bob", "lobby", dropped[-1].id)  # bob saw them: they were delivered
    store.close()
    again = opened()
    new = again.append("lobby", SAID, "alice", "alice", "after the restart")
    assert new.id > dropped[-1].id  # else bob's catch-up would take it for seen


def test_a_value_sqlite_cannot_take_loses_its_batch_not_the_writer(
    opened: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = opened()
    with caplog.at_level(logging.WARNING):
        store.append("lobby", SAID, "alice", "alice", "lone \udcff surrogate")  # not UTF-8
        store.flush()
        store.append("lobby", SAID, "alice", "alice", "the next turn")
        store.flush()
    assert "cannot write" in caplog.text
    store.close()
    again = opened()
    assert _texts(again.last("lobby", 10)) == ["the next turn"]


def test_what_is_kept_in_memory_is_bounded(
    opened: MakeStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lines_module, "MAX_MEMORY_ROOMS", 3)
    monkeypatch.setattr(lines_module, "MAX_TAILS", 3)
    monkeypatch.setattr(lines_module, "MAX_SEEN", 3)
    memory = MemoryLines(1000, wall=clock)
    store = opened()
    for kept in (memory, store):
        for room in ("a", "b", "c", "a", "d"):  # "b" is the least recently spoken in
            kept.append(room, SAID, "alice", "alice", f"in {room}")
        for i in range(5):
            kept.mark_seen(f"nick:{i}", "a", 1)
    assert memory.last("b", 5) == [] and _texts(memory.last("a", 5)) == ["in a", "in a"]
    assert memory.seen("nick:0", "a") is None and memory.seen("nick:4", "a") is not None
    assert set(store._tails) == {"c", "a", "d"}  # type: ignore[attr-defined]
    store.flush()
    assert _texts(store.last("b", 5)) == ["in b"]  # no tail: read from the file
    assert store.seen("nick:0", "a") is not None  # from the file too


def test_a_clusters_ids_are_taken_and_an_id_behind_is_given_the_next(
    store: Lines, clock: FakeClock
) -> None:
    first = store.append("#a", SAID, "alice", "alice", "one", id=65536, at=1_700_000_000.5)
    assert (first.id, first.at) == (65536, 1_700_000_000.5)
    behind = store.append("#a", SAID, "bob", "bob", "two", id=10)  # a log that went back
    assert behind.id == 65537 and behind.at == clock()
    assert store.newest == 65537
    store.mark_seen("carol", "#a", 200_000, at=1_700_000_001.0)  # another node's mark
    seen = store.seen("carol", "#a")
    assert seen is not None and (seen.last_id, seen.at) == (200_000, 1_700_000_001.0)
    assert store.append("#a", SAID, "bob", "bob", "three").id == 200_001


def test_history_read_late_goes_in_its_place_and_twice_is_once(
    store: Lines, clock: FakeClock
) -> None:
    store.append("#a", SAID, "alice", "alice", "live", id=300)
    for line_id, text in ((100, "old"), (200, "older? no: between"), (100, "old")):
        store.backfill(Line(line_id, "#a", clock(), SAID, "bob", "bob", text))
    if isinstance(store, LineStore):
        store.flush()
    assert [(line.id, line.text) for line in store.last("#a", 10)] == [
        (100, "old"), (200, "older? no: between"), (300, "live"),
    ]  # fmt: skip
    assert _texts(store.since("#a", 100, 10)) == ["older? no: between", "live"]
    assert store.newest == 300


def test_history_read_late_past_a_full_room_keeps_the_newest(clock: FakeClock) -> None:
    store = MemoryLines(2, wall=clock)
    for line_id in (10, 20):
        store.append("#a", SAID, "a", "a", str(line_id), id=line_id)
    store.backfill(Line(5, "#a", clock(), SAID, "b", "b", "5"))  # older than all kept
    store.backfill(Line(15, "#a", clock(), SAID, "b", "b", "15"))
    assert _texts(store.last("#a", 5)) == ["15", "20"]


def test_history_read_late_newer_than_the_tails_oldest_is_read_at_once(
    opened: MakeStore, clock: FakeClock
) -> None:
    store = opened()
    store.append("#a", SAID, "alice", "alice", "said alone", id=5 * 65536 + 3)
    for line_id, text in ((6 * 65536, "log one"), (7 * 65536, "log two")):
        store.backfill(Line(line_id, "#a", clock(), SAID, "bob", "bob", text))
    # Unwritten yet, and above the tail's oldest: the tail has them.
    assert _texts(store.last("#a", 5)) == ["said alone", "log one", "log two"]
    assert store.count("#a", 0, 10**9, 10) == 3
    assert _texts(store.since("#a", 5 * 65536 + 3, 5)) == ["log one", "log two"]


def test_a_full_room_in_memory_keeps_all_it_had_when_a_line_comes_twice(clock: FakeClock) -> None:
    store = MemoryLines(2, wall=clock)
    for line_id in (10, 20):
        store.append("#a", SAID, "a", "a", str(line_id), id=line_id)
    store.backfill(Line(10, "#a", clock(), SAID, "a", "a", "10"))
    assert _texts(store.last("#a", 5)) == ["10", "20"]
