"""Accounts, held private messages and scores (chatd.store.accounts): kept in
memory, written through the writer's statements, read back after a restart.
Real SQLite files in tmp_path, and the same behaviour with nothing kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatd.store import accounts as accounts_module
from chatd.store.accounts import (
    MAX_HELD_FROM_ONE,
    MAX_HELD_MESSAGES,
    PRUNE_SECONDS,
    WEEK_SECONDS,
    AccountExists,
    Accounts,
    HeldMessage,
    Scores,
    TooManyAccounts,
    account_who,
)
from chatd.store.database import open_database
from chatd.store.lines import LineStore
from chatd.testing import FakeClock

DAY = 86_400.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_795_000_000.0)


@dataclass
class Kept:
    """What one run of chatd holds: the accounts and scores, and the line store
    whose writer takes their statements (None in memory)."""

    accounts: Accounts
    scores: Scores
    lines: LineStore | None = None
    closed: bool = False

    def flush(self) -> None:
        if self.lines is not None and not self.closed:
            self.lines.flush()

    def close(self) -> None:
        if self.lines is not None and not self.closed:
            self.closed = True
            self.lines.close()


class Opener:
    """Open (and reopen, as after a restart) the store in one file."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.path = path
        self.clock = clock
        self.opened: list[Kept] = []

    def __call__(
        self,
        write: Callable[[str, tuple[object, ...]], None] | None = None,
        *,
        foreign_keys: str = "ON",
    ) -> Kept:
        db = open_database(self.path)
        db.conn.execute(f"PRAGMA foreign_keys = {foreign_keys}")  # ON: as opened
        lines = LineStore(db, 1000, wall=self.clock)
        out = write or lines.write
        scores = Scores.load(db, out, wall=self.clock)
        kept = Kept(Accounts.load(db, out, scores, wall=self.clock), scores, lines)
        self.opened.append(kept)
        return kept

    def reopen(self, kept: Kept) -> Kept:
        kept.close()
        return self()

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        """What the file holds, read beside the store."""
        for kept in self.opened:
            kept.flush()
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def opener(tmp_path: Path, clock: FakeClock) -> Iterator[Opener]:
    opener = Opener(tmp_path / "chatd.db", clock)
    yield opener
    for kept in opener.opened:
        kept.close()


def _nothing(sql: str, params: tuple[object, ...]) -> None:
    pass  # ":memory:": LineStore's place is MemoryLines, whose write keeps nothing


@pytest.fixture(params=["sqlite", "memory"])
def kept(request: pytest.FixtureRequest, opener: Opener, clock: FakeClock) -> Kept:
    if request.param == "memory":
        scores = Scores(_nothing, wall=clock)
        return Kept(Accounts(_nothing, scores, wall=clock), scores)
    return opener()


def _message(
    text: str, at: float = 1_795_000_000.0, sender: str = "bob", **flags: bool
) -> HeldMessage:
    return HeldMessage(
        at, sender, "~" + sender, text, flags.get("notice", False), flags.get("action", False)
    )


# -- accounts -----------------------------------------------------------------------------


def test_an_account_is_found_in_any_case_and_keeps_its_name(kept: Kept, clock: FakeClock) -> None:
    accounts = kept.accounts
    alice = accounts.create("Alice", "scrypt$one")
    assert accounts.get("alice") is alice and accounts.get("ALICE") is alice
    assert (alice.name, alice.hash, alice.created, alice.last_seen, alice.id) == (
        "Alice",
        "scrypt$one",
        clock.now,
        clock.now,
        1,
    )
    with pytest.raises(AccountExists, match="the nickname aLiCe is registered already"):
        accounts.create("aLiCe", "scrypt$two")
    assert accounts.get("bob") is None
    assert len(accounts) == 1 and accounts.get("alice") is alice
    assert accounts.create("bob", "scrypt$b").id == 2


