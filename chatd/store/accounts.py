"""Accounts, the private messages kept for them while they are away, and game
scores: all held in memory, every change handed to the writer.

Rule: the loop never waits for the disk. Everything here is read once, at
startup (:meth:`Accounts.load`, :meth:`Scores.load`: startup may read the
disk), and from then on memory is the truth: a change is made in memory at
once and handed, as SQL with parameters, to ``write`` (LineStore.write: one
statement for the writer thread's next transaction). With ``[store] path =
":memory:"`` the same classes run with nothing loaded and a ``write`` that
keeps nothing.

A batch the writer loses (the disk full, or far behind: chatd.store.lines)
loses the changes in it, and the file no longer matches memory. So each
write says the whole truth of what it touches rather than a step from the
file's last state: an account's row is written whole (any older row of that
nickname going first), a score's total is written, not added to. The next
change to an account or a score mends the file; what no later change
touches (a message taken while the writer was failing comes back at the next
start; one held then is gone) is what a failing disk loses.

Account ids are given here, in memory, and never twice in one run: a held
message (``pms.to_account``) can only ever reach the account it was held for.
A delete names the held messages that go with an account itself, rather than
lean on the schema's ON DELETE CASCADE (which acts only while ``PRAGMA
foreign_keys`` is on, as it is on the writer's connection today).

A hash is a string to keep and hand back; nothing here logs it, or shows it.
"""

from __future__ import annotations

import collections
import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from chatd.store.database import Database

#: How a change reaches the file: LineStore.write, or a no-op in ":memory:".
Write = Callable[[str, tuple[object, ...]], None]

#: Accounts at most. All are in memory (about 400 bytes each, measured: 20 MB
#: at the bound), and a community this server can hold at once (about a thousand on
#: line, measured) is far smaller; past it, a new registration is refused.
MAX_ACCOUNTS: Final = 50_000
#: Private messages kept for one offline account: a long absence's worth from
#: friends, and a bound on what one sender can pile up for one account.
MAX_HELD_MESSAGES: Final = 100
#: Private messages one sender may have kept for one account: enough to say
#: what it had to; not enough for one sender to fill an account's box.
MAX_HELD_FROM_ONE: Final = 20
#: Private messages kept for all accounts together: at the longest line (about
#: 1.2 KB each in memory, measured) 24 MB, whatever the number of accounts.
MAX_HELD_TOTAL: Final = 20_000
#: The span of "this week" in the scores: score events older than this are
#: dropped from memory and, at most once every PRUNE_SECONDS, from the file.
WEEK_SECONDS: Final = 7 * 86_400.0
#: How often at most the file's week-old score events are deleted: an hour's
#: events more in the file cost nothing, a delete per score would.
PRUNE_SECONDS: Final = 3600.0
#: Score events kept in memory (and, after each prune, in the file) at most:
#: a round won every six seconds for a week, about 9 MB (90 bytes each,
#: measured). Past it the oldest
#: go first, and the week's scores count only the newest.
MAX_SCORE_EVENTS: Final = 100_000
#: (game, who) totals kept at most: every guest nickname that ever scored is
#: one. Past it, whoever scored least recently is forgotten (about 350 bytes
#: each, measured: 35 MB at the bound).
MAX_SCORES: Final = 100_000

_DAY: Final = 86_400.0


def _key(nick: str) -> str:
    # The hub's fold (chatd.core.hub): nicknames are ASCII, so lower() is complete.
    return nick.lower()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def account_who(nick: str) -> str:
    """What the scores call the account ``nick``: ``'@'`` and its key. (A
    guest's scores go under its nickname as it is, which has no ``'@'``.)"""
    return "@" + _key(nick)


