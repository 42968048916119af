"""The batched fan-out under partial writes, and ``chatd bench`` against a real server."""

from __future__ import annotations

import json
import socket
from collections import Counter
from itertools import pairwise

from chatd.bench import Options, Result, _shares, _Worker, due, run
from tests.helpers import Crowd, make_config, run_chatd, running_server


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


def test_bench_clients_join_their_room_and_leave_the_lobby_before_they_are_ready() -> None:
    with running_server(make_config()) as server:
        assert server.address
        host, port = server.address
        opts = Options(host=host, port=port, clients=6, senders=2, rooms=2)
        worker = _Worker(opts, range(6), {0: 0, 1: 1})
        try:
            worker.connect()  # returns once every client has seen "*** You left #lobby."
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