def test_a_new_hash_and_a_touch_change_the_account_and_nothing_else(
    kept: Kept, clock: FakeClock
) -> None:
    accounts = kept.accounts
    alice = accounts.create("Alice", "scrypt$one")
    created = clock.now
    clock.advance(90)
    assert accounts.set_hash("ALICE", "scrypt$two") is True
    clock.advance(30)
    assert accounts.touch("alice") is True
    assert (alice.hash, alice.created, alice.last_seen) == ("scrypt$two", created, created + 120)
    # Deleted while the new hash was made, or while its user was on: nothing to change.
    assert accounts.set_hash("bob", "scrypt$b") is False
    assert accounts.touch("bob") is False


def test_every_account_comes_in_key_order(kept: Kept) -> None:
    for name in ("carol", "Alice", "bob", "Dave"):
        kept.accounts.create(name, "scrypt$x")
    assert [account.name for account in kept.accounts.all()] == ["Alice", "bob", "carol", "Dave"]


def test_an_accounts_repr_never_shows_its_hash(kept: Kept) -> None:
    alice = kept.accounts.create("Alice", "scrypt$16384$8$1$salt$secretkey")
    assert "secretkey" not in repr(alice) and "Alice" in repr(alice)


def test_past_max_accounts_a_registration_is_refused_clearly(
    kept: Kept, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_module, "MAX_ACCOUNTS", 2)
    kept.accounts.create("alice", "scrypt$a")
    assert not kept.accounts.full
    kept.accounts.create("bob", "scrypt$b")
    assert (kept.accounts.full, len(kept.accounts)) == (True, 2)
    with pytest.raises(TooManyAccounts, match="this server keeps 2 accounts, its most"):
        kept.accounts.create("carol", "scrypt$c")
    assert kept.accounts.get("carol") is None
    kept.accounts.delete("bob")
    kept.accounts.create("carol", "scrypt$c")  # room again


# -- held messages -------------------------------------------------------------------------


def test_held_messages_come_back_oldest_first_and_only_once(kept: Kept) -> None:
    accounts = kept.accounts
    accounts.create("Alice", "scrypt$a")
    first = _message("one", 1_795_000_001.0)
    second = _message("two", 1_795_000_002.0, notice=True)
    third = _message("waves", 1_795_000_003.0, action=True)
    for message in (first, second, third):
        assert accounts.hold("alice", message) is True
    assert accounts.held("ALICE") == 3 and accounts.held_total == 3
    assert accounts.take("Alice") == [first, second, third]
    assert accounts.held("alice") == 0 and accounts.held_total == 0
    assert accounts.take("alice") == []
    assert accounts.hold("nobody", first) is False  # no account: nothing kept
    assert accounts.held("nobody") == 0 and accounts.take("nobody") == []


def test_an_account_holds_at_most_max_held_messages(kept: Kept) -> None:
    accounts = kept.accounts
    accounts.create("alice", "scrypt$a")
    accounts.create("bob", "scrypt$b")
    for i in range(MAX_HELD_MESSAGES):  # from many senders: each may keep a few
        assert accounts.hold("alice", _message(f"m{i}", sender=f"s{i % 10}")) is True
    assert accounts.hold("alice", _message("one too many", sender="new")) is False
    assert accounts.held("alice") == MAX_HELD_MESSAGES
    assert accounts.hold("bob", _message("for bob")) is True  # another account's own bound
    texts = [message.text for message in accounts.take("alice")]
    assert texts == [f"m{i}" for i in range(MAX_HELD_MESSAGES)]
    assert accounts.hold("alice", _message("room again")) is True


def test_one_sender_keeps_at_most_max_held_from_one_for_an_account(kept: Kept) -> None:
    accounts = kept.accounts
    accounts.create("alice", "scrypt$a")
    for i in range(MAX_HELD_FROM_ONE):
        assert accounts.hold("alice", _message(f"m{i}", sender="bob")) is True
    assert accounts.hold("alice", _message("more", sender="BOB")) is False  # any case
    assert accounts.hold("alice", _message("mine", sender="carol")) is True


