"""Test helpers: a fake link for sans-IO hub tests, a real server and real clients.

The sans-IO parts are chatd.testing's (the kit plugin authors get), under the
names and with the few extras these tests use.

Every wait here is bounded by a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from chatd import testing
from chatd.admin.client import AdminClient
from chatd.config import (
    AdminSettings,
    Config,
    IrcSettings,
    LimitSettings,
    PluginSettings,
    ServerSettings,
    StoreSettings,
    WebSettings,
)
from chatd.core.hub import User
from chatd.core.listeners import Listener
from chatd.plugins import BUILTIN_PLUGINS
from chatd.server import Server
from chatd.wire.irc_message import Message
from chatd.wire.irc_message import parse as irc_parse

#: Longest any single wait in a test may take. Generous: a failing test pays it
#: once; a passing one never waits more than the real work takes.
WAIT = 10.0

#: struct linger {l_onoff = 1, l_linger = 0}: close() sends RST instead of FIN.
LINGER_ZERO = b"\x01\x00\x00\x00\x00\x00\x00\x00"


T = TypeVar("T")


class FakeClock(testing.FakeClock):
    """The kit's clock, and ``step``: seconds that pass each time it is read (0:
    only advance() moves it), for a loop that must see time pass on its own."""

    def __init__(self, now: float = testing.START_TIME) -> None:
        super().__init__(now)
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FakeLink(testing.FakeLink):
    """The kit's link; ``lines`` is every line received, ``take()`` those since the last."""

    @property
    def lines(self) -> list[str]:
        return self.all_lines


#: Settings for tests: no drop-in folders, so the repo's plugins.d stays out of
#: tests that are not about it.
NO_DROPINS = PluginSettings(dirs=[])


def lifted_limits(**values: object) -> LimitSettings:
    """[limits] for tests: no flood control and no per-address limit (every test
    client comes from 127.0.0.1 and many send in bursts), unless ``values`` say so."""
    return LimitSettings(**{"flood_rate": 0, "max_per_ip": 0, **values})  # type: ignore[arg-type]


#: The same as a chatd.toml table, for servers started as a process.
LIFTED_LIMITS_TOML = "[limits]\nflood_rate = 0\nmax_per_ip = 0\n"


def make_config(**tables: object) -> Config:
    """Config for tests: 127.0.0.1, ephemeral ports (nc, IRC and web, and their
    TLS ones once a certificate is set), no
    drop-in folders, no admin socket, and :func:`lifted_limits`."""
    base: dict[str, object] = {
        "server": ServerSettings(host="127.0.0.1", port=0, tls_port=0),
        "irc": IrcSettings(host="127.0.0.1", port=0, tls_port=0),
        "web": WebSettings(host="127.0.0.1", port=0, tls_port=0),
        "limits": lifted_limits(),
        "plugins": NO_DROPINS,
        "admin": AdminSettings(enabled=False),
        "store": StoreSettings(path=":memory:"),
    }
    return Config(**{**base, **tables})  # type: ignore[arg-type]


class HubFixture:
    """A hub with the built-in plugins, a fake clock, and helpers to add users: the
    kit's ChatHarness (not strict: these tests look at failures themselves), for
    tests that drive the hub directly."""

    def __init__(
        self, builtins: tuple[str, ...] = BUILTIN_PLUGINS, config: Config | None = None
    ) -> None:
        self.chat = testing.ChatHarness(
            builtins, builtins=False, config=config or make_config(), strict=False
        )
        self.clock = self.chat.clock
        self.timers = self.chat.timers
        self.config = self.chat.config
        self.plugins = self.chat.plugins
        self.hub = self.chat.hub
        self.links: list[FakeLink] = []

    def join(self, nick: str) -> tuple[User, FakeLink]:
        """A named user; afterwards every link's unread lines (join notices) are cleared."""
        link = FakeLink()
        user = self.hub.connect(link)
        self.hub.receive(user, nick)
        assert any(line.startswith(f"*** Welcome, {nick}!") for line in link.lines), link.lines
        self.links.append(link)
        for each in self.links:
            each.take()
        return user, link

    def join_keeping(self, nick: str) -> tuple[User, FakeLink]:
        """A named user whose own link keeps what it was told on arrival (the
        history it was shown); every other link's unread lines are cleared."""
        link = FakeLink()
        user = self.hub.connect(link)
        self.hub.receive(user, nick)
        for each in self.links:
            each.take()
        self.links.append(link)
        return user, link