@dataclass(slots=True)
class Account:
    """One account. Change it only through :class:`Accounts` (which writes it)."""

    name: str  # the nickname as registered, its case kept
    hash: str  # chatd.core.passwords' format; never logged, never shown
    created: float  # seconds since the epoch
    last_seen: float
    id: int  # accounts.id: given in memory, never twice in one run

    def __repr__(self) -> str:  # a repr in a log or a traceback shows no hash
        return f"Account(name={self.name!r}, id={self.id})"


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A private message kept for an account while it is offline."""

    at: float  # seconds since the epoch
    sender: str
    sender_ident: str
    text: str
    notice: bool
    action: bool  # a private /me


class AccountExists(ValueError):
    """:meth:`Accounts.create` of a nickname that has an account already."""


class TooManyAccounts(ValueError):
    """:meth:`Accounts.create` when MAX_ACCOUNTS are kept already."""


class Accounts:
    """Every account and its held messages, in memory; changes go to ``write``.

    :meth:`delete` also forgets the account's scores in ``scores`` (they are
    the account's own, under :func:`account_who`).
    """

    def __init__(
        self, write: Write, scores: Scores, *, wall: Callable[[], float] = time.time
    ) -> None:
        self._write = write
        self._scores = scores
        self._wall = wall
        self._accounts: dict[str, Account] = {}
        self._held: dict[str, collections.deque[HeldMessage]] = {}  # key -> oldest first
        self._held_total = 0
        self._next_id = 1

    @classmethod
    def load(
        cls,
        db: Database,
        write: Write,
        scores: Scores,
        *,
        wall: Callable[[], float] = time.time,
    ) -> Accounts:
        """Every account and held message in ``db`` (at startup, before the
        writer has anything to write)."""
        accounts = cls(write, scores, wall=wall)
        by_id: dict[int, str] = {}
        rows = db.conn.execute(
            "SELECT id, key, name, hash, created, last_seen FROM accounts ORDER BY id"
        )
        for id_, key, name, hash_, created, last_seen in rows:
            accounts._accounts[key] = Account(name, hash_, created / 1000, last_seen / 1000, id_)
            by_id[id_] = key
            accounts._next_id = max(accounts._next_id, id_ + 1)
        rows = db.conn.execute(
            "SELECT to_account, at, sender, sender_ident, text, notice, action FROM pms"
            " ORDER BY to_account, id"
        )
        for to, at, sender, ident, text, notice, action in rows:
            key = by_id.get(to)
            if key is None:
                continue  # an account deleted by hand: its messages are nobody's
            message = HeldMessage(at / 1000, sender, ident, text, bool(notice), bool(action))
            accounts._held.setdefault(key, collections.deque()).append(message)
            accounts._held_total += 1
        return accounts

    # -- accounts -------------------------------------------------------------------

    def get(self, nick: str) -> Account | None:
        """The account of ``nick`` (any case), or None."""
        return self._accounts.get(_key(nick))

    @property
    def full(self) -> bool:
        """Whether MAX_ACCOUNTS are kept (ask before hashing a new password)."""
        return len(self._accounts) >= MAX_ACCOUNTS

    def create(self, nick: str, hash: str) -> Account:
        """A new account for ``nick`` with password hash ``hash``. Raises
        AccountExists, or TooManyAccounts past MAX_ACCOUNTS."""
        key = _key(nick)
        if key in self._accounts:
            raise AccountExists(f"the nickname {nick} is registered already")
        if self.full:
            raise TooManyAccounts(
                f"this server keeps {MAX_ACCOUNTS} accounts, its most;"
                " an operator can delete unused ones (chatd admin account delete NAME)"
            )
        now = self._wall()
        account = Account(nick, hash, now, now, self._next_id)
        self._next_id += 1
        self._accounts[key] = account
        # A file that kept messages for this id (ids given again after a
        # restart that followed a delete) must not hand them to the new account.
        self._write("DELETE FROM pms WHERE to_account = ?", (account.id,))
        self._save(key, account)
        # Nor the scores of an older account of that nickname (its delete lost).
        self._scores.forget(account_who(key))
        return account

    def put(self, nick: str, hash: str, created: float) -> Account:
        """``nick``'s account as another node of a cluster has it: made (past
        MAX_ACCOUNTS too: the cluster's count is the cluster's), or given its
        hash."""
        account = self.get(nick)
        if account is not None:
            account.hash = hash
        else:
            account = Account(nick, hash, created, created, self._next_id)
            self._next_id += 1
            self._accounts[_key(nick)] = account
            self._write("DELETE FROM pms WHERE to_account = ?", (account.id,))
            self._scores.forget(account_who(_key(nick)))
        self._save(_key(nick), account)
        return account

    def set_hash(self, nick: str, hash: str) -> bool:
        """Give ``nick``'s account a new password hash; False if it has none
        (deleted while the new hash was being made)."""
        account = self.get(nick)
        if account is None:
            return False
        account.hash = hash
        self._save(_key(nick), account)
        return True

    def touch(self, nick: str) -> bool:
        """``nick``'s account is seen now (at identify, and at quit); False if
        it has none (deleted while its user was on)."""
        account = self.get(nick)
        if account is None:
            return False
        account.last_seen = self._wall()
        self._save(_key(nick), account)
        return True

    def delete(self, nick: str) -> bool:
        """Delete ``nick``'s account, its held messages and its scores; False
        if it has none."""
        key = _key(nick)
        account = self._accounts.pop(key, None)
        if account is None:
            return False
        self._held_total -= len(self._held.pop(key, ()))
        # By key, not only by id: a row the writer lost the delete of goes too.
        self._write(
            "DELETE FROM pms WHERE to_account IN (SELECT id FROM accounts WHERE key = ?)"
            " OR to_account = ?",
            (key, account.id),
        )
        self._write("DELETE FROM accounts WHERE key = ? OR id = ?", (key, account.id))
        self._scores.forget(account_who(key))
        return True

    def all(self) -> list[Account]:
        """Every account, by key."""
        return [self._accounts[key] for key in sorted(self._accounts)]

    def __len__(self) -> int:
        return len(self._accounts)

    def _save(self, key: str, account: Account) -> None:
        """Write ``account`` whole: whatever the file has for its id or its
        nickname (an older row whose delete the writer lost) becomes this."""
        self._write(
            "DELETE FROM pms WHERE to_account IN"
            " (SELECT id FROM accounts WHERE key = ? AND id != ?)",
            (key, account.id),
        )
        self._write("DELETE FROM accounts WHERE key = ? AND id != ?", (key, account.id))
        self._write(
            "INSERT INTO accounts(id, key, name, hash, created, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " key = excluded.key, name = excluded.name, hash = excluded.hash,"
            " created = excluded.created, last_seen = excluded.last_seen",
            (
                account.id,
                key,
                account.name,
                account.hash,
                _ms(account.created),
                _ms(account.last_seen),
            ),
        )

    # -- messages held for offline accounts ----------------------------------------------

    def hold(self, nick: str, message: HeldMessage) -> bool:
        """Keep ``message`` for ``nick``'s account; False (nothing kept) if it
        has no account, holds MAX_HELD_MESSAGES already, or all accounts
        together hold MAX_HELD_TOTAL."""
        key = _key(nick)
        account = self._accounts.get(key)
        if account is None:
            return False
        held = self._held.get(key)
        if held is None:
            held = collections.deque()
        if len(held) >= MAX_HELD_MESSAGES or self._held_total >= MAX_HELD_TOTAL:
            return False
        sender = _key(message.sender)
        if sum(1 for kept in held if _key(kept.sender) == sender) >= MAX_HELD_FROM_ONE:
            return False
        self._held[key] = held
        held.append(message)
        self._held_total += 1
        # The account row first (the writer may have lost it): the message
        # then always has an account to belong to.
        self._save(key, account)
        self._write(
            "INSERT INTO pms(to_account, at, sender, sender_ident, text, notice, action)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                account.id,
                _ms(message.at),
                message.sender,
                message.sender_ident,
                message.text,
                int(message.notice),
                int(message.action),
            ),
        )
        return True

    def held_for(self, nick: str) -> list[HeldMessage]:
        """The messages ``nick``'s account holds, oldest first (still held)."""
        return list(self._held.get(_key(nick), ()))

    def held(self, nick: str) -> int:
        """How many messages ``nick``'s account holds."""
        return len(self._held.get(_key(nick), ()))

    @property
    def held_total(self) -> int:
        """How many messages all accounts hold (stats)."""
        return self._held_total

    def take(self, nick: str) -> list[HeldMessage]:
        """The messages held for ``nick``'s account, oldest first; none are
        held after (in memory now, in the file at the writer's next turn)."""
        key = _key(nick)
        held = self._held.pop(key, None)
        account = self._accounts.get(key)
        if not held or account is None:
            return []
        self._held_total -= len(held)
        self._write("DELETE FROM pms WHERE to_account = ?", (account.id,))
        return list(held)


