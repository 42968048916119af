"""Opening the history database: one chatd at a time, checked, migrated.

Rule: every way a database file can be unusable (another chatd has it, it is
not a database or is damaged, another program's, from a newer chatd, in a
place that cannot be written) stops startup with one StoreError naming the
path and what to do; nothing here ever waits (no busy timeout, a lock that is
taken or not). The checks run in this order, each measured and reproduced
for issue 16 (see the research notes):

1. the folder (made 0700) and the file (made 0600: chat history is private);
2. a lock file beside it, ``flock``-ed: another chatd on the same file is
   told apart from a sqlite3 shell reading it, and the kernel drops the lock
   when its holder dies, even by ``kill -9``;
3. ``application_id`` and ``user_version``: a chatd database, not newer
   than this chatd;
4. ``PRAGMA quick_check``, only after an unclean shutdown (it reads every
   page: about a second for 100 MB);
5. WAL journaling (readers and the writer never block each other), then the
   missing migrations in one transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Final

from chatd.store import StoreError
from chatd.store.schema import APPLICATION_ID, MIGRATIONS, VERSION

#: What every message begins with: the operator reads it without the code.
_WHAT: Final = "history database"
#: How much of SQLite's own account of the damage a message quotes.
_SHOWN_CHARS: Final = 120
#: How to start afresh, said wherever the file itself is the trouble.
_AFRESH: Final = "move it aside to start afresh, or restore a backup"


def lock_path(path: Path) -> Path:
    """The lock file of the database at ``path``."""
    return path.with_name(path.name + ".lock")


class Database:
    """An open, checked and migrated history database, locked for this process.

    ``conn`` is in autocommit mode (transactions are begun explicitly), with
    synchronous=NORMAL: a commit survives the process being killed; only an
    OS crash can lose the last ones.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int) -> None:
        self.path = path
        self.conn = conn
        self._lock_fd = lock_fd

    def close(self) -> None:
        """Mark the shutdown clean (no quick_check next time), fold the WAL back
        into the file, close, and let the lock go. Safe to call twice."""
        if self._lock_fd < 0:
            return
        try:
            with contextlib.suppress(sqlite3.Error):  # unwritable now: checked next time
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '1')")
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()
        finally:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1


def _fail(path: Path, problem: str) -> StoreError:
    return StoreError(f"{_WHAT} {path}: {problem}")


def _unwritable(path: Path, reason: str) -> StoreError:
    return _fail(
        path,
        f"cannot be written ({reason}); set [store] path to a writable place,"
        ' or ":memory:" to keep nothing',
    )


def _lock(path: Path) -> int:
    """Take the lock beside ``path``; its file says who holds it (our pid)."""
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _unwritable(path, exc.strerror or str(exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise _fail(
            path,
            f"in use by another chatd (pid {holder}); stop it, or set [store] path to another file",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _create(path: Path) -> None:
    """The folder (0700) and the file (0600), where they are not yet."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise _unwritable(path, f"{folder} is not a folder")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            # SQLite would make the file with the umask's mode; history is private.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise _unwritable(path, exc.strerror or str(exc)) from None


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _unwritable(path, str(exc)) from None
    return conn


def _check(path: Path, conn: sqlite3.Connection) -> int:
    """The database's schema version, once it is known to be chatd's and not newer."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError:
        raise _fail(path, f"not a database, or damaged; {_AFRESH}") from None
    if app not in (0, APPLICATION_ID) or (app == 0 and tables):
        raise _fail(path, f"another program's SQLite database, not chatd's; {_AFRESH}")
    if version > VERSION:
        raise _fail(
            path,
            f"made by a newer chatd (schema {version}; this chatd knows {VERSION});"
            " run the newer chatd, or restore a backup",
        )
    return int(version)


def _was_clean(conn: sqlite3.Connection) -> bool:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'clean'").fetchone()
    except sqlite3.DatabaseError:
        return False  # damaged pages: quick_check says how
    return row is not None and row[0] == "1"


def _quick_check(path: Path, conn: sqlite3.Connection) -> None:
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        result = str(exc)
    if result != "ok":
        # quick_check lists every problem, a line each: the first says enough.
        first = (result.strip().splitlines() or ["unknown"])[0][:_SHOWN_CHARS]
        raise _fail(path, f"damaged (quick_check: {first}); {_AFRESH}")


def _migrate(path: Path, conn: sqlite3.Connection, version: int) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        for step in MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {VERSION}")
        # Unclean until close() says otherwise: a kill -9 gets a quick_check.
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '0')")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if exc.sqlite_errorname.startswith("SQLITE_BUSY"):
            raise _fail(path, "locked by another program; close it and start again") from None
        raise _unwritable(path, str(exc)) from None
    if mode.lower() != "wal":
        raise _unwritable(path, f"its journal cannot be WAL: {mode}")


def open_database(path: Path) -> Database:
    """Open, check, lock and migrate the history database at ``path``
    (made when it is not there). Raises StoreError, one line naming ``path``."""
    _create(path)
    lock_fd = _lock(path)
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect(path)
        version = _check(path, conn)
        if version and not _was_clean(conn):
            _quick_check(path, conn)
        _migrate(path, conn, version)
    except BaseException:
        if conn is not None:
            conn.close()
        os.close(lock_fd)
        raise
    return Database(path, conn, lock_fd)
