"""The IRC listener end to end: a real server, real sockets on 127.0.0.1, IRC
lines on one side and nc's on the other, in one conversation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.server import Server
from tests.helpers import (
    IrcLineClient,
    LineClient,
    ServerProcess,
    lifted_limits,
    make_config,
    running_server,
)

CHAT = re.compile(r"^(\[#\S+\] )?(<\S+> |\* \S+ |\*[^*\s]+\* )")


@pytest.fixture
def both() -> Iterator[Server]:
    with running_server() as server:
        yield server


def irc_client(server: Server, nick: str, caps: str = "") -> IrcLineClient:
    assert server.irc_address is not None
    client = IrcLineClient(server.irc_address)
    client.register(nick, caps=caps)
    client.expect_message("366")  # autojoined #lobby
    return client


def nc_client(server: Server, nick: str) -> LineClient:
    assert server.address is not None
    client = LineClient(server.address)
    client.register(nick)
    return client


def test_chatd_serve_serves_both_protocols_and_logs_both_addresses(tmp_path: Path) -> None:
    # No config file; only the IRC port is given (0: tests never bind 6667).
    proc = ServerProcess(tmp_path)
    try:
        found = proc.wait_log(re.compile(r"listening for IRC on 127\.0\.0\.1:(\d+)"))
        irc = IrcLineClient(("127.0.0.1", int(found.group(1))))
        irc.register("bob")
        nc = LineClient(proc.address)
        nc.register("alice")
        irc.expect_message("JOIN", lambda m: m.source.startswith("alice!"))
        nc.send("hello")
        said = irc.expect_message("PRIVMSG")
        assert said.params == ("#lobby", "hello")
    finally:
        proc.stop()


def test_one_conversation_both_ways(both: Server) -> None:
    alice = nc_client(both, "alice")
    bob = irc_client(both, "bob")
    alice.expect("*** bob joined")
    alice.send("hi bob")
    msg = bob.expect_message("PRIVMSG")
    assert (msg.source, msg.params) == ("alice!alice@chatd", ("#lobby", "hi bob"))
    # IRC formatting is stripped before nc users see it; CTCP ACTION is /me.
    bob.send("PRIVMSG #lobby :\x02hi\x02 \x0304,01alice\x03, \x1ditalic\x1d")
    assert alice.expect(CHAT) == "<bob> hi alice, italic"
    bob.send("PRIVMSG #lobby :\x01ACTION waves\x01")
    assert alice.expect(CHAT) == "* bob waves"
    alice.send("/me waves back")
    msg = bob.expect_message("PRIVMSG")
    assert msg.params == ("#lobby", "\x01ACTION waves back\x01")
    # private messages, both ways
    bob.send("PRIVMSG alice :psst")
    assert alice.expect(CHAT) == "*bob* psst"
    alice.send("/msg bob hello yourself")
    msg = bob.expect_message("PRIVMSG")
    assert (msg.source, msg.params) == ("alice!alice@chatd", ("bob", "hello yourself"))
    # a nick change, a topic, a part and a quit cross too
    bob.send("NICK bobby")
    bob.expect_message("NICK", lambda m: m.params == ("bobby",))
    alice.expect("*** bob is now known as bobby")
    alice.send("/join #games")
    alice.expect("*** Now talking in #games.")
    bob.send("JOIN #games")
    bob.expect_message("366")
    alice.expect("*** bobby joined #games")
    alice.send("/topic chess at 8")
    topic = bob.expect_message("TOPIC")
    assert topic.params == ("#games", "chess at 8")
    bob.send("PART #games :later")
    alice.expect("*** bobby left #games (later)")
    bob.send("QUIT :gone fishing")
    error = bob.expect_message("ERROR")
    assert "gone fishing" in error.params[0]
    bob.wait_closed()
    alice.expect("*** bobby left (Quit: gone fishing)")  # as an nc /quit reads


def test_plugin_commands_through_the_service_nick_and_a_raw_verb(both: Server) -> None:
    bob = irc_client(both, "bob")
    bob.send("PRIVMSG chatd :help")
    notice = bob.expect_message("NOTICE")
    assert notice.source == "chatd!chatd@chatd" and notice.params[0] == "bob"
    bob.send("FACT")  # /quote fact in irssi or weechat
    fact = bob.expect_message("NOTICE")
    assert fact.source == "chatd!chatd@chatd" and fact.params[1]


def test_server_time_tags_what_a_client_that_asked_reads(both: Server) -> None:
    alice = nc_client(both, "alice")
    bob = irc_client(both, "bob", caps="server-time")
    alice.send("stamped")
    msg = bob.expect_message("PRIVMSG")
    stamp = dict(msg.tags)["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)


def test_a_line_over_512_bytes_gets_417_and_the_connection_stays(both: Server) -> None:
    alice = nc_client(both, "alice")
    bob = irc_client(both, "bob")
    bob.send("PRIVMSG #lobby :" + "x" * 600)
    bob.expect_message("417")
    bob.send("PRIVMSG #lobby :short")
    assert alice.expect(CHAT) == "<bob> short"


def test_max_per_ip_counts_nc_and_irc_connections_together() -> None:
    config = make_config(limits=lifted_limits(max_per_ip=2))
    with running_server(config) as server:
        alice = nc_client(server, "alice")  # kept: a client collected is a client gone
        bob = irc_client(server, "bob")
        assert server.irc_address is not None
        third = IrcLineClient(server.irc_address)
        error = third.expect_message("ERROR")
        assert error.params == ("Too many connections from your address (at most 2).",)
        third.wait_closed()
        assert server.address is not None
        fourth = LineClient(server.address)
        assert fourth.wait_closed() == ["*** Too many connections from your address (at most 2)."]
        bob.send("PRIVMSG #lobby :still in")
        assert alice.expect(CHAT) == "<bob> still in"


def test_shutdown_tells_irc_clients_with_error(both: Server) -> None:
    bob = irc_client(both, "bob")
    both.stop("back in five")
    error = bob.expect_message("ERROR")
    assert error.params == ("Server shutting down: back in five.",)
    assert bob.wait_closed() == []
