"""Passwords (chatd.core.passwords): the kept form, checking it, hashing off
the loop with results back on it (a real reactor), and the growing wait per
address (a fake clock)."""

from __future__ import annotations

import threading
import time

import pytest

from chatd.core import passwords
from chatd.core.passwords import (
    MAX_DELAY_SECONDS,
    MAX_PENDING_HASHES,
    Attempts,
    Hasher,
    check_password,
    hash_password,
    needs_rehash,
)
from chatd.core.reactor import Reactor
from tests.helpers import WAIT


def test_a_password_is_kept_as_a_salted_scrypt_hash_and_checked() -> None:
    kept = hash_password("correct horse")
    scheme, n, r, p, salt, key = kept.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert "correct horse" not in kept and salt and key
    assert hash_password("correct horse") != kept  # a new salt each time
    assert check_password("correct horse", kept)
    assert not check_password("correct horsE", kept)
    assert not needs_rehash(kept)


@pytest.mark.parametrize(
    "stored",
    ["", "plain text", "scrypt$16384$8$1$c2FsdA", "md5$1$2$3$a$b", "scrypt$1024$8$1$***$***",
     "scrypt$1073741824$8$1$c2FsdA$a2V5", "scrypt$1000$8$1$c2FsdA$a2V5"],
)  # fmt: skip
def test_what_is_not_a_hash_chatd_makes_never_checks(stored: str) -> None:
    assert not check_password("anything", stored)
    assert needs_rehash(stored)


def test_weaker_parameters_are_checked_and_asked_to_be_rehashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "SCRYPT_N", 2**10)  # as an older, cheaper chatd made it
    old = hash_password("pw")
    monkeypatch.undo()
    assert check_password("pw", old) and needs_rehash(old)


def test_hashing_runs_off_the_loop_and_the_result_comes_back_on_it(reactor: Reactor) -> None:
    hasher = Hasher(reactor.call_soon_threadsafe)
    got: list[tuple[str, bool]] = []
    worker: list[str] = []

    def work() -> bool:
        worker.append(threading.current_thread().name)
        return check_password("pw", kept)

    kept = hash_password("pw")
    assert hasher.submit(work, lambda ok: got.append((threading.current_thread().name, ok)))
    deadline = time.monotonic() + WAIT
    while not got and time.monotonic() < deadline:
        reactor.run_once(max_wait=WAIT)
    assert got == [(threading.current_thread().name, True)]
    assert worker[0].startswith("chatd-passwords")
    assert hasher.pending == 0
    hasher.close()


def test_past_max_pending_hashes_the_answer_is_busy(reactor: Reactor) -> None:
    hasher = Hasher(reactor.call_soon_threadsafe)
    release = threading.Event()
    done: list[int] = []
    for i in range(MAX_PENDING_HASHES):
        assert hasher.submit(lambda i=i: release.wait(WAIT) and i, done.append)  # type: ignore[misc]
    assert not hasher.submit(lambda: 99, done.append)  # nothing queued, nothing run
    release.set()
    deadline = time.monotonic() + WAIT
    while len(done) < MAX_PENDING_HASHES and time.monotonic() < deadline:
        reactor.run_once(max_wait=WAIT)
    assert done == list(range(MAX_PENDING_HASHES)) and hasher.pending == 0
    assert hasher.submit(lambda: 7, done.append)  # room again
    hasher.close()


def test_each_wrong_password_waits_longer_per_address_up_to_a_minute() -> None:
    attempts = Attempts()
    now = 1000.0
    delays = [attempts.failed("10.0.0.1", now + i * 100) for i in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, MAX_DELAY_SECONDS, MAX_DELAY_SECONDS]
    last = now + 700
    assert attempts.wait("10.0.0.1", last + 30) == pytest.approx(30)
    assert attempts.wait("10.0.0.2", last) == 0  # another address is its own
    attempts.succeeded("10.0.0.1")
    assert attempts.wait("10.0.0.1", last) == 0 and attempts.failures("10.0.0.1") == 0
    attempts.failed("10.0.0.3", last)
    attempts.failed("10.0.0.3", last + 1)
    assert attempts.failures("10.0.0.3") == 2
    assert attempts.failed("10.0.0.3", last + 1 + passwords.FORGET_SECONDS) == 1  # forgotten


def test_the_addresses_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "MAX_TRACKED_ADDRESSES", 3)
    attempts = Attempts()
    for i in range(5):
        attempts.failed(f"10.0.0.{i}", float(i))
    assert [attempts.failures(f"10.0.0.{i}") for i in range(5)] == [0, 0, 1, 1, 1]
