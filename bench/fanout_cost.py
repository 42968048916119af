"""What chatd's fan-out costs in Python per recipient, without the kernel.

A group of 1,000 real Connection objects whose socket's ``send`` is a C builtin
(``len``: it "sends" everything and costs next to nothing), one line published
and one loop iteration per round, as at light load (the iteration's empty
select() is shared by all the members: under 1 ns each). What is left is the
group's loop, ``deliver_batch`` and the reactor's ``_send_now``.

    python bench/fanout_cost.py [--members N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from chatd.core.reactor import Connection, Limits, Listener, Reactor
from chatd.core.stats import Stats
from chatd.core.timers import Timers


class _NullSocket:
    send = staticmethod(len)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    reactor = Reactor(Timers(time.monotonic))
    sock: Any = _NullSocket()
    listener = Listener(sock, handler=None, limits=Limits(), stats=Stats(0.0))  # type: ignore[arg-type]
    group = reactor.group()
    members = [
        Connection(reactor, sock, "peer", "host", listener, None) for _ in range(args.members)
    ]
    for member in members:
        group.join(member)
    line = b"<bench0001> m 1 2 3456789012345\n"
    began = time.perf_counter()
    for _ in range(args.rounds):
        group.publish(line, members[0])
        reactor.run_once(max_wait=0)  # one loop iteration: nothing to read, then the flush
    elapsed = time.perf_counter() - began
    per = elapsed / args.rounds / args.members * 1e9
    print(f"{per:.0f} ns of Python per recipient ({args.members} members, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