def test_all_accounts_together_hold_at_most_max_held_total(
    kept: Kept, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_module, "MAX_HELD_TOTAL", 3)
    accounts = kept.accounts
    for name in ("alice", "bob"):
        accounts.create(name, "scrypt$x")
    assert [accounts.hold("alice", _message("a")) for _ in range(2)] == [True, True]
    assert accounts.hold("bob", _message("b")) is True
    assert accounts.hold("bob", _message("b2")) is False
    assert accounts.held_total == 3
    accounts.take("alice")
    assert accounts.hold("bob", _message("b2")) is True


# -- delete --------------------------------------------------------------------------------


def test_delete_takes_the_account_its_held_messages_and_its_scores(kept: Kept) -> None:
    accounts, scores = kept.accounts, kept.scores
    accounts.create("Alice", "scrypt$a")
    accounts.hold("alice", _message("for alice"))
    scores.add("jumble", account_who("Alice"), 5)
    scores.add("jumble", "alice", 2)  # a guest once called alice: not the account's
    scores.add("trivia", "@alice", 1)
    assert accounts.delete("ALICE") is True
    assert accounts.get("alice") is None and len(accounts) == 0
    assert accounts.held("alice") == 0 and accounts.held_total == 0
    assert scores.total("jumble", "@alice") == 0 and scores.total("trivia", "@alice") == 0
    assert scores.top("jumble", 5) == [("alice", 2)]
    assert scores.top("jumble", 5, days=7) == [("alice", 2)]
    assert scores.events == 1  # the guest's
    assert accounts.delete("alice") is False
    again = accounts.create("alice", "scrypt$new")  # a new account, with nothing of the old
    assert again.id == 2 and accounts.take("alice") == []


@pytest.mark.parametrize("foreign_keys", ["ON", "OFF"])
def test_a_deleted_account_is_gone_from_the_file(opener: Opener, foreign_keys: str) -> None:
    # The writer's connection has foreign keys on (pms cascade with their
    # account); the deletes say what goes themselves, and do without.
    kept = opener(foreign_keys=foreign_keys)
    kept.accounts.create("Alice", "scrypt$a")
    kept.accounts.create("bob", "scrypt$b")
    kept.accounts.hold("alice", _message("for alice"))
    kept.accounts.hold("bob", _message("for bob"))
    kept.scores.add("jumble", "@alice", 5)
    kept.scores.add("jumble", "@bob", 4)
    kept.accounts.delete("alice")
    assert opener.rows("SELECT key FROM accounts") == [("bob",)]
    assert opener.rows("SELECT text FROM pms") == [("for bob",)]
    assert opener.rows("SELECT who FROM scores") == [("@bob",)]
    assert opener.rows("SELECT who FROM score_events") == [("@bob",)]
    kept = opener.reopen(kept)
    assert kept.accounts.get("alice") is None and kept.scores.total("jumble", "@alice") == 0
    assert kept.accounts.create("alice", "scrypt$new").id == 3  # after bob's
    assert kept.accounts.take("alice") == []
    assert [m.text for m in kept.accounts.take("bob")] == ["for bob"]


# -- the file ------------------------------------------------------------------------------


def test_accounts_and_held_messages_survive_a_restart(opener: Opener, clock: FakeClock) -> None:
    kept = opener()
    kept.accounts.create("Alice", "scrypt$one")
    kept.accounts.create("bob", "scrypt$b")
    clock.advance(60.5)
    kept.accounts.set_hash("alice", "scrypt$two")
    kept.accounts.touch("alice")
    held = [_message("hi", clock.now), _message("waves", clock.now + 1.25, action=True)]
    for message in held:
        kept.accounts.hold("alice", message)
    kept.accounts.hold("bob", _message("notice", clock.now + 2, notice=True))
    before = [(a.name, a.hash, a.created, a.last_seen, a.id) for a in kept.accounts.all()]
    kept = opener.reopen(kept)
    after = [(a.name, a.hash, a.created, a.last_seen, a.id) for a in kept.accounts.all()]
    assert after == before
    assert kept.accounts.get("ALICE") is kept.accounts.all()[0]
    assert kept.accounts.held("alice") == 2 and kept.accounts.held_total == 3
    assert kept.accounts.take("alice") == held
    assert kept.accounts.take("bob") == [_message("notice", clock.now + 2, notice=True)]
    assert kept.accounts.create("carol", "scrypt$c").id == 3  # ids go on from the file's
    kept = opener.reopen(kept)
    assert kept.accounts.held_total == 0  # taken is taken, in the file too
    assert [a.name for a in kept.accounts.all()] == ["Alice", "bob", "carol"]


