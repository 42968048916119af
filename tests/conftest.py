from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from chatd.server import Server
from tests.helpers import LineClient, running_server


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
