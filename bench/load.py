"""One ``chatd bench`` load, its options given as JSON; prints the summary as one JSON line.

What bench/compare.py runs (pinned to CPU 0) against each server: the code
behind ``chatd bench`` (chatd.bench.run), given chatd.bench.Options' fields,
including ``room_ports``, which the command line does not offer (room K's
clients connect to the K-th port: N servers without rooms as N rooms).

    python bench/load.py '{"port": 7777, "clients": 1000, "senders": 10, "rooms": 10}'

Exit status 1 if a delivery was missing or out of order, 2 if the options are
wrong or no client could connect (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from chatd.bench import Options, run


def main(argv: list[str]) -> int:
    try:
        fields: dict[str, Any] = json.loads(argv[0])
        fields["room_ports"] = tuple(fields.get("room_ports", ()))
        opts = Options(**fields)
    except (IndexError, ValueError, TypeError) as exc:
        print(f"load.py: {exc}; give Options' fields as one JSON object", file=sys.stderr)
        return 2
    try:
        summary = run(opts).summary()
    except ValueError as exc:
        print(f"load.py: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"load.py: {opts.host}:{opts.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if summary["ready"] == 0:
        print(f"load.py: no client could connect to {opts.host}:{opts.port}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0 if summary["delivery_ratio"] == 1.0 and not summary["order_errors"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
