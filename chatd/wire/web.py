"""The web format, sans-IO: JSON events in WebSocket text frames, and the input
side of a web connection (HTTP/1.1 until the request is in, then WebSocket).

Rule: this module alone knows what a browser is sent. Every event becomes one
JSON object (``{"type": "said", "room": "#lobby", "nick": "alice", "text":
"hi"}``) in one unmasked text frame, and every piece of text in it is cleaned
as on every wire (:func:`chatd.wire.text.one_line`; a notice keeps its lines),
so no control byte reaches a page. The README's "The web protocol" documents
the same objects. No I/O, and nothing about the hub or other connections.

An event is rendered once for every web reader: each names its room, so the
page decides how to show it (one variant, :data:`HERE`). What depends on one
connection (the greeting's limit, the close frame after ``goodbye`` and
``closing``) is :class:`WebWire`'s, rendered for that connection alone.

The input side is :class:`WebInput`, the reactor's Framer for the web
listener: h11 parses the request, then websockets' sans-IO ServerProtocol the
frames. The libraries do the protocols (the handshake's checks, masking,
fragments, the 1009 size limit, the close handshake, pongs); this module only
cuts their work into one unit per flood-control token.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, Final

import h11
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

import chatd
from chatd.core import events as ev
from chatd.core.buffers import Overlong
from chatd.core.delivery import HERE
from chatd.core.nicks import NICK_RULE
from chatd.wire import replay
from chatd.wire.text import lines_of, one_line

NAME: Final = "web"
#: The longest HTTP request head read: a browser's is 0.5-4 KiB, cookies
#: included, and h11 bounds an incomplete head at the same figure. Past it: 431.
MAX_REQUEST_BYTES: Final = 16 * 1024
#: WebSocket input is handed to websockets this much at a time, so a read
#: full of tiny frames is parsed one flood-control token's worth at a time,
#: not all at once (a 64 KiB read of pings parses in ~140 ms).
FEED_BYTES: Final = 256
#: The most a client frame's header adds to its payload: 2 bytes, 8 of
#: length, 4 of mask (what one token lets the reactor read beyond a message).
FRAME_OVERHEAD: Final = 14
#: The longest reason a close frame carries (RFC 6455: 125 bytes less the code).
MAX_CLOSE_REASON_BYTES: Final = 123

#: Content types of the plain HTTP answers.
TEXT_PLAIN: Final = "text/plain; charset=utf-8"
TEXT_HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"

_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(obj: dict[str, Any]) -> str:
    """``obj`` as compact JSON, UTF-8 left as it is."""
    return _ENCODER.encode(obj)


def http_response(
    status: int,
    body: bytes,
    content_type: str = TEXT_PLAIN,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection (one request per
    connection). Written out, not through h11: it must also answer requests
    h11 could not parse (400, 431), where its state machine has none to send."""
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-cache",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def variant(room: str, current: str) -> str:
    """One variant: every event names its room, and the page shows it so."""
    return HERE


def frame(obj: dict[str, Any]) -> bytes:
    """``obj`` as JSON in one unmasked text frame: what a server sends."""
    payload = encode_json(obj).encode()
    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def error(code: str, text: str, request: str = "") -> bytes:
    """The answer to a request that could not be done (the connection stays)."""
    return frame({"type": "error", "code": code, "text": one_line(text), "request": request})


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame may carry, at a character's edge."""
    data = one_line(text).encode()[:MAX_CLOSE_REASON_BYTES]
    return data.decode("utf-8", "ignore")


def _notice_text(text: str) -> str:
    return "\n".join(lines_of(text))  # a notice may hold lines: the page keeps them


def _said(e: ev.Said) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": "said", "room": e.room, "nick": e.nick, "text": one_line(e.text)}
    if e.notice:
        obj["notice"] = True
    return obj


def _private(e: ev.PrivateSaid) -> dict[str, Any]:
    # The sender's echo is the same object: the page knows "from" is itself.
    return {
        "type": "private",
        "from": e.sender,
        "to": e.to,
        "text": one_line(e.text),
        "action": e.action,
        "notice": e.notice,
    }


def _replay_start(e: ev.ReplayStart) -> dict[str, Any]:
    return {
        "type": "history_start",
        "room": e.room,
        "why": e.why,
        "count": e.count,
        "since": e.since,
        "text": replay.start_text(e),
    }


def _replay_end(e: ev.ReplayEnd) -> dict[str, Any]:
    return {
        "type": "history_end",
        "room": e.room,
        "why": e.why,
        "count": e.count,
        "more": e.more,
        "ask": e.ask,
        "text": replay.end_text(e),
    }


def _members(kind: str, room: str, members: tuple[str, ...], ops: frozenset[str]) -> dict[str, Any]:
    return {"type": kind, "room": room, "members": list(members), "ops": sorted(ops)}


