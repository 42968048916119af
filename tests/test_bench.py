"""The batched fan-out under partial writes, and ``chatd bench`` against a real
server, over nc's lines, over the web listener's WebSocket (``--ws``) and over
TLS (``tls``)."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from chatd import cli
from chatd.bench import (
    KEEPALIVE_SECONDS,
    Options,
    Result,
    _Client,
    _shares,
    _Worker,
    due,
    run,
)
from chatd.config import MIN_PING_SECONDS, ClusterSettings, Config, ServerSettings
from chatd.core import events as ev
from chatd.wire import web
from tests.certs import Certificate
from tests.helpers import (
    LIFTED_LIMITS_TOML,
    Crowd,
    ServerProcess,
    make_config,
    on_loop,
    run_chatd,
    running_server,
    wait_until,
)
from tests.redis_server import RedisServer


def test_batched_fan_out_survives_partial_writes_to_a_small_reader() -> None:
    with running_server(make_config()) as server:
        assert server.address
        crowd = Crowd(server.address, 3)
        # c002 sends but reads nothing until the end, so the server's writes to
        # it are cut short and the rest waits as memoryview slices of batches.
        crowd.clients[2].sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

        def c002_has_queued_output() -> bool:
            conns = [c for c in server.reactor.connections if c.session.nick == "c002"]
            return bool(conns and len(conns[0].outbuf))

        rounds = 0
        while not c002_has_queued_output():
            assert rounds < 500, "the server never had to queue output for c002"
            crowd.send(0, 50, "a" * 100)
            crowd.send(1, 50, "b" * 100)
            crowd.send(2, 2)
            crowd.read(skip={2})
            rounds += 1
        for _ in range(3):  # more, on top of what waits
            crowd.send(0, 50, "a" * 100)
            crowd.send(2, 2)
        crowd.read()  # every line once, in each sender's order, never to its sender
        assert crowd.caught_up()
        crowd.close()


def test_bench_counts_every_delivery_against_a_real_server() -> None:
    with running_server(make_config()) as server:
        assert server.address
        host, port = server.address
        opts = Options(host=host, port=port, clients=50, senders=5, duration=1.0, warmup=0.2)
        summary = run(opts).summary()
    assert summary["ready"] == 50
    assert summary["messages_sent"] > 0
    assert summary["delivery_ratio"] == 1.0
    assert summary["deliveries"] == summary["expected_deliveries"] > 0
    assert summary["order_errors"] == 0 and summary["stray_lines"] == 0
    assert summary["checked_lines"] > 0 and summary["latency_ms"]["samples"] > 0
    assert server.stats.lines_in >= summary["messages_sent"]


def test_bench_in_rooms_owes_each_line_to_its_room_alone() -> None:
    with running_server(make_config()) as server:
        assert server.address
        host, port = server.address
        opts = Options(
            host=host, port=port, clients=12, senders=3, rooms=3, duration=0.5, warmup=0.2
        )
        summary = run(opts).summary()
    assert summary["ready"] == 12 and summary["rooms"] == 3, summary
    sent = summary["messages_sent_total"]
    # Four clients a room, one of them sending: each line owed to the three others
    # (had everyone stayed in one room it would be 11, and the ratio 11/3).
    assert sent > 0 and summary["expected_deliveries"] == sent * 3, summary
    assert summary["deliveries"] == summary["expected_deliveries"], summary
    assert summary["delivery_ratio"] == 1.0 and summary["order_errors"] == 0, summary
    assert summary["stray_lines"] == 0 and summary["checked_lines"] > 0, summary


@pytest.mark.parametrize("ws", [False, True], ids=["nc", "ws"])
def test_bench_clients_join_their_room_and_leave_the_lobby_before_they_are_ready(ws: bool) -> None:
    with running_server(make_config()) as server:
        assert server.address and server.web_address
        host, port = server.web_address if ws else server.address
        opts = Options(host=host, port=port, clients=6, senders=2, rooms=2, ws=ws)
        worker = _Worker(opts, range(6), {0: 0, 1: 1})
        try:
            # returns once every client has been told it left #lobby
            # ("*** You left #lobby." on nc, {"type":"left"} on the web)
            worker.connect()
            rooms = {room.name: server.hub.members(room) for room in server.hub.rooms()}
        finally:
            worker.close()
    assert worker.result.ready == 6 and worker.result.room_ready == Counter({0: 3, 1: 3})
    assert rooms == {
        "#bench-0": ["bench0000", "bench0002", "bench0004"],
        "#bench-1": ["bench0001", "bench0003", "bench0005"],
        "#lobby": [],
    }
    # the last of each room's listeners holds its sender's window
    assert {room: c.nick for room, c in worker.ackers.items()} == {
        0: "bench0004",
        1: "bench0005",
    }


def test_bench_room_ports_make_each_room_less_server_one_room() -> None:
    with running_server(make_config()) as first, running_server(make_config()) as second:
        assert first.address and second.address
        ports = (first.address[1], second.address[1])
        opts = Options(clients=10, senders=2, rooms=2, room_ports=ports, duration=0.5, warmup=0.2)
        result = run(opts)
        lines_in = [first.stats.lines_in, second.stats.lines_in]
    summary = result.summary()
    # five clients on each server, one of them sending: each line owed to four
    assert summary["ready"] == 10 and summary["delivery_ratio"] == 1.0, summary
    assert summary["expected_deliveries"] == summary["messages_sent_total"] * 4 > 0, summary
    assert summary["order_errors"] == 0 and summary["stray_lines"] == 0, summary
    # room K's sender talked to the server on the K-th port
    sent = [result.room_sent[0], result.room_sent[1]]
    assert all(0 < n <= got for n, got in zip(sent, lines_in, strict=True)), (sent, lines_in)


def test_bench_node_ports_spread_one_chat_over_its_nodes(redis_server: RedisServer) -> None:
    def node(name: str) -> Config:
        cluster = ClusterSettings(redis=redis_server.url, node=name, node_timeout=3)
        return make_config(cluster=cluster)

    with running_server(node("a")) as a, running_server(node("b")) as b:
        for server in (a, b):
            wait_until(
                lambda s=server: on_loop(s, lambda: s.cluster is not None and s.cluster.up),
                what="a node joined",
            )
        assert a.address and b.address
        opts = Options(
            clients=10, senders=2, node_ports=(a.address[1], b.address[1]),
            duration=0.5, warmup=0.2,
        )  # fmt: skip
        summary = run(opts).summary()
        peaks = [a.stats.connections_peak, b.stats.connections_peak]
        lines_in = [a.stats.lines_in, b.stats.lines_in]
    # one chat: each line owed to the nine others, on both nodes, in order
    assert summary["ready"] == 10 and summary["delivery_ratio"] == 1.0, summary
    assert summary["expected_deliveries"] == summary["messages_sent_total"] * 9 > 0, summary
    assert summary["order_errors"] == 0 and summary["stray_lines"] == 0, summary
    # client i on node i mod 2: five on each, and sender 0 on a, sender 1 on b
    assert peaks == [5, 5] and all(lines_in), (peaks, lines_in)
    # every latency sample counted once more, by where its line was sent
    same, cross = summary["latency_same_node_ms"], summary["latency_cross_node_ms"]
    assert summary["nodes"] == 2 and same["samples"] > 0 and cross["samples"] > 0, summary
    assert same["samples"] + cross["samples"] == summary["latency_ms"]["samples"], summary


def test_bench_latency_by_node_only_with_several_nodes() -> None:
    with running_server(make_config()) as server:
        assert server.address
        opts = Options(port=server.address[1], clients=4, senders=1, duration=0.3, warmup=0.1)
        summary = run(opts).summary()
        both = Options(clients=4, senders=2, rooms=2, room_ports=(1, 2), node_ports=(1, 2))
        with pytest.raises(ValueError, match="room_ports and node_ports"):
            run(both)
    assert "nodes" not in summary and "latency_cross_node_ms" not in summary, summary


def test_every_room_gets_its_sender_however_the_clients_are_split() -> None:
    for procs in (1, 2, 3):
        shares = _shares(Options(clients=1000, senders=10, rooms=10, procs=procs))
        picked = [(i, k) for indexes, senders in shares for i, k in senders.items()]
        assert all(i in indexes for indexes, senders in shares for i in senders)
        assert sorted(k for _, k in picked) == list(range(10))
        assert sorted(i % 10 for i, _ in picked) == list(range(10)), (procs, picked)
        assert all(i % 10 == k for i, k in picked)  # sender k is in room k
    # one room: the first clients of each process's range, in turn, as before rooms
    shares = _shares(Options(clients=1000, senders=4, procs=2))
    assert [s for _, s in shares] == [{0: 0, 1: 2}, {500: 1, 501: 3}]


def test_expected_deliveries_are_summed_over_the_rooms() -> None:
    result = Result(
        duration_s=1.0,
        room_sent=Counter({0: 10, 1: 5}),
        room_ready=Counter({0: 4, 1: 2, 2: 7}),  # room 2 has no sender: owed nothing
    )
    assert result.summary()["expected_deliveries"] == 10 * 3 + 5 * 1


def test_paced_light_load_times_every_delivery() -> None:
    with running_server(make_config()) as server:
        assert server.address
        host, port = server.address
        opts = Options(
            host=host, port=port, clients=20, senders=2, rate=20, duration=1.0, warmup=0.2
        )
        summary = run(opts).summary()
    assert summary["delivery_ratio"] == 1.0 and summary["order_errors"] == 0, summary
    lat, in_window = summary["latency_ms"], summary["deliveries_per_s"] * opts.duration
    # One sample per read, and at this pace a read holds one line (now and then two).
    assert in_window / 2 < lat["samples"] <= in_window, summary
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat


def test_latency_percentiles_come_from_a_histogram_of_10_microsecond_steps() -> None:
    result = Result(duration_s=1.0, latency=Counter({0: 50, 99: 49, 999: 1}))  # 10 us, 1, 10 ms
    lat = result.summary()["latency_ms"]
    assert (lat["p50"], lat["p90"], lat["p99"], lat["max"]) == (0.01, 1.0, 1.0, 10.0)
    assert lat["samples"] == 100
    assert Result(duration_s=1.0).summary()["latency_ms"]["p99"] is None


def test_paced_senders_take_turns_instead_of_sending_at_once() -> None:
    senders, rate = 10, 2.0
    sent_at: list[int] = []  # milliseconds since the start
    counts = [0] * senders
    for ms in range(1000):
        for k in range(senders):
            now_due = due(ms / 1000, rate, k / senders)
            sent_at += [ms] * (now_due - counts[k])
            counts[k] = now_due
    assert counts == [2] * senders  # R lines a second each
    gaps = [b - a for a, b in pairwise(sent_at)]
    # one line every 1 / (S x R) seconds, in turn (to the millisecond this grid has)
    assert len(gaps) == 19 and all(49 <= gap <= 51 for gap in gaps), gaps


def test_chatd_bench_json_in_two_processes() -> None:
    with running_server(make_config()) as server:
        assert server.address
        host, port = server.address
        done = run_chatd(
            "bench", host, str(port), "--clients", "40", "--senders", "4",
            "--duration", "1", "--warmup", "0.2", "--procs", "2", "--json",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ready"] == 40 and summary["delivery_ratio"] == 1.0, summary
    assert summary["order_errors"] == 0 and summary["stray_lines"] == 0, summary


def test_chatd_bench_says_when_nobody_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_chatd("bench", "127.0.0.1", str(port), "--clients", "3", "--senders", "1")
    assert done.returncode == 2
    assert done.stderr.strip() == f"chatd: bench: no client could connect to 127.0.0.1:{port}"


def test_chatd_bench_rooms_flag() -> None:
    with running_server(make_config()) as server:
        assert server.address
        host, port = server.address
        args = ["--clients", "12", "--senders", "3", "--rooms", "3"]
        done = run_chatd(
            "bench", host, str(port), *args, "--duration", "0.5", "--warmup", "0.2", "--json"
        )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rooms"] == 3 and summary["delivery_ratio"] == 1.0, summary
    assert summary["expected_deliveries"] == summary["messages_sent_total"] * 3, summary
    bad = run_chatd("bench", host, str(port), "--clients", "4", "--senders", "2", "--rooms", "3")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "--rooms must be 1 to --clients minus --senders" in bad.stderr


# -- --ws: the web listener's WebSocket ---------------------------------------------------


def test_bench_ws_counts_every_delivery_against_a_real_server_process(tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\n{LIFTED_LIMITS_TOML}'
        '[admin]\nenabled = false\n[store]\npath = ":memory:"\n'
    )
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        host, port = server.web_address
        opts = Options(
            host=host, port=port, clients=12, senders=3, duration=1.0, warmup=0.2, ws=True
        )
        summary = run(opts).summary()
    finally:
        server.stop()
    assert summary["ready"] == 12 and summary["connect_failures"] == 0, summary
    assert summary["messages_sent"] > 0, summary
    assert summary["deliveries"] == summary["expected_deliveries"] > 0, summary
    assert summary["delivery_ratio"] == 1.0 and summary["order_errors"] == 0, summary
    assert summary["stray_lines"] == 0 and summary["checked_lines"] > 0, summary
    assert summary["latency_ms"]["samples"] > 0, summary


def test_bench_ws_client_turned_away_counts_as_a_connect_failure_at_once() -> None:
    config = make_config(server=ServerSettings(host="127.0.0.1", port=0, max_clients=2))
    with running_server(config) as server:
        assert server.web_address
        host, port = server.web_address
        opts = Options(host=host, port=port, clients=3, senders=1, ws=True, connect_timeout=20)
        worker = _Worker(opts, range(3), {0: 0})
        started = time.monotonic()
        try:
            worker.connect()  # the third is answered 503 and closed: not waited for
        finally:
            worker.close()
    assert (worker.result.ready, worker.result.connect_failures) == (2, 1)
    assert time.monotonic() - started < opts.connect_timeout / 2


def _socket_client(worker: _Worker) -> tuple[_Client, socket.socket]:
    """A web client of ``worker`` on one end of a socket pair: the server's end is returned."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client = _Client(0, "bench0000", 0, ours)
    client.ready = client.checker = True
    worker.clients.append(client)
    worker.sel.register(ours, 1, client)
    return client, theirs


