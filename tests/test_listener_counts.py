"""Each listener's own counts (chatd.core.listeners.ListenerCounts): connections
open, admitted and refused, bytes each way, sendq disconnects and floods slowed,
bumped by the loop beside the server's global Stats, which stay as they were.
Real servers on 127.0.0.1. The flood and sendq counts are checked in their
scenarios, in test_limits and test_faults."""

from __future__ import annotations

from pathlib import Path

from chatd.core.reactor import Reactor
from tests.helpers import (
    HubFixture,
    IrcLineClient,
    LineClient,
    lifted_limits,
    listener_for,
    make_config,
    nc_and_irc_users,
    running_server,
    wait_until,
)


def test_a_listener_is_named_as_the_server_names_it(reactor: Reactor, tmp_path: Path) -> None:
    hub = HubFixture().hub
    web = reactor.listen("127.0.0.1", 0, hub, name="web")
    plain = reactor.listen("127.0.0.1", 0, hub)
    admin = reactor.listen_unix(
        str(tmp_path / "admin.sock"), hub, allowed_uids=frozenset({0}), name="admin"
    )
    assert (web.name, plain.name, admin.name) == ("web", "", "admin")
    assert reactor.listeners == [web, plain, admin]


def test_connections_and_bytes_are_counted_per_listener_and_add_up_to_the_totals() -> None:
    with running_server() as server:
        assert server.address and server.irc_address
        nc, irc = listener_for(server, server.hub), listener_for(server, server.irc)
        alice, bob, _carol = nc_and_irc_users(server)
        alice.send("hi")
        bob.expect("<alice> hi")
        wait_until(lambda: nc.counts.open == 2 and irc.counts.open == 1, what="three open")
        # What the clients sent, to the byte: every byte of it was read.
        assert nc.counts.bytes_in == len(b"alice\nbob\nhi\n")
        assert irc.counts.bytes_in > 0
        stats = server.stats
        assert nc.counts.bytes_in + irc.counts.bytes_in == stats.bytes_in
        assert nc.counts.bytes_out + irc.counts.bytes_out == stats.bytes_out
        assert nc.counts.bytes_out > 0 and irc.counts.bytes_out > 0
        bob.close()
        wait_until(lambda: nc.counts.open == 1, what="bob's connection counted out")
        assert (nc.counts.total, irc.counts.total) == (2, 1)
        assert stats.connections_now == 2 and stats.connections_total == 3


def test_a_refused_connection_is_counted_on_itslistener_for() -> None:
    config = make_config(limits=lifted_limits(max_per_ip=1))
    with running_server(config) as server:
        assert server.address and server.irc_address
        alice = LineClient(server.address)
        alice.register("alice")
        # The tally is shared: the IRC port turns the second connection away.
        refused = IrcLineClient(server.irc_address)
        refused.wait_closed()
        nc, irc = listener_for(server, server.hub), listener_for(server, server.irc)
        assert (nc.counts.refused, irc.counts.refused) == (0, 1)
        assert irc.counts.total == 0 and irc.counts.open == 0
        assert server.stats.refused == 1
        alice.close()
