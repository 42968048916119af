"""chatd against the thread-per-client reference, side by side, in one run.

Both servers are started here, each pinned to CPU 1 (the load generator to CPU
0, when the machine has two and `taskset` exists), and measured one after the
other with the same `chatd bench` load, alternating, REPEATS times; the table
shows medians and chatd's ratio to the reference.

    python bench/compare.py [--quick] [--c-server SOURCE] [--threaded-10k] [--json FILE]

With ``--c-server ../shared/bench/c_epoll_broadcast.c`` (built here with
``cc -O2``; a built binary works too) the minimal C epoll server runs in the
same rotation, for "what the kernel allows" beside the two.

Scenarios: heavy fan-out (1,000 clients, 10 senders, 64 lines in flight each),
the same spread over 10 rooms (client i in room i mod 10 and nowhere else, so
each of the 10 senders talks to the 99 others of its room), light load (1,000
clients, 10 senders at 2 lines a second: 20 a second in all), and 10,000
clients held (server memory per idle connection) then chatting (10 senders, 5
lines a second each). Loopback only; every run is bounded.

The rooms run against C: the C epoll server has no rooms, so there it is 10 C
servers of 100 clients each, all pinned to CPU 1 like every server here, each
server one room (``room_ports``). That keeps what the kernel and the load
generator do the same as against chatd: 1,000 connections, 10 senders, each
line written to the 99 others of its room, each client's writes holding its
room's lines only. (One C server with 100 clients would give the same
deliveries a line but a tenth of the connections, and every write would carry
all 10 senders' lines: a tenth of the system calls a delivery, which is not the
work chatd does.) The thread-per-client reference is not run in rooms.

Each load is ``bench/load.py``: chatd.bench.run, the code behind ``chatd
bench``, with its options as JSON (``room_ports`` has no flag).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = """\
[server]
host = "127.0.0.1"
port = {port}
max_clients = 20000
[limits]
flood_rate = 0
max_per_ip = 0
[admin]
enabled = false
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


