"""chatd against the thread-per-client reference, side by side, in one run.

Both servers are started here, each pinned to CPU 1 (the load generator to CPU
0, when the machine has two and `taskset` exists), and measured one after the
other with the same `chatd bench` load, alternating, REPEATS times; the table
shows medians and chatd's ratio to the reference.

    python bench/compare.py [--quick] [--c-server SOURCE] [--loadgen SOURCE]
                            [--threaded-10k] [--json FILE]

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

Every chatd started here keeps its history in a fresh database of its own in
the run's temporary folder (``chatd-<n>.db``, the store on, as chatd runs by
default), never in the user's ``$XDG_STATE_HOME/chatd/chatd.db``.

IRC: with ``--loadgen ../shared/bench/loadgen.c`` (built here; a binary works
too) the shared C load generator, which speaks IRC (``--proto irc``: NICK,
USER, JOIN #bench, PRIVMSG), drives three servers in turn, each pinned to CPU
1, in the same rotation: chatd's IRC listener, the same chatd's nc listener
(the generator's line protocol: the same load, so "IRC costs this much more
than nc"), and Debian's ngircd (``apt-get install ngircd``; skipped with a
note when it is missing). 1,000 clients in one channel, 10 senders, 64 lines
in flight each. chatd serves IRC with ``autojoin = []``: the generator joins
#bench itself and counts a client ready at its first 366. ngircd gets a
config that lifts what would refuse or slow the load (connections per
address, the per-command penalty); its listen backlog is 10, so every server
gets at most 8 connections in flight while the clients connect.
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
from itertools import count
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
[irc]
port = {irc_port}
autojoin = []
[admin]
enabled = false
[store]
path = {store}
"""
#: Debian's ngircd for the IRC rows: no per-address limit, no penalty time
#: (it delays each command of a busy client by a second), no DNS or ident
#: lookups (nothing leaves loopback), as many joins and channels as asked.
NGIRCD_CONFIG = """\
[Global]
    Name = ngircd.bench
    Info = bench
    AdminInfo1 = bench
    AdminEMail = bench@localhost
    Listen = 127.0.0.1
    Ports = {port}
    PidFile = {tmp}/ngircd.pid
[Options]
    PAM = no
    Ident = no
    DNS = no
[Limits]
    MaxPenaltyTime = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 31
"""
#: Connections the C load generator has connecting at once: under ngircd's
#: listen backlog of 10 (a full backlog drops SYNs, and the connect phase
#: crawls); the same for every server, so the runs compare.
LOADGEN_MAX_PENDING = 8


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


#: Numbers each chatd started here: its config and its database are tmp/chatd-<n>.*.
_STARTS = count(1)


def chatd_argv(port: int, irc_port: int, tmp: Path, store: str | None = None) -> list[str]:
    """chatd serving nc on ``port`` and IRC on ``irc_port`` (0: any), the bench's
    settings, keeping its history in ``store`` (a ``[store] path``; by default a
    fresh database in ``tmp``: never the user's own, and never one another
    chatd has open)."""
    n = next(_STARTS)
    config = tmp / f"chatd-{n}.toml"
    store = str(tmp / f"chatd-{n}.db") if store is None else store
    config.write_text(CONFIG.format(port=port, irc_port=irc_port, store=json.dumps(store)))
    return [
        sys.executable,
        "-m",
        "chatd",
        "serve",
        "--config",
        str(config),
        "--log-level",
        "WARNING",
    ]


def start(name: str, port: int, tmp: Path) -> Server:
    if name == "chatd":
        return Server(name, chatd_argv(port, 0, tmp), port)
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


# -- IRC, with the shared C load generator ------------------------------------------------

#: The IRC rotation: chatd's IRC listener, the same chatd's nc listener, ngircd.
IRC_SERVERS = ("chatd-irc", "chatd-nc", "ngircd")


def place_loadgen(source: Path, tmp: Path) -> Path:
    binary = tmp / "loadgen"
    if source.suffix == ".c":
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    else:
        binary.symlink_to(source.resolve())
    return binary


def start_irc(name: str, tmp: Path) -> tuple[Server, str]:
    """``name`` of IRC_SERVERS, started; and the protocol the generator speaks to it."""
    port = free_port()
    if name == "ngircd":
        config = tmp / "ngircd.conf"
        config.write_text(NGIRCD_CONFIG.format(port=port, tmp=tmp))
        return Server(name, ["ngircd", "--nodaemon", "--config", str(config)], port), "irc"
    if name == "chatd-irc":  # wait for the IRC port: it is bound last
        return Server(name, chatd_argv(0, port, tmp), port), "irc"
    return Server(name, chatd_argv(port, 0, tmp), port), "line"


