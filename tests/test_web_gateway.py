"""The web gateway, sans-IO: HTTP routes and the WebSocket's JSON requests on a
real hub with a fake clock. The client side is websockets' own ClientProtocol,
so every frame the server writes is parsed as a browser's library would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from chatd.config import WebSettings
from chatd.core import events as ev
from chatd.core.accounts import MAX_TRIES
from chatd.testing import FakeLink
from chatd.web_gateway import HANDSHAKE_SECONDS, WebGateway, WebSession, page_of
from chatd.wire import web
from tests.helpers import HubFixture, make_config

PAGE = page_of("<!doctype html><style>p{}</style><p>hi</p><script>go()</script>")
HOST = "127.0.0.1:8080"


class Http:
    """A plain HTTP client on a FakeLink: bytes in, the answer out."""

    def __init__(self, gateway: WebGateway, peer: str = "127.0.0.1:40000") -> None:
        self.gateway = gateway
        self.link = FakeLink(peer)
        self.session: WebSession = gateway.connect(self.link)

    def send(self, data: bytes) -> None:
        """What the reactor does with data read: feed it, hand over each unit."""
        framer = self.gateway.framing(self.session)
        framer.feed(data)
        while (unit := framer.next_line()) is not None:
            assert isinstance(unit, bytes)
            self.gateway.receive_line(self.session, unit)

    def get(
        self, path: str, *headers: str, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", *headers, "", ""]
        self.send("\r\n".join(lines).encode())
        return self.answer()

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        head, _, body = bytes(self.link.data).partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        found = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        return int(status_line.split()[1]), found, body


class Browser(Http):
    """A WebSocket client: a handshake, then JSON both ways."""

    def __init__(
        self,
        gateway: WebGateway,
        peer: str = "127.0.0.1:40001",
        origin: str | None = f"http://{HOST}",
    ) -> None:
        super().__init__(gateway, peer)
        self.client = ClientProtocol(
            parse_uri(f"ws://{HOST}/ws"), origin=Origin(origin) if origin else None
        )
        self._read = 0
        self._pending: list[Frame] = []
        self.response: Response | None = None

    def open(self) -> Response:
        self.client.send_request(self.client.connect())
        self.send(b"".join(self.client.data_to_send()))
        self._pending = self._events()  # the hello came with the 101
        assert self.response is not None
        return self.response

    def _events(self) -> list[Any]:
        self.link.all_lines  # noqa: B018 - flushes the fan-out, as the reactor does
        new = bytes(self.link.data[self._read :])
        self._read = len(self.link.data)
        self.client.receive_data(new)
        out: list[Any] = []
        for event in self.client.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame):
                out.append(event)
        return out

    def frames(self) -> list[Frame]:
        pending, self._pending = self._pending, []
        return pending + self._events()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(f.data) for f in self.frames() if f.opcode is Opcode.TEXT]

    def request(self, obj: dict[str, Any] | bytes) -> list[dict[str, Any]]:
        self.client.send_text(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        self.send(b"".join(self.client.data_to_send()))
        return self.events()

    def named(self, nick: str) -> list[dict[str, Any]]:
        assert self.open().status_code == 101
        assert self.events()[0]["type"] == "hello"
        return self.request({"type": "nick", "nick": nick})


@pytest.fixture
def hub() -> HubFixture:
    return HubFixture()


@pytest.fixture
def gateway(hub: HubFixture) -> WebGateway:
    return WebGateway(hub.hub, metrics=lambda: b"chatd_up 1\n", page=PAGE)


@pytest.fixture
def alice_and_carol(hub: HubFixture, gateway: WebGateway) -> tuple[Browser, FakeLink]:
    """alice on a page and carol on nc, both in #lobby, with nothing unread."""
    _carol, carol_link = hub.join("carol")
    page = Browser(gateway)
    page.named("alice")
    carol_link.take()
    return page, carol_link


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# -- HTTP --------------------------------------------------------------------------