_RENDER: Final[dict[type, Callable[[Any], dict[str, Any]]]] = {
    ev.Said: _said,
    ev.Acted: lambda e: {"type": "acted", "room": e.room, "nick": e.nick, "text": one_line(e.text)},
    ev.PrivateSaid: _private,
    ev.Joined: lambda e: {"type": "joined", "room": e.room, "nick": e.nick, "arrived": e.arrived},
    ev.Parted: lambda e: {
        "type": "parted",
        "room": e.room,
        "nick": e.nick,
        "reason": one_line(e.reason),
    },
    ev.Kicked: lambda e: {
        "type": "kicked",
        "room": e.room,
        "nick": e.nick,
        "by": e.by,
        "reason": one_line(e.reason),
    },
    ev.Quit: lambda e: {"type": "quit", "nick": e.nick, "reason": one_line(e.reason)},
    ev.Renamed: lambda e: {"type": "renamed", "old": e.old, "new": e.new},
    ev.TopicSet: lambda e: {"type": "topic", "room": e.room, "text": one_line(e.text), "by": e.by},
    ev.Opped: lambda e: {"type": "opped", "room": e.room, "nick": e.nick, "by": e.by, "op": e.op},
    ev.Notice: lambda e: {"type": "notice", "room": e.room, "text": _notice_text(e.text)},
    ev.Greeting: lambda e: hello(0),
    ev.YouRenamed: lambda e: {"type": "you_renamed", "old": e.old, "new": e.new},
    ev.Goodbye: lambda e: {"type": "goodbye", "reason": one_line(e.reason)},
    ev.Closing: lambda e: {"type": "closing", "reason": one_line(e.reason)},
    ev.Welcome: lambda e: {
        "type": "welcome",
        "nick": e.nick,
        "room": e.room,
        "online": e.online,
        "most": e.most,
    },
    ev.RoomState: lambda e: (
        _members("room", e.room, e.members, e.ops) | {"topic": one_line(e.topic)}
    ),
    ev.Members: lambda e: _members("members", e.room, e.members, e.ops),
    ev.Current: lambda e: {"type": "current", "room": e.room},
    ev.YouLeft: lambda e: {
        "type": "left",
        "room": e.room,
        "kicked": e.kicked,
        "by": e.kicked_by,
        "reason": one_line(e.reason),
    },
    ev.ReplayStart: _replay_start,
    ev.Replayed: lambda e: {
        "type": "history",
        "room": e.room,
        "at": e.at,
        "kind": e.kind,
        "nick": e.nick,
        "text": one_line(e.text),
    },
    ev.ReplayEnd: _replay_end,
}


def hello(max_message_bytes: int, ping_interval: float = 0) -> dict[str, Any]:
    """The first event of a WebSocket: who answers, what it takes, and how
    often it pings a silent connection (0: never; one silent twice as long is
    dropped, so a page knows how long its old connection may hold its nick)."""
    return {
        "type": "hello",
        "server": "chatd",
        "version": chatd.__version__,
        "max_message_bytes": max_message_bytes,
        "ping_interval": ping_interval,
        "nick_rule": NICK_RULE,
    }


def render(event: ev.Event, v: str = HERE) -> bytes:
    """``event`` as one frame, the same for every web reader."""
    return frame(_RENDER[type(event)](event))


class WebWire:
    """One web connection's format: the shared rendering, but its greeting
    names its limit, and ``goodbye`` and ``closing`` are followed by the close
    frame (1000, with the reason) of its own WebSocket."""

    NAME: Final = NAME

    def __init__(
        self, proto: ServerProtocol, max_message_bytes: int, ping_interval: float = 0
    ) -> None:
        self.proto = proto
        self.max_message_bytes = max_message_bytes
        self.ping_interval = ping_interval

    def variant(self, room: str, current: str) -> str:
        return HERE

    def render(self, event: ev.Event, v: str = HERE) -> bytes:
        if isinstance(event, ev.Greeting):
            return frame(hello(self.max_message_bytes, self.ping_interval))
        data = render(event, v)
        if isinstance(event, (ev.Closing, ev.Goodbye)) and self.proto.state is State.OPEN:
            self.proto.send_close(CloseCode.NORMAL_CLOSURE, close_reason(event.reason))
            data += b"".join(self.proto.data_to_send())  # b"" (the end) joins to nothing
        return data