def loadgen(binary: Path, server: Server, proto: str, duration: float) -> dict[str, Any]:
    """One run of the C load generator (1,000 clients, 10 senders, window 64)."""
    argv = [
        str(binary),
        *("--port", str(server.port), "--proto", proto),
        *("--clients", "1000", "--senders", "10", "--window", "64"),
        *("--duration", str(duration), "--warmup", "1"),
        *("--max-pending", str(LOADGEN_MAX_PENDING), "--server-pid", str(server.proc.pid)),
    ]
    done = subprocess.run(pinned(0, argv), capture_output=True, text=True, timeout=300, check=False)
    if not done.stdout.strip():
        raise SystemExit(f"loadgen against {server.name} failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def irc_table(binary: Path, repeats: int, duration: float, tmp: Path) -> dict[str, list[Any]]:
    """Run the IRC rotation; print its table; return the raw runs."""
    names = [n for n in IRC_SERVERS if n != "ngircd" or shutil.which("ngircd")]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            server, proto = start_irc(name, tmp)
            try:
                runs[name].append(loadgen(binary, server, proto, duration))
            finally:
                server.stop()

    def med(name: str, *path: str) -> float | None:
        values = []
        for result in runs.get(name, []):
            value: Any = result
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                values.append(float(value))
        return statistics.median(values) if values else None

    print()
    print(
        "IRC: ../shared/bench/loadgen, 1,000 clients in one channel, 10 senders, window 64"
        f" (medians of {repeats}; the generator on CPU 0, each server on CPU 1)"
    )
    if "ngircd" not in names:
        print("(ngircd is not installed: apt-get install ngircd for its column)")
    titles = {"chatd-irc": "chatd IRC", "chatd-nc": "chatd nc", "ngircd": "ngircd"}
    ratios = [("chatd-irc", "ngircd"), ("chatd-irc", "chatd-nc")]
    ratios = [(a, b) for a, b in ratios if b in names]
    head = [
        "measure",
        *(titles[n] for n in names),
        *(f"{titles[a]} / {titles[b]}" for a, b in ratios),
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rows = [
        ("deliveries/s", ("deliveries_per_s",), "M"),
        ("  delivery ratio", ("delivery_ratio",), ""),
        ("  p99 latency (ms)", ("latency_ms", "p99"), ""),
        ("  server CPU (of its core)", ("server_cpu_util",), ""),
        ("  load generator CPU (of its core)", ("loadgen_cpu_util",), ""),
    ]
    for label, path, unit in rows:
        values = {name: med(name, *path) for name in names}
        cells = [
            "-"
            if values[n] is None
            else (f"{values[n] / 1e6:.2f} M" if unit == "M" else f"{values[n]:g}")  # type: ignore[operator]
            for n in names
        ]
        for a, b in ratios:
            va, vb = values[a], values[b]
            cells.append(f"{va / vb:.2f}x" if va is not None and vb else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return runs


def shown(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M" if unit == "M" else f"{value:g}"


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
        "--loadgen",
        type=Path,
        metavar="SOURCE",
        help="also run the IRC rows with the C load generator: ../shared/bench/loadgen.c"
        " or its binary (chatd IRC vs chatd nc vs ngircd)",
    )
    parser.add_argument("--irc-only", action="store_true", help="with --loadgen: only the IRC rows")
    parser.add_argument(
        "--threaded-10k",
        action="store_true",
        help="run the 10,000-client part against the threaded reference too (about 10 minutes:"
        " it takes 5 to absorb 10,000 joins)",
    )
    args = parser.parse_args()
    repeats, duration = (1, 2.0) if args.quick else (3, 5.0)
    if args.irc_only:
        if not args.loadgen:
            parser.error("--irc-only needs --loadgen")
        with tempfile.TemporaryDirectory() as tmp:
            binary = place_loadgen(args.loadgen, Path(tmp))
            only = irc_table(binary, repeats, duration, Path(tmp))
        if args.json:
            args.json.write_text(json.dumps({"irc": only}, indent=1))
        return
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
    irc_runs: dict[str, list[Any]] = {}
    if args.loadgen:
        with tempfile.TemporaryDirectory() as tmp:
            binary = place_loadgen(args.loadgen, Path(tmp))
            irc_runs = irc_table(binary, repeats, duration, Path(tmp))
    if args.json:
        raw = {"runs": runs, "memory_kib": memory, "irc": irc_runs}
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