def test_the_page_is_served_with_a_policy_that_lets_only_its_own_script_and_style_run(
    gateway: WebGateway,
) -> None:
    status, headers, body = Http(gateway).get("/")
    assert (status, body) == (200, PAGE.body)
    assert headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert csp.count("'sha256-") == 2  # the one script, the one style
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 405),
        (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"this is not http\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426),  # no Upgrade
        (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_their_status_and_the_connection_closes(
    gateway: WebGateway, request_head: bytes, status: int
) -> None:
    http = Http(gateway)
    http.send(request_head)
    got, headers, body = http.answer()
    assert got == status
    assert http.link.closed
    assert b"not http" not in body  # the answer is in our words, not an echo
    if status == 405:
        assert headers["allow"] == "GET"
    assert http.session not in gateway.sessions


def test_a_request_head_past_the_limit_is_431(gateway: WebGateway) -> None:
    http = Http(gateway)
    http.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * web.MAX_REQUEST_BYTES)
    assert http.answer()[0] == 431 and http.link.closed


def test_a_request_not_complete_in_time_is_408(hub: HubFixture, gateway: WebGateway) -> None:
    http = Http(gateway)
    http.send(b"GET / HTTP/1.1\r\n")
    hub.chat.advance(HANDSHAKE_SECONDS - 0.5)
    assert not http.link.data
    hub.chat.advance(1)
    assert http.answer()[0] == 408 and http.link.closed


def test_healthz_and_metrics(hub: HubFixture) -> None:
    well = [True]
    gateway = WebGateway(
        hub.hub,
        metrics=lambda: b"chatd_up 1\n",
        health=lambda: (well[0], {"status": "ok" if well[0] else "unavailable"}),
        page=PAGE,
    )
    status, headers, body = Http(gateway).get("/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["content-type"] == "application/json"
    well[0] = False
    status, _, body = Http(gateway).get("/healthz?verbose=1")  # the query is ignored
    assert (status, json.loads(body)) == (503, {"status": "unavailable"})
    status, headers, body = Http(gateway).get("/metrics")
    assert (status, body) == (200, b"chatd_up 1\n")
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert gateway.answers[("/healthz", 503)] == 1 and gateway.answers[("/metrics", 200)] == 1


def test_a_refused_connection_gets_a_503_with_the_reason(gateway: WebGateway) -> None:
    answer = gateway.refused("server full")
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 10\r\n" in answer and answer.endswith(b"\r\n\r\nserver full\n")


# -- the handshake -------------------------------------------------------------------


def test_the_handshake_opens_a_websocket_without_compression_and_says_hello(
    gateway: WebGateway,
) -> None:
    page = Browser(gateway)
    page.client.send_request(page.client.connect())
    raw = b"".join(page.client.data_to_send())
    offer = raw.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
    page.send(offer)
    hello = [json.loads(f.data) for f in page._events()]
    assert page.response is not None and page.response.status_code == 101
    assert "Sec-WebSocket-Extensions" not in page.response.headers  # deflate stays off
    assert hello == [web.hello(gateway.max_message_bytes, 45)]
    assert hello[0]["ping_interval"] == 45


def test_a_page_from_another_origin_is_refused_and_a_script_without_one_is_let_in(
    hub: HubFixture, gateway: WebGateway
) -> None:
    assert Browser(gateway, origin="http://evil.example").open().status_code == 403
    assert Browser(gateway, origin=None).open().status_code == 101
    configured = make_config(web=WebSettings(allowed_origins=["https://chat.example.org"]))
    hub.hub.plugins.set_config(configured)
    assert Browser(gateway, origin="https://chat.example.org").open().status_code == 101
    assert Browser(gateway).open().status_code == 403  # its own Host no longer counts


def test_frames_sent_with_the_handshake_are_read_after_it(gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.client.send_request(page.client.connect())
    head = b"".join(page.client.data_to_send())
    early = ClientProtocol(parse_uri(f"ws://{HOST}/ws"), state=State.OPEN)
    early.send_text(b'{"type":"nick","nick":"early"}')  # not waiting for the 101
    page.send(head + b"".join(early.data_to_send()))
    assert "welcome" in types(page.events())


# -- requests ------------------------------------------------------------------------


def test_naming_enters_the_default_room_with_its_members(
    hub: HubFixture, gateway: WebGateway
) -> None:
    hub.join("carol")
    got = Browser(gateway).named("alice")
    assert types(got)[:3] == ["welcome", "current", "room"]
    assert got[0]["nick"] == "alice"
    assert got[2]["room"] == "#lobby" and got[2]["members"] == ["alice", "carol"]


@pytest.mark.parametrize(
    ("nick", "code"),
    [("no spaces", "nick_invalid"), ("carol", "nick_taken"), ("CAROL", "nick_taken")],
)
def test_a_nickname_refused_is_an_error_and_the_page_may_try_again(
    hub: HubFixture, gateway: WebGateway, nick: str, code: str
) -> None:
    hub.join("carol")
    page = Browser(gateway)
    page.open()
    page.events()
    (error,) = page.request({"type": "nick", "nick": nick})
    assert (error["type"], error["code"], error["request"]) == ("error", code, "nick")
    assert "welcome" in types(page.request({"type": "nick", "nick": "dave"}))


def test_chat_reaches_nc_users_and_theirs_reaches_the_page(
    hub: HubFixture, alice_and_carol: tuple[Browser, FakeLink]
) -> None:
    page, carol_link = alice_and_carol
    assert page.request({"type": "line", "text": "hi <b>all</b>"}) == []  # no echo
    assert "<alice> hi <b>all</b>" in carol_link.take()
    page.request({"type": "line", "text": "/me waves"})
    assert "* alice waves" in carol_link.take()
    carol = hub.hub.find("carol")
    assert carol is not None
    hub.hub.receive(carol, "hello\x07 page")
    said = page.events()
    assert said == [{"type": "said", "room": "#lobby", "nick": "carol", "text": "hello page"}]


def test_the_named_requests_do_what_nc_commands_do(hub: HubFixture, gateway: WebGateway) -> None:
    _carol, carol_link = hub.join("carol")
    page = Browser(gateway)
    page.named("alice")
    joined = page.request({"type": "join", "room": "#games"})
    assert types(joined)[:2] == ["current", "room"]
    page.request({"type": "say", "text": "lobby line", "room": "#lobby"})
    assert carol_link.take() == ["*** alice joined", "<alice> lobby line"]
    private = page.request({"type": "msg", "to": "carol", "text": "psst"})
    assert private[0]["type"] == "private" and private[0]["from"] == "alice"
    assert "*alice* psst" in carol_link.take()
    rooms = page.request({"type": "rooms"})
    assert {r["name"]: r["members"] for r in rooms[0]["rooms"]} == {"#lobby": 2, "#games": 1}
    who = page.request({"type": "who", "room": "#lobby"})
    assert who[0]["type"] == "members" and who[0]["members"] == ["alice", "carol"]
    assert page.request({"type": "ping"}) == [{"type": "pong"}]
    (refused,) = page.request({"type": "say", "text": "x", "room": "#nowhere"})
    assert (refused["code"], refused["text"]) == ("refused", "You are not in #nowhere.")
    left = page.request({"type": "part", "room": "#games", "reason": "bye"})
    assert "left" in types(left)
    gone = page.request({"type": "quit", "reason": "done"})
    assert gone[0] == {"type": "goodbye", "reason": "Quit: done"}
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == 1000
    assert page.link.closed
    assert hub.hub.find("alice") is None
    assert carol_link.take() == ["*** alice left (Quit: done)"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[" * 40 + b"]" * 40, "bad_json"),
        (b'["a"]', "bad_request"),
        (b'{"nick":"x"}', "bad_request"),
        (b'{"type":"dance"}', "unknown_type"),
        (b'{"type":"say","text":5}', "bad_field"),
        (b'{"type":"say","text":"x","colour":"red"}', "bad_field"),
        (b'{"type":"msg","to":"carol"}', "bad_field"),
        (b'{"type":"history","count":"ten"}', "bad_field"),
    ],
)
def test_a_bad_request_is_an_error_event_and_the_connection_stays(
    hub: HubFixture, gateway: WebGateway, payload: bytes, code: str
) -> None:
    hub.join("carol")
    page = Browser(gateway)
    page.named("alice")
    (error,) = page.request(payload)
    assert (error["type"], error["code"]) == ("error", code)
    assert page.request({"type": "ping"}) == [{"type": "pong"}]


def test_before_a_nickname_only_naming_is_taken(gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.open()
    page.events()
    (error,) = page.request({"type": "say", "text": "hi"})
    assert (error["code"], error["request"]) == ("not_named", "say")


@pytest.mark.parametrize(
    ("send", "code"),
    [
        (lambda c: c.send_binary(b"\x00\x01"), 1003),
        (lambda c: c.send_text(b"\xff\xfe not utf-8"), 1007),
        (lambda c: c.send_text(b'{"type":"line","text":"' + b"x" * 2000 + b'"}'), 1009),
    ],
)
def test_frames_the_protocol_refuses_close_the_websocket_with_their_code(
    hub: HubFixture, alice_and_carol: tuple[Browser, FakeLink], send: Any, code: int
) -> None:
    page, carol_link = alice_and_carol
    send(page.client)
    page.send(b"".join(page.client.data_to_send()))
    page.frames()
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == code
    assert page.link.closed
    assert hub.hub.find("alice") is None
    assert any("alice left (WebSocket closed" in line for line in carol_link.take())


def test_the_clients_close_is_answered_and_it_leaves(hub: HubFixture, gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.named("alice")
    page.client.send_close(1001, "tab closed")
    page.send(b"".join(page.client.data_to_send()))
    page.frames()
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == 1001
    assert page.link.closed and hub.hub.find("alice") is None


def test_a_ping_is_answered_by_the_protocol(gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.named("alice")
    page.client.send_ping(b"are you there")
    page.send(b"".join(page.client.data_to_send()))
    (pong,) = page.frames()
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")


def test_a_silent_websocket_is_pinged_then_dropped(hub: HubFixture, gateway: WebGateway) -> None:
    _carol, carol_link = hub.join("carol")
    page = Browser(gateway)
    page.named("alice")
    interval = hub.config.web.ping_interval
    hub.chat.advance(interval + 1)
    (ping,) = page.frames()
    assert ping.opcode is Opcode.PING
    hub.chat.advance(interval + 1)
    closing = page.events()
    assert closing[-1] == {"type": "closing", "reason": f"Ping timeout: {interval:g} seconds"}
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == 1000
    assert any("Ping timeout" in line for line in carol_link.take())


def test_a_registered_nickname_needs_its_password_and_three_wrong_ones_close(
    hub: HubFixture, gateway: WebGateway
) -> None:
    owner, _ = hub.join("olga")
    hub.hub.receive(owner, "/register hunter22")
    hub.hub.receive(owner, "/quit")
    page = Browser(gateway)
    page.open()
    page.events()
    (needed,) = page.request({"type": "nick", "nick": "olga"})
    assert needed["code"] == "password_needed"
    codes = []
    for _ in range(MAX_TRIES):
        hub.chat.advance(5)  # past the wait between tries from one address (1, 2, 4 s)
        got = page.request({"type": "nick", "nick": "olga", "password": "nope"})
        codes += [e.get("code") for e in got]
    assert codes.count("password_wrong") == MAX_TRIES
    assert page.link.closed
    second = Browser(gateway, peer="127.0.0.2:40002")
    second.open()
    second.events()
    got = second.request({"type": "nick", "nick": "olga", "password": "hunter22"})
    assert "welcome" in types(got)


def test_shutdown_says_why_and_closes_with_going_away(hub: HubFixture, gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.named("alice")
    gateway.shutdown("Server shutting down.")
    events = page.events()
    assert events[-1] == {"type": "notice", "room": "", "text": "Server shutting down."}
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == 1001
    assert page.link.closed


def _one_frame(data: bytes) -> Any:
    """The JSON object in ``data``, which must be exactly one final text frame."""
    client = ClientProtocol(parse_uri("ws://x/ws"), state=State.OPEN)
    client.receive_data(data)
    (frame,) = client.events_received()
    assert isinstance(frame, Frame) and frame.opcode is Opcode.TEXT and frame.fin
    return json.loads(frame.data)


def test_every_event_renders_as_one_json_frame() -> None:
    samples: dict[type, ev.Event] = {
        ev.Said: ev.Said("#a", "n", "t\x1b[31m", notice=True),
        ev.Acted: ev.Acted("#a", "n", "t"),
        ev.PrivateSaid: ev.PrivateSaid("a", "b", "t"),
        ev.Joined: ev.Joined("#a", "n"),
        ev.Parted: ev.Parted("#a", "n", "r"),
        ev.Kicked: ev.Kicked("#a", "n", "o", "r"),
        ev.Quit: ev.Quit("n", "r"),
        ev.Renamed: ev.Renamed("a", "b"),
        ev.TopicSet: ev.TopicSet("#a", "t", "n"),
        ev.Opped: ev.Opped("#a", "n", "o", True),
        ev.Notice: ev.Notice("one\ntwo\x07"),
        ev.Greeting: ev.Greeting(),
        ev.YouRenamed: ev.YouRenamed("a", "b"),
        ev.Goodbye: ev.Goodbye("n"),
        ev.Closing: ev.Closing("r"),
        ev.Welcome: ev.Welcome("n", "#a", 1),
        ev.RoomState: ev.RoomState("#a", "t", ("n",), frozenset({"n"})),
        ev.Members: ev.Members("#a", ("n",), frozenset()),
        ev.Current: ev.Current("#a"),
        ev.YouLeft: ev.YouLeft("#a"),
        ev.ReplayStart: ev.ReplayStart("#a", ev.MISSED, 2, since=1.0, now=2.0),
        ev.Replayed: ev.Replayed("#a", 1.0, ev.SAID, "n", "t"),
        ev.ReplayEnd: ev.ReplayEnd("#a", ev.ASKED, 2, more=5, ask=7),
    }
    assert set(samples) == set(ev.Event.__args__)  # a new event must be rendered here too
    for kind, event in samples.items():
        obj = _one_frame(web.render(event))
        assert isinstance(obj["type"], str), kind
        for value in obj.values():
            if isinstance(value, str):
                assert not any(ord(c) < 32 and c != "\n" for c in value), (kind, value)
    said = _one_frame(web.render(samples[ev.Said]))
    assert said == {"type": "said", "room": "#a", "nick": "n", "text": "t", "notice": True}
    assert _one_frame(web.render(samples[ev.Notice]))["text"] == "one\ntwo"
    start = _one_frame(web.render(samples[ev.ReplayStart]))
    assert start["text"].startswith("While you were away")


def test_a_close_reason_is_cut_at_a_character_edge() -> None:
    reason = web.close_reason("é" * 100)
    assert len(reason.encode()) <= web.MAX_CLOSE_REASON_BYTES and set(reason) == {"é"}


def test_a_flood_of_pings_is_parsed_a_little_at_a_time() -> None:
    framer = web.WebInput(1024)
    client = ClientProtocol(parse_uri("ws://x/ws"), state=State.OPEN)
    for _ in range(10_000):
        client.send_ping(b"")
    from websockets.server import ServerProtocol

    framer.upgrade(ServerProtocol(state=State.OPEN))
    framer.feed(b"".join(client.data_to_send()))
    assert framer.next_line() == b""
    assert framer.proto is not None
    pongs = sum(1 for chunk in framer.proto.data_to_send() if chunk)
    assert 1 <= pongs <= web.FEED_BYTES // 6 + 1  # one read's worth, not 10,000


def test_messages_sent_with_the_close_are_handled_before_it(
    hub: HubFixture, alice_and_carol: tuple[Browser, FakeLink]
) -> None:
    page, carol_link = alice_and_carol
    for n in range(3):
        page.client.send_text(json.dumps({"type": "say", "text": f"last {n}"}).encode())
    page.client.send_close(1000)
    page.send(b"".join(page.client.data_to_send()))  # one segment: all parsed at once
    page.frames()
    assert carol_link.take() == [
        "<alice> last 0",
        "<alice> last 1",
        "<alice> last 2",
        "*** alice left (connection closed)",
    ]
    assert page.client.close_rcvd is not None and page.link.closed


def test_messages_before_a_refused_frame_are_handled_and_none_after(
    hub: HubFixture, alice_and_carol: tuple[Browser, FakeLink]
) -> None:
    page, carol_link = alice_and_carol
    page.client.send_text(b'{"type":"say","text":"before"}')
    page.client.send_binary(b"\x00")
    page.client.send_text(b'{"type":"say","text":"after"}')
    page.send(b"".join(page.client.data_to_send()))
    page.frames()
    lines = carol_link.take()
    assert lines[0] == "<alice> before" and lines[1].startswith("*** alice left (WebSocket closed")
    assert len(lines) == 2
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == 1003


def test_an_empty_message_is_not_json(gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.named("alice")
    (error,) = page.request(b"")
    assert error["code"] == "bad_json"


def test_the_right_password_takes_a_registered_nickname_back_from_a_ghost(
    hub: HubFixture, gateway: WebGateway
) -> None:
    owner, owner_link = hub.join("olga")
    hub.hub.receive(owner, "/register hunter22")
    owner_link.take()  # the old connection, gone half-open, still holds "olga"
    page = Browser(gateway, peer="127.0.0.9:40009")
    page.open()
    page.events()
    got = page.request({"type": "nick", "nick": "olga", "password": "hunter22"})
    assert "welcome" in types(got)
    assert owner_link.closed and hub.hub.find("olga") is not owner


def test_the_pages_own_polls_are_not_activity(hub: HubFixture, gateway: WebGateway) -> None:
    page = Browser(gateway)
    page.named("alice")
    user = hub.hub.find("alice")
    assert user is not None
    before = (user.lines, hub.hub.stats.lines_in)
    for kind in ("rooms", "who", "ping"):
        page.request({"type": kind})
    assert (user.lines, hub.hub.stats.lines_in) == before
    page.request({"type": "say", "text": "hi"})
    assert user.lines == before[0] + 1


def test_pings_start_when_a_reload_turns_them_on(hub: HubFixture) -> None:
    hub.hub.plugins.set_config(make_config(web=WebSettings(ping_interval=0)))
    gateway = WebGateway(hub.hub, page=PAGE)
    page = Browser(gateway)
    page.named("alice")
    hub.chat.advance(100)
    assert page.frames() == []
    hub.hub.plugins.set_config(make_config(web=WebSettings(ping_interval=30)))
    gateway.settings_changed()
    hub.chat.advance(1)  # silent for 100 s already: pinged at once
    (ping,) = page.frames()
    assert ping.opcode is Opcode.PING


def test_a_failure_of_ours_closes_with_1011_and_the_user_leaves(
    hub: HubFixture, gateway: WebGateway, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    page = Browser(gateway)
    page.named("alice")

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(hub.hub, "join", broken)
    page.request({"type": "join", "room": "#x"})
    assert page.client.close_rcvd is not None and page.client.close_rcvd.code == 1011
    assert page.link.closed and hub.hub.find("alice") is None
    assert "internal error in a request" in caplog.text


def test_me_to_a_nick_is_a_private_action(hub: HubFixture, gateway: WebGateway) -> None:
    _carol, carol_link = hub.join("carol")
    page = Browser(gateway)
    page.named("alice")
    carol_link.take()
    echo = page.request({"type": "me", "to": "carol", "text": "waves"})
    assert echo[0] == {
        "type": "private", "from": "alice", "to": "carol", "text": "waves",
        "action": True, "notice": False,
    }  # fmt: skip
    assert carol_link.take() == ["*alice* * alice waves"]
    (error,) = page.request({"type": "me", "to": "carol", "room": "#lobby", "text": "x"})
    assert error["code"] == "bad_field"
