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
light load (1,000 clients, 10 senders at 2 lines a second: 20 a second in all),
and 10,000 clients held (server memory per idle connection) then chatting
(10 senders, 5 lines a second each). Loopback only; every run is bounded.
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


def bench(server: Server, *args: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "chatd", "bench", "127.0.0.1", str(server.port), "--json"]
    done = subprocess.run(
        pinned(0, [*argv, *args]), capture_output=True, text=True, timeout=600, check=False
    )
    if not done.stdout.strip():
        raise SystemExit(f"chatd bench against {server.name} failed: {done.stderr.strip()}")
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
    repeats, duration = (1, "2") if args.quick else (3, "5")
    names = ["chatd", "threaded", *(["c-epoll"] if args.c_server else [])]
    heavy = ["--clients", "1000", "--senders", "10", "--window", "64", "--duration", duration]
    light = [*heavy[:4], "--rate", "2", "--duration", duration]
    many = ["--clients", "10000", "--senders", "10", "--rate", "5", "--duration", duration]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.c_server:
            place_c_server(args.c_server, Path(tmp))
        for _ in range(repeats):
            for scenario, load in (("heavy", heavy), ("light", light)):
                for name in names:
                    server = start(name, free_port(), Path(tmp))
                    try:
                        runs[name].setdefault(scenario, []).append(bench(server, *load))
                    finally:
                        server.stop()
        for name in names if args.threaded_10k else ["chatd"]:
            server = start(name, free_port(), Path(tmp))
            try:
                memory[name] = hold_idle(server, 10_000)
                runs[name]["10k"] = [bench(server, *many)]
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
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "memory_kib": memory}, indent=1))


if __name__ == "__main__":
    main()