class WebInput:
    """The reactor's Framer for one web connection: HTTP until the request is
    in, then WebSocket frames once :meth:`upgrade` is called.

    A unit is a complete text message's payload (:attr:`message` is then
    true, even for an empty one), or ``b""`` for every other frame (a ping,
    whose pong is queued; a pong; a fragment; a close) and for the request.
    What a unit did is in this object's state, which the gateway reads after
    each one: a request parsed (:attr:`request`) or refused (:attr:`problem`),
    and the protocol's output and state. Every message read before a close
    or a protocol error is handed out before :attr:`ended` is true; input
    past it, or past an answer, is dropped unread.
    """

    def __init__(self, max_message_bytes: int) -> None:
        #: The longest unit, for the reactor's reads: a message and its header.
        self.max_line_bytes = max_message_bytes + FRAME_OVERHEAD
        self.http: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES
        )
        self.raw = bytearray()  # read, not yet parsed
        self.head = bytearray()  # the request as it came (websockets reads it again)
        self.request: h11.Request | None = None
        self.problem: tuple[int, str] | None = None  # (HTTP status, why)
        self.proto: ServerProtocol | None = None
        self.done = False  # answered, closed or failed: nothing more is read
        #: Whether the unit last handed out is a text message.
        self.message = False
        self._units: deque[tuple[bytes, bool]] = deque()  # (payload, a message)
        self._parts: list[bytes] = []  # a fragmented message's frames so far

    # -- Framer ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not self.done:
            self.raw += data

    def has_line(self) -> bool:
        if self._units:
            return True
        waiting = self.proto is None and (self.request is not None or self.problem is not None)
        return bool(self.raw) and not (self.done or waiting)

    def next_line(self) -> bytes | Overlong | None:
        self.message = False
        if self._units:
            return self._unit()
        if not self.raw or self.done:
            return None
        if self.proto is None:
            return self._request()
        return self._frame()

    # -- HTTP --------------------------------------------------------------------------

    def _request(self) -> bytes | None:
        http = self.http
        if http is None or self.request is not None or self.problem is not None:
            return None  # waiting for the gateway's answer
        data = bytes(self.raw)
        self.raw.clear()
        self.head += data
        http.receive_data(data)
        try:
            event = http.next_event()
        except h11.RemoteProtocolError as exc:
            # In our words: h11's would echo the client's bytes back at it.
            status = exc.error_status_hint
            self.problem = (status, f"{HTTPStatus(status).phrase}: not a request chatd can read.")
            return b""
        if isinstance(event, h11.Request):
            trailing = http.trailing_data[0]  # the first frames, sent with the head
            del self.head[len(self.head) - len(trailing) :]
            self.raw[:0] = trailing
        if len(self.head) > MAX_REQUEST_BYTES:  # (h11 bounds only an incomplete head)
            self.problem = (431, f"The request head is over {MAX_REQUEST_BYTES // 1024} KiB.")
            return b""
        if isinstance(event, h11.Request):
            self.request = event
            return b""
        return None  # h11.NEED_DATA: more of the head to come

    def answered(self) -> None:
        """The request was answered over plain HTTP: read nothing more."""
        self.done = True
        self.raw.clear()

    def upgrade(self, proto: ServerProtocol) -> None:
        """Go on in WebSocket frames, read by ``proto`` (which answered 101)."""
        self.proto = proto
        # h11's state, the request and its head are not needed again (~2 KiB).
        self.http = None
        self.request = None
        self.head = bytearray()

    # -- WebSocket ---------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether the WebSocket is closed or failed and every unit read before
        that has been handed out: time to send the close and end."""
        proto = self.proto
        return proto is not None and proto.state is not State.OPEN and not self._units

    def _unit(self) -> bytes:
        payload, self.message = self._units.popleft()
        return payload

    def _frame(self) -> bytes | None:
        proto = self.proto
        assert proto is not None
        while not self._units:
            if not self.raw:
                return None
            chunk = bytes(self.raw[:FEED_BYTES])
            del self.raw[:FEED_BYTES]
            proto.receive_data(chunk)
            for received in proto.events_received():
                # (After the handshake every event is a Frame.) Frames parsed
                # after one this refuses are not taken: the connection is failing.
                if isinstance(received, Frame) and not self._take(proto, received):
                    break
            if proto.state is not State.OPEN:  # closed, or failed: the rest is not read
                self.done = True
                self.raw.clear()
                self._units.append((b"", False))
        return self._unit()

    def _take(self, proto: ServerProtocol, received: Frame) -> bool:
        """Queue one frame's unit; False when it fails the connection."""
        if received.opcode is Opcode.BINARY:
            proto.fail(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted: send JSON text")
            return False
        if received.opcode in (Opcode.TEXT, Opcode.CONT):
            self._parts.append(bytes(received.data))
            if received.fin:
                payload = b"".join(self._parts)
                self._parts.clear()
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    proto.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                    return False
                self._units.append((payload, True))
                return True
        self._units.append((b"", False))  # a ping (its pong is queued), a pong, a fragment, a close
        return True
