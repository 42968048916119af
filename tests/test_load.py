"""Many clients at once, against the real ``chatd serve`` in its own process.

Every plain line must reach every other named client exactly once, in the order
its sender sent it, and never the sender.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import LIFTED_LIMITS_TOML, Crowd, ServerProcess

CLIENTS = 200
LINES = 50


def test_every_line_reaches_every_other_client_once_in_order(tmp_path: Path) -> None:
    # 200 clients from one address, each sending 50 lines at once: no flood control
    # and no per-address limit here (tests/test_limits.py tests those).
    config = tmp_path / "chatd.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = 0\n{LIFTED_LIMITS_TOML}')
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        crowd = Crowd(server.address, CLIENTS, prefix="u")
        for sender in range(CLIENTS):
            crowd.send(sender, LINES)
        crowd.read(wait=60)  # each line once, in its sender's order, never echoed
        # Nothing more is on its way: up to a marker (u000 leaving), no client
        # has received one chat line beyond the ones counted.
        crowd.clients[0].sock.setblocking(True)
        crowd.clients[0].sock.sendall(b"/quit done\n")
        crowd.read_until_notice("*** u000 left (Quit: done)", skip={0})
        assert crowd.caught_up(skip={0}), "a client got more lines than were sent"
        assert all(sent == LINES for sent in crowd.sent)
        crowd.close()
        assert "Traceback" not in server.log
    finally:
        server.stop()
