"""Room lines kept, and where each user last was in them: appended on the
loop, written on a thread, read back bounded.

Rule: the loop never waits for the disk. :meth:`LineStore.append` only adds to
this iteration's list (the line's id is given here, in arrival order); the
reactor's turn hook (:meth:`LineStore.end_turn`) hands that list over as one
batch to a bounded queue, and a writer thread, which touches nothing but its
own SQLite connection and the queue (no socket, no hub state), commits each
batch in one transaction. When the queue is full (the disk far behind) the
batch is dropped and counted, never waited for; so is a batch whose commit
fails, and the writer sets ``failing`` until a commit goes through again
(what the health check and the metrics read). Reads run on the loop, on a
read-only connection, indexed and LIMITed, and a per-room tail of the latest
lines (committed or not) makes a read see what the writer has not written
yet. (Only a line both older than its room's tail and not yet written can be
missed by a read: a room given more than TAIL_LINES lines while the writer is
behind.)

Seen marks (:meth:`LineStore.mark_seen`: who saw a room up to which line,
what a catch-up starts after) travel with the lines, in the same batches.

:class:`MemoryLines` is the same interface kept in memory (``[store] path =
":memory:"``, and tests), bounded the same way.
"""

from __future__ import annotations

import bisect
import collections
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

from chatd.store.database import Database

log = logging.getLogger(__name__)

#: Kinds of line (the ``lines.kind`` column).
SAID: Final = 1
ACTED: Final = 2
NOTICE: Final = 3
TOPIC: Final = 4

#: Lines waiting for the writer, at most: about a second of the heaviest load
#: measured (20,000 lines/s arriving at 1,000 clients), a thousand seconds of a
#: light one; about 4 MB. Past it the disk is far behind: lines are dropped.
MAX_QUEUED_LINES: Final = 20_000
#: Lines one transaction takes at most: about 25 ms of the writer's work, so a
#: backlog drains in steps and close() is never stuck behind one huge commit.
MAX_BATCH_LINES: Final = 5000
#: Latest lines kept in memory per room: at least what a catch-up or /history
#: shows, so the common read never touches the disk (200 x ~200 B per room).
TAIL_LINES: Final = 200
#: Rooms whose tails are kept (the most recently spoken in first to stay):
#: rooms come and go, and a room's tail is only there to spare a disk read.
#: A room pushed out is read from the file (what the writer has not written
#: of it yet is then missed by a read, as past a tail).
MAX_TAILS: Final = 2000
#: Seen marks kept in memory, the latest set: the rest are read from the file.
MAX_SEEN: Final = 100_000
#: Rooms ``MemoryLines`` keeps lines of (":memory:" has no file to fall back
#: on): at 10,000 lines a room, about 200 MB. The least recently spoken in
#: goes first, its history with it.
MAX_MEMORY_ROOMS: Final = 100
#: Lines a room may pass its max_per_room by before its oldest are deleted (or
#: 1% of the max, if more): pruning is one indexed delete every so often.
PRUNE_SLACK: Final = 100
#: How often, at most, the writer deletes lines past their age (keep_seconds):
#: a minute's lines more or less in a month's history are nothing.
AGE_CHECK_SECONDS: Final = 60
#: Oldest lines looked at per step of that: a few hundred microseconds each.
AGE_CHUNK: Final = 1000
#: How long close() waits for the writer to finish what is queued.
CLOSE_SECONDS: Final = 10.0


class Line(NamedTuple):
    """One kept line: ``id`` in arrival order, ``at`` seconds since the epoch.
    (A NamedTuple: one is made on the loop for every chat line, five times
    faster than a frozen dataclass.)"""

    id: int
    room: str  # the room's key (chatd.core.rooms.room_key)
    at: float
    kind: int
    nick: str
    ident: str
    text: str


class Seen(NamedTuple):
    """``who`` (a nickname, folded as the hub folds it) was last in ``room``
    when its line ``last_id`` was the newest: what a catch-up starts after."""

    who: str
    room: str
    last_id: int
    at: float


