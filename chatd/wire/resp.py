"""RESP2, the Redis protocol, sans-IO: commands out as bytes, bytes in as replies.

Rule: this module does no I/O. :func:`command` packs a command into the bytes
to write; :class:`RespReader` is fed whatever was read and hands back every
complete reply, in order. Whoever owns the socket (the reactor, for the
backplane; a blocking test client) moves the bytes. hiredis does the parsing
(its ``Reader`` and ``pack_command``, in C); this module adds what it lacks:
a bound on what is buffered, one error type, and a reader that stays failed.

Replies are kept as RESP2 gives them: bulk and simple strings as ``bytes``
(never decoded here: keys and ids stay bytes, and a payload that is not UTF-8
is the backplane codec's to judge), integers as ``int``, nil as ``None``,
arrays as ``list``, and an error reply (``-ERR ...``) as a :data:`ReplyError`
instance, returned, not raised, also inside an array (EXEC, a script).
An error reply is Redis refusing one command; the connection goes on. A
:class:`RespError` is the stream itself being wrong: drop the connection.

Why RESP2 and not RESP3: chatd keeps one connection that subscribes and one
that sends commands, so no connection ever mixes pushes with replies, which
is the one thing RESP3 is needed for. Under RESP2 a subscribed connection
only ever receives arrays (``[b"message", channel, payload]``), and a reply is
never ``False``, which lets hiredis's "not enough data" marker be unambiguous.

:class:`RedisAddress` and :func:`parse_url` read ``redis://`` URLs, the form
``[cluster] redis`` takes; :meth:`RedisAddress.hello` gives the commands a
fresh connection sends first (AUTH, SELECT).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NoReturn, TypeGuard
from urllib.parse import unquote

import hiredis

#: An error reply from Redis (``-ERR ...``, ``-WRONGTYPE ...``): one command
#: refused. Replies carry it as an instance; ``str(reply)`` is Redis's message.
ReplyError = hiredis.ReplyError

#: The most bytes buffered without a complete reply before the connection is
#: given up. hiredis buffers without any limit, so this is the bound. Every
#: reply chatd asks for is bounded by construction: the largest are XRANGE
#: batches (``COUNT n``) of chat lines of at most a few KB each at the
#: default ``max_line_bytes`` (1 KiB of text, plus the event's fields). 8 MiB
#: holds a batch of 500 such lines several times over, and still 7 lines at
#: the largest ``max_line_bytes`` (1 MiB), while keeping what a broken or
#: hostile server can make one connection hold to 8 MiB. A caller asking for
#: batches keeps ``COUNT`` x (line bytes + ~200 of fields) under it.
#: (hiredis's own count can include up to 1 KiB of already-parsed input.)
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024

#: What a command's arguments may be: RESP2 sends every one as a bulk string.
Arg = str | bytes | int | float

DEFAULT_PORT: Final = 6379
_SCHEME: Final = "redis://"


class RespError(Exception):
    """The bytes from Redis are not RESP, or a reply outgrew MAX_REPLY_BYTES:
    the connection cannot be trusted any further and must be dropped."""


def is_error(reply: object) -> TypeGuard[hiredis.ReplyError]:
    """Whether ``reply`` is an error reply (Redis refused the command)."""
    return isinstance(reply, ReplyError)


def command(*args: Arg) -> bytes:
    """``args`` (the command's name first) packed as one RESP2 command.

    str is sent as UTF-8; int and float as their decimal text. Anything else
    (None, bool, a list) is a ValueError that names the argument's position
    and type, never its value (it may be a password)."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    for position, arg in enumerate(args, 1):
        # bool is an int to Python but means nothing to Redis: True would go as "1".
        if isinstance(arg, bool) or not isinstance(arg, str | bytes | int | float):
            name = args[0] if isinstance(args[0], str) else repr(args[0])
            kind = "None" if arg is None else type(arg).__name__
            raise ValueError(
                f"Redis command {name}: argument {position} is {kind};"
                " pass str, bytes, int or float"
            )
    # hiredis.pyi types the tuple as Tuple[X], i.e. one item long: wrong.
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


#: What hiredis's Reader returns while no complete reply is buffered: our own
#: object, so no reply (not even a RESP3 false) can be taken for it.
_NEED_DATA: Final = object()


class RespReader:
    """The input side of one Redis connection: bytes in, replies out.

    Call :meth:`replies` after every :meth:`feed`; it is there that the bound
    is checked. On a :class:`RespError` (a protocol error, or more than
    ``max_reply_bytes`` buffered without a complete reply) the reader refuses
    any further use, as the connection must be dropped; complete replies
    parsed in the same call go with it (a fresh connection resynchronizes).
    """

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        self.max_reply_bytes = max_reply_bytes
        self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)
        self._failed = ""  # why it failed, once it has

    @property
    def failed(self) -> bool:
        return bool(self._failed)

    def feed(self, data: bytes) -> None:
        """Bytes read from the connection, as they came (any split will do)."""
        self._check()
        self._reader.feed(data)

    def replies(self) -> list[object]:
        """Every reply completed since the last call, in the order Redis sent them."""
        self._check()
        done: list[object] = []
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(f"Redis sent something that is not RESP ({exc}): drop the connection")
            if reply is _NEED_DATA:
                break
            done.append(reply)
        # len() counts up to 1 KiB of input already parsed (hiredis compacts
        # its buffer past that), so it only counts when a reply is unfinished.
        if self._reader.has_data() and self._reader.len() > self.max_reply_bytes:
            self._fail(
                f"Redis sent over {self.max_reply_bytes} bytes without completing a reply"
                " (the bound is resp.MAX_REPLY_BYTES): drop the connection"
            )
        return done

    def _check(self) -> None:
        if self._failed:
            raise RespError(f"this RESP reader failed earlier ({self._failed}); use a new one")

    def _fail(self, why: str) -> NoReturn:
        self._failed = why
        self._reader = hiredis.Reader(notEnoughData=_NEED_DATA)  # let go of the buffer
        raise RespError(why)


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis server is and how to log in: what a ``redis://`` URL says."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def display(self) -> str:
        """The address as a URL, with ``***`` for a password: safe for logs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        login = ""
        if self.username or self.password:
            login = f"{self.username}:{'***' if self.password else ''}@"
        return f"{_SCHEME}{login}{host}:{self.port}/{self.db}"

    def __str__(self) -> str:
        return self.display

    def hello(self) -> list[bytes]:
        """The commands a fresh connection sends before any other, packed:
        AUTH when there is a login (``AUTH user pass`` with a username, for
        Redis 6 ACLs; an ACL user with ``nopass`` may have an empty password),
        and SELECT when the database is not 0."""
        first: list[bytes] = []
        if self.username:
            first.append(command("AUTH", self.username, self.password))
        elif self.password:
            first.append(command("AUTH", self.password))
        if self.db:
            first.append(command("SELECT", self.db))
        return first


def parse_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]`` as a RedisAddress.

    The user and password are percent-decoded (a ``@`` in a password is
    ``%40``); an IPv6 host goes in brackets (``redis://[::1]:6379``). Every
    error is one ValueError line that shows the URL without its password."""
    shown = _without_password(url)
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "rediss":
        raise ValueError(f"{shown}: rediss:// (TLS) is not supported yet; use redis://")
    if not sep or scheme.lower() != "redis":
        raise ValueError(f"{shown}: must start with redis:// (e.g. redis://localhost:6379/0)")
    # The login ends at the last "@", so a password may hold "/", "?" or "#" as it is.
    login, at, place = rest.rpartition("@")
    hostport, _, path = place.partition("/")
    host, port = _host_port(hostport, shown)
    username, password = "", ""
    if at:
        username, colon, password = login.partition(":")
        if not colon:
            raise ValueError(
                f"{shown}: a login needs a colon: redis://:PASSWORD@host or"
                " redis://USER:PASSWORD@host"
            )
        username, password = unquote(username), unquote(password)
    # Any number: how many databases there are is the server's setting, and
    # SELECT's error says so when this one is past them.
    if path and not (path.isascii() and path.isdigit()):
        raise ValueError(f"{shown}: the database must be a number like /0, not /{path}")
    return RedisAddress(host, port, int(path or 0), username, password)


def _host_port(hostport: str, shown: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"{shown}: the IPv6 address has no closing ]")
        if after and not after.startswith(":"):
            raise ValueError(f"{shown}: after the ] comes :port or /db, not {after!r}")
        port = after[1:] if after else None
    elif hostport.count(":") > 1:
        raise ValueError(f"{shown}: an IPv6 address goes in brackets, as in redis://[::1]:6379")
    else:
        host, colon, given = hostport.partition(":")
        port = given if colon else None
    if not host:
        raise ValueError(f"{shown}: the host is empty (e.g. redis://localhost:6379/0)")
    if port is None:
        return host, DEFAULT_PORT
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{shown}: the port must be a number from 1 to 65535, not {port!r}")
    return host, int(port)


def _without_password(url: str) -> str:
    """``url`` with the password (between the login's colon and the last "@")
    as ``***``, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    login, at, place = rest.rpartition("@")
    user, colon, password = login.partition(":")
    if not (at and colon and password):
        return repr(url)
    return repr(f"{scheme}{sep}{user}:***@{place}")