def test_writes_the_writer_lost_are_mended_by_the_next(opener: Opener) -> None:
    # A batch the writer loses (a full disk) leaves the file behind memory;
    # every later write says the whole truth, so the file catches up, and a
    # lost write never makes a later batch fail.
    losing = True
    kept: Kept | None = None

    def write(sql: str, params: tuple[object, ...]) -> None:
        if not losing:
            assert kept is not None and kept.lines is not None
            kept.lines.write(sql, params)

    kept = opener(write)
    kept.accounts.create("alice", "scrypt$a")  # lost
    kept.scores.add("jumble", "@alice", 3)  # lost
    losing = False
    kept.accounts.hold("alice", _message("kept"))
    kept.scores.add("jumble", "@alice", 2)
    losing = True
    kept.accounts.delete("alice")  # lost: the file keeps alice's row and message
    losing = False
    kept.accounts.create("Alice", "scrypt$again")  # the stale row and its message go
    kept.accounts.hold("alice", _message("for the new alice"))
    kept.flush()
    assert kept.lines is not None and kept.lines.dropped == 0  # no batch failed
    assert opener.rows("SELECT key, name, hash FROM accounts") == [
        ("alice", "Alice", "scrypt$again")
    ]
    assert opener.rows("SELECT text FROM pms") == [("for the new alice",)]
    kept = opener.reopen(kept)
    assert [m.text for m in kept.accounts.take("alice")] == ["for the new alice"]
    # The old account's total (5: the lost 3 mended by the 2 after it) went
    # with the new account's registration, though its delete was lost.
    assert kept.scores.total("jumble", "@alice") == 0


# -- scores --------------------------------------------------------------------------------


def test_scores_all_time_and_over_the_last_days(kept: Kept, clock: FakeClock) -> None:
    scores = kept.scores
    scores.add("jumble", "@alice", 10)  # ten days ago
    scores.add("jumble", "bob", 4)
    clock.advance(10 * DAY)
    scores.add("jumble", "carol", 3)  # three days ago
    scores.add("jumble", "bob", 1)
    clock.advance(3 * DAY)
    scores.add("jumble", "@alice", 2)  # now
    scores.add("jumble", "dave", 2)
    scores.add("trivia", "bob", 50)  # another game
    assert scores.top("jumble", 10) == [
        ("@alice", 12),
        ("bob", 5),
        ("carol", 3),
        ("dave", 2),
    ]
    assert scores.top("jumble", 2) == [("@alice", 12), ("bob", 5)]
    assert scores.top("jumble", 10, days=7) == [
        ("carol", 3),
        ("@alice", 2),
        ("dave", 2),
        ("bob", 1),
    ]
    assert scores.top("jumble", 10, days=1) == [("@alice", 2), ("dave", 2)]  # ties by who
    assert scores.top("jumble", 0) == [] and scores.top("nothing", 5) == []
    assert scores.total("jumble", "bob") == 5 and scores.total("trivia", "bob") == 50
    assert scores.total("jumble", "nobody") == 0
    with pytest.raises(ValueError, match="kept for 7 days"):
        scores.top("jumble", 5, days=8)


def test_scores_survive_a_restart_with_the_weeks_events(opener: Opener, clock: FakeClock) -> None:
    kept = opener()
    kept.scores.add("jumble", "@alice", 10)
    clock.advance(WEEK_SECONDS - PRUNE_SECONDS / 2)
    kept.scores.add("jumble", "bob", 3)  # the file's old events go: none are a week old yet
    kept.scores.add("jumble", "@alice", 1)
    clock.advance(PRUNE_SECONDS)  # the first is past the week, still in the file
    assert opener.rows("SELECT count(*) FROM score_events") == [(3,)]
    kept = opener.reopen(kept)
    assert kept.scores.events == 2  # the week-old one is not even read
    assert kept.scores.top("jumble", 5) == [("@alice", 11), ("bob", 3)]
    assert kept.scores.top("jumble", 5, days=7) == [("bob", 3), ("@alice", 1)]


