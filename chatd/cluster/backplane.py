"""The backplane: this node's two Redis connections, and the one log every
node's entries go through.

Rule: the reactor owns the sockets (``dial`` is its ``connect``); RESP is
parsed sans-IO (chatd.wire.resp, on hiredis's Reader); nothing here waits on
Redis: every command is queued, pipelined, and its reply taken by a callback
in the order Redis answers. One connection commands, one subscribes.

How the nodes form one chat::

    node A's loop iteration --one entry (codec)--> EVALSHA sequence script:
        INCR seq; XADD log <seq>-0; PUBLISH channel "<seq> <entry>"
    every node (A too) <--subscription, in seq order-- Redis
        -> hub.from_peers(entry): the changes applied, the broadcasts
           rendered once per format for this node's readers

Every entry gets the next number of one sequence, so every node sees the
chat in one order (a room's lines in particular); a node that sees a number
skipped fetches the missing entries from the log (the stream) before it
delivers the next, and so does one that reconnects. A node tells the others
all it has (``sync``) when it joins and after every reconnect, and answers
every node's ``hello`` with it. A heartbeat script, run every third of
``node_timeout``, keeps this node in the node set and, atomically, takes out
any node whose heartbeat is overdue and logs ``lost`` for it: exactly one
entry per lost node, whoever notices first.

While Redis is out of reach every node serves its own users alone: their
lines are delivered at once to this node's readers only, the users are told
once, and the node dials again with backoff.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from chatd.cluster import codec
from chatd.cluster.codec import BadEntry, Broadcast, Entry
from chatd.core.link import Link
from chatd.core.timers import Timer, Timers
from chatd.wire import resp
from chatd.wire.resp import RedisAddress, RespError, RespReader

log = logging.getLogger(__name__)

#: Entries the log (a Redis stream) keeps: what a node that was away from
#: Redis can catch up on. 100,000 entries of ~200 bytes is ~20 MB in Redis,
#: and minutes to hours of a busy chat; past it a returning node's users miss
#: lines (it says how many).
LOG_ENTRIES: Final = 100_000
#: The most one entry is, encoded (a busy iteration's is split; one line
#: longer than this goes alone): small enough that a catch-up batch of them is
#: one bounded reply.
MAX_ENTRY_BYTES: Final = 256 * 1024
#: Entries fetched per XRANGE while catching up: with entries of at most
#: MAX_ENTRY_BYTES (or one line of up to 1 MiB, [limits] max_line_bytes'
#: most, escaped), a batch stays under REPLY_BYTES; 100,000 entries are
#: 6,250 round trips, a second or two.
BACKFILL_BATCH: Final = 16
#: The most one reply from Redis may be: BACKFILL_BATCH entries of twice the
#: largest line there can be, with room to spare. Redis is this node's own
#: service, not a peer to distrust, but a bound it is.
REPLY_BYTES: Final = 64 * 1024 * 1024
#: What Redis keeps for an account deleted (beside the others, in one hash).
TOMBSTONE: Final = "-"
#: Users per ``sync`` change: about 50 KB of JSON, well inside an entry.
SYNC_USERS: Final = 500
#: Entries held while waiting for missing ones to arrive from the log: a
#: node this far behind starts again from the log instead.
MAX_HELD: Final = 50_000
#: Backoff between attempts to reach Redis: from a tenth of a second,
#: doubling, to 30 seconds at most, each spread by +-50% so that nodes do not
#: all come back to a restarted Redis in the same instant.
BACKOFF_FIRST: Final = 0.1
BACKOFF_MOST: Final = 30.0

SEQUENCE: Final = b"""
local first = 0
for i = 3, #ARGV do
  local seq = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[i])
  redis.call('PUBLISH', ARGV[1], seq .. ' ' .. ARGV[i])
  if first == 0 then first = seq end
end
return first
"""

#: KEYS: node set, seq, log. ARGV: node, timeout ms, channel, log length.
#: Renews this node's deadline and logs ``lost`` for every node past its own.
HEARTBEAT: Final = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  local seq = redis.call('INCR', KEYS[2])
  local entry = '{"o":"*","n":0,"c":[["lost",' .. cjson.encode(node) .. ']]}'
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'e', entry)
  redis.call('PUBLISH', ARGV[3], seq .. ' ' .. entry)
end
return #dead
"""

#: KEYS: seq, log. ARGV: the floor, channel, log length, an empty entry.
#: Where the log is now, raised first to this node's floor if it is below:
#: a node's history is numbered by the log's positions, and a Redis that
#: started again empty must not number its entries as lines kept already.
#: The raise is one empty entry at the floor, which says the positions
#: before it were skipped (``after``), not lost.
FLOOR: Final = b"""
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if now < floor then
  redis.call('SET', KEYS[1], floor)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], floor .. '-0', 'e', ARGV[4], 'after', now)
  redis.call('PUBLISH', ARGV[2], floor .. ' ' .. ARGV[4])
  now = floor
end
return now
"""

#: What FLOOR logs at the floor: an entry of nothing (every node reads it).
SKIP_ENTRY: Final = '{"o":"*","n":0}'

#: Entries read for history per XRANGE: a reply is at most 1 MiB, some
#: thousands of lines, well inside what the store's writer queues
#: (MAX_QUEUED_LINES), so that history never crowds out the live chat's lines.
HISTORY_BATCH: Final = 4
#: Seconds a reading of history waits while the store's writer is busy,
#: and (times 20) after Redis refused a read, before it asks again.
HISTORY_PAUSE: Final = 0.05

