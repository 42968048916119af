"""Passwords for accounts (issue 16): hashed with scrypt off the loop, and
guessing slowed per address.

Rule: a password is never stored, logged or kept past the hash; what is kept
is ``scrypt$N$R$P$salt$key`` (the parameters with it, so a later chatd can
raise them and rehash at the next successful identify). Hashing costs about
64 ms of CPU here (n=2**14, r=8, p=1, measured): never on the loop. A
:class:`Hasher` runs it on one worker thread, which touches no socket and no
hub state, and hands the result back through the reactor's
``call_soon_threadsafe``; at most MAX_PENDING_HASHES wait, and past that the
answer is "busy", never a queue that grows. :class:`Attempts` makes each
wrong password from an address wait longer before the next is even hashed.

chatd.core.accounts uses them; the hashes are kept in chatd.store.accounts.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, TypeVar

#: scrypt's cost: 16 MiB and about 64 ms here, OWASP's minimum for scrypt.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
#: Bytes of salt (os.urandom) and of derived key.
SALT_BYTES: Final = 16
KEY_BYTES: Final = 32
#: What scrypt may use: the most any stored parameters chatd accepts need
#: (n up to 2**17 at r 8: 128 MiB), with room; OpenSSL's default refuses 2**15.
SCRYPT_MAXMEM: Final = 256 * 1024 * 1024
#: The most a stored hash may ask for: a file edited to n=2**30 must not make
#: one identify take the machine's memory.
MAX_STORED_N: Final = 2**17
#: Hashes waiting or running at once: about half a second of work. Past it the
#: server is busy (a flood of identifies, or someone guessing from many
#: addresses), and says so rather than queueing without bound.
MAX_PENDING_HASHES: Final = 8
#: The wait after the k-th wrong password from an address: 2**(k-1) seconds,
#: at most this long.
MAX_DELAY_SECONDS: Final = 60.0
#: An address quiet this long starts again from no failures.
FORGET_SECONDS: Final = 3600.0
#: Addresses remembered at once, the longest quiet forgotten first: a bound on
#: memory whatever the number of addresses guessing.
MAX_TRACKED_ADDRESSES: Final = 10_000

_PREFIX: Final = "scrypt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    """``password`` as it is kept: ``scrypt$N$R$P$salt$key``. Slow: not on the loop."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"{_PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _PREFIX:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if not (1 < n <= MAX_STORED_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16 and key):
        return None
    return n, r, p, salt, key


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (False for a
    stored value that is not a hash chatd makes). Slow: not on the loop."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    try:
        return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)
    except (ValueError, MemoryError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than chatd's now."""
    parsed = _parse(stored)
    return parsed is None or parsed[:3] < (SCRYPT_N, SCRYPT_R, SCRYPT_P)


T = TypeVar("T")


class Hasher:
    """Slow password work on one thread, its results back on the loop.

    ``call_soon`` is the reactor's ``call_soon_threadsafe``: the callback given
    to :meth:`submit` runs on the loop's thread with the result.
    """

    def __init__(self, call_soon: Callable[[Callable[[], object]], None]) -> None:
        self._call_soon = call_soon
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatd-passwords")
        self._pending = 0  # read and changed on the loop only

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, work: Callable[[], T], done: Callable[[T], object]) -> bool:
        """Run ``work`` off the loop, then ``done(result)`` on it; False (and
        nothing run) when MAX_PENDING_HASHES are waiting already."""
        if self._pending >= MAX_PENDING_HASHES:
            return False
        self._pending += 1

        def finished(future: Future[T]) -> None:  # on the worker thread
            self._call_soon(lambda: self._deliver(future, done))

        self._pool.submit(work).add_done_callback(finished)
        return True

    def _deliver(self, future: Future[T], done: Callable[[T], object]) -> None:
        self._pending -= 1
        if future.cancelled():  # close() came first: nobody waits for it now
            return
        done(future.result())  # an exception from work is the loop's to log

    def close(self) -> None:
        """Stop taking work; what runs finishes (its result is not delivered)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class Attempts:
    """Wrong passwords per address, and how long each must wait before the next."""

    def __init__(self) -> None:
        #: host -> (failures, may try again at, last failure), the longest quiet first.
        self._hosts: collections.OrderedDict[str, tuple[int, float, float]] = (
            collections.OrderedDict()
        )

    def wait(self, host: str, now: float) -> float:
        """Seconds ``host`` must wait before its next password is looked at (0: none)."""
        entry = self._hosts.get(host)
        if entry is None:
            return 0.0
        _, allowed, last = entry
        if now - last >= FORGET_SECONDS:
            del self._hosts[host]
            return 0.0
        return max(0.0, allowed - now)

    def failures(self, host: str) -> int:
        entry = self._hosts.get(host)
        return entry[0] if entry is not None else 0

    def failed(self, host: str, now: float) -> float:
        """``host`` gave a wrong password: returns the wait before its next."""
        self.wait(host, now)  # a host quiet past FORGET_SECONDS starts again
        failures = self.failures(host) + 1
        delay = min(2.0 ** (failures - 1), MAX_DELAY_SECONDS)
        self._hosts[host] = (failures, now + delay, now)
        self._hosts.move_to_end(host)
        while len(self._hosts) > MAX_TRACKED_ADDRESSES:
            self._hosts.popitem(last=False)
        return delay

    def succeeded(self, host: str) -> None:
        self._hosts.pop(host, None)
