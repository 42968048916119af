"""Accounts as users meet them: ``/register``, ``/identify``, ``/password``,
``/unregister``, a registered nickname's password at the prompt (or
``NICK:PASSWORD`` in one line; IRC's ``PASS``), and the private messages kept
for an account while it is away.

Rule: a password is checked or hashed off the loop (chatd.core.passwords:
the Hasher hands the answer back on the loop); meanwhile the user's next
password is not taken ("still checking"). Every wrong password makes its
address wait longer before the next is even looked at (Attempts), and three
at the prompt close the connection. A password is never logged, echoed or
kept: only the account's scrypt hash (chatd.store.accounts).

A registered nickname is its account's: nobody else may register with it or
rename to it, and whoever proves its password takes it, from another
connection of its owner if need be ("logged in from elsewhere").
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, TypeVar

from chatd.core import events as ev
from chatd.core.nicks import NICK_PROMPT, PENDING, nick_problem
from chatd.core.passwords import Attempts, check_password, hash_password
from chatd.store.accounts import AccountExists, Accounts, HeldMessage, TooManyAccounts
from chatd.store.store import Store
from chatd.wire.text import sentence

log = logging.getLogger(__name__)

#: A user of the hub (chatd.core.hub.User: its link, nick, ident, and the
#: slots this module keeps there: account, asking, tries, checking). Named
#: here, not imported: the hub imports this module.
User = Any


class Hub(Protocol):
    """What the desk needs of the hub (chatd.core.hub.Hub)."""

    store: Store
    delivery: Any
    clock: Callable[[], float]
    wall: Callable[[], float]

    def notify(self, user: User, text: str, room: str = "") -> None: ...

    def find(self, nick: str) -> User | None: ...

    def fold(self, nick: str) -> str: ...

    def users(self) -> list[User]: ...

    def is_online(self, user: User) -> bool: ...

    def is_connected(self, user: User) -> bool: ...

    def close_user(self, user: User, reason: str, *, told: str = "") -> None: ...

    def banned_nick(self, nick: str) -> str | None: ...

    def account_changed(self, change: list[Any]) -> None:
        """An account was made, given a new password, or deleted: in a
        cluster, the other nodes are told (``["account", name, hash, created]``,
        hash ``""`` for deleted)."""
        ...

    def share(self, change: list[Any]) -> None:
        """In a cluster, the other nodes are told ``change`` (codec's CHANGES)."""
        ...

    def register(
        self,
        user: User,
        nick: str,
        rooms: Sequence[str] | None = None,
        *,
        verified: bool = False,
        retry: Callable[[], object] | None = None,
    ) -> str | None: ...

    def rename(
        self,
        user: User,
        new_nick: str,
        *,
        verified: bool = False,
        retry: Callable[[], object] | None = None,
    ) -> str | None: ...


T = TypeVar("T")

#: Shortest password /register takes: NIST SP 800-63B's minimum for one a
#: person chooses. A guessable one is still the owner's choice.
MIN_PASSWORD_CHARS: Final = 8
#: Longest: scrypt takes any length, and no one types more.
MAX_PASSWORD_CHARS: Final = 128
#: Wrong passwords at the prompt before the connection is closed; each one
#: from an address also doubles the wait before its next (Attempts).
MAX_TRIES: Final = 3
#: What a user is told when MAX_PENDING_HASHES passwords are being checked.
BUSY: Final = "The server is busy checking passwords; try again in a moment."


class Hashing(Protocol):
    """Runs a password's scrypt off the loop (chatd.core.passwords.Hasher)."""

    def submit(self, work: Callable[[], T], done: Callable[[T], object]) -> bool: ...


class InlineHasher:
    """Runs the work on the caller's thread, once the line that asked for it
    is handled (:meth:`Desk.settle`): for a hub with no loop to hand answers
    back on (the plugin test kit, sans-IO tests). Not inside the command:
    scrypt's 64 ms there would count against the plugin as a slow call."""

    def __init__(self) -> None:
        self._pending: list[Callable[[], object]] = []

    def submit(self, work: Callable[[], T], done: Callable[[T], object]) -> bool:
        self._pending.append(lambda: done(work()))
        return True

    def run(self) -> None:
        while self._pending:
            self._pending.pop(0)()


def _seconds(wait: float) -> str:
    """A wait in whole seconds, rounded up (never "0 seconds")."""
    whole = max(1, math.ceil(wait))
    return "1 second" if whole == 1 else f"{whole} seconds"


def _tries(count: int) -> str:
    return "1 more try" if count == 1 else f"{count} more tries"


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be an account's, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"A password needs at least {MIN_PASSWORD_CHARS} characters."
    if len(password) > MAX_PASSWORD_CHARS:
        return f"A password may have at most {MAX_PASSWORD_CHARS} characters."
    return None


class Desk:
    """The hub's accounts counter: every password a user gives comes here."""

    def __init__(self, hub: Hub, hasher: Hashing) -> None:
        self.hub = hub
        self.hasher = hasher
        self.attempts = Attempts()
        #: Addresses with a password being checked: one at a time each, so
        #: that parallel connections cannot guess faster than the wait allows.
        self._checking: set[str] = set()

    def settle(self) -> None:
        """A line has been handled: an inline hasher does its work now."""
        if isinstance(self.hasher, InlineHasher):
            self.hasher.run()

    @property
    def accounts(self) -> Accounts:
        return self.hub.store.accounts

    def registered(self, nick: str) -> bool:
        return self.accounts.get(nick) is not None

    def owns(self, user: User, nick: str) -> bool:
        """Whether ``user`` proved the password of the account ``nick`` is now
        (by its id: an account deleted and registered again is another)."""
        account = self.accounts.get(nick)
        return account is not None and user.account_id == account.id

    def account_name(self, user: User) -> str:
        """The name of the account ``user`` is identified as, or ""."""
        account = self.accounts.get(user.account) if user.account else None
        return account.name if account is not None and account.id == user.account_id else ""

    # -- checking a password ---------------------------------------------------------

    def _check(
        self,
        user: User,
        nick: str,
        password: str,
        then: Callable[[bool], None],
        refused: Callable[[str], None] | None = None,
    ) -> None:
        """Check ``password`` against ``nick``'s account off the loop, then
        ``then(right)`` on it; or, when it is not checked at all (the address
        must wait, or has a check under way; no such account; too busy),
        ``refused(why)`` (by default: the user is told why)."""
        hub = self.hub
        tell = refused if refused is not None else (lambda why: hub.notify(user, why))
        host = user.link.host
        wait = self.attempts.wait(host, hub.clock())
        if wait > 0:
            tell(f"Wait {_seconds(wait)} more before the next password.")
            return
        account = self.accounts.get(nick)
        if account is None:
            tell(f"The nickname {nick} is not registered.")
            return
        if user.checking or host in self._checking:
            tell("Still checking the last password from your address; wait for its answer.")
            return
        account_id, stored = account.id, account.hash

        def done(right: bool) -> None:
            user.checking = False
            self._checking.discard(host)
            if not right:
                # A right password clears nothing: it would let a guesser
                # who has an account of its own reset its wait at will.
                delay = self.attempts.failed(host, hub.clock())
                log.info("%s: a wrong password for %s (next in %gs)", user.link.peer, nick, delay)
            if not hub.is_connected(user):
                return
            now = self.accounts.get(nick)
            if right and (now is None or now.id != account_id or now.hash != stored):
                tell(f"The account {nick} changed while its password was checked; try again.")
                return
            then(right)

        user.checking = True  # before submit: an inline hasher answers within it
        self._checking.add(host)
        if not self.hasher.submit(lambda: check_password(password, stored), done):
            user.checking = False
            self._checking.discard(host)
            tell(BUSY)

    def _take_over(self, user: User, nick: str) -> None:
        """``user`` proved ``nick``'s password: whoever else has the nickname
        (its owner's other connection) gives it up."""
        holder = self.hub.find(nick)
        if holder is not None and holder is not user:
            told = f"Someone logged in as {nick} from elsewhere."
            self.hub.close_user(holder, "logged in from elsewhere", told=told)

    def _identified(self, user: User) -> None:
        """``user`` (named) is its nickname's account's now: it is told, and
        given the private messages kept for it."""
        hub = self.hub
        account = self.accounts.get(user.nick)
        if account is None:  # deleted just now
            hub.notify(user, f"The account {user.nick} is gone.")
            return
        user.account, user.account_id = hub.fold(user.nick), account.id
        self.accounts.touch(user.nick)
        log.info("%s identified", user.nick)
        hub.notify(user, f"You are identified: {user.nick} is your account.")
        self.deliver_held(user)

    def deliver_held(self, user: User) -> None:
        self._deliver(user, user.nick)

    def _deliver(self, user: User, name: str) -> None:
        held = self.accounts.take(name)
        if not held:
            return
        self.hub.share(["taken", name])  # the other nodes' copies go too
        now = self.hub.wall()
        to = self.hub.delivery.to_user
        to(user, ev.ReplayStart("", ev.HELD, len(held), 0.0, now))
        for message in held:
            kind = ev.PRIVATE_ACTED if message.action else ev.PRIVATE
            to(user, ev.Replayed("", message.at, kind, message.sender, message.text,
                                 message.sender_ident, now))  # fmt: skip
        to(user, ev.ReplayEnd("", ev.HELD, len(held)))

    # -- at the prompt -----------------------------------------------------------------

    def at_prompt(self, user: User, nick: str, password: str | None) -> bool:
        """A registering user asked for ``nick`` (with ``password``, from
        ``NICK:PASSWORD``): True when this took it (a registered nickname,
        or a password given), False when it is an ordinary nickname."""
        hub = self.hub
        if not self.registered(nick):
            if password is None:
                return False
            unregistered = nick_problem(nick) or (
                f"The nickname {nick} is not registered: choose it alone,"
                " then /register PASSWORD keeps it for you."
            )
            hub.notify(user, f"{unregistered}\n{NICK_PROMPT}")
            return True
        banned = hub.banned_nick(nick)
        if banned:
            hub.notify(user, f"{banned}\n{NICK_PROMPT}")
            return True
        user.asking = nick
        if password is None:
            hub.notify(
                user,
                f"The nickname {nick} is registered. Type its password"
                " (or /nick ANOTHER for another nickname):",
            )
            return True
        self._prompt_try(user, password)
        return True

    def password_line(self, user: User, text: str) -> None:
        """A line from a registering user who was asked for a password."""
        if not text:
            return
        self._prompt_try(user, text)

    def _prompt_try(self, user: User, password: str) -> None:
        nick = user.asking

        def then(right: bool) -> None:
            hub = self.hub
            if hub.is_online(user) or user.asking != nick:
                return  # it chose another nickname meanwhile
            if right:
                self._take_over(user, nick)
                again = functools.partial(then, right)  # once the cluster has answered
                problem = hub.register(user, nick, verified=True, retry=again)
                if problem is PENDING:
                    return
                user.asking = ""
                if problem:
                    hub.notify(user, f"{problem}\n{NICK_PROMPT}")
                else:
                    self._identified(user)
                return
            user.tries += 1
            if user.tries >= MAX_TRIES:
                hub.notify(user, f"Wrong password for {nick}, {MAX_TRIES} times: goodbye.")
                hub.close_user(user, "too many wrong passwords")
                return
            wait = self.attempts.wait(user.link.host, hub.clock())
            hub.notify(
                user,
                f"Wrong password for {nick}; {_tries(MAX_TRIES - user.tries)}"
                f" (the next after {_seconds(wait)}). Type it again, or /nick ANOTHER.",
            )

        self._check(user, nick, password, then)

    def login(
        self,
        user: User,
        nick: str,
        password: str,
        rooms: list[str] | None,
        refused: Callable[[str, bool], None],
        done: Callable[[], None],
    ) -> None:
        """A wire's own registration (IRC: NICK with PASS) for the registered
        ``nick``: on the right password the user is registered (into
        ``rooms``) and identified, then ``done()``; else ``refused(why,
        wrong_password)``."""
        if not password:
            refused(
                f"The nickname {nick} is registered; give its password (PASS) or choose another",
                False,
            )
            return
        problem = self.hub.banned_nick(nick)
        if problem:
            refused(problem, False)
            return

        def then(right: bool) -> None:
            if not right:
                refused(f"Wrong password for {nick}", True)
                return
            self._take_over(user, nick)
            again = functools.partial(then, right)  # once the cluster has answered
            problem = self.hub.register(user, nick, rooms, verified=True, retry=again)
            if problem is PENDING:
                return
            if problem:
                refused(problem, False)
                return
            self._identified(user)
            done()

        self._check(user, nick, password, then, lambda why: refused(why, False))

    def authenticate(
        self,
        user: User,
        nick: str,
        password: str,
        done: Callable[[str], None],
        failed: Callable[[str], None],
    ) -> None:
        """A wire's login before registration (IRC's SASL PLAIN): ``done(name)``
        with the account's name when ``password`` is ``nick``'s account's,
        else ``failed(why)``. Registration then takes the account's nickname
        (:meth:`take_verified`) or names the user otherwise (:meth:`identify_as`)."""
        if not self.registered(nick):
            failed(f"no account {nick}")
            return

        def then(right: bool) -> None:
            account = self.accounts.get(nick)
            if right and account is not None:
                done(account.name)
            else:
                failed("wrong password")

        self._check(user, nick, password, then, failed)

    def take_verified(
        self,
        user: User,
        nick: str,
        rooms: list[str] | None,
        retry: Callable[[], object] | None = None,
    ) -> str | None:
        """Register ``user`` as ``nick``, whose account's password it proved
        (SASL): from its owner's other connection if need be. Why not, or
        None; PENDING in a cluster, then ``retry`` (see Hub.register)."""
        self._take_over(user, nick)
        problem = self.hub.register(user, nick, rooms, verified=True, retry=retry)
        if problem is None:
            self._identified(user)
        return problem

    def identify_as(self, user: User, name: str) -> None:
        """``user`` (named, under another nickname) proved account ``name``'s
        password: it is identified as it, and given what was kept for it."""
        account = self.accounts.get(name)
        if account is None:
            return
        user.account, user.account_id = self.hub.fold(name), account.id
        self.accounts.touch(name)
        log.info("%s identified as %s", user.nick, account.name)
        self.hub.notify(user, f"You are identified as {account.name}.")
        self._deliver(user, account.name)

    # -- commands ------------------------------------------------------------------------

    def register(self, user: User, password: str) -> None:
        """``/register PASSWORD``: the user's nickname becomes its account."""
        hub, nick = self.hub, user.nick
        mine = self.account_name(user)
        if mine:
            hub.notify(user, f"You are identified as {mine} already; /password OLD NEW changes it.")
            return
        if self.registered(nick):
            hub.notify(user, f"The nickname {nick} is registered already.")
            return
        problem = password_problem(password)
        if problem is None and self.accounts.full:
            problem = "This server has as many accounts as it keeps; ask an operator."
        if problem is None and user.checking:
            problem = "Still checking your last password; wait for its answer."
        if problem:
            hub.notify(user, problem)
            return

        def done(hashed: str) -> None:
            user.checking = False
            if not hub.is_online(user) or user.nick != nick:
                if hub.is_online(user):
                    hub.notify(user, f"You are not {nick} now; /register again to keep this name.")
                return
            try:
                self.accounts.create(nick, hashed)
            except (AccountExists, TooManyAccounts) as exc:
                hub.notify(user, sentence(str(exc).capitalize()))
                return
            self._shared(nick)
            user.account, user.account_id = hub.fold(nick), self.accounts.get(nick).id  # type: ignore[union-attr]
            log.info("%s registered an account", nick)
            hub.notify(
                user,
                f"Registered: the nickname {nick} is yours. Next time give its password"
                f" when asked, or {nick}:PASSWORD at the prompt.",
            )

        user.checking = True
        if not self.hasher.submit(lambda: hash_password(password), done):
            user.checking = False
            hub.notify(user, BUSY)

    def identify(self, user: User, nick: str, password: str) -> None:
        """``/identify [NICK] PASSWORD``: prove ``nick``'s password (the user's
        own nickname by default) and, if it is another, take it."""
        hub = self.hub
        if self.owns(user, nick) and hub.fold(user.nick) == hub.fold(nick):
            hub.notify(user, f"You are identified as {nick} already.")
            return
        if not self.registered(nick):
            hub.notify(user, f"The nickname {nick} is not registered; /register PASSWORD keeps it.")
            return

        def then(right: bool) -> None:
            if not right:
                wait = self.attempts.wait(user.link.host, hub.clock())
                hub.notify(user, f"Wrong password for {nick} (the next after {_seconds(wait)}).")
                return
            if hub.fold(user.nick) != hub.fold(nick):
                self._take_over(user, nick)
                again = functools.partial(then, right)  # once the cluster has answered
                problem = hub.rename(user, nick, verified=True, retry=again)
                if problem is PENDING:
                    return
                if problem:
                    hub.notify(user, problem)
                    return
            self._identified(user)

        self._check(user, nick, password, then)

    def change_password(self, user: User, old: str, new: str) -> None:
        """``/password OLD NEW``."""
        hub, nick = self.hub, self.account_name(user)
        if not nick:
            hub.notify(user, "You are not identified; /register PASSWORD makes an account.")
            return
        problem = password_problem(new)
        if problem:
            hub.notify(user, problem)
            return

        def then(right: bool) -> None:
            if not right:
                hub.notify(user, "Wrong password: it stays as it was.")
                return

            def hashed(value: str) -> None:
                user.checking = False
                if self.accounts.set_hash(nick, value):
                    self._shared(nick)
                    log.info("%s changed its password", nick)
                    hub.notify(user, "Password changed.")
                elif hub.is_online(user):
                    hub.notify(user, f"The account {nick} is gone.")

            user.checking = True
            if not self.hasher.submit(lambda: hash_password(new), hashed):
                user.checking = False
                hub.notify(user, BUSY)

        self._check(user, nick, old, then)

    def unregister(self, user: User, password: str) -> None:
        """``/unregister PASSWORD``: the account goes (its kept messages and
        scores with it); the user stays on with the nickname, a guest."""
        hub, nick = self.hub, self.account_name(user)
        if not nick:
            hub.notify(user, "You are not identified, so there is no account of yours to delete.")
            return

        def then(right: bool) -> None:
            if not right:
                hub.notify(user, "Wrong password: the account stays.")
                return
            self._forget(nick, user)
            log.info("%s deleted its account", nick)
            hub.notify(user, f"Your account {nick} is deleted; the nickname is anyone's now.")

        self._check(user, nick, password, then)

    def delete(self, name: str) -> bool:
        """An operator deletes account ``name``; whoever is identified as it
        is told, and stays on as a guest. False when there is no such account."""
        account = self.accounts.get(name)
        if account is None:
            return False
        for user in self._forget(name):
            self.hub.notify(user, f"An operator deleted the account {account.name}.")
        log.info("an operator deleted the account %s", account.name)
        return True

    def held_from_peers(self, name: str, args: list[Any]) -> None:
        """Another node kept a private message for an offline account
        (``held``: account and the message's fields), or gave an account its
        kept messages (``taken``): this node's copy follows."""
        if name == "held":
            message = HeldMessage(*args[1:])
            if _held_key(message) not in map(_held_key, self.accounts.held_for(args[0])):
                self.accounts.hold(args[0], message)  # (one read twice is kept once)
        else:
            self.accounts.take(args[0])

    def _shared(self, name: str) -> None:
        """Tell the other nodes of a cluster what account ``name`` is now."""
        account = self.accounts.get(name)
        if account is None:
            self.hub.account_changed(["account", name, "", 0.0])
        else:
            self.hub.account_changed(["account", account.name, account.hash, account.created])

    def from_peers(self, name: str, hash: str, created: float) -> None:
        """Another node made account ``name``, changed its password (its
        ``hash``), or deleted it (``hash`` empty): this node's store follows."""
        if hash:
            account = self.accounts.get(name)
            if account is None or account.hash != hash:
                self.accounts.put(name, hash, created)
            return
        if self.accounts.get(name) is not None:
            for user in self._forget(name, shared=False):
                self.hub.notify(user, f"The account {name} was deleted on another server.")

    def merge(self, shared: dict[str, list[Any] | None]) -> list[list[Any]]:
        """Join the cluster's accounts (Redis's: folded name -> [name, hash,
        created], None for one deleted) with this node's: Redis's win, and
        the changes for those only this node has are returned (made while it
        was out of touch, or kept by it through a Redis that lost them)."""
        for key, found in shared.items():
            if found is None:
                if self.accounts.get(key) is not None:
                    for user in self._forget(key, shared=False):
                        self.hub.notify(user, f"The account {key} was deleted on another server.")
            else:
                self.from_peers(*found)
        return [
            ["account", account.name, account.hash, account.created]
            for account in self.accounts.all()
            if self.hub.fold(account.name) not in shared
        ]

    def _forget(self, name: str, told: User | None = None, *, shared: bool = True) -> list[User]:
        """Delete account ``name``; every user identified as it is a guest
        now. Returns those users but ``told`` (who is told otherwise). The
        other nodes of a cluster are told, unless it was one of theirs."""
        account = self.accounts.get(name)
        self.accounts.delete(name)
        if shared:
            self._shared(name)
        guests = []
        for user in self.hub.users():
            if account is not None and user.account_id == account.id:
                user.account, user.account_id = "", 0
                if user is not told:
                    guests.append(user)
        return guests

    def hold(self, user: User, nick: str, text: str, *, notice: bool, action: bool) -> str | None:
        """A private message to ``nick``, who is offline: kept for its account
        if it has one. Returns what the sender is told, or None (no account)."""
        account = self.accounts.get(nick)
        if account is None:
            return None
        message = HeldMessage(self.hub.wall(), user.nick, user.ident, text, notice, action)
        if not self.accounts.hold(nick, message):
            return (
                f"{account.name} is offline and has as many messages kept as it can;"
                " yours was not kept."
            )
        # Every node of a cluster keeps it: it is given on whichever the
        # account identifies on.
        self.hub.share(["held", account.name, *dataclasses.astuple(message)])
        return f"{account.name} is offline; your message is kept until they identify."


def _held_key(message: HeldMessage) -> tuple[object, ...]:
    """What tells one held message from another: the store keeps its time to
    the millisecond."""
    return (int(message.at * 1000), message.sender, message.text, message.notice, message.action)
