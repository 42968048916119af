"""Accounts through the hub, sans-IO with real scrypt (the hub's default
hasher runs it at once): /register, the password a registered nickname is
asked for at the prompt (and NICK:PASSWORD), three tries and the growing wait
per address, /identify, /password, /unregister, and private messages kept
for an account that is away. The real server's off-loop hashing is tested
end to end in tests/test_accounts_e2e.py."""

from __future__ import annotations

import re

from chatd.testing import FakeLink
from tests.helpers import HubFixture

PASSWORD = "correct-horse"


def _connect(fx: HubFixture) -> tuple[object, FakeLink]:
    link = FakeLink()
    user = fx.hub.connect(link)
    link.take()
    return user, link


def _registered(fx: HubFixture, nick: str = "alice") -> None:
    """``nick`` has an account (and is offline)."""
    user, link = fx.join(nick)
    fx.hub.receive(user, f"/register {PASSWORD}")
    assert link.take() == [
        f"*** Registered: the nickname {nick} is yours. Next time give its password"
        f" when asked, or {nick}:PASSWORD at the prompt."
    ]
    fx.hub.quit(user)


def test_a_registered_nick_asks_for_its_password_and_takes_the_right_one() -> None:
    fx = HubFixture()
    _registered(fx)
    user, link = _connect(fx)
    fx.hub.receive(user, "ALICE")  # any case: it is the same nickname
    assert link.take() == [
        "*** The nickname ALICE is registered. Type its password"
        " (or /nick ANOTHER for another nickname):"
    ]
    fx.hub.receive(user, PASSWORD)
    got = link.take()
    assert got[0].startswith("*** Welcome, ALICE!")
    assert "*** You are identified: ALICE is your account." in got
    assert fx.hub.find("alice") is user
    assert not [line for line in got if PASSWORD in line]  # never echoed


def test_three_wrong_passwords_close_the_connection_and_each_waits_longer() -> None:
    fx = HubFixture()
    _registered(fx)
    user, link = _connect(fx)
    fx.hub.receive(user, "alice")
    link.take()
    fx.hub.receive(user, "wrong one")
    assert link.take() == [
        "*** Wrong password for alice; 2 more tries (the next after 1 second)."
        " Type it again, or /nick ANOTHER."
    ]
    fx.hub.receive(user, "too soon")  # not even looked at, not counted
    assert link.take() == ["*** Wait 1 second more before the next password."]
    fx.clock.advance(1)
    fx.hub.receive(user, "wrong two")
    assert link.take() == [
        "*** Wrong password for alice; 1 more try (the next after 2 seconds)."
        " Type it again, or /nick ANOTHER."
    ]
    fx.clock.advance(2)
    fx.hub.receive(user, "wrong three")
    assert link.take() == ["*** Wrong password for alice, 3 times: goodbye."]
    assert link.closed
    # The address waits longer still on its next connection: 4 seconds.
    again, link = _connect(fx)
    fx.hub.receive(again, f"alice:{PASSWORD}")
    assert link.take() == ["*** Wait 4 seconds more before the next password."]
    fx.clock.advance(4)
    fx.hub.receive(again, PASSWORD)  # still asked: the line is the password
    assert fx.hub.find("alice") is again


def test_nick_colon_password_at_the_prompt_and_another_nick_instead() -> None:
    fx = HubFixture()
    _registered(fx)
    user, link = _connect(fx)
    fx.hub.receive(user, f"alice:{PASSWORD}")
    assert any(line.startswith("*** Welcome, alice!") for line in link.take())
    other, link = _connect(fx)
    fx.hub.receive(other, "alice")
    link.take()
    fx.hub.receive(other, "/nick bob")  # not alice after all
    assert any(line.startswith("*** Welcome, bob!") for line in link.take())
    guest, link = _connect(fx)
    fx.hub.receive(guest, "carol:whatever")
    assert link.take()[0] == (
        "*** The nickname carol is not registered: choose it alone,"
        " then /register PASSWORD keeps it for you."
    )


def test_logging_in_from_elsewhere_takes_the_nick_from_the_old_connection() -> None:
    fx = HubFixture()
    _registered(fx)
    first, old = _connect(fx)
    fx.hub.receive(first, f"alice:{PASSWORD}")
    old.take()
    second, _ = _connect(fx)
    fx.hub.receive(second, f"alice:{PASSWORD}")
    assert old.take() == ["*** Someone logged in as alice from elsewhere."]
    assert old.closed
    assert fx.hub.find("alice") is second