def test_bench_ws_counts_a_marker_cut_by_a_read_once_and_checks_every_event() -> None:
    worker = _Worker(Options(ws=True), range(1), {})
    client, server_end = _socket_client(worker)
    now = time.monotonic()
    worker.counting, worker.window_from, worker.window_to = True, now - 1, now + 60
    # What chatd's web listener sends a reader: chat, and other events between.
    stream = b"".join(
        web.render(ev.Said("#lobby", "bench0001", f"m 1 {seq} {time.monotonic_ns()}"))
        + (web.render(ev.Joined("#lobby", f"late{seq}")) if seq % 3 == 0 else b"")
        for seq in range(40)
    )
    try:
        for size in (1, 2, 5, 13, 14, 15, 29, 100):  # every place a read can end
            at = 0
            while at < len(stream):
                server_end.sendall(stream[at : at + size])
                at += size
                while worker._receive(client):
                    pass
            assert worker.result.deliveries_total == 40, size
            assert worker.result.checked_lines == 40 and client.next_seq == {1: 40}, size
            assert worker.result.order_errors == worker.result.stray_lines == 0, size
            worker.result.deliveries_total = worker.result.checked_lines = 0
            client.next_seq.clear()
        assert worker.result.latency.total() > 0
    finally:
        server_end.close()
        worker.close()


