"""The web gateway: the Handler the web listener serves its connections with.

Rule: this is the one place that knows HTTP routes and the web protocol's
requests. A connection is one HTTP request: ``GET /`` (the page), ``GET
/healthz``, ``GET /metrics``, each answered and closed, or ``GET /ws``,
upgraded to a WebSocket whose JSON requests become calls of the hub's API
(say, join, private, rename, ...) like the IRC gateway's verbs; the hub's
events come back through the connection's :class:`chatd.wire.web.WebWire`.
Like the hub, it knows nothing of sockets: the reactor hands it the units
:class:`chatd.wire.web.WebInput` cut (one per flood-control token) and it
writes to :class:`~chatd.core.link.Link`\\ s.

A connection is a chat user only once its WebSocket is open: a scrape of
/metrics is nobody. Until then it has :data:`HANDSHAKE_SECONDS` to send its
request; after it, ``[limits] register_timeout`` to choose a nickname.

The ``[web]`` settings it reads when used: allowed_origins (at each
handshake) and ping_interval (at each ping check), so a reload changes them.

The server's pings: a WebSocket silent for ``ping_interval`` seconds is sent
a ping (browsers answer by themselves); silent as long again, it is dropped
with ``Ping timeout: N seconds``. Any frame counts as an answer. One timer
per connection, moved only when it fires, as the IRC gateway's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import h11
from websockets.frames import CloseCode
from websockets.http11 import Request
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol
from websockets.typing import Origin

from chatd.core import events as ev
from chatd.core.accounts import MAX_TRIES
from chatd.core.hub import Hub, State, User
from chatd.core.link import Link
from chatd.core.nicks import PENDING, nick_problem, taken
from chatd.core.rooms import NO_ROOM
from chatd.core.timers import Timer
from chatd.metrics import CONTENT_TYPE as PROMETHEUS_TEXT
from chatd.wire import jsontext, web
from chatd.wire.text import one_line

log = logging.getLogger(__name__)
#: websockets' own logger: it would log every handshake at INFO.
_WS_LOG: Final = logging.getLogger("chatd.web.websockets")
_WS_LOG.setLevel(logging.WARNING)

#: From accept to a complete request: a browser sends its head within
#: milliseconds, and 10 s covers a slow mobile link; a slowloris holds a
#: connection this long at most. Then 408.
HANDSHAKE_SECONDS: Final = 10.0
#: What a request's JSON adds to the text it carries (``{"type":"msg","to":
#: "...","text":...}``, escapes): a WebSocket message may be this much longer
#: than ``[limits] max_line_bytes``, so a web user can say as much as nc's.
ENVELOPE_BYTES: Final = 256
#: How long the ``rooms`` reply is kept: a flood of ``rooms`` requests from
#: many pages builds the list (up to ``[rooms] max_rooms`` entries) once a second.
ROOMS_CACHE_SECONDS: Final = 1.0
#: Where answers are counted for /metrics: the routes, and the rest as one.
ROUTES: Final = ("/", "/ws", "/healthz", "/metrics")

PAGE_PACKAGE: Final = "chatd.web"
PAGE_FILE: Final = "chat.html"
_SCRIPT: Final = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_STYLE: Final = re.compile(r"<style>(.*?)</style>", re.DOTALL)


@dataclass(frozen=True)
class Page:
    """The browser page, and the Content-Security-Policy that lets its one
    script and one style run and nothing else."""

    body: bytes
    csp: str


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_of(html: str) -> Page:
    """The page ``html`` and its policy (its inline script and style by hash)."""
    scripts = " ".join(_sha256(s) for s in _SCRIPT.findall(html)) or "'none'"
    styles = " ".join(_sha256(s) for s in _STYLE.findall(html)) or "'none'"
    csp = (
        f"default-src 'none'; script-src {scripts}; style-src {styles};"
        " connect-src 'self'; img-src 'self' data:; base-uri 'none';"
        " form-action 'none'; frame-ancestors 'none'"
    )
    return Page(html.encode(), csp)


def load_page() -> Page:
    """The page shipped in the package (chatd/web/chat.html)."""
    html = importlib.resources.files(PAGE_PACKAGE).joinpath(PAGE_FILE).read_text("utf-8")
    return page_of(html)


#: Each request type -> (its required fields, its optional ones); "type" is
#: always there. All are strings but history's count, a number.
REQUESTS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    "nick": (frozenset({"nick"}), frozenset({"password"})),
    "line": (frozenset({"text"}), frozenset()),
    "say": (frozenset({"text"}), frozenset({"room"})),
    "me": (frozenset({"text"}), frozenset({"room", "to"})),
    "msg": (frozenset({"to", "text"}), frozenset()),
    "join": (frozenset({"room"}), frozenset()),
    "part": (frozenset(), frozenset({"room", "reason"})),
    "history": (frozenset(), frozenset({"room", "count"})),
    "rooms": (frozenset(), frozenset()),
    "who": (frozenset(), frozenset({"room"})),
    "quit": (frozenset(), frozenset({"reason"})),
    "ping": (frozenset(), frozenset()),
}


#: Requests that are activity (chat, or a change the others see), counted as
#: a line is (the idle timeout, ``chatd admin users``); a ``line`` is counted
#: by the hub itself, and the page's own polls (rooms, who, ping) are not.
ACTIVE: Final = frozenset({"nick", "say", "me", "msg", "join", "part"})


class WebSession:
    """One web connection: its input, then its WebSocket and its hub user."""

    __slots__ = ("heard", "input", "link", "pinged", "timer", "user")

    def __init__(self, link: Link, max_message_bytes: int) -> None:
        self.link = link
        self.input = web.WebInput(max_message_bytes)
        self.user: User | None = None  # once upgraded
        self.timer: Timer | None = None  # the handshake's deadline, then the ping check
        self.heard = 0.0  # when its last frame came
        self.pinged: float | None = None  # when it was pinged, unanswered since

    @property
    def proto(self) -> ServerProtocol | None:
        """Its WebSocket, once upgraded (its input's, which reads the frames)."""
        return self.input.proto

    def __repr__(self) -> str:
        return f"<WebSession {self.link.peer} {self.user!r}>"


class RequestError(Exception):
    """A WebSocket request that is not done: its error code and sentence."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class WebGateway:
    """chatd.core.link.Handler for the web listener, on ``hub``.

    ``metrics`` renders /metrics; ``health`` says whether the server is well
    and what /healthz shows (the server's, which knows the store); ``page``
    is the page served at / (by default the packaged one).
    """

    def __init__(
        self,
        hub: Hub,
        *,
        metrics: Callable[[], bytes] = lambda: b"",
        health: Callable[[], tuple[bool, dict[str, Any]]] = lambda: (True, {"status": "ok"}),
        page: Page | None = None,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.health = health
        self.page = page if page is not None else load_page()
        self.sessions: set[WebSession] = set()
        #: Answers given, by (route, status): for /metrics.
        self.answers: Counter[tuple[str, int]] = Counter()
        self._rooms: tuple[float, bytes] | None = None  # (when built, the reply)

    def settings_changed(self) -> None:
        """The settings were reloaded: every ping check follows ``[web] ping_interval``."""
        for session in self.sessions:
            if session.user is not None and self.hub.is_online(session.user):
                self._arm_ping(session)

    def framing(self, session: WebSession) -> web.WebInput:
        """The listener's framing: a session's input is its own WebInput."""
        return session.input

    @property
    def max_message_bytes(self) -> int:
        return self.hub.config.limits.max_line_bytes + ENVELOPE_BYTES

    # -- Handler --------------------------------------------------------------------

    def connect(self, link: Link) -> WebSession:
        session = WebSession(link, self.max_message_bytes)
        self.sessions.add(session)
        overdue = functools.partial(self._handshake_overdue, session)
        session.timer = self.hub.timers.call_later(HANDSHAKE_SECONDS, overdue)
        return session

    def receive_line(self, session: WebSession, unit: bytes) -> None:
        try:
            if session not in self.sessions:
                return
            if session.proto is None:
                self._http(session)
            else:
                self._frame(session, session.proto, unit)
        finally:
            self.hub.desk.settle()  # a password this request gave (a hub with no loop)

    def line_too_long(self, session: WebSession, limit: int) -> None:
        """Never called: websockets closes an oversized message itself (1009)."""

    def slowed(self, session: WebSession, rate: float) -> None:
        if session.user is not None:
            self.hub.slowed(session.user, rate)

    def refused(self, reason: str) -> bytes:
        body = (one_line(reason) + "\n").encode()
        return web.http_response(503, body, headers=[("Retry-After", "10")])

    def disconnect(self, session: WebSession, reason: str) -> None:
        self._forget(session)
        if session.user is not None:
            self.hub.disconnect(session.user, reason)

    def _forget(self, session: WebSession) -> None:
        self.sessions.discard(session)
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None

    def shutdown(self, message: str) -> None:
        """Tell every open WebSocket ``message``, close it with 1001 ("going
        away") and close every connection. The users are the hub's: its own
        shutdown forgets them (what it then sends these links is dropped)."""
        notice = web.render(ev.Notice(message))  # once for all, cleaned as every notice
        for session in list(self.sessions):
            proto = session.proto
            if proto is not None and proto.state is WsState.OPEN:
                session.link.send(notice)
                proto.send_close(CloseCode.GOING_AWAY, web.close_reason(message))
                self._send_protocol_output(session, proto)
            session.link.close()
            self._forget(session)

    # -- HTTP ---------------------------------------------------------------------------

    def _http(self, session: WebSession) -> None:
        inp = session.input
        if inp.problem is not None:
            status, why = inp.problem
            self._answer(session, "other", status, f"{why}\n".encode())
        elif inp.request is not None:
            self._route(session, inp.request)

    def _answer(
        self,
        session: WebSession,
        route: str,
        status: int,
        body: bytes,
        content_type: str = web.TEXT_PLAIN,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Answer over plain HTTP and close: one request per connection."""
        self.answers[route, status] += 1
        session.input.answered()
        session.link.send(web.http_response(status, body, content_type, headers or []))
        session.link.close()
        self._forget(session)

    def _route(self, session: WebSession, request: h11.Request) -> None:
        path = request.target.split(b"?", 1)[0].decode("ascii", "replace")
        route = path if path in ROUTES else "other"
        if request.method != b"GET":
            allow = [("Allow", "GET")]
            self._answer(session, route, 405, b"Only GET is served here.\n", headers=allow)
        elif path == "/":
            headers = [
                ("Content-Security-Policy", self.page.csp),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ]
            self._answer(session, route, 200, self.page.body, web.TEXT_HTML, headers)
        elif path == "/healthz":
            well, facts = self.health()
            body = (web.encode_json(facts) + "\n").encode()
            self._answer(session, route, 200 if well else 503, body, web.JSON)
        elif path == "/metrics":
            self._answer(session, route, 200, self.metrics(), PROMETHEUS_TEXT)
        elif path == "/ws":
            self._upgrade(session, request)
        else:
            self._answer(session, route, 404, f"Nothing at {path[:100]}.\n".encode())

    def _origins(self, request: h11.Request) -> list[Origin | None]:
        """Whose pages may open a WebSocket: ``[web] allowed_origins``, else the
        page's own origin (what its Host names); and clients sending no
        Origin at all (a script: a page in a browser always sends one)."""
        allowed = self.hub.config.web.allowed_origins
        if not allowed:
            host = dict(request.headers).get(b"host", b"").decode("latin-1").lower()
            allowed = [f"http://{host}", f"https://{host}"]
        return [*(Origin(origin) for origin in allowed), None]

    def _upgrade(self, session: WebSession, request: h11.Request) -> None:
        proto = ServerProtocol(
            origins=self._origins(request),
            max_size=self.max_message_bytes,
            logger=_WS_LOG,
        )  # no extensions: permessage-deflate stays off (README: "The web protocol")
        proto.receive_data(bytes(session.input.head))
        handshake = proto.events_received()
        if not handshake or not isinstance(handshake[0], Request):
            self._answer(session, "/ws", 400, b"Not a WebSocket handshake.\n")
            return
        response = proto.accept(handshake[0])  # 101, or 400/403/426 with a body
        proto.send_response(response)
        self.answers["/ws", response.status_code] += 1
        if response.status_code != 101:
            session.input.answered()
            self._send_protocol_output(session, proto)
            session.link.close()
            self._forget(session)
            return
        if session.timer is not None:  # the handshake's deadline
            session.timer.cancel()
            session.timer = None
        session.input.upgrade(proto)
        self._send_protocol_output(session, proto)
        wire = web.WebWire(proto, self.max_message_bytes, self.hub.config.web.ping_interval)
        user = self.hub.connect(session.link, wire)  # its hello
        session.user = user
        session.heard = self.hub.clock()
        if user.state is State.GONE:  # turned away (a banned address), and told why
            self._forget(session)
        else:
            self._arm_ping(session)

    def _handshake_overdue(self, session: WebSession) -> None:
        session.timer = None
        if session in self.sessions and session.proto is None:
            seconds = f"{HANDSHAKE_SECONDS:g}"
            body = f"No complete request in {seconds} seconds.\n".encode()
            self._answer(session, "other", 408, body)

    # -- WebSocket ----------------------------------------------------------------------

    def _send_protocol_output(self, session: WebSession, proto: ServerProtocol) -> None:
        """What websockets has to send (a 101, a pong, a close); b"": the end."""
        for data in proto.data_to_send():
            if data:
                session.link.send(data)
            else:
                session.link.close()

    def _frame(self, session: WebSession, proto: ServerProtocol, unit: bytes) -> None:
        session.heard, session.pinged = self.hub.clock(), None  # any frame answers a ping
        if session.input.message:
            try:
                self._request(session, unit)
            except Exception:  # our bug: the user gets a close that says so
                log.exception("web: %s: internal error in a request", session.link.peer)
                if proto.state is WsState.OPEN:
                    proto.fail(CloseCode.INTERNAL_ERROR, "internal error")
                self._send_protocol_output(session, proto)
                self._end(session, "internal error")
                return
        if session.input.ended:  # every message before the close has been handled
            self._send_protocol_output(session, proto)
            self._ended(session, proto)
        elif proto.state is WsState.OPEN:
            self._send_protocol_output(session, proto)  # a pong

    def _ended(self, session: WebSession, proto: ServerProtocol) -> None:
        """The client closed its WebSocket, or broke the protocol (websockets
        has sent the close frame why): it leaves, and the connection closes."""
        sent = proto.close_sent
        if proto.close_rcvd is not None or sent is None or sent.code == CloseCode.NORMAL_CLOSURE:
            self._end(session, "connection closed")
        else:
            self._end(session, f"WebSocket closed ({sent.code}: {sent.reason})")

    def _end(self, session: WebSession, reason: str) -> None:
        """``session``'s user leaves for ``reason``, and its connection closes."""
        self._forget(session)
        if session.user is not None:
            self.hub.disconnect(session.user, reason)
        session.link.close()

    def _arm_ping(self, session: WebSession) -> None:
        """(Re)schedule ``session``'s ping check for when it would next be due."""
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        interval = self.hub.config.web.ping_interval
        if interval > 0:
            since = session.pinged if session.pinged is not None else session.heard
            due = max(0.0, since + interval - self.hub.clock())
            session.timer = self.hub.timers.call_later(
                due, functools.partial(self._ping_check, session)
            )

    def _ping_check(self, session: WebSession) -> None:
        session.timer = None
        interval = self.hub.config.web.ping_interval
        proto, user = session.proto, session.user
        if session not in self.sessions or proto is None or user is None:
            return
        if interval > 0:
            now = self.hub.clock()
            if session.pinged is not None and now - session.pinged >= interval:
                self._forget(session)
                self.hub.close_user(user, f"Ping timeout: {interval:g} seconds")
                return
            if session.pinged is None and now - session.heard >= interval:
                proto.send_ping(b"chatd")
                self._send_protocol_output(session, proto)
                session.pinged = now
        self._arm_ping(session)

    # -- requests -----------------------------------------------------------------------

    def _request(self, session: WebSession, unit: bytes) -> None:
        user = session.user
        assert user is not None
        kind = ""
        try:
            obj = _parse(unit)
            kind = obj["type"]
            named = self.hub.is_online(user)
            if not named and kind not in ("nick", "ping", "quit"):
                raise RequestError("not_named", "Choose a nickname first.")
            if named and kind in ACTIVE:
                user.lines += 1
                user.last_active = self.hub.clock()
                self.hub.stats.lines_in += 1
            problem = _HANDLERS[kind](self, user, obj)
            if problem and problem is not PENDING:
                raise RequestError("refused", problem)
        except RequestError as exc:
            user.link.send(web.error(exc.code, exc.text, kind))

    def _nick_again(self, user: User, obj: dict[str, Any]) -> None:
        """A nick request, made again once the cluster has said whether the
        nickname is free (the request had no answer yet: this is it)."""
        if not self.hub.is_connected(user):
            return
        try:
            problem = self._nick(user, obj)
            if problem and problem is not PENDING:
                code = "nick_taken" if problem == taken(obj["nick"]) else "refused"
                raise RequestError(code, problem)
        except RequestError as exc:
            user.link.send(web.error(exc.code, exc.text, "nick"))

    def _nick(self, user: User, obj: dict[str, Any]) -> str | None:
        nick, password = obj["nick"], obj.get("password", "")
        hub = self.hub
        again = functools.partial(self._nick_again, user, obj)
        if hub.is_online(user):
            return hub.rename(user, nick, retry=again)
        problem = nick_problem(nick)
        if problem:
            raise RequestError("nick_invalid", problem)
        problem = hub.banned_nick(nick)
        if problem:
            raise RequestError("nick_banned", problem)
        rooms = [hub.config.rooms.default]
        if hub.desk.registered(nick):
            if not password:
                raise RequestError(
                    "password_needed",
                    f"The nickname {nick} is registered: give its password, or choose another.",
                )
            # The right password takes the nickname over from a connection
            # still holding it (the page's own, gone half-open), as at nc's prompt.
            refused = functools.partial(self._refused, user)
            hub.desk.login(user, nick, password, rooms, refused, _done)
            return None
        if hub.nick_taken(nick, user):
            raise RequestError("nick_taken", taken(nick))
        if password:
            raise RequestError(
                "not_registered",
                f"The nickname {nick} is not registered: choose it without a password,"
                " then /register PASSWORD keeps it for you.",
            )
        problem = hub.register(user, nick, rooms, retry=again)
        if problem == taken(nick):  # the cluster's answer, on the retry
            raise RequestError("nick_taken", problem)
        return problem

    def _refused(self, user: User, why: str, wrong: bool) -> None:
        """A login the desk refused (answered later: the check runs off the loop)."""
        if not self.hub.is_connected(user) or self.hub.is_online(user):
            return
        if not wrong:
            user.link.send(web.error("refused", why, "nick"))
            return
        user.tries += 1
        if user.tries >= MAX_TRIES:
            user.link.send(
                web.error("password_wrong", f"{why}, {MAX_TRIES} times: goodbye.", "nick")
            )
            self.hub.close_user(user, "too many wrong passwords")
            return
        left = MAX_TRIES - user.tries
        tries = "1 more try" if left == 1 else f"{left} more tries"
        user.link.send(web.error("password_wrong", f"{why}; {tries}.", "nick"))

    def _line(self, user: User, obj: dict[str, Any]) -> str | None:
        self.hub.receive(user, _text(obj["text"]))  # exactly an nc line
        return None

    def _say(self, user: User, obj: dict[str, Any]) -> str | None:
        return self._to_room(user, obj, self.hub.say)

    def _me(self, user: User, obj: dict[str, Any]) -> str | None:
        if "to" in obj:  # a private action (IRC's CTCP ACTION to a nick)
            if "room" in obj:
                raise RequestError("bad_field", 'me: "to" and "room" cannot both be given')
            text = _text(obj["text"])
            return self.hub.private(user, obj["to"], text, action=True) if text else None
        return self._to_room(user, obj, self.hub.emote)

    def _to_room(self, user: User, obj: dict[str, Any], send: Callable[..., None]) -> str | None:
        text, name = _text(obj["text"]), obj.get("room", "")
        if not text:
            return None  # as nc ignores an empty line
        room = self.hub.speaking_room(user, name)
        if isinstance(room, str):
            return room  # an error event, where nc gets a notice
        send(user, text, name)
        return None

    def _msg(self, user: User, obj: dict[str, Any]) -> str | None:
        text = _text(obj["text"])
        return self.hub.private(user, obj["to"], text) if text else None

    def _join(self, user: User, obj: dict[str, Any]) -> str | None:
        return self.hub.join(user, obj["room"])

    def _part(self, user: User, obj: dict[str, Any]) -> str | None:
        return self.hub.part(user, obj.get("room", ""), one_line(obj.get("reason", "")))

    def _history(self, user: User, obj: dict[str, Any]) -> str | None:
        count = obj.get("count", 20)
        if isinstance(count, bool) or not isinstance(count, int):
            raise RequestError("bad_field", '"count" must be a whole number')
        return self.hub.history(user, count, obj.get("room", ""))

    def _rooms_request(self, user: User, obj: dict[str, Any]) -> str | None:
        now = self.hub.clock()
        if self._rooms is None or now - self._rooms[0] >= ROOMS_CACHE_SECONDS:
            rooms = [
                {"name": room.name, "members": len(room.members), "topic": one_line(room.topic)}
                for room in self.hub.rooms()
            ]
            self._rooms = (now, web.frame({"type": "rooms", "rooms": rooms}))
        user.link.send(self._rooms[1])
        return None

    def _who(self, user: User, obj: dict[str, Any]) -> str | None:
        name = obj.get("room", "")
        if not name:
            if user.current is None:
                return NO_ROOM
            name = user.current.name
        return self.hub.who(user, name)

    def _quit(self, user: User, obj: dict[str, Any]) -> str | None:
        self.hub.quit(user, obj.get("reason", ""))  # goodbye, then close 1000
        return None

    def _ping(self, user: User, obj: dict[str, Any]) -> str | None:
        user.link.send(_PONG)
        return None


def _done() -> None:
    """A login that succeeded: the hub has welcomed the user already."""


_PONG: Final = web.frame({"type": "pong"})

_HANDLERS: Final[Mapping[str, Callable[[WebGateway, User, dict[str, Any]], str | None]]] = {
    "nick": WebGateway._nick,
    "line": WebGateway._line,
    "say": WebGateway._say,
    "me": WebGateway._me,
    "msg": WebGateway._msg,
    "join": WebGateway._join,
    "part": WebGateway._part,
    "history": WebGateway._history,
    "rooms": WebGateway._rooms_request,
    "who": WebGateway._who,
    "quit": WebGateway._quit,
    "ping": WebGateway._ping,
}


def _text(raw: str) -> str:
    """Chat text from a page as the hub takes it: one clean line."""
    return one_line(raw).rstrip()


def _parse(unit: bytes) -> dict[str, Any]:
    """A request, checked against :data:`REQUESTS`; RequestError says what is wrong."""
    try:
        obj = jsontext.load(unit.decode("utf-8"))  # UTF-8: WebInput checked it
    except ValueError as exc:
        raise RequestError("bad_json", f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise RequestError("bad_request", 'a request is a JSON object with a "type"')
    kind = obj["type"]
    fields = REQUESTS.get(kind)
    if fields is None:
        raise RequestError("unknown_type", f"unknown request type {one_line(kind)[:32]!r}")
    required, optional = fields
    for name in required:
        if name not in obj:
            raise RequestError("bad_field", f'{kind}: "{name}" is missing')
    for name, value in obj.items():
        if name == "type":
            continue
        if name not in required and name not in optional:
            raise RequestError("bad_field", f'{kind}: unknown field "{one_line(name)[:32]}"')
        if name != "count" and not isinstance(value, str):
            raise RequestError("bad_field", f'{kind}: "{name}" must be a string')
    return obj
