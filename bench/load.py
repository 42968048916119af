"""One ``chatd bench`` load, its options given as JSON; prints the summary as one JSON line.

What bench/compare.py runs (pinned to CPU 0) against each server: the code
behind ``chatd bench`` (chatd.bench.run), given chatd.bench.Options' fields,
including ``room_ports``, which the command line does not offer (room K's
clients connect to the K-th port: N servers without rooms as N rooms), ``ws``
(the port is then the web listener's) and ``tls`` with ``ca_file`` (a TLS
listener's, its certificate verified against that CA).

    python bench/load.py '{"port": 7777, "clients": 1000, "senders": 10, "rooms": 10}'
    python bench/load.py '{"port": 8080, "ws": true, "server_pid": 4242}'
    python bench/load.py '{"port": 7778, "tls": true, "ca_file": "ca.pem"}'

With ``server_pid`` (not an Options field; the server on this machine), the
server's CPU is read from /proc as the senders start and once every delivery
is counted, before the clients disconnect (so neither their joins nor their
leaving is in it), and the summary gains ``server_cpu_s``, ``server_wall_s``,
``server_cpu_util`` (of one core) and ``server_ns_per_delivery``.

Exit status 1 if a delivery was missing or out of order, 2 if the options are
wrong or no client could connect (one line on stderr).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chatd.bench import Options, run


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) process ``pid`` and all its threads have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    try:
        fields: dict[str, Any] = json.loads(argv[0])
        pid = int(fields.pop("server_pid", 0))
        fields["room_ports"] = tuple(fields.get("room_ports", ()))
        opts = Options(**fields)
    except (IndexError, ValueError, TypeError) as exc:
        print(f"load.py: {exc}; give Options' fields as one JSON object", file=sys.stderr)
        return 2
    marks: list[tuple[float, float]] = []  # (server CPU, time) at the start and the end

    def mark() -> None:
        marks.append((cpu_seconds(pid), time.monotonic()))

    try:
        summary = run(opts, mark if pid else None).summary()
    except ValueError as exc:
        print(f"load.py: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"/proc/{pid}" if exc.filename else f"{opts.host}:{opts.port}"
        print(f"load.py: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if summary["ready"] == 0:
        print(f"load.py: no client could connect to {opts.host}:{opts.port}", file=sys.stderr)
        return 2
    if len(marks) == 2:
        (cpu0, t0), (cpu1, t1) = marks
        summary["server_cpu_s"] = round(cpu1 - cpu0, 3)
        summary["server_wall_s"] = round(t1 - t0, 3)
        summary["server_cpu_util"] = round((cpu1 - cpu0) / (t1 - t0), 3)
        if summary["deliveries"]:
            summary["server_ns_per_delivery"] = round((cpu1 - cpu0) * 1e9 / summary["deliveries"])
    print(json.dumps(summary))
    return 0 if summary["delivery_ratio"] == 1.0 and not summary["order_errors"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