@dataclass(frozen=True, slots=True)
class Write:
    """One statement for the writer to run in its next transaction, after that
    transaction's lines and marks: how accounts, offline messages and scores
    (chatd.store.accounts) reach the file without the loop waiting for it."""

    sql: str
    params: tuple[object, ...]


class Lines(Protocol):
    """What the hub will use (and metrics read): both stores have it."""

    #: Lines dropped because the writer's queue was full or a commit failed.
    dropped: int
    #: The writer's last transaction failed (it is not keeping lines now).
    failing: bool

    @property
    def queued(self) -> int:
        """Lines handed to the writer and not written yet."""
        ...

    @property
    def up(self) -> bool:
        """The writer is running and writing: what is handed over gets kept."""
        ...

    @property
    def newest(self) -> int:
        """The highest line id handed out (or seen marked) so far."""
        ...

    def append(
        self, room: str, kind: int, nick: str, ident: str, text: str, id: int = 0, at: float = 0.0
    ) -> Line: ...

    def backfill(self, line: Line) -> None: ...

    def mark_seen(self, who: str, room: str, last_id: int, at: float = 0.0) -> None: ...

    def seen(self, who: str, room: str) -> Seen | None: ...

    def count(self, room: str, after: int, before: int, most: int) -> int: ...

    def total(self) -> int: ...

    def write(self, sql: str, params: tuple[object, ...]) -> None: ...

    def end_turn(self) -> None: ...

    def last(self, room: str, count: int) -> list[Line]: ...

    def since(self, room: str, after: int, limit: int) -> list[Line]: ...

    def close(self) -> None: ...


