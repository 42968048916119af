"""The store as the server holds it: opened from the settings, one object
with everything kept, closed at the end.

Rule: the hub and the admin service reach what is kept only through
:class:`Store`; what it holds (room lines and seen marks, and what the
writer's statements carry) sits behind the narrow interfaces of
:mod:`chatd.store.lines`. ``[store] path = ":memory:"`` gives the same
interface with nothing on disk, and is what a Hub built without a store
(tests, the plugin test kit) gets.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chatd.config import Config
from chatd.store.accounts import Accounts, Scores
from chatd.store.database import Database, open_database
from chatd.store.lines import Lines, LineStore, MemoryLines

#: ``[store] path`` for a store that keeps nothing past a restart.
MEMORY: Final = ":memory:"

#: The ``meta`` row that keeps :attr:`Store.log_position`.
LOG_POSITION_KEY: Final = "cluster_log"

#: Seconds in a day (``[history] keep_days``).
DAY_SECONDS: Final = 86_400


def default_path() -> Path:
    """``$XDG_STATE_HOME/chatd/chatd.db``, or ``~/.local/state/chatd/chatd.db``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "chatd" / "chatd.db"


def store_path(config: Config) -> Path | None:
    """Where ``config`` keeps its database; None for ":memory:"."""
    path = config.store.path
    if path == MEMORY:
        return None
    return config.path(path) if path else default_path()


@dataclass
class Store:
    """Everything kept: ``lines`` (room history and seen marks), ``accounts``
    (and the private messages held for them), ``scores``; ``path`` is the
    database's, None when nothing is kept on disk."""

    lines: Lines
    accounts: Accounts
    scores: Scores
    path: Path | None = None
    database: Database | None = None
    #: In a cluster: the Redis run (its run_id) and the position in its log
    #: up to which this store has what the log said (where a restarted node
    #: reads on from); ("", 0) when none.
    log_position: tuple[str, int] = ("", 0)
    _position_written: tuple[str, int] = ("", 0)

    def rows(self) -> dict[str, int]:
        """What is kept, counted (for stats): room lines, accounts, held
        messages, scores."""
        return {
            "lines": self.lines.total(),
            "accounts": len(self.accounts),
            "held_messages": self.accounts.held_total,
            "scores": len(self.scores),
        }

    def end_turn(self) -> None:
        """The end of a loop iteration: what it recorded goes to the writer
        (and the log position reached, if it moved: once an iteration)."""
        if self.log_position != self._position_written:
            self._position_written = self.log_position
            run_id, seq = self.log_position
            self.lines.write(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (LOG_POSITION_KEY, f"{run_id} {seq}")
            )
        self.lines.end_turn()

    def close(self) -> None:
        """Write what is left and close the database (at shutdown)."""
        self.lines.close()

    def size(self) -> int:
        """The database's bytes on disk (the file and its WAL); 0 in memory."""
        if self.path is None:
            return 0
        total = 0
        for part in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):  # no WAL: nothing to add
                total += part.stat().st_size
        return total


def memory_store(config: Config, wall: Callable[[], float] = time.time) -> Store:
    """A store that keeps what ``config`` says in memory, for this run only."""
    lines = MemoryLines(config.history.max_lines_per_room, wall=wall)
    scores = Scores(lines.write, wall=wall)
    return Store(lines, Accounts(lines.write, scores, wall=wall), scores)


def open_store(config: Config, wall: Callable[[], float] = time.time) -> Store:
    """The store ``config`` asks for: its database opened, checked, locked and
    migrated (StoreError, one line naming the path, when it cannot be), or
    one in memory."""
    path = store_path(config)
    if path is None:
        return memory_store(config, wall)
    db = open_database(path)
    history = config.history
    lines = LineStore(
        db,
        history.max_lines_per_room,
        wall=wall,
        keep_seconds=history.keep_days * DAY_SECONDS,
    )
    # Read before the first batch reaches the writer, whose connection it is.
    scores = Scores.load(db, lines.write, wall=wall)
    accounts = Accounts.load(db, lines.write, scores, wall=wall)
    position = _log_position(db)
    return Store(lines, accounts, scores, path, db, position, position)


def _log_position(db: Database) -> tuple[str, int]:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", (LOG_POSITION_KEY,)).fetchone()
    run_id, _, seq = (row[0] if row else "").partition(" ")
    return (run_id, int(seq)) if seq.isdigit() else ("", 0)
