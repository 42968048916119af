"""A blocking client for the admin socket, used by ``chatd admin``.

Rule: one request, one response, in order; every failure to reach or understand
the server is an AdminUnavailable or a WireError with a one-line message.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from chatd.admin import wire

#: How long a request may take before the console gives up on the server.
TIMEOUT_SECONDS = 10.0


class AdminUnavailable(Exception):
    """No server answers at the socket (or it went away)."""


class AdminFailed(Exception):
    """The server answered {"ok": false}; the message is its error."""


class AdminClient:
    def __init__(self, path: Path, timeout: float = TIMEOUT_SECONDS) -> None:
        self.path = path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise AdminUnavailable(
                f"no chatd server is answering at {path} (is 'chatd serve' running?)"
            ) from None
        except OSError as exc:
            sock.close()
            raise AdminUnavailable(f"cannot connect to {path}: {exc.strerror}") from None
        self._sock = sock
        self._buf = b""

    def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """Run one command; returns its result, raises AdminFailed with the server's error."""
        return self.send(wire.request(cmd, args))

    def send(self, request: dict[str, Any]) -> Any:
        try:
            self._sock.sendall(wire.encode(request))
            while b"\n" not in self._buf:
                chunk = self._sock.recv(1 << 16)
                if not chunk:
                    raise AdminUnavailable(f"the server at {self.path} closed the connection")
                self._buf += chunk
        except TimeoutError:
            raise AdminUnavailable(f"the server at {self.path} did not answer in time") from None
        except OSError as exc:
            raise AdminUnavailable(f"lost the server at {self.path}: {exc.strerror}") from None
        line, _, self._buf = self._buf.partition(b"\n")
        response = wire.parse_response(line.decode("utf-8", "replace"))
        if not response["ok"]:
            raise AdminFailed(str(response.get("error", "unknown error")))
        return response.get("result")

    def close(self) -> None:
        self._sock.close()