def write_plugin(folder: Path, name: str, body: str) -> Path:
    """Write a drop-in plugin file (``body`` dedented) into ``folder``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def recv_by(sock: socket.socket, deadline: float) -> bytes:
    """One read from ``sock`` (b"": the end, or a reset); TimeoutError past ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


class WebSocketClient:
    """A WebSocket client on a real socket (websockets' sans-IO ClientProtocol),
    what a script or a browser's page is to the web listener: JSON both ways."""

    def __init__(
        self, address: tuple[str, int], origin: str | None = "", path: str = "/ws"
    ) -> None:
        host = f"{address[0]}:{address[1]}"
        self.sock = socket.create_connection(address, timeout=WAIT)
        origin = f"http://{host}" if origin == "" else origin
        self.client = ClientProtocol(
            parse_uri(f"ws://{host}{path}"), origin=Origin(origin) if origin else None
        )
        self.response: Response | None = None
        self.pending: list[Frame] = []
        self.closed = False  # the server's end of the TCP connection came
        self.client.send_request(self.client.connect())
        self._flush()

    def _flush(self) -> None:
        for data in self.client.data_to_send():
            if data:
                self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        data = recv_by(self.sock, deadline)
        if data:
            self.client.receive_data(data)
        else:
            self.closed = True
            self.client.receive_eof()
        for event in self.client.events_received():
            if isinstance(event, Response):
                self.response = event
            else:
                self.pending.append(event)
        self._flush()  # pongs, our close reply

    def handshake(self, wait: float = WAIT) -> Response:
        """The server's answer to the upgrade (101, or a refusal)."""
        deadline = time.monotonic() + wait
        while self.response is None and not self.closed:
            self._fill(deadline)
        assert self.response is not None, "no answer to the handshake"
        return self.response

    def frame(self, wait: float = WAIT) -> Frame:
        """The next frame from the server."""
        deadline = time.monotonic() + wait
        while not self.pending:
            if self.closed:
                raise AssertionError("connection closed waiting for a frame")
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError("timed out waiting for a frame") from None
        return self.pending.pop(0)

    def event(self, wait: float = WAIT) -> dict[str, Any]:
        """The next JSON event (frames that are not text are skipped)."""
        deadline = time.monotonic() + wait
        while True:
            frame = self.frame(max(0.0, deadline - time.monotonic()))
            if frame.opcode is Opcode.TEXT:
                obj: dict[str, Any] = json.loads(frame.data)
                return obj

    def expect(self, kind: str, wait: float = WAIT, **fields: Any) -> dict[str, Any]:
        """Consume events up to and including the first of type ``kind`` with ``fields``."""
        deadline = time.monotonic() + wait
        seen: list[dict[str, Any]] = []
        while True:
            try:
                event = self.event(max(0.0, deadline - time.monotonic()))
            except AssertionError as exc:
                raise AssertionError(f"{exc} ({kind} {fields}); got {seen}") from None
            seen.append(event)
            if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                return event

    def send(self, obj: dict[str, Any]) -> None:
        self.client.send_text(json.dumps(obj).encode())
        self._flush()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def named(self, nick: str) -> WebSocketClient:
        """Past the handshake and named ``nick`` (in the default room)."""
        assert self.handshake().status_code == 101
        self.expect("hello")
        self.send({"type": "nick", "nick": nick})
        self.expect("welcome", nick=nick)
        return self

    def close_code(self, wait: float = WAIT) -> int | None:
        """Read until the server closes; the code of its close frame (None: none)."""
        deadline = time.monotonic() + wait
        while not self.closed:
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError("the server did not close") from None
        received = self.client.close_rcvd
        return received.code if received is not None else None

    def close(self) -> None:
        self.sock.close()


def split_lines(data: bytes) -> tuple[list[str], bytes]:
    """Received bytes -> the complete lines in them (decoded) and the unfinished rest."""
    *lines, rest = data.split(b"\n")
    return [line.decode("utf-8", "replace") for line in lines], rest


