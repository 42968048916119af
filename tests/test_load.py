"""Many clients at once, against the real ``chatd serve`` in its own process.

Every plain line must reach every other named client exactly once, in the order
its sender sent it, and never the sender.
"""

from __future__ import annotations

import selectors
import socket
import time
from pathlib import Path

from tests.helpers import LIFTED_LIMITS_TOML, WAIT, ServerProcess

CLIENTS = 200
LINES = 50


def _register(address: tuple[str, int], nick: str) -> socket.socket:
    sock = socket.create_connection(address, timeout=WAIT)
    buf = b""
    while b"Choose a nickname" not in buf:
        buf += sock.recv(4096)
    sock.sendall(nick.encode() + b"\n")
    while f"Welcome, {nick}!".encode() not in buf:
        chunk = sock.recv(4096)
        assert chunk, f"{nick}: connection closed while registering"
        buf += chunk
    sock.setblocking(False)
    return sock


def test_every_line_reaches_every_other_client_once_in_order(tmp_path: Path) -> None:
    # 200 clients from one address, each sending 50 lines at once: no flood control
    # and no per-address limit here (tests/test_limits.py tests those).
    config = tmp_path / "chatd.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = 0\n{LIFTED_LIMITS_TOML}')
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        nicks = [f"u{i:03d}" for i in range(CLIENTS)]
        socks = [_register(server.address, nick) for nick in nicks]
        for i, sock in enumerate(socks):
            payload = b"".join(b"m %d %d\n" % (i, seq) for seq in range(LINES))
            sock.setblocking(True)
            sock.sendall(payload)
            sock.setblocking(False)

        # next_seq[r][s]: the sequence number receiver r expects next from sender s
        next_seq = [[0] * CLIENTS for _ in range(CLIENTS)]
        remaining = [LINES * (CLIENTS - 1)] * CLIENTS
        tails = [b""] * CLIENTS
        sel = selectors.DefaultSelector()
        for r, sock in enumerate(socks):
            sel.register(sock, selectors.EVENT_READ, r)
        todo = CLIENTS
        deadline = time.monotonic() + 60
        while todo:
            assert time.monotonic() < deadline, f"timed out; still expected: {sum(remaining)}"
            for key, _ in sel.select(1.0):
                r = key.data
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                assert data, f"{nicks[r]} was disconnected"
                *lines, tails[r] = (tails[r] + data).split(b"\n")
                expect = next_seq[r]
                for line in lines:
                    if not line.startswith(b"<"):
                        continue  # *** join notices
                    nick, _, s, seq = line.split(b" ")
                    s_i = int(s)
                    assert s_i != r, f"{nicks[r]} got its own line back: {line!r}"
                    assert nick == b"<%s>" % nicks[s_i].encode(), line
                    assert int(seq) == expect[s_i], (
                        f"{nicks[r]} got {line!r}, expected seq {expect[s_i]} from {nicks[s_i]}"
                    )
                    expect[s_i] += 1
                    remaining[r] -= 1
                if remaining[r] == 0:
                    sel.unregister(key.fileobj)
                    todo -= 1
        for r in range(CLIENTS):
            assert next_seq[r] == [0 if s == r else LINES for s in range(CLIENTS)]
        # Nothing more is on its way: after a marker (u000 leaving), no client
        # has received one chat line beyond the ones counted.
        socks[0].setblocking(True)
        socks[0].sendall(b"/quit done\n")
        for r in range(1, CLIENTS):
            socks[r].setblocking(True)
            buf = tails[r]
            while b"*** u000 left (Quit: done)\n" not in buf:
                chunk = socks[r].recv(65536)
                assert chunk, f"{nicks[r]} was disconnected"
                buf += chunk
            extra = [line for line in buf.split(b"\n") if line.startswith(b"<")]
            assert extra == [], f"{nicks[r]} got more than it should: {extra[:3]}"
        for sock in socks:
            sock.close()
        assert "Traceback" not in server.log
    finally:
        server.stop()
