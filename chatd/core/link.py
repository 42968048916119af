"""The seam between the reactor and what it serves: Link one way, Handler the other.

Rule: the reactor owns sockets and knows nothing of chat or admin; a handler (the
hub, the admin service) knows what lines mean and nothing of sockets. A handler
talks to a connection only through its Link, and a Link never calls back into
its handler: the reactor reports a connection's end later, through
:meth:`Handler.disconnect`, so no handler method is ever re-entered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from chatd.core.buffers import Overlong
from chatd.core.fanout import Member


class Framer(Protocol):
    """Cuts one connection's input into the units its handler takes one at a
    time, each for one flood-control token (InputBuffer: lines)."""

    #: The largest unit in bytes: the reactor reads that much per token.
    max_line_bytes: int

    def feed(self, data: bytes) -> None: ...

    def has_line(self) -> bool: ...

    def next_line(self) -> bytes | Overlong | None: ...


#: A listener's framing: the session a handler's connect() returned -> its Framer.
Framing = Callable[[Any], Framer]


class Link(Member, Protocol):
    """One connection as a handler sees it (and a member of a fan-out group)."""

    @property
    def peer(self) -> str:
        """Where the connection comes from, for logs and operators ("127.0.0.1:5555")."""
        ...

    @property
    def host(self) -> str:
        """The peer's address without its port ("127.0.0.1"): what a ban names."""
        ...

    def send(self, data: bytes) -> None:
        """Queue ``data`` (complete encoded lines) for the peer, after whatever its
        fan-out group published before (see :mod:`chatd.core.fanout`)."""
        ...

    def deliver(self, data: bytes | memoryview) -> None:
        """Queue broadcast data (what a fan-out group calls)."""
        ...

    def deliver_batch(self, data: bytes) -> None:
        """A fan-out group's whole batch at the end of the loop iteration: written
        at once if nothing is queued ahead of it, else queued like ``deliver``."""
        ...

    def close(self) -> None:
        """Close after the queued output has gone (or a bounded time has passed)."""
        ...


class Handler(Protocol):
    """What serves the connections of one listener, or those the loop dialled
    for it (Reactor.connect: then connect() comes before the connection is up,
    and refused(), line_too_long() and slowed() never do)."""

    def connect(self, link: Link) -> Any:
        """A new connection; returns the session object later calls pass back."""
        ...

    def receive_line(self, session: Any, line: bytes) -> None:
        """One line as it came (without its line ending): the handler decodes it
        the way its wire format wants (nc text is sanitized whole; an IRC line
        keeps the CTCP and formatting bytes its parser must see). On a listener
        with its own framing it is the unit that listener's Framer cut."""
        ...

    def line_too_long(self, session: Any, limit: int) -> None:
        """A line over ``limit`` bytes arrived and was dropped."""
        ...

    def slowed(self, session: Any, rate: float) -> None:
        """Flood control has started holding this session's lines back to ``rate`` a
        second (once per flood); none is lost."""
        ...

    def refused(self, reason: str) -> bytes:
        """The line to send a connection turned away for ``reason`` ("server full")
        before it is closed; the connection never reaches :meth:`connect`."""
        ...

    def disconnect(self, session: Any, reason: str) -> None:
        """The connection has ended (or is ending: its last output may still be
        draining). Called exactly once per connection, never from inside a call
        to the handler or to its link."""
        ...

    def shutdown(self, message: str) -> None:
        """The server is stopping: tell every session ``message`` and close its
        link. Listeners' handlers are told first, the last listened with first;
        then those that dialled out, whose connections the loop then closes
        once their output is written."""
        ...