class LineClient:
    """A chat client on a real socket that reads lines with deadlines."""

    def __init__(self, address: tuple[str, int], source: str = "") -> None:
        self.sock = socket.create_connection(
            address, timeout=WAIT, source_address=(source, 0) if source else None
        )
        self._buf = b""
        self.pending: list[str] = []  # received and not yet consumed by expect()

    @classmethod
    def adopt(cls, sock: socket.socket) -> LineClient:
        """A LineClient for a socket connected some other way."""
        client = cls.__new__(cls)
        client.sock = sock
        client._buf = b""
        client.pending = []
        sock.settimeout(WAIT)
        return client

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read once; False on EOF. Raises TimeoutError past the deadline."""
        data = recv_by(self.sock, deadline)
        if not data:
            return False
        lines, self._buf = split_lines(self._buf + data)
        self.pending += lines
        return True

    def expect(
        self, want: str | re.Pattern[str] | Callable[[str], bool], wait: float = WAIT
    ) -> str:
        """Consume lines up to and including the first that matches ``want``; return it.

        A str matches a whole line exactly; a pattern is searched for.
        """
        if isinstance(want, str):
            text = want
            match: Callable[[str], bool] = lambda line: line == text  # noqa: E731
        elif isinstance(want, re.Pattern):
            pattern = want
            match = lambda line: pattern.search(line) is not None  # noqa: E731
        else:
            match = want
        deadline = time.monotonic() + wait
        seen: list[str] = []
        while True:
            while self.pending:
                line = self.pending.pop(0)
                seen.append(line)
                if match(line):
                    return line
            try:
                if not self._fill(deadline):
                    raise AssertionError(f"connection closed waiting for {want!r}; got {seen}")
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {want!r}; got {seen}") from None

    def lines_until(self, want: str, wait: float = WAIT) -> list[str]:
        """Every line before the exact line ``want`` (which is consumed too)."""
        seen: list[str] = []

        def match(line: str) -> bool:
            if line == want:
                return True
            seen.append(line)
            return False

        self.expect(match, wait)
        return seen

    def register(self, nick: str) -> None:
        self.expect(re.compile(r"^\*\*\* Choose a nickname"))
        self.send(nick)
        self.expect(re.compile(rf"^\*\*\* Welcome, {re.escape(nick)}!"))

    def wait_closed(self, wait: float = WAIT) -> list[str]:
        """Read until the server closes the connection; returns the lines it sent last."""
        deadline = time.monotonic() + wait
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            raise AssertionError(f"connection still open; got {self.pending}") from None
        lines, self.pending = self.pending, []
        return lines

    def reset(self) -> None:
        """Close abruptly: SO_LINGER 0 makes the kernel send RST, not FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


class IrcLineClient(LineClient):
    """An IRC client on a real socket: lines go out with CR LF, come back parsed."""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def expect_message(
        self, command: str, where: Callable[[Message], bool] = lambda m: True, wait: float = WAIT
    ) -> Message:
        """Consume lines up to the first message of ``command`` that ``where`` likes."""

        def match(line: str) -> bool:
            msg = irc_parse(line.rstrip("\r").encode())
            return msg.command == command and where(msg)

        return irc_parse(self.expect(match, wait).rstrip("\r").encode())

    def register(self, nick: str, *, caps: str = "") -> None:
        """NICK and USER (and CAP REQ ``caps`` first); waits for 001."""
        if caps:
            self.send("CAP LS 302")
            self.send(f"CAP REQ :{caps}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} on IRC")
        if caps:
            self.send("CAP END")
        self.expect_message("001")