def test_bench_ws_clients_send_a_heartbeat_each_in_turn() -> None:
    worker = _Worker(Options(ws=True), range(4), {})
    ends = [_socket_client(worker)[1] for _ in range(4)]

    def beats() -> list[bytes]:
        got = []
        for end in ends:
            end.setblocking(False)
            try:
                got.append(end.recv(64))
            except BlockingIOError:
                got.append(b"")
        return got

    pong = b"\x8a\x80\x00\x00\x00\x00"  # FIN + pong, masked, empty, a zero key
    try:
        worker._keep_alive(worker.beat_from + KEEPALIVE_SECONDS / 2)
        assert beats() == [pong, pong, b"", b""]  # half the time: half the clients
        worker._keep_alive(worker.beat_from + KEEPALIVE_SECONDS)
        assert beats() == [b"", b"", pong, pong]
        worker._keep_alive(worker.beat_from + 10 * KEEPALIVE_SECONDS)
        assert beats() == [pong] * 4  # after a long wait: one round, not a burst
    finally:
        for end in ends:
            end.close()
        worker.close()
    # A server pings after [web] ping_interval of silence and drops after as
    # long again: no chatd's interval is short enough to drop a bench client.
    assert KEEPALIVE_SECONDS < 2 * MIN_PING_SECONDS


