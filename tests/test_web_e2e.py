"""The web listener over real sockets on 127.0.0.1: a WebSocket client and nc
users in one chat, the bad input the web protocol documents, and the limits
every listener shares. The client is websockets' sans-IO ClientProtocol on a
plain socket (tests.helpers.WebSocketClient)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatd.config import LimitSettings
from chatd.server import Server
from tests.helpers import WAIT, LineClient, WebSocketClient, make_config, running_server


@pytest.fixture
def server() -> Iterator[Server]:
    with running_server() as srv:
        yield srv


def _web(server: Server) -> tuple[str, int]:
    assert server.web_address is not None
    return server.web_address


def _http(server: Server, request: bytes) -> bytes:
    """Send ``request`` and read the answer until the server closes."""
    with socket.create_connection(_web(server), timeout=WAIT) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_web_user_and_an_nc_user_chat(server: Server) -> None:
    assert server.address is not None
    nc = LineClient(server.address)
    nc.expect(re.compile("Choose a nickname"))
    nc.send("carol")
    nc.expect(re.compile("Welcome, carol!"))
    page = WebSocketClient(_web(server)).named("alice")
    room = page.expect("room", room="#lobby")
    assert room["members"] == ["alice", "carol"]
    nc.expect("*** alice joined")
    page.send({"type": "line", "text": "hi from the browser"})
    nc.expect("<alice> hi from the browser")
    nc.send("hi back \x1b[31mred")
    said = page.expect("said")
    assert said == {"type": "said", "room": "#lobby", "nick": "carol", "text": "hi back red"}
    page.send({"type": "line", "text": "/fact"})
    assert page.expect("notice")["text"]
    page.send({"type": "quit"})
    assert page.close_code() == 1000
    nc.expect("*** alice left (Quit)")


def test_the_page_and_the_plain_routes_answer(server: Server) -> None:
    page = _http(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Security-Policy: " in page
    assert b"<html" in page.lower()
    health = _http(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 OK\r\n")
    facts = json.loads(health.partition(b"\r\n\r\n")[2])
    assert (facts["status"], facts["store"]) == ("ok", "memory")
    scrape = _http(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert scrape.startswith(b"HTTP/1.1 200 OK\r\n")
    text = scrape.partition(b"\r\n\r\n")[2].decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for family in text_string_to_metric_families(text):  # each is documented
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in readme, f"README's metrics table lacks {name}"
    # The page and the health check before this scrape were answered and counted.
    assert samples[("chatd_http_requests_total", (("code", "200"), ("route", "/")))] == 1
    assert samples[("chatd_connections_total", (("listener", "web"),))] >= 3


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"garbage garbage\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"405"),
        (b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", b"431"),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", b"426"),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"400",
        ),
    ],
)
def test_bad_http_gets_its_status(server: Server, request_bytes: bytes, status: bytes) -> None:
    assert _http(server, request_bytes).startswith(b"HTTP/1.1 " + status + b" ")


def test_a_page_from_another_origin_is_refused(server: Server) -> None:
    assert (
        WebSocketClient(_web(server), origin="http://evil.example").handshake().status_code == 403
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x82\x82\0\0\0\0\x01\x02", 1003),  # binary
        (b"\x81\x82\0\0\0\0\xff\xfe", 1007),  # invalid UTF-8
        (b"\x81\xfe\x13\x88\0\0\0\0" + b"x" * 5000, 1009),  # 5,000 bytes
        (b"\x81\x02hi", 1002),  # not masked
    ],
)
def test_frames_the_protocol_refuses_close_with_their_code(
    server: Server, frame: bytes, code: int
) -> None:
    assert server.address is not None
    nc = LineClient(server.address)
    nc.send("carol")
    nc.expect(re.compile("Welcome, carol!"))
    page = WebSocketClient(_web(server)).named("alice")
    nc.expect("*** alice joined")
    page.send_raw(frame)
    assert page.close_code() == code
    nc.expect(lambda line: line.startswith("*** alice left (WebSocket closed"))


def test_bad_json_is_an_error_event_and_the_connection_stays(server: Server) -> None:
    page = WebSocketClient(_web(server)).named("alice")
    page.client.send_text(b"{oops")
    page._flush()
    assert page.expect("error")["code"] == "bad_json"
    page.send({"type": "dance"})
    assert page.expect("error")["code"] == "unknown_type"
    page.send({"type": "ping"})
    page.expect("pong")


def test_max_per_ip_counts_nc_and_web_connections_together() -> None:
    config = make_config(limits=LimitSettings(flood_rate=0, max_per_ip=2))
    with running_server(config) as server:
        assert server.address is not None and server.web_address is not None
        nc = LineClient(server.address)
        nc.expect(re.compile("Choose a nickname"))
        page = WebSocketClient(server.web_address)
        assert page.handshake().status_code == 101
        refused = _http(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"Retry-After: 10" in refused


def test_a_web_reader_that_never_reads_is_cut_off_at_its_sendq() -> None:
    config = make_config(limits=LimitSettings(flood_rate=0, max_per_ip=0, sendq_bytes=16 * 1024))
    with running_server(config) as server:
        assert server.address is not None
        stuck = WebSocketClient(_web(server))
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.named("stuck")
        nc = LineClient(server.address)
        nc.send("talker")
        nc.expect(re.compile("Welcome, talker!"))

        def stuck_online() -> bool:
            return server.hub.find("stuck") is not None

        # The kernel's buffers fill first, then its sendq: rounds until it is cut off.
        for _ in range(2000):
            if not stuck_online():
                break
            for _ in range(25):
                nc.send("x" * 900)
        nc.expect("*** stuck left (sendq exceeded)")