def non_reader(address: tuple[str, int], nick: str) -> socket.socket:
    """A client that registers (without waiting for the prompt) and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address)
    sock.sendall(nick.encode() + b"\n")
    return sock


def wait_until(condition: Callable[[], bool], wait: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + wait
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def on_loop(server: Server, call: Callable[[], T], wait: float = WAIT) -> T:
    """``call()`` run on ``server``'s loop thread (whose hub no other thread
    may touch), and its result; its exception is raised here."""
    done = threading.Event()
    result: list[Any] = []

    def run() -> None:
        try:
            result.append((True, call()))
        except BaseException as exc:
            result.append((False, exc))
        finally:
            done.set()

    server.reactor.call_soon_threadsafe(run)
    assert done.wait(wait), f"the server's loop did not run {call!r} within {wait}s"
    ok, value = result[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def listener_for(server: Server, handler: object) -> Listener:
    """The server's listener whose connections ``handler`` serves (the hub: nc's)."""
    return next(each for each in server.reactor.listeners if each.handler is handler)


def nc_and_irc_users(server: Server) -> tuple[LineClient, LineClient, IrcLineClient]:
    """alice and bob on nc, carol on IRC, each registered with ``server`` (running)."""
    assert server.address and server.irc_address
    alice, bob = LineClient(server.address), LineClient(server.address)
    alice.register("alice")
    bob.register("bob")
    carol = IrcLineClient(server.irc_address)
    carol.register("carol")
    return alice, bob, carol


@contextmanager
def running_server(config: Config | None = None, **kwargs: object) -> Iterator[Server]:
    """A real server on 127.0.0.1 and an ephemeral port, its loop in a thread."""
    server = Server(config or make_config(), entry_points=False, **kwargs)  # type: ignore[arg-type]
    server.listen()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            errors.append(exc)
            raise

    thread = threading.Thread(target=run, name="chatd-test-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(WAIT)
        assert not thread.is_alive(), "server did not stop"
        assert not errors, errors


DEFAULT_SERVE_ARGS = ("--host", "127.0.0.1", "--port", "0")


def serve_args(args: Sequence[str]) -> list[str]:
    """``chatd serve`` arguments for a test: IRC and the web on ephemeral ports
    unless they name theirs (tests run side by side; 6667 or 8080 may be taken)."""
    extra = [] if "--irc-port" in args else ["--irc-port", "0"]
    extra += [] if "--web-port" in args else ["--web-port", "0"]
    return [*args, *extra]


def _limit_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class ServerProcess:
    """``python -m chatd serve`` in a subprocess; its log goes to a file we poll."""

    def __init__(self, tmp_path: Path, *args: str, max_files: int = 0) -> None:
        """Extra ``args`` go to ``chatd serve``; without --config it listens on 127.0.0.1:0.
        ``max_files`` sets the process's RLIMIT_NOFILE (soft and hard)."""
        self.log_path = tmp_path / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # the admin socket and the history database go under tmp_path
        env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_STATE_HOME": str(tmp_path)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", "serve", *serve_args(args or DEFAULT_SERVE_ARGS)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
            preexec_fn=(lambda: _limit_files(max_files)) if max_files else None,
        )
        found = self.wait_log(re.compile(r"listening for chat on 127\.0\.0\.1:(\d+)"))
        self.address = ("127.0.0.1", int(found.group(1)))

    def open_files(self) -> int:
        """How many file descriptors the server process has open now."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def web_address(self) -> tuple[str, int]:
        """Where its web listener is (it is logged just after the chat port's)."""
        found = self.wait_log(re.compile(r"web: http://127\.0\.0\.1:(\d+)/"))
        return ("127.0.0.1", int(found.group(1)))

    def wait_log(self, pattern: re.Pattern[str], wait: float = WAIT) -> re.Match[str]:
        deadline = time.monotonic() + wait
        while True:
            match = pattern.search(self.log)
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}): {self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern.pattern!r}: {self.log}")
            time.sleep(0.01)

    def signal(self, signum: int) -> int:
        """Send ``signum`` and wait for the exit status."""
        self.proc.send_signal(signum)
        return self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._log.close()