def test_chatd_bench_ws_flag_runs_against_the_web_listener() -> None:
    with running_server(make_config()) as server:
        assert server.web_address
        host, port = server.web_address
        done = run_chatd(
            "bench", host, str(port), "--ws", "--clients", "8", "--senders", "2",
            "--duration", "0.5", "--warmup", "0.2", "--json",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["delivery_ratio"] == 1.0 and summary["order_errors"] == 0, summary


# -- tls: the TLS listener -----------------------------------------------------------------


def test_bench_tls_counts_every_delivery_over_the_tls_listener(tmp_path: Path) -> None:
    cert = Certificate(tmp_path)
    with running_server(make_config(tls=cert.settings())) as server:
        host, port = server.tls_addresses["nc"]
        opts = Options(
            host=host, port=port, clients=8, senders=2, duration=0.5, warmup=0.2,
            tls=True, ca_file=str(cert.ca_file),
        )  # fmt: skip
        summary = run(opts).summary()
        totals = {each.name: each.counts.total for each in server.reactor.listeners}
    assert summary["ready"] == 8 and summary["messages_sent"] > 0, summary
    assert summary["deliveries"] == summary["expected_deliveries"] > 0, summary
    assert summary["delivery_ratio"] == 1.0 and summary["order_errors"] == 0, summary
    assert summary["stray_lines"] == 0 and summary["checked_lines"] > 0, summary
    assert summary["latency_ms"]["samples"] > 0, summary
    assert (totals["nc-tls"], totals["nc"]) == (8, 0)  # every client over TLS, none plain


def test_bench_tls_verifies_the_server_against_the_ca_it_is_given(tmp_path: Path) -> None:
    cert = Certificate(tmp_path)
    (tmp_path / "other").mkdir()
    stranger = Certificate(tmp_path / "other", name="stranger")
    with running_server(make_config(tls=cert.settings())) as server:
        host, port = server.tls_addresses["nc"]
        opts = Options(host=host, port=port, clients=3, senders=1, tls=True)
        refused = run(replace(opts, ca_file=str(stranger.ca_file))).summary()
    # the handshake fails on the certificate: each client counted as one that could not connect
    assert (refused["ready"], refused["connect_failures"]) == (0, 3), refused
    with pytest.raises(ValueError, match="--tls with --ws"):
        run(replace(opts, ws=True))


def test_chatd_bench_tls_flag_runs_against_the_tls_listener(tmp_path: Path) -> None:
    cert = Certificate(tmp_path)
    with running_server(make_config(tls=cert.settings())) as server:
        host, port = server.tls_addresses["nc"]
        done = run_chatd(
            "bench", host, str(port), "--tls", "--ca-file", str(cert.ca_file),
            "--clients", "8", "--senders", "2", "--duration", "0.5", "--warmup", "0.2", "--json",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["delivery_ratio"] == 1.0 and summary["order_errors"] == 0, summary
    bad = run_chatd("bench", host, str(port), "--tls", "--ws")
    assert bad.returncode == 2 and "--tls with --ws is not supported" in bad.stderr, bad.stderr


def test_a_ca_file_that_is_not_there_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ca.pem"
    assert cli.main(["bench", "127.0.0.1", "1", "--tls", "--ca-file", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"chatd: bench: --ca-file {missing}: No such file or directory\n"
    )