class Server:
    def __init__(self, name: str, argv: list[str], port: int) -> None:
        self.name, self.port = name, port
        self.proc = subprocess.Popen(
            pinned(1, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"{name} did not start") from None
                time.sleep(0.05)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def bench(servers: list[Server], load: dict[str, Any]) -> dict[str, Any]:
    """Run ``load`` (chatd.bench.Options' fields) against ``servers``: one, or
    one a room (room K on the K-th)."""
    where: dict[str, Any] = {"host": "127.0.0.1", "port": servers[0].port}
    if len(servers) > 1:
        where["room_ports"] = [server.port for server in servers]
    argv = [sys.executable, str(HERE / "load.py"), json.dumps({**load, **where})]
    done = subprocess.run(pinned(0, argv), capture_output=True, text=True, timeout=600, check=False)
    if not done.stdout.strip():
        name = servers[0].name
        raise SystemExit(f"chatd bench against {name} failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def hold_idle(server: Server, count: int, batch: int = 250) -> float:
    """Connect ``count`` named clients that then sit idle; KiB of server memory each.

    Clients connect a batch at a time (so their joins are announced in few loop
    iterations) and read everything they are sent (so no join notice waits in
    the server's memory when it is measured).
    """
    before = server.rss_kib()
    socks: list[socket.socket] = []

    def drain(quiet_for: float) -> None:
        quiet = time.monotonic()
        while time.monotonic() - quiet < quiet_for:
            got = False
            for sock in socks:
                try:
                    while sock.recv(1 << 16):
                        got = True
                except BlockingIOError:
                    pass
            if got:
                quiet = time.monotonic()
            else:
                time.sleep(0.01)

    try:
        for first in range(0, count, batch):
            fresh = [
                socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(min(batch, count - first))
            ]
            for i, sock in enumerate(fresh, first):
                sock.recv(4096)  # the prompt
                sock.sendall(b"idle%05d\n" % i)
                sock.setblocking(False)
            socks += fresh
            drain(0.05)
        drain(1.0)
        return (server.rss_kib() - before) / count
    finally:
        for sock in socks:
            sock.close()


def place_c_server(source: Path, tmp: Path) -> None:
    """Put the C epoll server's binary at tmp/c_epoll_broadcast: built from
    ``source``, or a link to it if it is a binary already."""
    binary = tmp / "c_epoll_broadcast"
    if source.suffix == ".c":
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    else:
        binary.symlink_to(source.resolve())


def start(name: str, port: int, tmp: Path) -> Server:
    if name == "chatd":
        config = tmp / "chatd.toml"
        config.write_text(CONFIG.format(port=port))
        argv = [sys.executable, "-m", "chatd", "serve", "--config", str(config)]
        return Server(name, [*argv, "--log-level", "WARNING"], port)
    if name == "c-epoll":
        return Server(name, [str(tmp / "c_epoll_broadcast"), "--port", str(port)], port)
    return Server(
        name, [sys.executable, str(HERE / "threaded_server.py"), "--port", str(port)], port
    )


#: The rooms scenario: 10 rooms of 100 at 1,000 clients.
ROOMS = 10


def start_for(name: str, scenario: str, tmp: Path) -> list[Server]:
    """The server(s) ``name`` runs ``scenario`` on: for rooms against the C
    server (which has none), one C server a room."""
    if scenario == "rooms" and name == "c-epoll":
        servers: list[Server] = []
        try:
            for _ in range(ROOMS):
                servers.append(start(name, free_port(), tmp))
        except BaseException:
            for server in servers:
                server.stop()
            raise
        return servers
    return [start(name, free_port(), tmp)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, shorter runs")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--c-server",
        type=Path,
        metavar="SOURCE",
        help="also measure the C epoll server: ../shared/bench/c_epoll_broadcast.c or its binary",
    )
    parser.add_argument(
        "--threaded-10k",
        action="store_true",
        help="run the 10,000-client part against the threaded reference too (about 10 minutes:"
        " it takes 5 to absorb 10,000 joins)",
    )
    args = parser.parse_args()
    repeats, duration = (1, 2.0) if args.quick else (3, 5.0)
    names = ["chatd", "threaded", *(["c-epoll"] if args.c_server else [])]
    heavy = {"clients": 1000, "senders": 10, "window": 64, "duration": duration}
    rooms = {**heavy, "rooms": ROOMS}
    light = {"clients": 1000, "senders": 10, "rate": 2.0, "duration": duration}
    many = {"clients": 10000, "senders": 10, "rate": 5.0, "duration": duration}
    scenarios = {"heavy": heavy, "rooms": rooms, "light": light}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.c_server:
            place_c_server(args.c_server, Path(tmp))
        for _ in range(repeats):
            for scenario, load in scenarios.items():
                for name in names:
                    if scenario == "rooms" and name == "threaded":
                        continue
                    servers = start_for(name, scenario, Path(tmp))
                    try:
                        runs[name].setdefault(scenario, []).append(bench(servers, load))
                    finally:
                        for server in servers:
                            server.stop()
        for name in names if args.threaded_10k else ["chatd"]:
            server = start(name, free_port(), Path(tmp))
            try:
                memory[name] = hold_idle(server, 10_000)
                runs[name]["10k"] = [bench([server], many)]
            finally:
                server.stop()

    def med(name: str, scenario: str, *path: str) -> float | None:
        values = []
        for result in runs[name].get(scenario, []):
            value: Any = result
            for key in path:
                value = value[key]
            if value is not None:  # no latency sample: nothing arrived in time
                values.append(float(value))
        return statistics.median(values) if values else None

    def shown(value: float | None, unit: str) -> str:
        if value is None:
            return "-"
        return f"{value / 1e6:.2f} M" if unit == "M" else f"{value:g}"

    rows = [
        ("1,000 clients, 10 senders: deliveries/s", ("heavy", "deliveries_per_s"), "M"),
        ("  p99 latency under that load (ms)", ("heavy", "latency_ms", "p99"), ""),
        ("  delivery ratio", ("heavy", "delivery_ratio"), ""),
        ("  chatd bench's CPU (of its core)", ("heavy", "bench_cpu"), ""),
        (
            f"1,000 clients in {ROOMS} rooms, a sender each: deliveries/s",
            ("rooms", "deliveries_per_s"),
            "M",
        ),
        ("  p99 latency under that load (ms)", ("rooms", "latency_ms", "p99"), ""),
        ("  delivery ratio", ("rooms", "delivery_ratio"), ""),
        ("  chatd bench's CPU (of its core)", ("rooms", "bench_cpu"), ""),
        ("light load (20 lines/s to 1,000): p99 (ms)", ("light", "latency_ms", "p99"), ""),
        ("10,000 clients chatting: delivery ratio", ("10k", "delivery_ratio"), ""),
        ("10,000 clients chatting: p99 (ms)", ("10k", "latency_ms", "p99"), ""),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"repeats: {repeats} (medians); load: chatd bench, pinned as described in the docstring")
    others = names[1:]
    titles = {"threaded": "thread-per-client", "c-epoll": "C epoll"}
    head = ["measure", "chatd", *(titles[n] for n in others), *(f"chatd / {n}" for n in others)]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))

    def ratio(ours: float | None, theirs: float | None) -> str:
        return f"{ours / theirs:.2f}x" if ours is not None and theirs else "-"

    for label, (scenario, *path), unit in rows:
        values = [med(name, scenario, *path) for name in names]
        cells = [shown(v, unit) for v in values] + [ratio(values[0], v) for v in values[1:]]
        print(f"| {label} | " + " | ".join(cells) + " |")
    kib = [memory.get(name) for name in names]
    cells = [f"{v:.1f} KiB" if v else "-" for v in kib] + [ratio(kib[0], v) for v in kib[1:]]
    print("| memory per idle connection (10,000 held) | " + " | ".join(cells) + " |")
    if "c-epoll" in names:
        print(
            f"In rooms the C column is {ROOMS} C servers of {1000 // ROOMS} clients, one a room"
            " (the C server has no rooms): the same connections and recipients a line."
        )
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "memory_kib": memory}, indent=1))


if __name__ == "__main__":
    main()