def test_nobody_else_may_take_a_registered_nick_and_identify_takes_it() -> None:
    fx = HubFixture()
    _registered(fx)
    bob, link = fx.join("bob")
    fx.hub.receive(bob, "/nick alice")
    assert link.take() == [
        "*** The nickname alice is registered; /identify alice PASSWORD takes it if it is yours."
    ]
    fx.hub.receive(bob, "/register short")
    assert link.take() == ["*** A password needs at least 8 characters."]
    fx.hub.receive(bob, "/identify alice not-it-at-all")
    assert link.take() == ["*** Wrong password for alice (the next after 1 second)."]
    fx.clock.advance(1)
    fx.hub.receive(bob, f"/identify alice {PASSWORD}")
    got = link.take()
    assert "*** You are now known as alice." in got
    assert "*** You are identified: alice is your account." in got


def test_password_changes_and_unregister_frees_the_nick() -> None:
    fx = HubFixture()
    _registered(fx)
    user, link = _connect(fx)
    fx.hub.receive(user, f"alice:{PASSWORD}")
    link.take()
    fx.hub.receive(user, "/password not-the-password brand-new-one")
    assert link.take() == ["*** Wrong password: it stays as it was."]
    fx.clock.advance(1)
    fx.hub.receive(user, "/password one two three")  # three words: usage
    assert link.take() == ["*** Usage: /password OLD NEW (changes your account's password)."]
    fx.hub.receive(user, "/unregister brand-new-one")
    assert link.take() == ["*** Wrong password: the account stays."]
    fx.clock.advance(2)
    fx.hub.receive(user, f"/register {PASSWORD}")
    assert link.take() == ["*** You are identified as alice already; /password OLD NEW changes it."]
    fx.hub.quit(user)
    # A password of one word, changed, then the account deleted.
    _, link = fx.join("dave")
    dave = fx.hub.find("dave")
    fx.hub.receive(dave, "/register first-secret")  # type: ignore[arg-type]
    fx.hub.receive(dave, "/password first-secret second-secret")  # type: ignore[arg-type]
    assert link.take()[-1] == "*** Password changed."
    fx.hub.receive(dave, "/unregister second-secret")  # type: ignore[arg-type]
    assert link.take() == ["*** Your account dave is deleted; the nickname is anyone's now."]
    fx.hub.quit(dave)  # type: ignore[arg-type]
    anyone, link = _connect(fx)
    fx.hub.receive(anyone, "dave")  # no password asked: it is anyone's
    assert link.take()[0].startswith("*** Welcome, dave!")


def test_private_messages_to_an_away_account_are_kept_for_it_alone() -> None:
    fx = HubFixture()
    _registered(fx, "bob")
    alice, link = fx.join("alice")
    fx.hub.receive(alice, "/msg bob are you there?")
    fx.hub.receive(alice, "/msg BOB one more thing")
    assert link.take() == ["*** bob is offline; your message is kept until they identify."] * 2
    fx.hub.receive(alice, "/msg carol hello")  # no account: nothing is kept
    assert link.take() == ["*** No such user: carol."]
    # Someone who does not know bob's password gets nothing of them.
    mallory, spy = _connect(fx)
    fx.hub.receive(mallory, "bob:guessing-wrong")
    fx.hub.receive(mallory, "/quit")
    assert not [line for line in spy.take() if "there?" in line or "thing" in line]
    fx.clock.advance(5)
    bob, mine = _connect(fx)
    fx.hub.receive(bob, f"bob:{PASSWORD}")
    got = mine.take()
    start = got.index("*** 2 private messages while you were away:")
    assert [re.sub(r"^\*\*\* \[\d\d:\d\d\] ", "", line) for line in got[start + 1 : start + 3]] == [
        "*alice* are you there?",
        "*alice* one more thing",
    ]
    assert got[start + 3] == "*** End of private messages kept for you."
    fx.hub.quit(bob)  # type: ignore[arg-type]
    again, mine = _connect(fx)
    fx.hub.receive(again, f"bob:{PASSWORD}")
    assert not [line for line in mine.take() if "private message" in line]  # given once


