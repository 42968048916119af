"""The batched fan-out under partial writes, and ``chatd bench`` against a real server."""

from __future__ import annotations

import json
import socket
from collections import Counter
from itertools import pairwise

from chatd.bench import Options, Result, due, run
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