def test_old_score_events_go_from_memory_at_once_and_from_the_file_hourly(
    opener: Opener, clock: FakeClock
) -> None:
    kept = opener()
    kept.scores.add("jumble", "old", 1)  # the first add deletes old ones from the file
    clock.advance(WEEK_SECONDS - PRUNE_SECONDS / 2)
    kept.scores.add("jumble", "middle", 1)  # "old" is not a week old yet
    clock.advance(PRUNE_SECONDS / 4)
    kept.scores.add("jumble", "new", 1)
    assert kept.scores.events == 3
    clock.advance(PRUNE_SECONDS / 2)  # "old" is a week old: gone from memory...
    assert kept.scores.top("jumble", 5, days=7) == [("middle", 1), ("new", 1)]
    assert kept.scores.events == 2
    events = "SELECT who FROM score_events ORDER BY id"
    assert opener.rows(events) == [("old",), ("middle",), ("new",)]  # ...not yet from the file
    clock.advance(PRUNE_SECONDS / 2)  # an hour since the last delete
    kept.scores.add("jumble", "newest", 1)
    assert opener.rows(events) == [("middle",), ("new",), ("newest",)]
    assert kept.scores.top("jumble", 1) == [("middle", 1)]  # all-time keeps every total
    assert kept.scores.total("jumble", "old") == 1


def test_memory_keeps_at_most_max_score_events(
    opener: Opener, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_module, "MAX_SCORE_EVENTS", 3)
    kept = opener()
    for i in range(5):
        kept.scores.add("jumble", "alice" if i < 2 else "bob", 1)
    assert kept.scores.events == 3
    assert kept.scores.top("jumble", 5, days=7) == [("bob", 3)]  # only the newest count
    assert kept.scores.top("jumble", 5) == [("bob", 3), ("alice", 2)]
    clock.advance(PRUNE_SECONDS)
    kept.scores.add("jumble", "carol", 1)  # the file's are cut to the bound too
    assert opener.rows("SELECT who FROM score_events ORDER BY id") == [
        ("bob",),
        ("bob",),
        ("carol",),
    ]


def test_past_max_scores_whoever_scored_least_recently_is_forgotten(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_module, "MAX_SCORES", 2)
    kept = opener()
    kept.scores.add("jumble", "alice", 5)
    kept.scores.add("jumble", "bob", 9)
    kept.scores.add("jumble", "alice", 1)  # alice scored since bob did
    kept.scores.add("trivia", "carol", 1)
    assert len(kept.scores) == 2
    assert kept.scores.top("jumble", 5) == [("alice", 6)]
    assert opener.rows("SELECT game, who, total FROM scores ORDER BY who") == [
        ("jumble", "alice", 6),
        ("trivia", "carol", 1),
    ]
    kept = opener.reopen(kept)
    assert kept.scores.total("jumble", "alice") == 6 and kept.scores.total("jumble", "bob") == 0


def test_a_file_with_more_than_max_scores_loads_the_most_recent(
    opener: Opener, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = opener()
    for who in ("alice", "bob", "carol"):
        kept.scores.add("jumble", who, 1)
        clock.advance(1)
    kept.scores.add("jumble", "alice", 1)  # bob now scored least recently
    kept.close()
    monkeypatch.setattr(accounts_module, "MAX_SCORES", 2)  # as a chatd with a lower bound
    kept = opener()
    assert kept.scores.top("jumble", 5) == [("alice", 2), ("carol", 1)]
    kept.scores.add("jumble", "dave", 1)  # and the least recent of those goes first
    assert kept.scores.top("jumble", 5) == [("alice", 2), ("dave", 1)]