class HeldHasher:
    """Holds each hash until the test releases it: a check under way."""

    def __init__(self) -> None:
        self.held: list[tuple[object, object]] = []

    def submit(self, work, done) -> bool:  # type: ignore[no-untyped-def]
        self.held.append((work, done))
        return True

    def release(self) -> None:
        while self.held:
            work, done = self.held.pop(0)
            done(work())  # type: ignore[operator]


def test_a_right_password_does_not_reset_the_wait_for_wrong_ones() -> None:
    fx = HubFixture()
    _registered(fx, "victim")
    _registered(fx, "mallory")
    for expected_wait in ("1 second", "2 seconds", "4 seconds"):
        guess, link = _connect(fx)
        fx.hub.receive(guess, "victim:guess-one-two")
        assert link.take()[0].endswith(
            f"(the next after {expected_wait}). Type it again, or /nick ANOTHER."
        )
        fx.clock.advance(60)
        own, mine = _connect(fx)
        fx.hub.receive(own, f"mallory:{PASSWORD}")  # its own account, right
        assert any(line.startswith("*** Welcome, mallory!") for line in mine.take())
        fx.hub.quit(own)  # type: ignore[arg-type]


def test_one_address_has_one_password_checked_at_a_time() -> None:
    fx = HubFixture()
    _registered(fx, "jack")
    held = HeldHasher()
    fx.hub.desk.hasher = held
    first, _ = _connect(fx)
    fx.hub.receive(first, "jack:guess-number-1")
    second, link = _connect(fx)  # another connection, the same address
    fx.hub.receive(second, "jack:guess-number-2")
    assert link.take() == [
        "*** Still checking the last password from your address; wait for its answer."
    ]
    assert len(held.held) == 1


def test_a_check_that_ends_after_another_nick_was_chosen_does_nothing() -> None:
    fx = HubFixture()
    _registered(fx)
    owner, old = _connect(fx)
    fx.hub.receive(owner, f"alice:{PASSWORD}")
    old.take()
    fx.hub.desk.hasher = held = HeldHasher()
    user, link = _connect(fx)
    fx.hub.receive(user, f"alice:{PASSWORD}")
    fx.hub.receive(user, "/nick bob")  # changed its mind while the check ran
    assert any(line.startswith("*** Welcome, bob!") for line in link.take())
    held.release()
    assert fx.hub.find("alice") is owner and not old.closed  # nobody was taken over
    assert not [line for line in link.take() if "alice" in line]


def test_service_nicks_are_nobodys() -> None:
    fx = HubFixture()
    user, link = fx.join("bob")
    fx.hub.receive(user, "/nick NickServ")
    assert link.take() == ["*** The nickname NickServ is taken; choose another."]


def test_an_account_deleted_and_made_again_is_not_its_old_owners() -> None:
    fx = HubFixture()
    _registered(fx)
    alice, mine = _connect(fx)
    fx.hub.receive(alice, f"alice:{PASSWORD}")
    fx.hub.receive(alice, "/nick zed")  # identified as alice, called zed
    other, _ = _connect(fx)
    fx.hub.receive(other, "carol")
    fx.hub.receive(other, f"/identify alice {PASSWORD}")
    fx.hub.receive(other, f"/unregister {PASSWORD}")  # from the other connection
    fx.hub.quit(other)  # type: ignore[arg-type]
    eve, _ = fx.join("alice")
    fx.hub.receive(eve, "/register eves-own-secret")
    fx.hub.quit(eve)
    mine.take()
    fx.hub.receive(alice, "/nick alice")
    assert mine.take() == [
        "*** The nickname alice is registered; /identify alice PASSWORD takes it if it is yours."
    ]


def test_password_and_unregister_follow_the_account_across_a_rename() -> None:
    fx = HubFixture()
    _registered(fx)
    user, link = _connect(fx)
    fx.hub.receive(user, f"alice:{PASSWORD}")
    fx.hub.receive(user, "/nick zed")
    link.take()
    fx.hub.receive(user, f"/password {PASSWORD} another-secret")
    assert link.take() == ["*** Password changed."]
    fx.hub.receive(user, "/unregister another-secret")
    assert link.take() == ["*** Your account alice is deleted; the nickname is anyone's now."]
