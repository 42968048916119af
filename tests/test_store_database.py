"""Opening the history database (chatd.store.database): every way a file can
be unusable is one StoreError naming it, and a good one is locked, private
and migrated. Real SQLite files in tmp_path, and a real second process for
the lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chatd.store import StoreError
from chatd.store.database import lock_path, open_database
from chatd.store.schema import APPLICATION_ID, MIGRATIONS, VERSION
from tests.helpers import WAIT, wait_until


def test_a_new_database_is_private_locked_and_at_this_version(tmp_path: Path) -> None:
    path = tmp_path / "state" / "chatd" / "chatd.db"
    db = open_database(path)
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        conn = db.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"rooms", "lines", "seen", "accounts", "pms", "scores", "meta"} <= tables
        assert lock_path(path).read_text().strip() == str(os.getpid())
        with pytest.raises(StoreError) as taken:
            open_database(path)  # a second open, even from this process
        assert str(taken.value) == (
            f"history database {path}: in use by another chatd (pid {os.getpid()});"
            " stop it, or set [store] path to another file"
        )
    finally:
        db.close()
    again = open_database(path)  # closed: the lock is free, the shutdown was clean
    again.close()
    db.close()  # twice is harmless


def test_the_lock_dies_with_its_holder_even_by_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path;"
            "from chatd.store.database import open_database;"
            f"db = open_database(Path({str(path)!r})); print('ready', flush=True); time.sleep(60)"
        )],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match=rf"in use by another chatd \(pid {holder.pid}\)"):
            open_database(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(WAIT)
    db = open_database(path)  # unclean: quick_check runs, and passes
    db.close()


def _refused(path: Path) -> str:
    with pytest.raises(StoreError) as refused:
        open_database(path)
    message = str(refused.value)
    assert message.startswith(f"history database {path}: ") and "\n" not in message
    return message


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    assert _refused(path).endswith(
        "not a database, or damaged; move it aside to start afresh, or restore a backup"
    )
    assert path.read_bytes().startswith(b"these are my notes")  # left as it was


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.db"
    with sqlite3.connect(theirs) as conn:
        conn.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY)")
    assert "another program's SQLite database, not chatd's" in _refused(theirs)
    stamped = tmp_path / "stamped.db"
    with sqlite3.connect(stamped) as conn:
        conn.execute("PRAGMA application_id = 1234")
    assert "another program's SQLite database" in _refused(stamped)


def test_a_database_from_a_newer_chatd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    open_database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {VERSION + 2}")
    assert _refused(path).endswith(
        f"made by a newer chatd (schema {VERSION + 2}; this chatd knows {VERSION});"
        " run the newer chatd, or restore a backup"
    )


def test_a_place_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "chatd.db"  # under a regular file: refused even to root
    message = _refused(path)
    assert "cannot be written (" in message
    assert message.endswith('set [store] path to a writable place, or ":memory:" to keep nothing')


def test_a_damaged_database_is_found_after_an_unclean_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    db = open_database(path)
    db.conn.execute("BEGIN")
    db.conn.execute("INSERT INTO rooms(key, name) VALUES ('lobby', '#lobby')")
    db.conn.executemany(
        "INSERT INTO lines(room, at, kind, nick, text) VALUES (1, 0, 1, 'alice', ?)",
        [(f"line {i} " + "x" * 200,) for i in range(2000)],
    )
    db.conn.execute("COMMIT")
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()  # not db.close(): as after a kill -9, the shutdown is unclean
    os.close(db._lock_fd)
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 6 * page] = b"\xff" * (3 * page)  # table pages past the header
    path.write_bytes(bytes(data))
    assert "damaged (" in _refused(path)


def test_a_version_1_database_keeps_its_rows(tmp_path: Path) -> None:
    # As the first chatd with a store made it: step 1 alone, version 1.
    path = tmp_path / "chatd.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO rooms(key, name) VALUES ('lobby', '#lobby')")
    db = open_database(path)
    try:
        assert db.conn.execute("SELECT name FROM rooms").fetchall() == [("#lobby",)]
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
    finally:
        db.close()
    wait_until(lambda: not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0)
