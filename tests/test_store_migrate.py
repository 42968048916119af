"""A database made by the first chatd with a store (schema 1) opens in this
one, is migrated, and keeps everything it had.

tests/data/history-v1.db was made once, with the v1 code (commit 1b7c9d4),
by this script run from the repository's root; it is never made again (a
later chatd could not make a v1 file), only copied:

    import shutil, sqlite3, tempfile
    from pathlib import Path
    from chatd.core.passwords import hash_password
    from chatd.store.database import open_database
    from chatd.store.lines import ACTED, SAID, TOPIC, LineStore
    from chatd.testing import FakeClock

    clock = FakeClock(1_780_000_000.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chatd.db"
        db = open_database(path)
        ms = int(clock() * 1000)
        with db.conn:  # before the writer starts: plain SQL on its connection
            db.conn.execute("BEGIN")
            db.conn.execute(
                "INSERT INTO accounts(id, key, name, hash, created, last_seen)"
                " VALUES (?,?,?,?,?,?)",
                (1, "alice", "Alice", hash_password("correct horse"), ms, ms + 60_000),
            )
            db.conn.execute(
                "INSERT INTO pms(to_account, at, sender, sender_ident, text, notice)"
                " VALUES (?,?,?,?,?,?)",
                (1, ms + 120_000, "bob", "~bob", "see you at eight", 0),
            )
            db.conn.execute(
                "INSERT INTO scores(game, who, total, updated) VALUES (?,?,?,?)",
                ("jumble", "@alice", 3, ms + 30_000),
            )
        store = LineStore(db, 1000, wall=clock)
        store.append("#lobby", SAID, "alice", "alice", "hello, lobby")
        clock.advance(1)
        store.append("#lobby", ACTED, "bob", "~bob", "waves")
        clock.advance(1)
        last = store.append("#lobby", SAID, "alice", "alice", "back in a bit")
        store.append("#games", TOPIC, "carol", "carol", "jumble at eight")
        clock.advance(1)
        store.append("#games", SAID, "carol", "carol", "who plays?")
        store.mark_seen("@alice", "#lobby", last.id)
        store.close()  # writes the batch, marks the file clean, checkpoints (TRUNCATE)
        shutil.copyfile(path, "tests/data/history-v1.db")  # the one file: no -wal, no .lock
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.core.passwords import check_password
from chatd.store.accounts import Accounts, HeldMessage, Scores
from chatd.store.database import Database, open_database
from chatd.store.lines import ACTED, SAID, TOPIC, LineStore
from chatd.store.schema import VERSION
from chatd.testing import FakeClock

FIXTURE = Path(__file__).parent / "data" / "history-v1.db"
#: When the fixture's lines were written (its FakeClock).
MADE_AT = 1_780_000_000.0


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "chatd.db"
    shutil.copyfile(FIXTURE, path)  # the fixture itself is never opened: it would change
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MADE_AT + 86_400)  # the day after


class Opened:
    """The migrated file opened as chatd opens it at startup."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.db: Database = open_database(path)
        self.lines = LineStore(self.db, 1000, wall=clock)
        self.scores = Scores.load(self.db, self.lines.write, wall=clock)
        self.accounts = Accounts.load(self.db, self.lines.write, self.scores, wall=clock)


@pytest.fixture
def opened(old_file: Path, clock: FakeClock) -> Iterator[list[Opened]]:
    runs: list[Opened] = []
    yield runs
    for run in runs:
        run.lines.close()


def test_the_fixture_is_a_version_1_database(old_file: Path) -> None:
    # Guards the tests below: a fixture remade by a later chatd would test nothing.
    conn = sqlite3.connect(old_file)  # a copy: even a read leaves -wal and -shm beside it
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(pms)")}
        assert "action" not in columns
    finally:
        conn.close()


def test_a_version_1_database_is_migrated_and_keeps_everything(
    old_file: Path, clock: FakeClock, opened: list[Opened]
) -> None:
    run = Opened(old_file, clock)
    opened.append(run)
    conn = run.db.conn
    assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION == 2
    assert conn.execute("SELECT count(*) FROM score_events").fetchone()[0] == 0

    lobby = run.lines.last("#lobby", 10)
    assert [(line.id, line.kind, line.nick, line.ident, line.text) for line in lobby] == [
        (1, SAID, "alice", "alice", "hello, lobby"),
        (2, ACTED, "bob", "~bob", "waves"),
        (3, SAID, "alice", "alice", "back in a bit"),
    ]
    assert lobby[0].at == MADE_AT
    games = run.lines.last("#games", 10)
    assert [(line.kind, line.text) for line in games] == [
        (TOPIC, "jumble at eight"),
        (SAID, "who plays?"),
    ]
    assert [line.text for line in run.lines.since("#lobby", 2, 10)] == ["back in a bit"]
    assert conn.execute("SELECT who, last_id FROM seen").fetchall() == [("@alice", 3)]

    alice = run.accounts.get("ALICE")
    assert alice is not None and len(run.accounts) == 1
    assert (alice.name, alice.id, alice.created, alice.last_seen) == (
        "Alice",
        1,
        MADE_AT,
        MADE_AT + 60,
    )
    assert check_password("correct horse", alice.hash)
    assert not check_password("wrong horse", alice.hash)
    assert run.scores.total("jumble", "@alice") == 3
    assert run.scores.top("jumble", 5) == [("@alice", 3)]
    assert run.scores.top("jumble", 5, days=7) == []  # schema 1 kept no events
    assert run.accounts.held("alice") == 1
    assert run.accounts.take("alice") == [
        HeldMessage(MADE_AT + 120, "bob", "~bob", "see you at eight", notice=False, action=False)
    ]


def test_a_migrated_database_takes_new_things_and_keeps_them(
    old_file: Path, clock: FakeClock, opened: list[Opened]
) -> None:
    run = Opened(old_file, clock)
    opened.append(run)
    waved = HeldMessage(clock.now, "carol", "carol", "waves at you", notice=False, action=True)
    assert run.accounts.hold("alice", waved)
    line = run.lines.append("#lobby", SAID, "bob", "~bob", "after the upgrade")
    assert line.id == 6  # ids go on from the file's
    run.scores.add("jumble", "@alice", 2)
    bob = run.accounts.create("bob", "scrypt$b")
    assert bob.id == 2
    run.lines.close()

    again = Opened(old_file, clock)
    opened.append(again)
    assert again.accounts.take("alice") == [
        HeldMessage(MADE_AT + 120, "bob", "~bob", "see you at eight", notice=False, action=False),
        waved,
    ]
    assert [line.text for line in again.lines.last("#lobby", 2)] == [
        "back in a bit",
        "after the upgrade",
    ]
    assert again.scores.top("jumble", 5) == [("@alice", 5)]
    assert again.scores.top("jumble", 5, days=7) == [("@alice", 2)]
    assert [account.name for account in again.accounts.all()] == ["Alice", "bob"]