class MemoryLines:
    """Lines in memory only: the last ``max_per_room`` of each room, gone at exit."""

    def __init__(self, max_per_room: int, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._max = max_per_room
        self._rooms: collections.OrderedDict[str, collections.deque[Line]] = (
            collections.OrderedDict()
        )
        self._seen: collections.OrderedDict[tuple[str, str], Seen] = collections.OrderedDict()
        self._next = 1
        self.dropped = 0  # nothing is written, so nothing is dropped
        self.failing = False

    @property
    def queued(self) -> int:
        return 0

    @property
    def up(self) -> bool:
        return True

    @property
    def newest(self) -> int:
        return self._next - 1

    def mark_seen(self, who: str, room: str, last_id: int, at: float = 0.0) -> None:
        self._seen[who, room] = Seen(who, room, last_id, at or self._wall())
        self._seen.move_to_end((who, room))
        _bound(self._seen, MAX_SEEN)
        self._next = max(self._next, last_id + 1)

    def seen(self, who: str, room: str) -> Seen | None:
        return self._seen.get((who, room))

    def total(self) -> int:
        return sum(len(kept) for kept in self._rooms.values())

    def count(self, room: str, after: int, before: int, most: int) -> int:
        kept = self._rooms.get(room, ())
        return min(most, sum(1 for line in kept if after < line.id < before))

    def append(
        self, room: str, kind: int, nick: str, ident: str, text: str, id: int = 0, at: float = 0.0
    ) -> Line:
        line = Line(max(id, self._next), room, at or self._wall(), kind, nick, ident, text)
        self._next = line.id + 1
        self._room(room).append(line)
        return line

    def backfill(self, line: Line) -> None:
        """Keep ``line``, older than the room's newest maybe, in its place by id."""
        kept = self._room(line.room)
        self._next = max(self._next, line.id + 1)
        _insert(kept, line)

    def _room(self, room: str) -> collections.deque[Line]:
        kept = self._rooms.get(room)
        if kept is None:
            kept = self._rooms[room] = collections.deque(maxlen=self._max)
            _bound(self._rooms, MAX_MEMORY_ROOMS)
        else:
            self._rooms.move_to_end(room)
        return kept

    def write(self, sql: str, params: tuple[object, ...]) -> None:
        pass  # nothing is kept

    def end_turn(self) -> None:
        pass

    def last(self, room: str, count: int) -> list[Line]:
        kept = self._rooms.get(room, ())
        return list(kept)[-count:] if count > 0 else []

    def since(self, room: str, after: int, limit: int) -> list[Line]:
        return [line for line in self._rooms.get(room, ()) if line.id > after][:limit]

    def close(self) -> None:
        pass


def _insert(kept: collections.deque[Line], line: Line) -> None:
    """Put ``line`` in its place by id in ``kept`` (bounded: when full, the
    oldest goes, or ``line`` if it is older still); one had already is not
    put twice."""
    at = bisect.bisect([kept_line.id for kept_line in kept], line.id)
    if at and kept[at - 1].id == line.id:
        return  # had already
    if len(kept) == kept.maxlen:
        if at == 0:
            return  # older than all a full deque keeps
        kept.popleft()
        at -= 1
    kept.insert(at, line)


def _bound(kept: collections.OrderedDict[Any, Any], most: int) -> None:
    """Drop ``kept``'s oldest entries past ``most``."""
    while len(kept) > most:
        kept.popitem(last=False)


_ROW: Final = "SELECT lines.id, ?, at, kind, nick, ident, text FROM lines"


class LineStore:
    """Lines in the SQLite database ``db`` (opened, locked and migrated);
    at most ``max_per_room`` kept per room (the writer deletes the oldest)."""

    def __init__(
        self,
        db: Database,
        max_per_room: int,
        *,
        wall: Callable[[], float] = time.time,
        max_queued: int = MAX_QUEUED_LINES,
        keep_seconds: float = 0,
    ) -> None:
        self._db = db
        self._wall = wall
        self._max = max_per_room
        self._keep = keep_seconds  # 0: lines are kept however old (the count still bounds them)
        self._aged_at: float | None = None  # when the writer last deleted lines by age
        self._turn: list[Line | Seen | Write] = []
        self._tails: collections.OrderedDict[str, collections.deque[Line]] = (
            collections.OrderedDict()
        )
        #: Seen marks set this session (the file has the older ones).
        self._seen: collections.OrderedDict[tuple[str, str], Seen] = collections.OrderedDict()
        self._queue: queue.Queue[list[Line | Seen | Write] | None] = queue.Queue()
        self._queued = 0  # lines in the queue (the loop adds, the writer takes away)
        self._queued_lock = threading.Lock()
        self._max_queued = max_queued
        #: Lines dropped because the queue was full or a commit failed.
        self.dropped = 0
        #: The writer's last transaction failed; set and cleared by the writer
        #: thread (a bool: the loop reads it whole), logged once per episode.
        self.failing = False
        self._dropping = False  # logged once per episode
        self._reader = sqlite3.connect(
            f"file:{db.path}?mode=ro", uri=True, timeout=0, check_same_thread=False
        )
        self._reader.execute("PRAGMA query_only = 1")
        # An id is never handed out twice: a seen mark may point past lines
        # that are gone (dropped while the writer was behind), and a line
        # given its id again would count as seen already.
        last = db.conn.execute(
            "SELECT max(coalesce((SELECT max(id) FROM lines), 0),"
            " coalesce((SELECT max(last_id) FROM seen), 0))"
        ).fetchone()[0]
        self._next = int(last) + 1
        self._writer = threading.Thread(target=self._write_loop, name="chatd-store", daemon=True)
        self._writer.start()

    # -- the loop's side -------------------------------------------------------------

    @property
    def newest(self) -> int:
        """The highest line id handed out (or seen marked) so far."""
        return self._next - 1

    def append(
        self, room: str, kind: int, nick: str, ident: str, text: str, id: int = 0, at: float = 0.0
    ) -> Line:
        """Keep a line of ``room``, the newest: given ``id`` (a cluster's log
        position) if it is higher than every id so far, else the next one;
        at ``at`` (seconds since the epoch), or now."""
        line = Line(max(id, self._next), room, at or self._wall(), kind, nick, ident, text)
        self._next = line.id + 1
        self._turn.append(line)
        tail = self._tails.get(room)
        if tail is None:
            tail = self._tails[room] = collections.deque(maxlen=TAIL_LINES)
            _bound(self._tails, MAX_TAILS)
        else:
            self._tails.move_to_end(room)
        tail.append(line)
        return line

    def backfill(self, line: Line) -> None:
        """Keep ``line``, older than the lines kept since this run began
        maybe (a node's history it was not there for, read from the cluster's
        log): written with the next batch, and put in the room's tail if it
        is newer than the tail's oldest (the tail stays the room's newest
        lines: what is older is read from the file)."""
        self._turn.append(line)
        self._next = max(self._next, line.id + 1)
        tail = self._tails.get(line.room)
        if tail and line.id > tail[0].id:
            _insert(tail, line)

    def mark_seen(self, who: str, room: str, last_id: int, at: float = 0.0) -> None:
        """``who`` has seen ``room`` up to line ``last_id`` (written with the
        lines), at ``at`` or now."""
        mark = self._seen[who, room] = Seen(who, room, last_id, at or self._wall())
        self._seen.move_to_end((who, room))
        _bound(self._seen, MAX_SEEN)
        self._turn.append(mark)
        self._next = max(self._next, last_id + 1)

    def write(self, sql: str, params: tuple[object, ...]) -> None:
        """Run ``sql`` with ``params`` in the writer's next transaction, in the
        order given (a statement that fails loses its whole batch, logged)."""
        self._turn.append(Write(sql, params))

    def seen(self, who: str, room: str) -> Seen | None:
        """The last line of ``room`` that ``who`` saw, and when, or None if it
        never was there."""
        if (who, room) in self._seen:
            return self._seen[who, room]
        sql = (
            "SELECT last_id, at FROM seen JOIN rooms ON rooms.id = seen.room"
            " WHERE who = ? AND key = ?"
        )
        try:
            row = self._reader.execute(sql, (who, room)).fetchone()
        except sqlite3.Error as exc:
            log.warning("history: cannot read %s: %s", self._db.path, exc)
            return None
        return Seen(who, room, int(row[0]), row[1] / 1000) if row is not None else None

    def total(self) -> int:
        """Lines kept in the file, every room's (the writer's own count, one
        read; what it has not written yet is not in it)."""
        try:
            row = self._reader.execute("SELECT coalesce(sum(lines), 0) FROM rooms").fetchone()
        except sqlite3.Error as exc:
            log.warning("history: cannot read %s: %s", self._db.path, exc)
            return 0
        return int(row[0])

    def count(self, room: str, after: int, before: int, most: int) -> int:
        """How many lines of ``room`` have ids between ``after`` and ``before``
        (neither counted), counting to ``most`` at most (one bounded read)."""
        kept = self._tails.get(room)
        first = kept[0].id if kept else self._next
        tail = sum(1 for line in self._fresh(kept or ()) if after < line.id < before)
        top = min(before, first)
        if top <= after + 1 or tail >= most:
            return min(most, tail)
        sql = (
            "SELECT count(*) FROM (SELECT 1 FROM lines JOIN rooms ON rooms.id = lines.room"
            " WHERE rooms.key = ? AND lines.id > ? AND lines.id < ? LIMIT ?)"
        )
        try:
            row = self._reader.execute(sql, (room, after, top, most - tail)).fetchone()
        except sqlite3.Error as exc:
            log.warning("history: cannot read %s: %s", self._db.path, exc)
            return min(most, tail)
        return min(most, tail + int(row[0]))

    def end_turn(self) -> None:
        """Hand this iteration's lines to the writer, or drop them if it is too
        far behind (the reactor's turn hook)."""
        batch, self._turn = self._turn, []
        if not batch:
            return
        with self._queued_lock:
            full = self._queued + len(batch) > self._max_queued
            if not full:
                self._queued += len(batch)
        if full:
            self._drop(
                len(batch),
                "the writer is behind (the disk is slow, or lines come faster than it writes)",
            )
            return
        self._queue.put(batch)

    @property
    def queued(self) -> int:
        """Lines handed to the writer and not written yet, with the seen marks
        and statements that travel with them (at most max_queued)."""
        return self._queued

    @property
    def up(self) -> bool:
        """The writer thread is alive and its last transaction went through."""
        return self._writer.is_alive() and not self.failing

    def _drop(self, count: int, why: str) -> None:
        with self._queued_lock:
            self.dropped += count
        if not self._dropping:
            self._dropping = True
            log.warning(
                "history: %s; lines are not kept until it catches up (%s)", why, self._db.path
            )

    def last(self, room: str, count: int) -> list[Line]:
        """The last ``count`` lines of ``room``, oldest first."""
        if count <= 0:
            return []
        tail = self._fresh(self._tails.get(room, ()))
        if len(tail) >= count:
            return tail[-count:]
        below = tail[0].id if tail else self._next
        rows = self._read(
            room, "AND lines.id < ? ORDER BY lines.id DESC LIMIT ?", below, count - len(tail)
        )
        return rows[::-1] + tail

    def since(self, room: str, after: int, limit: int) -> list[Line]:
        """The lines of ``room`` after id ``after``, oldest first, at most ``limit``:
        those older than the room's tail from the database (one indexed read),
        then the tail's."""
        if limit <= 0:
            return []
        kept = self._tails.get(room)
        first = kept[0].id if kept else self._next
        rows = self._read(
            room, "AND lines.id > ? AND lines.id < ? ORDER BY lines.id LIMIT ?", after, first, limit
        )
        tail = [line for line in self._fresh(kept or ()) if line.id > after]
        return (rows + tail)[:limit]

    def _fresh(self, lines: Iterable[Line]) -> list[Line]:
        """``lines`` without those past their age (the writer deletes them from
        the file; the tail must not show them either)."""
        if self._keep <= 0:
            return list(lines)
        oldest = self._wall() - self._keep
        return [line for line in lines if line.at >= oldest]

    def _read(self, room: str, where: str, *args: int) -> list[Line]:
        sql = f"{_ROW} JOIN rooms ON rooms.id = lines.room WHERE rooms.key = ? {where}"
        try:
            rows = self._reader.execute(sql, (room, room, *args)).fetchall()
        except sqlite3.Error as exc:
            log.warning("history: cannot read %s: %s", self._db.path, exc)
            return []
        return [
            Line(i, r, at / 1000, kind, nick, ident, text)
            for i, r, at, kind, nick, ident, text in rows
        ]

    def flush(self, wait: float = CLOSE_SECONDS) -> None:
        """Wait until the writer has written what was handed over (tests);
        TimeoutError past ``wait`` seconds (a writer that died or hangs)."""
        self.end_turn()
        deadline = time.monotonic() + wait
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"history: the writer did not finish in {wait:g}s")
            time.sleep(0.001)

    def close(self) -> None:
        """Write what is left, stop the writer, close the database."""
        self.end_turn()
        self._queue.put(None)
        self._writer.join(CLOSE_SECONDS)
        if self._writer.is_alive():
            log.error("history: the writer did not finish in %gs; closing anyway", CLOSE_SECONDS)
        self._reader.close()
        if not self._writer.is_alive():
            self._db.close()

    # -- the writer thread: its connection and the queue, nothing else ----------------

    def _write_loop(self) -> None:
        conn = self._db.conn
        room_ids: dict[str, tuple[int, int]] = {}  # key -> (rooms.id, lines kept)
        while True:
            first = self._queue.get()
            batches = [first]
            lines = len(first) if first else 0
            while lines < MAX_BATCH_LINES:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                batches.append(more)
                lines += len(more) if more else 0
            rows = [item for batch in batches if batch for item in batch]
            try:
                if rows:
                    self._commit(conn, rows, room_ids)
                if self.failing:
                    self.failing = False
                    log.info("history: writing %s again", self._db.path)
            except Exception as exc:  # sqlite3.Error, or a value it cannot take: the thread lives
                room_ids.clear()  # the rollback may have undone new rooms
                if not self.failing:
                    self.failing = True
                    log.warning(
                        "history: cannot write %s (%s); chat goes on; lines are not kept"
                        " until it can write again",
                        self._db.path,
                        exc,
                    )
                with self._queued_lock:
                    self.dropped += len(rows)
            finally:
                with self._queued_lock:
                    self._queued -= len(rows)
                for _ in batches:
                    self._queue.task_done()
            if None in batches:
                return

    def _commit(
        self,
        conn: sqlite3.Connection,
        items: list[Line | Seen | Write],
        room_ids: dict[str, tuple[int, int]],
    ) -> None:
        rows = [item for item in items if isinstance(item, Line)]
        marks = [item for item in items if isinstance(item, Seen)]
        writes = [item for item in items if isinstance(item, Write)]
        conn.execute("BEGIN IMMEDIATE")
        try:
            counts: dict[str, int] = {}
            for mark in marks:
                if mark.room not in room_ids:
                    room_ids[mark.room] = self._room_id(conn, mark.room)
            for line in rows:
                if line.room not in room_ids:
                    room_ids[line.room] = self._room_id(conn, line.room)
                counts[line.room] = counts.get(line.room, 0) + 1
            conn.executemany(
                # OR IGNORE: a line had already (a history read again from a
                # cluster's log) must not cost the whole batch.
                "INSERT OR IGNORE INTO lines(id, room, at, kind, nick, ident, text)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (r.id, room_ids[r.room][0], int(r.at * 1000), r.kind, r.nick, r.ident, r.text)
                    for r in rows
                ],
            )
            for key, added in counts.items():
                room_id, kept = room_ids[key]
                kept += added
                if kept > self._max + max(PRUNE_SLACK, self._max // 100):
                    # The oldest go, by id through the index: once per slack
                    # lines of the room, never a scan per insert.
                    cut = conn.execute(
                        "SELECT id FROM lines WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                        (room_id, self._max - 1),
                    ).fetchone()[0]
                    gone = conn.execute(
                        "DELETE FROM lines WHERE room = ? AND id < ?", (room_id, cut)
                    ).rowcount
                    kept -= gone
                conn.execute("UPDATE rooms SET lines = ? WHERE id = ?", (kept, room_id))
                room_ids[key] = (room_id, kept)
            conn.executemany(
                "INSERT INTO seen(who, room, last_id, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(who, room)"
                " DO UPDATE SET last_id = excluded.last_id, at = excluded.at",
                [(m.who, room_ids[m.room][0], m.last_id, int(m.at * 1000)) for m in marks],
            )
            for write in writes:
                conn.execute(write.sql, write.params)
            now = self._wall()
            if self._keep > 0 and (
                self._aged_at is None or now - self._aged_at >= AGE_CHECK_SECONDS
            ):
                self._aged_at = now
                self._prune_by_age(conn, int((now - self._keep) * 1000))
                room_ids.clear()  # counts changed: read again when next needed
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _prune_by_age(conn: sqlite3.Connection, cutoff_ms: int) -> None:
        """Delete lines older than ``cutoff_ms``: ids are in arrival order, so the
        old ones are the first ids, looked at AGE_CHUNK at a time (only lines
        that are going are read), each room's count kept right."""
        while True:
            last = conn.execute(
                "SELECT max(id) FROM (SELECT id, at FROM lines ORDER BY id LIMIT ?) WHERE at < ?",
                (AGE_CHUNK, cutoff_ms),
            ).fetchone()[0]
            if last is None:
                break
            for room_id, gone in conn.execute(
                "SELECT room, count(*) FROM lines WHERE id <= ? GROUP BY room", (last,)
            ).fetchall():
                conn.execute("UPDATE rooms SET lines = lines - ? WHERE id = ?", (gone, room_id))
            deleted = conn.execute("DELETE FROM lines WHERE id <= ?", (last,)).rowcount
            if deleted < AGE_CHUNK:
                break
        # A mark that old starts a catch-up before every line kept: it is as if none.
        conn.execute("DELETE FROM seen WHERE at < ?", (cutoff_ms,))

    @staticmethod
    def _room_id(conn: sqlite3.Connection, key: str) -> tuple[int, int]:
        row = conn.execute("SELECT id, lines FROM rooms WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return int(row[0]), int(row[1])
        cursor = conn.execute("INSERT INTO rooms(key, name) VALUES (?, ?)", (key, key))
        return int(cursor.lastrowid or 0), 0