def run_chatd(
    *args: str, wait: float = WAIT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m chatd ARGS`` to completion (``env`` is added to the
    environment); ``chatd serve`` gets :func:`serve_args`."""
    if args[:1] == ("serve",):
        args = ("serve", *serve_args(args[1:]))
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args],
        capture_output=True,
        text=True,
        timeout=wait,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


class PumpedClient:
    """A non-blocking client of a :class:`PumpedServer`; the pump reads for it."""

    def __init__(self, address: tuple[str, int], source: str = "") -> None:
        self.sock = socket.create_connection(
            address, timeout=WAIT, source_address=(source, 0) if source else None
        )
        self.sock.setblocking(False)
        self.lines: list[str] = []
        self.closed = False  # the server closed (or reset) the connection
        self._tail = b""

    def send(self, text: str) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(text.encode() + b"\n")
        self.sock.setblocking(False)

    def poll(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            lines, self._tail = split_lines(self._tail + data)
            self.lines += lines

    def chat(self) -> list[str]:
        """The chat lines received (``<nick> text``), in order."""
        return [line for line in self.lines if line.startswith("<")]


class PumpedServer:
    """A real server on 127.0.0.1 whose loop the test turns by hand, on a fake clock.

    Nothing runs unless the test pumps, and time moves only by ``clock.advance``,
    so what a timer or the flood control does is seen exactly.
    """

    def __init__(self, config: Config) -> None:
        self.clock = FakeClock()
        self.server = Server(config, clock=self.clock, entry_points=False)
        self.address = self.server.listen()
        self.clients: list[PumpedClient] = []

    def connect(self, nick: str = "", source: str = "") -> PumpedClient:
        client = PumpedClient(self.address, source)
        self.clients.append(client)
        self.until(lambda: any("Choose a nickname" in line for line in client.lines), "greeting")
        if nick:
            client.send(nick)
            self.until(lambda: any(f"Welcome, {nick}!" in line for line in client.lines), nick)
        return client

    def pump(self) -> None:
        self.server.reactor.run_once(max_wait=0.002)
        for client in self.clients:
            client.poll()

    def until(self, condition: Callable[[], bool], what: str = "condition") -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.pump()

    def settle(self, rounds: int = 50) -> None:
        """Turn the loop a while, for tests that show that nothing (more) happens."""
        for _ in range(rounds):
            self.pump()

    def close(self) -> None:
        for client in self.clients:
            client.sock.close()
        self.server.stop()
        # The graceful shutdown waits on the server's clock for connections to
        # drain: let that clock run, so a connection that never drains (a bug)
        # ends the wait in a few seconds instead of never.
        self.clock.step = 1.0
        self.server.reactor.run()  # the graceful shutdown, then everything closed


class Crowd:
    """Registered clients that check what they receive: every chat line exactly
    once, in each sender's order, never their own (lines are ``<nick> S N ...``:
    sender index S, sequence number N)."""

    def __init__(self, address: tuple[str, int], size: int, prefix: str = "c") -> None:
        self.nicks = [f"{prefix}{i:03d}" for i in range(size)]
        self.clients = [LineClient(address) for _ in range(size)]
        for client, nick in zip(self.clients, self.nicks, strict=True):
            client.register(nick)
        for client in self.clients:
            client.sock.setblocking(False)
        self.sent = [0] * size  # lines each has sent
        # expected[r][s]: the sequence number receiver r expects next from sender s
        self.expected = [[0] * size for _ in range(size)]
        self.notices: list[list[str]] = [[] for _ in range(size)]  # the *** lines
        self._tails = [b""] * size

    def send(self, s: int, count: int, payload: str = "") -> None:
        """Sender ``s`` sends ``count`` lines in one write."""
        first = self.sent[s]
        data = "".join(f"{s} {n} {payload}\n" for n in range(first, first + count))
        sock = self.clients[s].sock
        sock.setblocking(True)
        sock.sendall(data.encode())
        sock.setblocking(False)
        self.sent[s] += count

    def caught_up(self, skip: Collection[int] = ()) -> bool:
        return all(
            self.expected[r][s] == (0 if s == r else self.sent[s])
            for r in range(len(self.clients))
            if r not in skip
            for s in range(len(self.clients))
        )

    def read(self, wait: float = WAIT, skip: Collection[int] = ()) -> None:
        """Read until every client (but those in ``skip``) has every line sent so
        far; fails on any line out of order, duplicated, or echoed to its sender."""
        self._read_until(lambda: self.caught_up(skip), wait, skip)

    def read_until_notice(self, notice: str, skip: Collection[int] = ()) -> None:
        """Read until every client (but those in ``skip``) has had the line ``notice``."""
        others = [r for r in range(len(self.clients)) if r not in skip]
        self._read_until(lambda: all(notice in self.notices[r] for r in others), WAIT, skip)

    def _read_until(self, done: Callable[[], bool], wait: float, skip: Collection[int]) -> None:
        deadline = time.monotonic() + wait
        while not done():
            if time.monotonic() > deadline:
                behind = sum(
                    (0 if s == r else self.sent[s]) - self.expected[r][s]
                    for r in range(len(self.clients))
                    for s in range(len(self.clients))
                )
                raise AssertionError(f"timed out: {behind} deliveries missing")
            ready = False
            for r, client in enumerate(self.clients):
                if r in skip:
                    continue
                try:
                    data = client.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                assert data, f"{self.nicks[r]} was disconnected"
                ready = True
                lines, self._tails[r] = split_lines(self._tails[r] + data)
                for line in lines:
                    self._check(r, line)
            if not ready:
                time.sleep(0.001)

    def _check(self, r: int, line: str) -> None:
        if not line.startswith("<"):
            self.notices[r].append(line)
            return
        nick, s_text, n_text = line.split(" ")[:3]
        s = int(s_text)
        assert nick == f"<{self.nicks[s]}>", line
        assert s != r, f"{self.nicks[r]} got its own line back: {line}"
        assert int(n_text) == self.expected[r][s], (
            f"{self.nicks[r]} got {line!r}, expected {self.expected[r][s]} from {self.nicks[s]}"
        )
        self.expected[r][s] += 1

    def close(self) -> None:
        for client in self.clients:
            client.close()


def named_client(server: Server, nick: str) -> LineClient:
    """A LineClient of ``server``'s chat port, registered as ``nick``."""
    assert server.address
    client = LineClient(server.address)
    client.register(nick)
    return client


def admin_session(server: Server) -> Iterator[AdminClient]:
    """A fixture's body: an AdminClient of ``server``'s admin socket, closed after."""
    assert server.admin_path
    client = AdminClient(server.admin_path, timeout=WAIT)
    yield client
    client.close()