class _Event(NamedTuple):
    at: float
    game: str
    who: str
    points: int


class Scores:
    """Every game's all-time totals, and its score events of the last
    WEEK_SECONDS, in memory; changes go to ``write``.

    ``who`` is :func:`account_who` for an account (``'@alice'``), a guest's
    nickname otherwise (the caller says which: a guest is labelled as one).
    """

    def __init__(self, write: Write, *, wall: Callable[[], float] = time.time) -> None:
        self._write = write
        self._wall = wall
        self._totals: dict[str, dict[str, int]] = {}  # game -> who -> all-time
        #: Every (game, who) with a total, whoever scored least recently first.
        self._order: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._events: collections.deque[_Event] = collections.deque()  # oldest first
        self._week: dict[str, dict[str, int]] = {}  # game -> who -> sum of _events
        self._whos: collections.Counter[str] = collections.Counter()  # who -> events kept
        self._pruned_at: float | None = None  # when old events were last deleted from the file
        #: (game, count, week) -> top(): ranking every total is O(players), so
        #: it is done once per change, not once per /scores.
        self._tops: dict[tuple[str, int, bool], list[tuple[str, int]]] = {}

    @classmethod
    def load(cls, db: Database, write: Write, *, wall: Callable[[], float] = time.time) -> Scores:
        """Every total in ``db``, and the newest events of the last week (at
        startup, before the writer has anything to write)."""
        scores = cls(write, wall=wall)
        rows = db.conn.execute(
            "SELECT game, who, total FROM scores ORDER BY updated DESC LIMIT ?", (MAX_SCORES,)
        )
        for game, who, total in reversed(rows.fetchall()):  # the least recent first
            scores._totals.setdefault(game, {})[who] = total
            scores._order[game, who] = None
        since = _ms(wall() - WEEK_SECONDS)
        rows = db.conn.execute(
            "SELECT at, game, who, points FROM score_events WHERE at >= ?"
            " ORDER BY at DESC, id DESC LIMIT ?",
            (since, MAX_SCORE_EVENTS),
        )
        for at, game, who, points in reversed(rows.fetchall()):
            scores._count(_Event(at / 1000, game, who, points))
        return scores

    def add(self, game: str, who: str, points: int) -> None:
        """``who`` scored ``points`` in ``game`` now."""
        now = self._wall()
        self._tops.clear()
        totals = self._totals.setdefault(game, {})
        total = totals[who] = totals.get(who, 0) + points
        self._order[game, who] = None
        self._order.move_to_end((game, who))
        self._write(
            "INSERT INTO scores(game, who, total, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(game, who) DO UPDATE SET total = excluded.total,"
            " updated = excluded.updated",
            (game, who, total, _ms(now)),
        )
        self._write(
            "INSERT INTO score_events(game, who, at, points) VALUES (?, ?, ?, ?)",
            (game, who, _ms(now), points),
        )
        self._count(_Event(now, game, who, points))
        while len(self._order) > MAX_SCORES:
            (old_game, old_who), _ = self._order.popitem(last=False)
            del self._totals[old_game][old_who]
            self._write("DELETE FROM scores WHERE game = ? AND who = ?", (old_game, old_who))
        self._prune(now)

    def total(self, game: str, who: str) -> int:
        """``who``'s all-time total in ``game`` (0 if none)."""
        return self._totals.get(game, {}).get(who, 0)

    def top(self, game: str, count: int, *, days: float | None = None) -> list[tuple[str, int]]:
        """The ``count`` best (who, points) of ``game``, highest first, ties by
        who: all-time, or over the last ``days`` days (7 at most: what is kept)."""
        if count <= 0:
            return []
        key = (game, count, days is not None)
        if days is None:
            cached = self._tops.get(key)
            if cached is not None:
                return cached
            sums = self._totals.get(game, {})
        else:
            span = days * _DAY
            if span > WEEK_SECONDS:
                raise ValueError(f"scores by time are kept for {WEEK_SECONDS / _DAY:g} days")
            now = self._wall()
            self._prune(now)
            if span == WEEK_SECONDS:
                cached = self._tops.get(key)
                if cached is not None:
                    return cached
                sums = self._week.get(game, {})
            else:
                sums = _sum(e for e in self._events if e.game == game and e.at >= now - span)
        best = heapq.nsmallest(count, sums.items(), key=lambda item: (-item[1], item[0]))
        ranked = [(who, points) for who, points in best if points]
        if days is None or days * _DAY == WEEK_SECONDS:
            self._tops[key] = ranked
        return ranked

    def forget(self, who: str) -> None:
        """Every score of ``who``, in every game, goes (an account deleted)."""
        self._tops.clear()
        for game, totals in self._totals.items():
            if totals.pop(who, None) is not None:
                del self._order[game, who]
        if self._whos.pop(who, 0):  # the scan only for someone with events kept
            self._events = collections.deque(e for e in self._events if e.who != who)
            for sums in self._week.values():
                sums.pop(who, None)
        self._write("DELETE FROM scores WHERE who = ?", (who,))
        self._write("DELETE FROM score_events WHERE who = ?", (who,))

    def __len__(self) -> int:
        """(game, who) totals kept (stats)."""
        return len(self._order)

    @property
    def events(self) -> int:
        """Score events kept in memory (stats)."""
        return len(self._events)

    def _count(self, event: _Event) -> None:
        self._events.append(event)
        self._whos[event.who] += 1
        self._add_week(event, event.points)
        while len(self._events) > MAX_SCORE_EVENTS:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        old = self._events.popleft()
        self._add_week(old, -old.points)
        self._whos[old.who] -= 1
        if not self._whos[old.who]:
            del self._whos[old.who]

    def _add_week(self, event: _Event, points: int) -> None:
        self._tops.clear()
        sums = self._week.setdefault(event.game, {})
        left = sums.get(event.who, 0) + points
        if left:
            sums[event.who] = left
        else:
            sums.pop(event.who, None)

    def _prune(self, now: float) -> None:
        """Events past the week go from memory now, and from the file at most
        once every PRUNE_SECONDS (by age, and past MAX_SCORE_EVENTS)."""
        oldest = now - WEEK_SECONDS
        while self._events and self._events[0].at < oldest:
            self._drop_oldest()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        self._write("DELETE FROM score_events WHERE at < ?", (_ms(oldest),))
        self._write(
            "DELETE FROM score_events WHERE id <="
            " (SELECT id FROM score_events ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (MAX_SCORE_EVENTS,),
        )


def _sum(events: Iterable[_Event]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for event in events:
        sums[event.who] = sums.get(event.who, 0) + event.points
    return sums
