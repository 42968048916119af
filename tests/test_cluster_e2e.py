"""Three chatd nodes and one real redis-server on loopback: one chat.

Each node is a real server (its loop in a thread of this process, or a
process of its own where a test kills one), with nc users on real sockets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from chatd.config import ClusterSettings, Config
from chatd.server import Server
from tests.helpers import LineClient, make_config, running_server, wait_until
from tests.redis_server import RedisServer


def node_config(redis: RedisServer, name: str, **cluster: object) -> Config:
    settings = {"redis": redis.url, "node": name, "node_timeout": 3, **cluster}
    return make_config(cluster=ClusterSettings(**settings))  # type: ignore[arg-type]


def _up(server: Server) -> bool:
    return server.cluster is not None and server.cluster.up


@contextmanager
def nodes(redis: RedisServer, *names: str) -> Iterator[list[Server]]:
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(node_config(redis, n))) for n in names]
        for server in servers:
            wait_until(lambda s=server: _up(s), what=f"{server.cluster.node} joined")
        yield servers


def user(server: Server, nick: str) -> LineClient:
    assert server.address is not None
    client = LineClient(server.address)
    client.register(nick)
    return client


def seen_everywhere(servers: list[Server], *nicks: str) -> None:
    """Wait until every node knows every one of ``nicks``."""
    for server in servers:
        wait_until(
            lambda s=server: all(s.hub.find(n) is not None for n in nicks),
            what=f"{nicks} on {server.cluster.node}",
        )


def test_a_line_reaches_everyone_on_every_node_once_in_one_order(redis_server: RedisServer) -> None:
    with nodes(redis_server, "a", "b", "c") as servers:
        clients = {
            f"{node}{i}": user(server, f"{node}{i}")
            for node, server in zip("abc", servers, strict=True)
            for i in range(2)
        }
        seen_everywhere(servers, *clients)
        for client in clients.values():
            client.pending.clear()
        # Every user says 10 numbered lines, all at once, on every node.
        for i in range(10):
            for nick, client in clients.items():
                client.send(f"{nick} line {i}")
        got: dict[str, list[str]] = {}
        for nick, client in clients.items():
            lines: list[str] = []
            while len(lines) < 50:  # everyone else's 10 lines
                line = client.expect(re.compile(r"^<\w+> \w+ line \d$"))
                lines.append(line)
            got[nick] = lines
        for nick, lines in got.items():
            others = [f"<{o}> {o} line {i}" for o in clients if o != nick for i in range(10)]
            assert sorted(lines) == sorted(others), nick  # each once, none of its own
            for other in clients:  # each sender's lines in the order it sent them
                mine = [line for line in lines if line.startswith(f"<{other}>")]
                assert mine == sorted(mine)
        # One order everywhere: any two users agree on the order of the lines both got.
        nicks = list(got)
        for x in nicks:
            for y in nicks:
                common = set(got[x]) & set(got[y])
                assert [m for m in got[x] if m in common] == [m for m in got[y] if m in common]


def test_who_and_names_show_everyone_on_every_node(redis_server: RedisServer) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        alice.send("/who #lobby")
        alice.expect(re.compile(r"alice.*bob|bob.*alice"))
        bob.send("/join #rust")
        wait_until(lambda: a.hub.find_room("#rust") is not None, what="#rust on a")
        alice.send("/join #rust")
        bob.expect(re.compile(r"^\*\*\* alice joined #rust"))
        alice.send("hi bob")
        bob.expect("<alice> hi bob")
        alice.send("/msg bob psst")
        bob.expect("*alice* psst")
        bob.send("/quit bye")
        alice.expect("*** bob left (Quit: bye)")