#: KEYS: node set. ARGV: node. A node that stops on purpose leaves the set
#: (its users' quits are in the log already).
LEAVE: Final = b"return redis.call('ZREM', KEYS[1], ARGV[1])"

#: KEYS: nickname leases. ARGV: the lease in ms, then each key's owner. Takes
#: or renews each lease for its owner (one that has expired, or was lost with
#: a restarted Redis, is taken again) and answers the positions (1-based) of
#: those someone else holds: what a claim, a renewal and a re-take after an
#: outage all are.
LEASE: Final = b"""
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  elseif not owner then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

#: KEYS: nickname leases. ARGV: each key's owner. Gives up the leases still
#: held by their owner (compare-and-delete: never someone else's).
RELEASE: Final = b"""
local freed = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    freed = freed + redis.call('DEL', key)
  end
end
return freed
"""

#: Leases renewed per script call: one call over 10,000 keys would hold
#: Redis (single-threaded) for some 25 ms; 500 keys is about a millisecond.
LEASE_BATCH: Final = 500


def _sha(script: bytes) -> str:
    """What SCRIPT LOAD answers for ``script``: no round trip needed to know it."""
    return hashlib.sha1(script).hexdigest()  # Redis names scripts by their SHA-1


class ClusterHub(Protocol):
    """What the backplane calls on the hub (chatd.core.hub.Hub is it)."""

    def merge_accounts(self, shared: dict[str, list[Any] | None]) -> list[list[Any]]: ...

    def from_peers(self, entry: Entry) -> None: ...

    def lease_lost(self, user_id: int, why: str) -> None:
        """This node's user ``user_id`` may no longer hold its nickname: another
        node's user has it (``why`` says so), or this node has been out of
        touch too long to know (it is fenced)."""
        ...

    def own_state(self) -> tuple[list[list[Any]], list[list[Any]]]: ...

    def from_history(self, entry: Entry) -> None:
        """An entry from before this node joined: kept as history only."""
        ...

    def history_floor(self) -> int:
        """The log position below which the log must not number its entries
        (this node's newest line id, over codec.LINE_SPAN)."""
        ...

    def history_busy(self) -> bool:
        """The store has much to write: reading history waits a little."""
        ...

    def reading_history(self, reading: bool) -> None:
        """A reading of history begins, or has ended (what was held back
        for it is applied then)."""
        ...

    @property
    def log_position(self) -> tuple[str, int]:
        """Where this node's store has the log to: (Redis run_id, position)."""
        ...

    @log_position.setter
    def log_position(self, value: tuple[str, int]) -> None: ...

    def tell_here(self, text: str) -> None:
        """Tell this node's named users ``text`` (no other node's)."""
        ...


#: dial(host, port, handler, name) -> the link: the reactor's connect.
Dial = Callable[[str, int, Any, str], Link]


class _Conn:
    """One Redis connection: its bytes go through a RESP reader, its replies
    to the backplane. A reconnect is a new one."""

    def __init__(self, plane: Backplane) -> None:
        self.plane = plane
        self.reader = RespReader(REPLY_BYTES)
        self.link: Link | None = None
        self.closed = False

    def send(self, *args: str | bytes | int | float) -> None:
        if self.link is not None and not self.closed:
            self.link.send(resp.command(*args))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.link is not None:
                self.link.close()

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.reader.feed(data)
            replies = self.reader.replies()
        except RespError as exc:
            self.plane._down(self, f"bad reply from Redis ({exc})")
            return
        for reply in replies:
            self.plane._reply(self, reply)
            if self.plane._gone(self):
                return  # dropped on that reply: the rest are of no use


class _Side:
    """The reactor's Handler of one of the two connections (command or
    subscriber), across reconnects: the session is the connection of the
    moment (the reactor keeps one Outbound, with its counts, per handler)."""

    def __init__(self, plane: Backplane) -> None:
        self.plane = plane
        self.dialling: _Conn | None = None

    def connect(self, link: Link) -> _Conn:
        conn = self.dialling if self.dialling is not None else _Conn(self.plane)
        self.dialling = None
        conn.link = link
        return conn

    def receive_line(self, conn: _Conn, data: bytes) -> None:
        conn.receive(data)

    def line_too_long(self, conn: _Conn, limit: int) -> None:
        pass  # no lines here: the framing hands over each read as it came

    def slowed(self, conn: _Conn, rate: float) -> None:
        pass  # no flood control on a connection this node opened

    def refused(self, reason: str) -> bytes:
        return b""

    def disconnect(self, conn: _Conn, reason: str) -> None:
        if not conn.closed:
            conn.closed = True
            self.plane._down(conn, reason)

    def shutdown(self, message: str) -> None:
        self.plane.shutdown()


class Backplane:
    """The hub's Peers in a cluster: what this node does goes out as one log
    entry per loop iteration, and every node's entries come in, in order."""

    def __init__(
        self,
        address: RedisAddress,
        node: str,
        timers: Timers,
        dial: Dial,
        *,
        prefix: str = "chatd:",
        node_timeout: float = 10.0,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.node = node
        self.timers = timers
        self.dial = dial
        self.node_timeout = node_timeout
        self.rng = rng if rng is not None else random.Random()
        self.wall = wall
        self.hub: ClusterHub | None = None  # set once the hub is made with this as its peers
        self._seq_key = prefix + "seq"
        self._log_key = prefix + "log"
        self._nodes_key = prefix + "nodes"
        self._channel = prefix + "events"
        self._accounts_key = prefix + "accounts"
        self._cmd: _Conn | None = None
        self._sub: _Conn | None = None
        self._cmd_side = _Side(self)
        self._sub_side = _Side(self)
        #: What each command sent on the command connection waits for, in order.
        self._replies: collections.deque[Callable[[Any], None]] = collections.deque()
        self._sub_hello = 0  # replies to AUTH/SELECT still due on the subscriber
        self._loaded = False  # the scripts are loaded on the command connection
        self._subscribed = False
        self._entry = Entry(node, 0)  # this iteration's, not sent yet
        self._serial = 0  # this node's entries numbered, since it started
        self._delivered_own = 0  # its latest entry delivered here (by the log, or at once)
        self._unacked: collections.deque[Entry] = collections.deque()
        self._last_seq = 0  # the log's latest entry applied here
        self._run_id = ""  # which Redis (a restarted one has a new one, and a new log)
        self._based = False  # _last_seq is this Redis's (else entries wait)
        self._fetching = False
        self._held: dict[int, bytes] = {}  # seq -> entry, arrived ahead of a missing one
        #: The log positions still to read for history (from, to: none when
        #: from > to): what was said before this node joined, once per run.
        self._history = (1, 0)
        self._history_read = False  # asked for this run already
        self._reading = False  # the hub was told a reading began, and not that it ended
        self._history_pause: Timer | None = None
        #: Redis lost the scripts: entries sent before that are being sent
        #: again (up to serial _reload_until); newer ones wait behind them.
        self._reloading = False
        self._reload_until = 0
        self._after_reload: list[Entry] = []
        self._scripts_missing = False  # loading them again, after a NOSCRIPT
        self.history_entries = 0  # entries read for history
        self._up = False
        self._told_down = False
        self._attempts = 0
        self._redial: Timer | None = None
        self._beat: Timer | None = None
        self._beat_due = 0  # heartbeat replies and PONGs not back yet
        self._stopping = False
        #: Nickname leases: folded nick -> (this node's user id, owner token),
        #: and the claims waiting for Redis's answer: folded nick -> (id, then).
        self._token = f"{self.rng.getrandbits(48):012x}"  # this process, not a restart of it
        self._leases: dict[str, tuple[int, str]] = {}
        self._claims: dict[str, tuple[int, Callable[[bool | None], None]]] = {}
        self._lease_prefix = prefix + "nick:"
        #: Until when (timers' clock) this node may count on its leases: the
        #: time its last renewal that Redis confirmed was sent, plus the lease.
        self._valid_until = 0.0
        self._fence: Timer | None = None
        self.fenced = 0  # times it had to give up its users' nicknames
        #: For operators: entries out and in, entries fetched from the log to
        #: fill a gap or catch up, times the connection to Redis was lost.
        self.entries_out = 0
        self.entries_in = 0
        self.fetched = 0
        self.missed = 0
        self.outages = 0
        self.state = "connecting"

    # -- what the hub calls (Peers) -------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up

    def change(self, change: list[Any]) -> None:
        self._entry.changes.append(change)

    def broadcast(self, broadcast: Broadcast) -> None:
        self._entry.broadcasts.append(broadcast)

    def request(self, request: list[Any]) -> None:
        self._entry.requests.append(request)

    def account(self, change: list[Any]) -> None:
        """An account changed here: Redis keeps it (a tombstone for a deleted
        one, so that a node back from an outage does not bring it back), and
        the other nodes hear of it in this iteration's entry."""
        if not self._up:
            return  # the merge after the reconnect tells them
        _, name, hashed, created = change
        value = json.dumps([name, hashed, created]) if hashed else TOMBSTONE
        self._command(None, "HSET", self._accounts_key, name.lower(), value)
        self._entry.changes.append(change)

    def _merge(self, reply: Any) -> None:
        """Redis's accounts (HGETALL) joined with this node's."""
        if resp.is_error(reply) or not isinstance(reply, list) or self.hub is None:
            log.warning("cluster: cannot read the accounts from Redis: %s", reply)
            return
        shared: dict[str, list[Any] | None] = {}
        for key, value in zip(reply[::2], reply[1::2], strict=True):
            try:
                found = None if value == TOMBSTONE.encode() else json.loads(value)
                if found is not None and not (
                    isinstance(found, list)
                    and len(found) == 3
                    and isinstance(found[0], str)
                    and isinstance(found[1], str)
                    and found[1]
                    and isinstance(found[2], int | float)
                ):
                    raise ValueError("not [name, hash, created]")
            except ValueError as exc:
                log.warning("cluster: account %r in Redis is unreadable (%s); skipped", key, exc)
                continue
            shared[key.decode("utf-8", "replace")] = found
        for change in self.hub.merge_accounts(shared):
            self.account(change)

    def holds(self, user_id: int, nick: str) -> bool:
        """Whether this node's user ``user_id`` holds the lease on ``nick``."""
        held = self._leases.get(nick.lower())
        return held is not None and held[0] == user_id

    def claim(self, user_id: int, nick: str, then: Callable[[bool | None], None]) -> bool:
        """Ask Redis for the lease on ``nick`` for this node's user ``user_id``;
        ``then(True)`` when it is had, ``then(False)`` when someone else has
        it, ``then(None)`` when Redis went away before answering. False (and
        no call) when another user of this node holds it or is claiming it."""
        key = nick.lower()
        if key in self._claims or key in self._leases:
            return False
        owner = self._owner(user_id)
        self._claims[key] = (user_id, then)
        self._command(
            lambda reply: self._claimed(key, owner, reply),
            "EVALSHA", _sha(LEASE), 1, self._lease_prefix + key,
            self._lease_ms, owner,
        )  # fmt: skip
        return True

    def release(self, user_id: int, nick: str) -> None:
        """``user_id`` gives up ``nick`` (it quit, or took another)."""
        key = nick.lower()
        held = self._leases.get(key)
        if held is None or held[0] != user_id:
            return
        del self._leases[key]
        if self._up:
            self._command(None, "EVALSHA", _sha(RELEASE), 1, self._lease_prefix + key, held[1])

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Dial Redis (and again with backoff whenever it is lost)."""
        self._dial()

    def end_turn(self) -> None:
        """The loop's iteration is over: what it did goes out as one entry
        (or a few, past MAX_ENTRY_BYTES)."""
        entry = self._entry
        if not entry:
            return
        self._entry = Entry(self.node, 0)
        if not self._up or self._cmd is None:
            self._here(entry)  # Redis went away within the iteration
            return
        entry.origin = self.node
        entry.at = self.wall()
        for part in _split(entry):
            self._serial += 1
            part.serial = self._serial
            self._unacked.append(part)
            self.entries_out += 1
            if self._reloading:
                self._after_reload.append(part)  # behind the entries being sent again
            else:
                self._sequence(part)

    def _sequence(self, part: Entry) -> None:
        """Send ``part`` to be numbered, logged and published."""
        self._command(
            functools.partial(self._sequenced, part),
            "EVALSHA", _sha(SEQUENCE), 2, self._seq_key, self._log_key,
            self._channel, LOG_ENTRIES, codec.encode(part),
        )  # fmt: skip

    def shutdown(self) -> None:
        """The server is stopping: the others hear this node's users leave,
        and it leaves the node set (the reactor drains what is written)."""
        if self._stopping:
            return
        self._stopping = True
        if self._up:
            self._entry.changes.append(["bye", self.node])
            self.end_turn()
            self._command(None, "EVALSHA", _sha(LEAVE), 1, self._nodes_key, self.node)
            for _, keys, owners in self._lease_batches():
                self._command(None, "EVALSHA", _sha(RELEASE), len(keys), *keys, *owners)
        for timer in (self._redial, self._beat, self._fence, self._history_pause):
            if timer is not None:
                timer.cancel()
        for conn in (self._cmd, self._sub):
            if conn is not None:
                conn.close()

    @property
    def _lease_ms(self) -> int:
        return int(self.node_timeout * 1000)

    def _owner(self, user_id: int) -> str:
        return f"{self.node}/{self._token}/{user_id}"

    def _claimed(self, key: str, owner: str, reply: Any) -> None:
        if key not in self._claims:
            return
        if _noscript(reply) and self._up:  # asked again, once the scripts are back
            self._load_scripts_again()
            self._command(
                lambda again: self._claimed(key, owner, again),
                "EVALSHA", _sha(LEASE), 1, self._lease_prefix + key, self._lease_ms, owner,
            )  # fmt: skip
            return
        if resp.is_error(reply) or not isinstance(reply, list):
            # Connected but refused (full, a script flushed): no use going on
            # as if; alone, the claim is answered (None) and asked no more.
            self._down(self._cmd, f"Redis refused a nickname lease: {reply}")
            return
        user_id, then = self._claims.pop(key)
        if reply:
            then(False)
            return
        self._leases[key] = (user_id, owner)
        then(True)

    def _renew(self) -> None:
        """Renew every lease this node holds (and take again any Redis lost)."""
        sent = self.timers.clock()
        batches = self._lease_batches() or [([], [], [])]
        left = {"batches": len(batches)}
        for batch, keys, owners in batches:
            renewed = functools.partial(self._renewed, batch, sent=sent, left=left)
            self._command(
                renewed, "EVALSHA", _sha(LEASE), len(keys), *keys, self._lease_ms, *owners
            )

    def _lease_batches(
        self,
    ) -> list[tuple[list[tuple[str, tuple[int, str]]], list[str], list[str]]]:
        """The leases held, LEASE_BATCH at a time: each batch, its keys, their owners."""
        held = list(self._leases.items())
        batches = [held[i : i + LEASE_BATCH] for i in range(0, len(held), LEASE_BATCH)]
        return [
            (batch, [self._lease_prefix + key for key, _ in batch], [o for _, (_, o) in batch])
            for batch in batches
        ]

    def _renewed(
        self,
        batch: list[tuple[str, tuple[int, str]]],
        reply: Any,
        sent: float,
        left: dict[str, int],
    ) -> None:
        if _noscript(reply) and self._up:  # renewed at the next heartbeat, in time
            self._load_scripts_again()
            return
        if resp.is_error(reply) or not isinstance(reply, list):
            self._down(self._cmd, f"Redis refused to renew the nickname leases: {reply}")
            return
        for position in reply:
            if isinstance(position, int) and 1 <= position <= len(batch):
                key, (user_id, owner) = batch[position - 1]
                if self._leases.get(key) == (user_id, owner):
                    del self._leases[key]
                    if self.hub is not None:
                        self.hub.lease_lost(
                            user_id, "someone on another server took it while this one was away"
                        )
        left["batches"] -= 1
        if left["batches"] == 0:
            self._valid_until = sent + self.node_timeout

    def adopt(self, users: list[tuple[int, str]]) -> None:
        """This node's users (id, nick) hold their nicknames: after an outage,
        the next renewal takes their leases again (or finds them taken)."""
        self._leases = {nick.lower(): (uid, self._owner(uid)) for uid, nick in users}

    def _arm_fence(self) -> None:
        """Out of touch: when the leases may have run out, give them up."""
        if self._fence is not None or not self._leases or self._stopping:
            return
        wait = max(0.0, self._valid_until - self.timers.clock())
        self._fence = self.timers.call_later(wait, self._fenced)

    def _fenced(self) -> None:
        self._fence = None
        if self._up:
            return
        self.fenced += 1
        lost, self._leases = self._leases, {}
        log.warning(
            "cluster: out of touch with Redis for %gs: %d nicknames may be taken elsewhere;"
            " their users are renamed",
            self.node_timeout,
            len(lost),
        )
        if self.hub is not None:
            for user_id, _ in lost.values():
                self.hub.lease_lost(
                    user_id, f"this server lost touch with the others for {self.node_timeout:g}s"
                )

    def describe(self) -> dict[str, Any]:
        """The backplane's state, for /healthz and the admin's stats."""
        return {
            "redis": str(self.address),
            "node": self.node,
            "state": self.state,
            "log_position": self._last_seq,
            "entries_out": self.entries_out,
            "entries_in": self.entries_in,
            "entries_fetched": self.fetched,
            "entries_missed": self.missed,
            "outages": self.outages,
            "nickname_leases": len(self._leases),
            "history_entries": self.history_entries,
            "fenced": self.fenced,
        }

    # -- connecting ----------------------------------------------------------------------

    def _dial(self) -> None:
        self._redial = None
        if self._stopping:
            return
        self.state = "connecting"
        self._loaded = self._subscribed = False
        self._replies.clear()
        host, port = self.address.host, self.address.port
        self._cmd = cmd = self._cmd_side.dialling = _Conn(self)
        self.dial(host, port, self._cmd_side, "redis-command")
        self._sub = sub = self._sub_side.dialling = _Conn(self)
        self.dial(host, port, self._sub_side, "redis-subscriber")
        hello = self.address.hello()
        for packed in hello:
            self._replies.append(self._checked("AUTH/SELECT"))
            if cmd.link is not None:
                cmd.link.send(packed)
            if sub.link is not None:
                sub.link.send(packed)
        self._sub_hello = len(hello)
        # Named for operators' CLIENT LIST (a node name has no spaces: see config).
        self._command(None, "CLIENT", "SETNAME", f"chatd-{self.node}-command")
        for script in (SEQUENCE, HEARTBEAT, LEASE, RELEASE, FLOOR):
            self._command(self._checked("SCRIPT LOAD"), "SCRIPT", "LOAD", script)
        self._command(self._scripts_loaded, "SCRIPT", "LOAD", LEAVE)
        sub.send("CLIENT", "SETNAME", f"chatd-{self.node}-subscriber")
        self._sub_hello += 1
        sub.send("SUBSCRIBE", self._channel)

    def _command(
        self, then: Callable[[Any], None] | None, *args: str | bytes | int | float
    ) -> None:
        cmd = self._cmd
        if cmd is None or cmd.closed:
            return
        self._replies.append(then if then is not None else _ignore)
        cmd.send(*args)

    def _checked(self, what: str) -> Callable[[Any], None]:
        def check(reply: Any) -> None:
            if resp.is_error(reply):
                self._down(self._cmd, f"Redis refused {what}: {reply}")

        return check

    def _scripts_loaded(self, reply: Any) -> None:
        if resp.is_error(reply):
            self._down(self._cmd, f"Redis refused SCRIPT LOAD: {reply}")
            return
        self._loaded = True
        self._both_ready()

    def _both_ready(self) -> None:
        """Subscribed, and the scripts are there: where is the log now?"""
        if not (self._loaded and self._subscribed):
            return
        state: dict[str, Any] = {}
        self._command(lambda reply: state.update(info=reply), "INFO", "server")
        floor = self.hub.history_floor() if self.hub is not None else 0
        self._command(
            lambda reply: self._based_on(state.get("info"), reply),
            "EVALSHA", _sha(FLOOR), 2, self._seq_key, self._log_key,
            floor, self._channel, LOG_ENTRIES, SKIP_ENTRY,
        )  # fmt: skip

    def _based_on(self, info: Any, seq: Any) -> None:
        if resp.is_error(info) or resp.is_error(seq):
            self._down(
                self._cmd, f"Redis refused INFO or FLOOR: {info if resp.is_error(info) else seq}"
            )
            return
        run_id = _run_id(info)
        now = int(seq) if seq else 0
        same = run_id == self._run_id and self._last_seq and now >= self._last_seq
        if not same:
            if self._run_id:
                # A new Redis, a new log: what the others wrote to it while
                # this node was away is read from its start.
                log.warning(
                    "cluster: Redis at %s restarted with a new log; reading it from the start",
                    self.address,
                )
                self._last_seq = 0
                same = True
            else:
                self._last_seq = now
        if not self._history_read and self.hub is not None:
            # Once a run: what the log said before it, since this node's
            # store last had it (all of it, from another Redis's log), is
            # read as history, beside the live chat.
            self._history_read = True
            kept_run, kept = self.hub.log_position
            self._history = (kept + 1 if kept_run == run_id else 1, now)
            self._reading = True
            self.hub.reading_history(True)
        elif run_id != self._run_id:
            self._end_history()  # a new log: it is read whole, live
        self._run_id = run_id
        self._based = True
        self._up = True
        self.state = "up"
        log.info(
            "cluster: node %s joined through Redis at %s (log at %d)", self.node, self.address, now
        )
        self._held = {s: e for s, e in self._held.items() if s > self._last_seq}
        if same and now > self._last_seq:
            self._fetch()
        else:
            self._drain()
        # Whatever happened meanwhile, everyone learns all this node has, and
        # tells it all they have.
        users, topics = self.hub.own_state() if self.hub is not None else ([], [])
        self._entry.changes[:0] = [["hello"], *self._syncs(users, topics)]
        if self._fence is not None:
            self._fence.cancel()
            self._fence = None
        self.adopt([(user[0], user[1]) for user in users])
        self._command(self._merge, "HGETALL", self._accounts_key)
        if self._told_down and self.hub is not None:
            self._told_down = False
            self.hub.tell_here("Back in touch with the other servers of this chat.")
        # At once: in the node set (so that its death is noticed) before the
        # others hear of its users, and its users' leases taken again.
        self._heartbeat()
        self._read_history()

    # -- the log coming in ---------------------------------------------------------------

    def _gone(self, conn: _Conn) -> bool:
        return conn.closed

    def _reply(self, conn: _Conn, reply: Any) -> None:
        if conn is self._cmd:
            if self._replies:
                self._replies.popleft()(reply)
            return
        if not isinstance(reply, list):
            if resp.is_error(reply):
                self._down(conn, f"Redis refused the subscriber: {reply}")
            elif self._sub_hello:
                self._sub_hello -= 1
            return
        kind = reply[0] if reply else b""
        if kind == b"message" and len(reply) == 3:
            self._arrived(reply[2])
        elif kind == b"subscribe":
            self._subscribed = True
            self._both_ready()
        elif kind == b"pong":
            self._beat_due = max(0, self._beat_due - 1)

    def _arrived(self, message: bytes) -> None:
        number, _, payload = message.partition(b" ")
        try:
            seq = int(number)
        except ValueError:
            log.warning("cluster: a message on %s without a number; ignored", self._channel)
            return
        if not self._based or self._fetching or seq > self._last_seq + 1:
            if seq > self._last_seq:
                self._hold(seq, payload)
            return
        if seq == self._last_seq + 1:
            self._apply(seq, payload)
            self._drain()

    def _hold(self, seq: int, payload: bytes) -> None:
        if len(self._held) >= MAX_HELD:
            log.warning("cluster: %d entries held for a gap; starting again from the log", MAX_HELD)
            self._held.clear()
        self._held[seq] = payload
        if self._based and not self._fetching and seq > self._last_seq + 1:
            self._fetch()

    def _drain(self) -> None:
        """Apply the held entries that are next in order."""
        held = self._held
        while held and not self._fetching:
            payload = held.pop(self._last_seq + 1, None)
            if payload is None:
                if min(held) <= self._last_seq:
                    for seq in [s for s in held if s <= self._last_seq]:
                        del held[seq]
                    continue
                self._fetch()  # a gap: the missing entries are in the log
                return
            self._apply(self._last_seq + 1, payload)

    def _fetch(self) -> None:
        self._fetching = True
        self._command(
            self._fetched, "XRANGE", self._log_key, self._last_seq + 1, "+", "COUNT", BACKFILL_BATCH
        )

    def _fetched(self, reply: Any) -> None:
        self._fetching = False
        items = _log_items(reply)
        if items is None:
            return
        for seq, fields, payload in items:
            if seq <= self._last_seq:
                continue
            if seq > self._last_seq + 1 and _after(fields) > self._last_seq:
                # Trimmed away before this node read them (not skipped by FLOOR).
                lost = seq - self._last_seq - 1
                self.missed += lost
                log.warning(
                    "cluster: %d entries of the log were gone before this node read them", lost
                )
                self._last_seq = seq - 1
            self.fetched += 1
            self._apply(seq, payload)
        if len(reply) >= BACKFILL_BATCH:
            self._fetch()
        else:
            self._drain()

    def _apply(self, seq: int, payload: bytes) -> None:
        self._last_seq = seq
        self.entries_in += 1
        entry = _decoded(seq, payload)
        if entry is None:
            return
        if not self._reading:
            self._note_position()
        if entry.origin == self.node:
            while self._unacked and self._unacked[0].serial <= entry.serial:
                self._unacked.popleft()
            if entry.serial <= self._delivered_own:
                return  # delivered here at once, when Redis went away before it came back
            self._delivered_own = entry.serial
        if self.hub is not None:
            self.hub.from_peers(entry)
        if entry.origin != self.node:
            for change in entry.changes:
                if change[0] == "hello":
                    self._answer()
                elif change[0] in ("lost", "bye") and change[1] == self.node and not self._stopping:
                    log.warning("cluster: the other nodes counted this one as lost; rejoining")
                    self._entry.changes.append(["hello"])
                    self._answer()

    def _read_history(self) -> None:
        """Ask for the next entries of history (while there are some to read,
        Redis is there, and the store keeps up)."""
        self._history_pause = None
        first, last = self._history
        if first > last:
            self._end_history()
            return
        if not self._up or self.hub is None:
            return  # on again once Redis is back
        if self.hub.history_busy():
            self._history_pause = self.timers.call_later(HISTORY_PAUSE, self._read_history)
            return
        self._command(
            self._history_came, "XRANGE", self._log_key, first, last, "COUNT", HISTORY_BATCH
        )

    def _history_came(self, reply: Any) -> None:
        first, last = self._history
        items = _log_items(reply)
        if items is None:  # refused: asked again in a moment
            self._history_pause = self.timers.call_later(HISTORY_PAUSE * 20, self._read_history)
            return
        for seq, _, payload in items:
            if seq < first:
                continue
            first = seq + 1
            entry = _decoded(seq, payload)
            if entry is None:
                continue
            self.history_entries += 1
            if self.hub is not None:
                self.hub.from_history(entry)
        if len(items) < HISTORY_BATCH:
            first = last + 1  # the log has no more of it (trimmed, or all read)
        self._history = (first, last)
        self._note_position()
        self._read_history()

    def _end_history(self) -> None:
        """No more history to read (all read, or a new log read whole, live)."""
        self._history = (1, 0)
        if self._reading and self.hub is not None:
            self._reading = False
            log.info("cluster: history read from the log (%d entries)", self.history_entries)
            self.hub.reading_history(False)
        self._note_position()

    def _note_position(self) -> None:
        """Tell the store how far it has the log: while history is read, to
        where the reading is; after, to the latest entry applied."""
        if self.hub is None or not self._run_id:
            return
        first, _ = self._history
        self.hub.log_position = (self._run_id, first - 1 if self._reading else self._last_seq)

    def _answer(self) -> None:
        if self.hub is not None:
            self._entry.changes += self._syncs(*self.hub.own_state())

    def _syncs(self, users: list[list[Any]], topics: list[list[Any]]) -> list[list[Any]]:
        """All of this node's users, as ``sync`` changes of SYNC_USERS each."""
        chunks = [users[i : i + SYNC_USERS] for i in range(0, len(users), SYNC_USERS)] or [[]]
        return [
            ["sync", self.node, chunk, topics if i == 0 else [], i == 0, i == len(chunks) - 1]
            for i, chunk in enumerate(chunks)
        ]

    def _sequenced(self, entry: Entry, reply: Any) -> None:
        if _noscript(reply) and self._up:
            # Redis lost its scripts (SCRIPT FLUSH, a failover to a replica
            # without them): loaded again, and this entry and those sent after
            # it (refused in turn) sent again in their order, new ones after.
            if not self._reloading:
                self._reloading = True
                self._reload_until = self._serial
                self._load_scripts_again()
            self._sequence(entry)
        elif resp.is_error(reply):
            # Delivered here (with every entry not yet back), and the node goes
            # alone until a reconnect (which loads the scripts again) works.
            self._down(self._cmd, f"Redis refused an entry: {reply}")
            return
        if self._reloading and entry.serial >= self._reload_until:
            self._reloading = False  # every entry sent before the reload has answered
            later, self._after_reload = self._after_reload, []
            for part in later:
                self._sequence(part)

    def _load_scripts_again(self) -> None:
        """Redis answered NOSCRIPT: chatd's scripts are loaded again (once for
        every call refused meanwhile), ahead of what is sent from now on."""
        if self._scripts_missing:
            return
        self._scripts_missing = True
        log.warning("cluster: Redis lost chatd's scripts; loading them again")
        for script in (SEQUENCE, HEARTBEAT, LEASE, RELEASE, FLOOR):
            self._command(self._checked("SCRIPT LOAD"), "SCRIPT", "LOAD", script)
        self._command(self._scripts_back, "SCRIPT", "LOAD", LEAVE)

    def _scripts_back(self, reply: Any) -> None:
        if resp.is_error(reply):
            self._down(self._cmd, f"Redis refused SCRIPT LOAD: {reply}")
            return
        self._scripts_missing = False

    def _here(self, entry: Entry) -> None:
        """Deliver ``entry`` on this node only (Redis is not there to take it)."""
        if entry.serial:
            self._delivered_own = max(self._delivered_own, entry.serial)
        entry.changes = []  # already applied here; the sync after a reconnect tells them
        entry.requests = []
        if entry.broadcasts and self.hub is not None:
            entry.origin = self.node
            self.hub.from_peers(entry)

    # -- liveness --------------------------------------------------------------------

    def _arm_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        self._beat = self.timers.call_later(self.node_timeout / 3, self._heartbeat)

    def _heartbeat(self) -> None:
        self._beat = None
        if not self._up:
            return
        if self._beat_due:
            self._down(self._cmd, f"Redis did not answer within {self.node_timeout / 3:g}s")
            return
        self._beat_due = 2
        self._command(
            self._beaten,
            "EVALSHA",
            _sha(HEARTBEAT),
            3,
            self._nodes_key,
            self._seq_key,
            self._log_key,
            self.node,
            int(self.node_timeout * 1000),
            self._channel,
            LOG_ENTRIES,
        )
        self._renew()
        if self._sub is not None:
            self._sub.send("PING")
        self._arm_heartbeat()

    def _beaten(self, reply: Any) -> None:
        self._beat_due = max(0, self._beat_due - 1)
        if _noscript(reply) and self._up:  # the next heartbeat, a third of node_timeout on
            self._load_scripts_again()
            return
        if resp.is_error(reply):
            self._down(self._cmd, f"Redis refused the heartbeat: {reply}")
            return
        self._attempts = 0  # Redis works: the next outage's backoff starts small

    def _down(self, conn: _Conn | None, reason: str) -> None:
        """A Redis connection is gone (or useless): serve alone, dial again."""
        if conn is not None and conn not in (self._cmd, self._sub):
            return  # an old connection's last word
        was_up = self._up
        self._up = self._based = self._fetching = False
        self._loaded = self._subscribed = False
        self._reloading = False  # what waited for it is among the unacked, delivered here
        self._after_reload = []
        self._scripts_missing = False  # a new connection loads them anyway
        self._beat_due = 0
        self.state = "down"
        for c in (self._cmd, self._sub):
            if c is not None:
                c.close()
        self._cmd = self._sub = None
        self._replies.clear()
        self._held.clear()
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        unacked, self._unacked = list(self._unacked), collections.deque()
        for entry in unacked:
            self._here(entry)
        claims, self._claims = list(self._claims.values()), {}
        for _, then in claims:
            then(None)  # asked again, alone now: granted here
        if self._stopping:
            return
        self._arm_fence()
        if was_up or self._attempts == 0:
            self.outages += was_up
            log.warning(
                "cluster: lost Redis at %s (%s); serving this node's users alone",
                self.address,
                reason,
            )
        if was_up and not self._told_down and self.hub is not None:
            self._told_down = True
            self.hub.tell_here(
                "Lost touch with the other servers of this chat: until it is back,"
                " what is said here reaches this server's users only."
            )
        delay = min(BACKOFF_MOST, BACKOFF_FIRST * 2**self._attempts)
        self._attempts = min(self._attempts + 1, 20)
        self._redial = self.timers.call_later(delay * self.rng.uniform(0.5, 1.5), self._dial)


def _ignore(reply: Any) -> None:
    pass


def _split(entry: Entry) -> list[Entry]:
    """``entry`` as entries of at most MAX_ENTRY_BYTES each (one item
    longer than that alone in its own), applied as the whole would be: all
    changes, then the broadcasts, then the requests, each in order."""
    size = len(codec.encode(entry))
    items = len(entry.changes) + len(entry.broadcasts) + len(entry.requests)
    if size <= MAX_ENTRY_BYTES or items <= 1:
        return [entry]
    flat: list[tuple[str, Any]] = [
        *(("c", item) for item in entry.changes),
        *(("b", item) for item in entry.broadcasts),
        *(("q", item) for item in entry.requests),
    ]
    half = len(flat) // 2
    parts = []
    for chunk in (flat[:half], flat[half:]):
        part = Entry(entry.origin, 0, at=entry.at)
        part.changes = [item for kind, item in chunk if kind == "c"]
        part.broadcasts = [item for kind, item in chunk if kind == "b"]
        part.requests = [item for kind, item in chunk if kind == "q"]
        parts += _split(part)
    return parts


def _decoded(seq: int, payload: bytes) -> Entry | None:
    """Log entry ``seq``, decoded and given its place; None (logged) when it
    is not one this chatd can read."""
    try:
        entry = codec.decode(payload)
    except BadEntry as exc:
        log.warning("cluster: log entry %d is not one chatd can read (%s); skipped", seq, exc)
        return None
    entry.seq = seq
    return entry


def _noscript(reply: Any) -> bool:
    """Whether ``reply`` is Redis saying it has not got the script (it lost it)."""
    return resp.is_error(reply) and str(reply).startswith("NOSCRIPT")


def _log_items(reply: Any) -> list[tuple[int, Any, bytes]] | None:
    """XRANGE's answer as (position, fields, entry) for each log entry (one
    malformed is skipped, logged); None (logged) if Redis refused."""
    if resp.is_error(reply) or not isinstance(reply, list):
        log.warning("cluster: cannot read the log: %s", reply)
        return None
    items = []
    for item in reply:
        try:
            items.append((int(item[0].split(b"-")[0]), item[1], item[1][1]))
        except (IndexError, ValueError, TypeError, AttributeError):
            log.warning("cluster: a malformed log entry %r; skipped", item[:1])
    return items


def _after(fields: Any) -> int:
    """The ``after`` field of a log entry FLOOR wrote (the position it
    skipped from), or a position past any for an entry of the chat."""
    if isinstance(fields, list) and len(fields) >= 4 and fields[2] == b"after":
        try:
            return int(fields[3])
        except ValueError:
            pass
    return 1 << 62


def _run_id(info: Any) -> str:
    """The run_id line of INFO server's answer."""
    text = info.decode("latin-1") if isinstance(info, bytes) else ""
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:") :].strip()
    return ""
