"""The IRC gateway on the real hub, sans-IO: IRC users on fake links, beside an nc user.

Each IRC client here is a FakeLink the gateway writes to; what it received is
read back as parsed IRC messages (chatd.wire.irc_message.parse), so a test
checks what a client would understand, not how the bytes are spaced.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.config import ConfigError, IrcSettings
from chatd.core import events as ev
from chatd.core.hub import Hub
from chatd.irc_gateway import MAX_WHO_MATCHES, IrcGateway, IrcSession
from chatd.wire import irc
from chatd.wire.irc_message import Message, parse
from tests.helpers import FakeLink, HubFixture, make_config

LOBBY = "#lobby"


class IrcClient:
    """One IRC connection through the gateway."""

    def __init__(self, gateway: IrcGateway) -> None:
        self.gateway = gateway
        self.link = FakeLink()
        self.session: IrcSession = gateway.connect(self.link)

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            raw = line if isinstance(line, bytes) else line.encode()
            self.gateway.receive_line(self.session, raw)

    def take(self) -> list[Message]:
        """What arrived since last asked, parsed (each line ended with CR LF)."""
        return [parse(line.encode()) for line in self.link.take()]

    def commands(self) -> list[str]:
        return [m.command for m in self.take()]

    def register(self, nick: str) -> list[Message]:
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} the tester")
        return self.take()


class Net:
    """A hub with the built-in plugins, its IRC gateway, and an nc user or two;
    ``irc`` settings replace the tests' defaults (127.0.0.1, an ephemeral port)."""

    def __init__(self, **irc_settings: object) -> None:
        self.fx = HubFixture(config=make_config(irc=IrcSettings(port=0, **irc_settings)))  # type: ignore[arg-type]
        self.hub: Hub = self.fx.hub
        self.gateway = IrcGateway(self.hub)
        self.clients: list[IrcClient] = []

    def irc(self, nick: str) -> IrcClient:
        client = IrcClient(self.gateway)
        client.register(nick)
        self.clients.append(client)
        self.settle()
        return client

    def nc(self, nick: str) -> FakeLink:
        _, link = self.fx.join(nick)
        self.settle()
        return link

    def settle(self) -> None:
        """Forget what everyone received so far."""
        for client in self.clients:
            client.take()
        for link in self.fx.links:
            link.take()


@pytest.fixture
def net() -> Iterator[Net]:
    yield Net()


def src(nick: str) -> str:
    """The source of an nc user's lines (its ident is the nick it registered with)."""
    return f"{nick}!{nick}@chatd"


def irc_src(nick: str) -> str:
    """The source of an IRC user's lines here (USER gave its nick as the username)."""
    return f"{nick}!~{nick}@chatd"


# -- registration ---------------------------------------------------------------------


def test_registration_burst_then_the_default_room(net: Net) -> None:
    net.nc("alice")
    client = IrcClient(net.gateway)
    assert client.take() == []  # no nc greeting: IRC registers with NICK and USER
    client.send("CAP LS 302", "NICK bob", "USER bob 0 * :Bob B")
    got = client.take()
    assert got == [Message("CAP", ("*", "LS", "server-time sasl=PLAIN"), irc.SERVER_NAME)]
    client.send("CAP REQ :multi-prefix", "CAP END")
    got = client.take()
    assert got[0] == Message("CAP", ("*", "NAK", "multi-prefix"), irc.SERVER_NAME)
    codes = [m.command for m in got[1:]]
    assert codes[:10] == ["001", "002", "003", "004", "005", "251", "255", "265", "266", "375"]
    assert got[8].params[1:3] == ("2", "2")  # LUSERS in the burst: 2 on, 2 at most
    motd_end = codes.index("376")
    assert set(codes[10:motd_end]) == {"372"}  # the bundled MOTD
    assert codes[motd_end + 1 :] == ["JOIN", "353", "366"]
    welcome = got[1]
    assert welcome.params[0] == "bob" and welcome.source == irc.SERVER_NAME
    isupport = got[5].params
    for token in (
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "NICKLEN=16",
        "CHANNELLEN=33",
        "TOPICLEN=300",
        "USERLEN=16",
        "NETWORK=chatd",
        "PREFIX=(o)@",
        "CHANMODES=,,,t",
    ):
        assert token in isupport
    assert "There are 2 users" in got[6].params[-1]
    join = got[motd_end + 2]
    assert join == Message("JOIN", (LOBBY,), irc_src("bob"))
    assert got[motd_end + 3] == Message("353", ("bob", "=", LOBBY, "alice bob"), irc.SERVER_NAME)
    assert got[motd_end + 4].command == "366" and got[motd_end + 4].params[:2] == ("bob", LOBBY)


def test_registration_waits_for_cap_end(net: Net) -> None:
    client = IrcClient(net.gateway)
    client.send("CAP LS", "NICK bob", "USER bob 0 * :Bob")
    assert "001" not in client.commands()
    client.send("CAP END")
    assert "001" in client.commands()


def test_bad_and_taken_nicks_keep_the_connection(net: Net) -> None:
    net.nc("alice")
    client = IrcClient(net.gateway)
    client.take()
    client.send("NICK Alice")
    [taken] = client.take()
    assert taken.command == "433" and taken.params[:2] == ("*", "Alice")
    client.send("NICK bad!nick")
    [bad] = client.take()
    assert bad.command == "432"
    client.send("NICK chatd")  # the service nick
    assert client.commands() == ["433"]
    client.send("NICK bob", "USER bob 0 * :Bob")
    assert "001" in client.commands()
    assert not client.link.closed


def test_commands_before_registration_are_451(net: Net) -> None:
    client = IrcClient(net.gateway)
    client.take()
    client.send("JOIN :", "PRIVMSG #lobby :hi")
    assert client.commands() == ["451", "451"]


def test_user_needs_four_params_and_cannot_register_twice(net: Net) -> None:
    client = IrcClient(net.gateway)
    client.take()
    client.send("USER bob")
    assert client.commands() == ["461"]
    client.register("bob")
    client.send("USER bob 0 * :again", "PASS secret")
    assert client.commands() == ["462", "462"]


def test_user_with_an_empty_real_name_is_461(net: Net) -> None:
    client = IrcClient(net.gateway)
    client.take()
    client.send("NICK bob", "USER bob 0 * :")
    assert client.commands() == ["461"]  # irctest testEmptyRealname
    client.send("USER bob 0 * :Bob")
    assert client.commands()[0] == "001"


def test_who_and_whois_show_the_username_and_real_name_given_in_user(net: Net) -> None:
    net.nc("alice")
    bob = IrcClient(net.gateway)
    bob.send("NICK bob", "USER myusernam 0 * :My \x02Real\x02 Name")
    carol = IrcClient(net.gateway)
    carol.send("NICK carol", "USER \U0001f60a\U0001f60a@x!y*averyveryverylongname 0 * :C")
    net.clients += [bob, carol]
    net.settle()
    bob.send("WHO bob", "WHOIS bob")
    who, _, whois, *_ = bob.take()
    # irctest (who.py, testNonutf8*): the username, marked as nobody's word
    # for it, and the real name (formatting stripped) in WHO and WHOIS.
    assert who.params[2] == "~myusernam" and who.params[-1] == "0 My Real Name"
    assert whois.params[1:] == ("bob", "~myusernam", "chatd", "*", "My Real Name")
    bob.send("WHOIS carol")
    # Only printable ASCII outside masks' characters, cut to USERLEN.
    assert bob.take()[0].params[2] == "~xyaveryveryveryl"
    bob.send("WHOIS alice")  # an nc user has no username: the nick, as in its lines
    assert bob.take()[0].params[2:] == ("alice", "chatd", "*", "alice")


# -- one conversation with nc ---------------------------------------------------------


def test_privmsg_reaches_nc_and_nc_reaches_irc(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send("PRIVMSG #lobby :hi")
    assert alice.take() == ["<bob> hi"]
    assert bob.take() == []  # no echo
    net.hub.receive(net.hub.find("alice"), "hi")  # type: ignore[arg-type]
    assert bob.take() == [Message("PRIVMSG", (LOBBY, "hi"), src("alice"))]


def test_formatting_is_stripped_before_nc_sees_it(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send(b"PRIVMSG #lobby :\x02bold\x02 \x0304,01red\x03 \x1b[2Jplain")
    assert alice.take() == ["<bob> bold red plain"]


def test_me_both_ways(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send(b"PRIVMSG #lobby :\x01ACTION waves\x01")
    assert alice.take() == ["* bob waves"]
    net.hub.receive(net.hub.find("alice"), "/me nods")  # type: ignore[arg-type]
    assert bob.take() == [Message("PRIVMSG", (LOBBY, "\x01ACTION nods\x01"), src("alice"))]


def test_private_messages_both_ways(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send("PRIVMSG alice :psst")
    assert alice.take() == ["*bob* psst"]
    assert bob.take() == []  # the echo renders as nothing
    net.hub.receive(net.hub.find("alice"), "/msg bob hello there")  # type: ignore[arg-type]
    assert bob.take() == [Message("PRIVMSG", ("bob", "hello there"), src("alice"))]


def test_private_message_to_nobody_is_401(net: Net) -> None:
    bob = net.irc("bob")
    bob.send("PRIVMSG nobody :hi")
    [reply] = bob.take()
    assert reply.command == "401" and reply.params[:2] == ("bob", "nobody")
    bob.send("NOTICE nobody :hi")  # a NOTICE is never answered
    assert bob.take() == []


def test_two_irc_users_talk(net: Net) -> None:
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("PRIVMSG #lobby :hello carol")
    assert carol.take() == [Message("PRIVMSG", (LOBBY, "hello carol"), irc_src("bob"))]


# -- channels -------------------------------------------------------------------------


def test_join_part_and_names(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send("JOIN #games,#lobby")  # #lobby: already in it, ignored
    got = bob.take()
    assert got[0] == Message("JOIN", ("#games",), irc_src("bob"))
    assert got[1] == Message("353", ("bob", "=", "#games", "@bob"), irc.SERVER_NAME)
    assert [m.command for m in got] == ["JOIN", "353", "366"]
    net.hub.receive(net.hub.find("alice"), "/join #games")  # type: ignore[arg-type]
    alice.take()
    assert bob.take() == [Message("JOIN", ("#games",), src("alice"))]
    bob.send("NAMES #games")
    got = bob.take()
    assert got[0] == Message("353", ("bob", "=", "#games", "alice @bob"), irc.SERVER_NAME)
    assert got[1].command == "366"
    bob.send("PART #games :bye all")
    assert bob.take() == [
        Message("PART", ("#games", "bye all"), irc_src("bob"))
    ]  # its own reason too
    assert alice.take() == ["*** bob left #games (bye all)"]
    net.hub.receive(net.hub.find("alice"), "/part #games")  # type: ignore[arg-type]
    assert bob.take() == []  # no longer in it


def test_join_zero_parts_everything(net: Net) -> None:
    bob = net.irc("bob")
    bob.send("JOIN #games", "JOIN 0")
    got = [m for m in bob.take() if m.command == "PART"]
    assert sorted(m.params[0] for m in got) == ["#games", LOBBY]
    assert net.hub.find("bob").rooms == {}  # type: ignore[union-attr]


def test_nc_part_and_join_reach_irc(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    net.hub.receive(net.hub.find("alice"), "/part #lobby see you")  # type: ignore[arg-type]
    assert bob.take() == [Message("PART", (LOBBY, "see you"), src("alice"))]


def test_topic_query_and_set(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send("TOPIC #lobby")
    assert bob.commands() == ["331"]
    bob.send("TOPIC #lobby :all welcome")
    assert bob.take() == [Message("TOPIC", (LOBBY, "all welcome"), irc_src("bob"))]
    assert alice.take() == ["*** bob set the topic of #lobby: all welcome"]
    bob.send("TOPIC #lobby")
    assert bob.take() == [Message("332", ("bob", LOBBY, "all welcome"), irc.SERVER_NAME)]
    net.hub.receive(net.hub.find("alice"), "/topic from nc")  # type: ignore[arg-type]
    assert bob.take() == [Message("TOPIC", (LOBBY, "from nc"), src("alice"))]


def test_topic_restricted_to_operators_is_482(net: Net) -> None:
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("JOIN #games")
    carol.send("JOIN #games")
    net.settle()
    carol.send("TOPIC #games :mine")
    [reply] = carol.take()
    assert reply.command == "482" and reply.params[1] == "#games"


def test_kick_by_an_op(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("JOIN #games")
    carol.send("JOIN #games")
    net.hub.receive(net.hub.find("alice"), "/join #games")  # type: ignore[arg-type]
    net.settle()
    carol.send("KICK #games bob :no")  # carol is no operator
    [refused] = carol.take()
    assert refused.command == "482"
    bob.send("KICK #games carol :out")
    kick = Message("KICK", ("#games", "carol", "out"), irc_src("bob"))
    assert carol.take() == [kick]
    assert bob.take() == [kick]
    assert alice.take() == ["*** carol was kicked from #games by bob (out)"]
    bob.send("KICK #games carol :again")
    assert bob.commands() == ["441"]
    assert net.hub.kick_from_room(None, "#games", "alice") is None  # a server operator
    assert bob.take() == [Message("KICK", ("#games", "alice"), irc.SERVER_NAME)]


def test_mode_op_and_queries(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("JOIN #games")
    carol.send("JOIN #games")
    net.settle()
    bob.send("MODE #games")
    assert bob.take() == [Message("324", ("bob", "#games", "+t"), irc.SERVER_NAME)]
    bob.send("MODE #games +o carol")
    opped = Message("MODE", ("#games", "+o", "carol"), irc_src("bob"))
    assert bob.take() == [opped] and carol.take() == [opped]
    bob.send("MODE #games +o carol")  # already: no word
    assert bob.take() == []
    carol.send("MODE #games -o bob")
    deopped = Message("MODE", ("#games", "-o", "bob"), irc_src("carol"))
    assert bob.take() == [deopped] and carol.take() == [deopped]
    bob.send("MODE #games +o bob")
    assert bob.commands() == ["482"]
    carol.send("MODE #games +k key")
    assert carol.commands() == ["472"]
    bob.send("MODE bob", "MODE bob +i", "MODE carol")
    assert [(m.command, m.params[-1]) for m in bob.take()] == [
        ("221", "+"),
        ("221", "+i"),
        ("502", "Cannot change mode for other users"),
    ]


def test_mode_t_is_what_the_operators_make_it(net: Net) -> None:
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("JOIN #games")
    carol.send("JOIN #games")
    net.settle()
    # 004 and CHANMODES say t: +t where it is on passes in silence (irctest
    # testTopicPrivileges), and so does -t where it is off (#lobby has no operators).
    bob.send("MODE #games +t", "MODE #lobby -t")
    assert bob.take() == []
    bob.send("MODE #games -t")  # the operators decide it, not a mode
    [refused] = bob.take()
    assert refused.command == "472" and refused.params[1] == "t"
    assert "has an operator" in refused.params[-1]
    carol.send("MODE #games -t", "MODE #lobby +t")
    assert [(m.command, m.params[1]) for m in carol.take()] == [("482", "#games"), ("482", LOBBY)]
    carol.send("MODE #games +t")  # already so: nothing to refuse
    assert carol.take() == []
    carol.send("PART #games", "MODE #games +t")
    assert carol.commands() == ["PART", "442"]


def test_who_whois_list(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    bob.send("WHO #lobby")
    got = bob.take()
    assert [m.command for m in got] == ["352", "352", "315"]
    assert got[0].params[:7] == ("bob", LOBBY, "alice", "chatd", irc.SERVER_NAME, "alice", "H")
    bob.send("WHOIS alice")
    got = bob.take()
    assert [m.command for m in got] == ["311", "319", "312", "318"]
    assert got[0].params[:4] == ("bob", "alice", "alice", "chatd")
    bob.send("WHOIS nobody")
    assert bob.commands() == ["401", "318"]
    bob.send("JOIN #games", "TOPIC #games :fun")
    bob.take()
    bob.send("LIST")
    got = bob.take()
    assert got == [
        Message("322", ("bob", "#games", "1", "fun"), irc.SERVER_NAME),
        Message("322", ("bob", LOBBY, "2", ""), irc.SERVER_NAME),
        Message("323", ("bob", "End of /LIST"), irc.SERVER_NAME),
    ]


def test_who_takes_masks_and_hides_the_invisible_from_them(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    evan = net.irc("evan")
    net.irc("eve")
    evan.send("PART #lobby", "MODE evan +i")
    net.settle()

    def who(line: str) -> list[str]:
        bob.send(line)
        got = bob.take()
        assert got[-1].command == "315" and got[-1].params[1] == line.split()[1]
        return [m.params[5] for m in got[:-1]]

    # irctest testWhoStar, testWhoNick[mask], testWhoInvisible:
    assert who("WHO *") == ["alice", "bob", "eve"]  # evan is +i and shares no channel
    assert who("WHO 0") == ["alice", "bob", "eve"]
    assert who("WHO E*") == ["eve"]
    assert who("WHO evan") == ["evan"]  # a nick is answered whatever its modes
    assert who("WHO ?li*") == ["alice"]
    assert who("WHO * o") == []  # operators only: chatd has no IRC operators
    evan.send("JOIN #x")
    bob.send("JOIN #x")
    net.settle()
    assert who("WHO eva*") == ["evan"]  # now they share a channel
    evan.send("WHO *")  # and one always sees oneself
    assert "evan" in [m.params[5] for m in evan.take() if m.command == "352"]


def test_who_with_a_mask_lists_at_most_max_who_matches(net: Net) -> None:
    bob = net.irc("bob")
    for n in range(MAX_WHO_MATCHES + 5):
        net.fx.join(f"u{n:03d}")
    net.settle()
    bob.send("WHO u*")
    assert bob.commands() == ["352"] * MAX_WHO_MATCHES + ["315"]
    bob.send("WHO #lobby")  # a channel is listed whole
    assert len(bob.take()) == MAX_WHO_MATCHES + 5 + 2


def test_away_shows_in_who_whois_and_private_messages(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    carol.send("AWAY :be right \x02back")
    assert carol.take() == [
        Message("306", ("carol", "You have been marked as being away"), irc.SERVER_NAME)
    ]
    # irctest testWhoNickAway, testWhoChan: G for gone, H for here.
    bob.send("WHO #lobby")
    assert [m.params[6] for m in bob.take()[:-1]] == ["H", "H", "G"]
    bob.send("WHOIS carol")
    assert Message("301", ("bob", "carol", "be right back"), irc.SERVER_NAME) in bob.take()
    bob.send("PRIVMSG carol :hi", "NOTICE carol :hi")  # a NOTICE is never answered
    assert bob.take() == [Message("301", ("bob", "carol", "be right back"), irc.SERVER_NAME)]
    assert carol.take()[0].params == ("carol", "hi")  # the message is delivered all the same
    carol.send("AWAY")
    assert carol.commands() == ["305"]
    bob.send("WHO carol", "PRIVMSG carol :back?")
    assert [m.command for m in bob.take()] == ["352", "315"]
    bob.send("PRIVMSG alice :hi")  # nc users are never away
    assert bob.take() == []


def test_lusers_counts_everyone_and_the_most_there_have_been(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    carol.send("QUIT")
    net.settle()
    IrcClient(net.gateway).send("NICK dave")  # registering: not counted
    bob.send("LUSERS")
    # irctest lusers.py testLusersFull: 265 and 266 are [nick, now, most, text],
    # and the most does not fall when someone leaves.
    assert [(m.command, m.params[1:-1]) for m in bob.take()] == [
        ("251", ()),
        ("255", ()),
        ("265", ("2", "3")),
        ("266", ("2", "3")),
    ]


# -- nick, quit, ping -------------------------------------------------------------------


def test_nick_change_both_ways(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send("NICK robert")
    got = bob.take()
    assert Message("NICK", ("robert",), irc_src("bob")) in got
    assert alice.take() == ["*** bob is now known as robert"]
    net.hub.receive(net.hub.find("alice"), "/nick alicia")  # type: ignore[arg-type]
    assert bob.take() == [Message("NICK", ("alicia",), src("alice"))]
    bob.send("NICK alicia")
    assert bob.commands() == ["433"]
    bob.send("NICK")
    assert bob.commands() == ["431"]


def test_quit_answers_error_and_tells_the_others(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("QUIT :gone fishing")
    assert bob.take()[0].command == "ERROR"
    assert bob.link.closed
    assert alice.take() == ["*** bob left (Quit: gone fishing)"]
    assert carol.take() == [Message("QUIT", ("Quit: gone fishing",), irc_src("bob"))]
    assert net.hub.find("bob") is None
    net.hub.receive(net.hub.find("alice"), "/quit")  # type: ignore[arg-type]
    assert carol.take() == [Message("QUIT", ("Quit",), src("alice"))]


def test_disconnect_is_a_quit(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    net.gateway.disconnect(bob.session, "connection reset")
    net.gateway.disconnect(bob.session, "connection reset")  # idempotent
    assert alice.take() == ["*** bob left (connection reset)"]
    assert bob.session not in net.gateway.sessions


def test_ping_pong(net: Net) -> None:
    bob = net.irc("bob")
    bob.send("PING :token 1", "PING")
    got = bob.take()
    assert got[0] == Message("PONG", (irc.SERVER_NAME, "token 1"), irc.SERVER_NAME)
    assert got[1].command == "409"


# -- plugin commands ---------------------------------------------------------------------


def test_plugin_command_through_the_service_nick_and_a_verb(net: Net) -> None:
    bob = net.irc("bob")
    bob.send("PRIVMSG chatd :fact")
    [reply] = bob.take()
    assert reply.command == "NOTICE" and reply.params[0] == "bob"
    assert reply.params[1].startswith("Fact: ")
    bob.send("FACT")
    [reply] = bob.take()
    assert reply.command == "NOTICE" and reply.params[1].startswith("Fact: ")
    bob.send("PRIVMSG chatd :/nosuch")
    [reply] = bob.take()
    assert reply.command == "NOTICE" and "Unknown command /nosuch" in reply.params[1]


def test_room_announcement_is_a_channel_notice(net: Net) -> None:
    bob = net.irc("bob")
    net.hub.announce_room(LOBBY, "the jumble was solved\nby nobody")
    assert bob.take() == [  # the server's words come from the service nick
        Message("NOTICE", (LOBBY, "the jumble was solved"), src("chatd")),
        Message("NOTICE", (LOBBY, "by nobody"), src("chatd")),
    ]
    net.hub.announce("restart soon")  # to everyone: names no reader
    assert bob.take() == [Message("NOTICE", ("*", "restart soon"), src("chatd"))]


# -- errors -------------------------------------------------------------------------------


def test_error_numerics(net: Net) -> None:
    bob = net.irc("bob")
    net.irc("carol")
    cases = {
        "FROB": "421",
        "JOIN": "461",
        "JOIN nohash": "479",
        "KICK #lobby": "461",
        "KICK #lobby carol": "482",  # the default room has no operators
        "PART #nowhere": "403",
        "PART #lobby,#lobby": "PART",  # the second: no longer in it
        "PRIVMSG": "411",
        "PRIVMSG #lobby": "412",
        "PRIVMSG #nowhere :hi": "403",
        "TOPIC #nowhere": "403",
        "MODE #nowhere": "403",
    }
    for line, code in cases.items():
        bob.send(line)
        got = bob.commands()
        assert got and got[0] == code, (line, got)
    bob.send("JOIN #lobby")  # back in
    bob.take()
    bob.send("PART #lobby", "PART #lobby")
    assert bob.commands() == ["PART", "442"]
    bob.send("JOIN #games", "JOIN #other")
    bob.take()
    bob.send("PRIVMSG #lobby :hi")  # parted, the room exists
    assert bob.commands() == ["404"]


def test_parse_errors(net: Net) -> None:
    bob = net.irc("bob")
    bob.send("", "   ")
    assert bob.take() == []
    bob.send(b"PRIVMSG #lobby :" + b"x" * 600)
    [reply] = bob.take()
    assert reply.command == "417"
    bob.send(":onlyasource")
    [reply] = bob.take()
    assert reply.command == "NOTICE" and reply.params[0] == "bob"
    net.gateway.line_too_long(bob.session, 9000)
    assert bob.commands() == ["417"]


def test_no_cr_lf_or_nul_in_rendered_lines(net: Net) -> None:
    bob = net.irc("bob")
    net.hub.notify(net.hub.find("bob"), "one\r\ntwo\x00three")  # type: ignore[arg-type]
    data = bytes(bob.link.data)
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert all(b"\r" not in line and b"\n" not in line and b"\0" not in line for line in lines)


# -- the fan-out rule -------------------------------------------------------------------------


def test_one_line_is_rendered_once_for_many_irc_readers(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    net.nc("alice")
    clients = [net.irc(f"u{n}") for n in range(5)]
    calls: list[ev.Event] = []
    original = irc.IrcWire.render

    def counting(self: irc.IrcWire, event: ev.Event, v: str = irc.SHARED) -> bytes:
        calls.append(event)
        return original(self, event, v)

    monkeypatch.setattr(irc.IrcWire, "render", counting)
    net.hub.receive(net.hub.find("alice"), "hi all")  # type: ignore[arg-type]
    for client in clients:
        assert client.take() == [Message("PRIVMSG", (LOBBY, "hi all"), src("alice"))]
    assert calls == [ev.Said(LOBBY, "alice", "hi all", ident="alice")]


def test_refused_and_shutdown_say_error(net: Net) -> None:
    assert net.gateway.refused("server full") == b"ERROR :server full\r\n"
    bob = net.irc("bob")
    net.gateway.shutdown("chatd is restarting")
    assert bob.take() == [Message("ERROR", ("chatd is restarting",))]
    assert bob.link.closed


# -- hostile lines ------------------------------------------------------------------------

HOSTILE = [
    b"JOIN :#a b",
    b"WHOIS :a b",
    b"MODE #lobby ::",
    b"WHO : x",
    b"PART #" + b"a" * 500,
    b"NICK :bad nick",
    b"TOPIC :#no such",
    b"NAMES :# x",
    b"PRIVMSG :a b :hi",
    b"KICK :#a b :c d",
    b"CAP REQ :" + b"x " * 200,
    b"HELP : ",
]


@pytest.mark.parametrize("line", HOSTILE)
def test_a_clients_words_echoed_in_a_reply_never_break_it(net: Net, line: bytes) -> None:
    bob = net.irc("bob")
    bob.send(line)
    replies = bob.take()  # every line parses (take() parses them) ...
    assert all(len(irc.message("", m.command, *m.params)) <= 512 for m in replies)
    assert not net.fx.chat.errors, net.fx.chat.errors  # ... and no plugin failed on it
    bob.send("PING :still here")  # ... and the connection is as good as before
    assert bob.take()[-1].command == "PONG"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "JOIN",
                "PART",
                "PRIVMSG",
                "NOTICE",
                "NICK",
                "TOPIC",
                "KICK",
                "MODE",
                "WHO",
                "WHOIS",
                "NAMES",
                "LIST",
                "CAP",
                "USER",
                "PING",
                "QUIT",
                "HELP",
                "FACT",
                "XYZ",
            ]
        ).flatmap(
            lambda verb: st.lists(
                st.text(alphabet=st.characters(codec="utf-8"), max_size=30), max_size=4
            ).map(lambda args: verb + " " + " ".join(args) + " :" + (args[-1] if args else ""))
        ),
        max_size=8,
    )
)
def test_any_lines_get_answers_that_parse_and_never_raise(lines: list[str]) -> None:
    net = Net()
    bob = net.irc("bob")
    for text in lines:
        bob.send(text.encode("utf-8", "replace")[:600])
    bob.take()  # raises if any line sent back does not parse


def test_refusals_name_the_right_reason(net: Net) -> None:
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("JOIN #games")
    carol.send("JOIN #games")
    net.settle()
    carol.take()
    # A topic too long in #lobby (no operators there): not a want of rights.
    carol.send("TOPIC #lobby :" + "x" * 400)
    [reply] = carol.take()
    assert reply.command == "NOTICE" and "400 characters" in reply.params[-1]
    # A non-operator's MODE +o that would change nothing is still refused.
    carol.send("MODE #games +o bob")
    [reply] = carol.take()
    assert reply.command == "482"
    bob.send("MODE #games +o bob")  # the operator's own no-op passes in silence
    assert bob.take() == []
    # NAMES in no channel still ends the list.
    carol.send("JOIN 0")
    carol.take()
    carol.send("NAMES")
    assert [(m.command, m.params[1]) for m in carol.take()] == [("366", "*")]


def test_a_rename_by_a_plugin_command_is_followed_by_the_client(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    bob.send("PRIVMSG chatd :nick zed")  # the basics plugin's /nick, not IRC's NICK
    assert bob.take() == [Message("NICK", ("zed",), irc_src("bob"))]
    assert alice.take() == ["*** bob is now known as zed"]
    bob.send("QUIT :bye")
    assert [m.command for m in bob.take()] == ["ERROR"]  # and nothing after it


# -- the [irc] settings, capabilities, the server's PINGs ------------------------------------


def test_the_settings_name_the_server_network_and_service() -> None:
    net = Net(server_name="irc.example.org", network="Example", service_nick="bot")
    client = IrcClient(net.gateway)
    got = client.register("bob")
    assert {m.source for m in got if m.command.isdigit()} == {"irc.example.org"}
    assert "NETWORK=Example" in next(m for m in got if m.command == "005").params
    assert got[0].params[-1] == "Welcome to the Example IRC network, bob"
    client.send("PRIVMSG bot :fact")  # the plugin's answer comes from the service
    [fact] = client.take()
    assert fact.command == "NOTICE" and fact.source == src("bot")
    client.send("PRIVMSG chatd :fact")  # an ordinary (absent) nick now
    assert client.commands() == ["401"]
    nc = FakeLink()
    user = net.hub.connect(nc)
    net.hub.receive(user, "BOT")  # reserved for every wire, ignoring case
    assert "The nickname BOT is taken" in nc.take()[-2]


def test_autojoin_puts_irc_users_where_it_says() -> None:
    net = Net(autojoin=["#games", "#lobby"])
    alice = net.nc("alice")
    bob = IrcClient(net.gateway)
    got = bob.register("bob")
    joins = [m.params[0] for m in got if m.command == "JOIN"]
    assert joins == ["#games", "#lobby"]
    assert alice.take() == ["*** bob joined"]  # arrived in alice's room, as an nc user would
    nowhere = Net(autojoin=[])
    dave = IrcClient(nowhere.gateway)
    assert "JOIN" not in [m.command for m in dave.register("dave")]
    user = nowhere.hub.find("dave")
    assert user is not None and not user.rooms


def test_the_motd_comes_from_its_file_and_a_reload_rereads_it(tmp_path: Path) -> None:
    motd = tmp_path / "motd.txt"
    motd.write_text("Be kind.\n\x1b[31mno escapes\nthird line\n")
    net = Net(motd_file=str(motd))
    bob = IrcClient(net.gateway)
    got = bob.register("bob")
    lines = [m.params[-1] for m in got if m.command == "372"]
    assert lines == ["- Be kind.", "- no escapes", "- third line"]  # no control bytes
    motd.write_text("New rules.\n")
    assert net.gateway.reload_motd() == "irc: MOTD: 1 lines"
    bob.send("MOTD")
    assert [m.params[-1] for m in bob.take() if m.command == "372"] == ["- New rules."]
    assert net.gateway.reload_motd() == ""  # nothing changed, nothing said
    motd.unlink()
    assert net.gateway.reload_motd().startswith(
        f"irc: kept the MOTD in force: [irc] motd_file: {motd}"
    )
    bob.send("MOTD")
    assert [m.params[-1] for m in bob.take() if m.command == "372"] == ["- New rules."]


def test_a_motd_file_that_cannot_be_read_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=f"^\\[irc\\] motd_file: {tmp_path / 'nope'}: no such file$"
    ):
        Net(motd_file=str(tmp_path / "nope"))


def test_server_time_is_offered_acked_and_stamps_what_the_client_reads(net: Net) -> None:
    net.fx.chat.clock.now = 1_795_000_000.25  # the fake clock is the wall clock here
    net.gateway.info.wall = net.fx.chat.clock
    net.nc("alice")
    bob = IrcClient(net.gateway)
    bob.send("CAP LS 302")
    [ls] = bob.take()
    assert ls.params == ("*", "LS", "server-time sasl=PLAIN")
    bob.send("CAP REQ :server-time multi-prefix")  # all or nothing
    [nak] = bob.take()
    assert nak.params[1:] == ("NAK", "server-time multi-prefix")
    bob.send("CAP REQ :server-time")
    [ack] = bob.take()
    assert ack.params[1:] == ("ACK", "server-time")
    bob.register("bob")
    bob.send("CAP END")
    got = bob.take()
    assert [m.command for m in got][:2] == ["001", "002"]
    assert all(m.tags == (("time", "2026-11-18T11:06:40.250Z"),) for m in got)
    carol = net.irc("carol")  # no server-time: the same lines without the tag
    [join] = bob.take()
    assert join.command == "JOIN" and join.tags == (("time", "2026-11-18T11:06:40.250Z"),)
    alice = net.hub.find("alice")
    assert alice is not None
    net.hub.receive(alice, "hi all")
    net.fx.chat.hub.fanout.flush()
    [said] = bob.take()
    assert said.tags == (("time", "2026-11-18T11:06:40.250Z"),)
    assert said.params == (LOBBY, "hi all") and said.source == src("alice")
    [plain] = carol.take()
    assert plain.tags == () and plain.params == (LOBBY, "hi all")
    bob.send("CAP LIST")
    assert bob.take()[0].params[1:] == ("LIST", "server-time")
    bob.send("CAP REQ :-server-time")  # the format is fixed once registered
    assert bob.take()[0].params[1] == "NAK"


def test_a_silent_client_is_pinged_then_dropped_with_a_quit_reason() -> None:
    net = Net(ping_interval=30)
    alice = net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    net.fx.chat.advance(29)
    assert bob.take() == [] and carol.take() == []
    net.fx.chat.advance(1)
    assert bob.take() == [Message("PING", ("chatd.local",))]
    assert carol.take() == [Message("PING", ("chatd.local",))]
    net.fx.chat.advance(5)
    carol.send("PONG :chatd.local")  # carol answers (at 35 s); bob does not
    net.fx.chat.advance(24.5)
    assert bob.take() == [] and carol.take() == []
    net.fx.chat.advance(0.5)  # 30 s after the PING
    error = bob.take()
    assert error == [Message("ERROR", ("Closing Link: bob (Ping timeout: 30 seconds)",))]
    assert bob.link.closed and net.hub.find("bob") is None
    assert alice.take() == ["*** bob left (Ping timeout: 30 seconds)"]
    assert carol.take() == [Message("QUIT", ("Ping timeout: 30 seconds",), irc_src("bob"))]
    # carol, who answered, is PINGed again 30 s after her PONG, and stays while she answers.
    net.fx.chat.advance(5)
    assert carol.take() == [Message("PING", ("chatd.local",))]
    carol.send("PONG :chatd.local")
    net.fx.chat.advance(29)
    assert carol.take() == [] and net.hub.find("carol") is not None


def test_any_line_counts_as_an_answer_and_a_chatty_client_is_never_pinged() -> None:
    net = Net(ping_interval=30)
    bob = net.irc("bob")
    for _ in range(10):
        net.fx.chat.advance(20)
        bob.send("PRIVMSG #lobby :still here")
    assert [m.command for m in bob.take()] == []
    assert net.hub.find("bob") is not None


def test_ping_interval_0_never_pings() -> None:
    net = Net(ping_interval=0)
    bob = net.irc("bob")
    net.fx.chat.advance(86_400)
    assert bob.take() == [] and net.hub.find("bob") is not None


def test_irc_style_nicks_register_and_rename(net: Net) -> None:
    alice = net.nc("alice")
    tom = net.irc("[tom]")
    tom.send("NICK tom|away")
    assert tom.take() == [Message("NICK", ("tom|away",), irc_src("[tom]"))]
    assert alice.take()[-1] == "*** [tom] is now known as tom|away"


# -- NOTICE, idents, CTCP ---------------------------------------------------------------------


def test_a_notice_stays_a_notice_and_nc_reads_it_as_chat(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("NOTICE #lobby :bot here", "NOTICE carol :just you")
    assert carol.take() == [
        Message("NOTICE", (LOBBY, "bot here"), irc_src("bob")),
        Message("NOTICE", ("carol", "just you"), irc_src("bob")),
    ]
    assert alice.take() == ["<bob> bot here"]
    bob.send("NOTICE alice :psst")
    assert alice.take() == ["*bob* psst"]
    assert bob.take() == []  # a NOTICE is never answered, not even with a numeric
    bob.send("NOTICE nobody :hello")
    assert bob.take() == []


def test_every_line_of_a_user_names_the_same_ident_and_it_outlives_a_rename(net: Net) -> None:
    net.nc("alice")
    carol = net.irc("carol")
    bob = IrcClient(net.gateway)
    bob.send("NICK bob", "USER bobby 0 * :Bob B")
    bob.take()
    net.settle()
    alice = net.hub.find("alice")
    assert alice is not None
    bob.send("PRIVMSG #lobby :hi")
    [said] = carol.take()
    assert said.source == "bob!~bobby@chatd"
    bob.send("NICK rob", "PRIVMSG #lobby :again", "WHO rob")
    renamed, again = carol.take()
    assert (renamed.source, again.source) == ("bob!~bobby@chatd", "rob!~bobby@chatd")
    who = bob.take()[1]
    assert who.command == "352" and who.params[2] == "~bobby"  # WHO says the same
    net.hub.rename(alice, "alicia")  # an nc user keeps the nick it registered with
    net.hub.receive(alice, "hi")
    got = carol.take()
    assert [m.source for m in got] == ["alice!alice@chatd", "alicia!alice@chatd"]
    carol.send("WHOIS alicia")
    assert carol.take()[0].params[:3] == ("carol", "alicia", "alice")


def test_ctcp_version_and_ping_to_a_nick_are_answered_in_its_name(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    bob.send("PRIVMSG alice :\x01VERSION\x01", "PRIVMSG alice :\x01PING 12345\x01")
    version, ping = bob.take()
    assert version.command == "NOTICE" and version.source == src("alice")
    assert version.params[1].startswith("\x01VERSION chatd ")
    assert ping.params == ("bob", "\x01PING 12345\x01")
    bob.send("NOTICE alice :\x01VERSION\x01", "PRIVMSG alice :\x01TIME\x01")
    assert bob.take() == []  # a reply is not answered; other CTCPs are dropped
    bob.send("PRIVMSG nobody :\x01VERSION\x01")
    assert bob.commands() == ["401"]


def test_lusers_most_counts_a_peak_of_nc_users_alone(net: Net) -> None:
    bob = net.irc("bob")
    for nick in ("n1", "n2", "n3"):
        net.nc(nick)
    for nick in ("n1", "n2", "n3"):
        user = net.hub.find(nick)
        assert user is not None
        net.hub.quit(user)
    bob.take()
    bob.send("LUSERS")
    assert [m.params[1:3] for m in bob.take() if m.command == "266"] == [("1", "4")]


def test_an_nc_users_long_line_reaches_irc_whole_in_several_lines(net: Net) -> None:
    net.nc("alice")
    bob = net.irc("bob")
    alice = net.hub.find("alice")
    assert alice is not None
    text = " ".join(f"w{i:03d}" for i in range(200))  # 999 bytes: nc takes up to 1024
    net.hub.say(alice, text)
    net.hub.emote(alice, "é" * 400)  # 800 bytes of two-byte characters
    net.hub.private(alice, "bob", "x" * 900)
    got = bob.take()
    assert all(len(irc.message(m.source, m.command, *m.params)) <= 512 for m in got)
    said = [m.params[1] for m in got if m.params[0] == LOBBY and "\x01" not in m.params[1]]
    assert len(said) == 3 and " ".join(said) == text  # cut at spaces, which go
    acted = [m.params[1] for m in got if m.params[1].startswith("\x01ACTION ")]
    assert "".join(a.removeprefix("\x01ACTION ").removesuffix("\x01") for a in acted) == "é" * 400
    private = [m.params[1] for m in got if m.params[0] == "bob"]
    assert "".join(private) == "x" * 900 and len(private) == 2


def test_one_line_names_at_most_targmax_targets_each_once(net: Net) -> None:
    carol = net.irc("carol")
    bob = net.irc("bob")
    bob.send("PRIVMSG " + ",".join(["carol"] * 70) + " :spam")
    assert carol.take() == [Message("PRIVMSG", ("carol", "spam"), irc_src("bob"))]
    assert bob.take() == []
    for room in ("#a", "#b", "#c", "#d", "#e"):
        bob.send(f"JOIN {room}")
    bob.take()
    bob.send("PRIVMSG #a,#b,#c,#d,#e,carol :hello")
    refused = bob.take()
    assert [(m.command, m.params[1]) for m in refused] == [("407", "#e"), ("407", "carol")]
    assert carol.take() == []
    bob.send("NOTICE #a,#b,#c,#d,#e,carol :hello")
    assert bob.take() == []  # a NOTICE is never answered


def test_ping_while_registering_is_answered(net: Net) -> None:
    client = IrcClient(net.gateway)
    client.send("CAP LS 302", "PING :negotiating")
    ls, pong = client.take()
    assert ls.params[1] == "LS"
    assert pong == Message("PONG", ("chatd.local", "negotiating"), irc.SERVER_NAME)


def test_every_close_ends_with_an_error_line(net: Net) -> None:
    bob = net.irc("bob")
    user = net.hub.find("bob")
    assert user is not None
    net.hub.kick(user, "spam")
    notice, error = bob.take()
    assert notice.command == "NOTICE" and "kicked by an operator" in notice.params[1]
    assert error == Message("ERROR", ("Closing Link: bob (kicked by an operator: spam)",))
    assert bob.link.closed
    carol = net.irc("carol")
    carol.send("PRIVMSG chatd :quit see you")  # the plugin's /quit, not IRC's QUIT
    assert carol.take() == [Message("ERROR", ("Closing Link: carol (Quit: see you)",))]
    early = IrcClient(net.gateway)
    early.send("QUIT")  # before registering (irctest's port probe does this)
    assert early.take() == [Message("ERROR", ("Closing Link: * (Quit)",))]
    slow = IrcClient(net.gateway)
    slow.send("NICK slow")
    net.fx.chat.advance(net.hub.config.limits.register_timeout)
    *_, last = slow.take()
    assert last == Message("ERROR", ("Closing Link: * (registration timed out)",))


def test_a_private_action_stays_an_action_for_irc_and_reads_as_one_for_nc(net: Net) -> None:
    alice = net.nc("alice")
    bob = net.irc("bob")
    carol = net.irc("carol")
    bob.send("PRIVMSG carol :\x01ACTION waves\x01", "PRIVMSG alice :\x01ACTION waves\x01")
    assert carol.take() == [Message("PRIVMSG", ("carol", "\x01ACTION waves\x01"), irc_src("bob"))]
    assert alice.take() == ["*bob* * bob waves"]


# -- accounts: PASS is the nickname's account password ---------------------------------


def _account(net: Net, nick: str, password: str) -> None:
    user, link = net.fx.join(nick)
    net.hub.receive(user, f"/register {password}")
    assert link.take()[0].startswith("*** Registered:")
    net.hub.quit(user)
    net.settle()


def test_pass_with_a_registered_nick_logs_in_and_its_kept_messages_follow(net: Net) -> None:
    _account(net, "bob", "bobs-secret")
    net.nc("alice")
    alice = net.hub.find("alice")
    assert alice is not None
    net.hub.receive(alice, "/msg bob see you at 5")
    bob = IrcClient(net.gateway)
    bob.send("PASS bobs-secret")
    got = bob.register("bob")
    assert got[0].command == "001"
    notices = [m.params for m in got if m.command == "NOTICE"]
    assert ("bob", "You are identified: bob is your account.") in notices
    assert ("bob", "1 private message while you were away:") in notices
    [kept] = [m for m in got if m.command == "PRIVMSG"]
    assert kept.source == src("alice") and kept.params[0] == "bob"
    assert re.fullmatch(
        r"\[\d\d:\d\d\] see you at 5", kept.params[1]
    )  # no server-time: in the text


def test_a_registered_nick_without_pass_is_433_and_a_wrong_pass_464(net: Net) -> None:
    _account(net, "bob", "bobs-secret")
    nopass = IrcClient(net.gateway)
    [refused] = nopass.register("bob")
    assert refused.command == "433" and refused.params[1] == "bob"
    assert "registered" in refused.params[2]
    nopass.send("NICK bob_")  # what a client does next: another nick
    assert nopass.take()[0].command == "001"
    wrong = IrcClient(net.gateway)
    wrong.send("PASS not-it-at-all")
    got = wrong.register("bob")
    assert [m.command for m in got] == ["464", "ERROR"]
    assert wrong.link.closed


def test_pass_takes_a_registered_nick_from_its_owners_other_connection(net: Net) -> None:
    _account(net, "alice", "alices-secret")
    owner = IrcClient(net.gateway)
    owner.send("PASS alices-secret")
    assert owner.register("alice")[0].command == "001"
    again = IrcClient(net.gateway)  # the same person, from another client
    again.send("PASS alices-secret")
    assert again.register("alice")[0].command == "001"
    assert owner.link.closed
    assert net.hub.find("alice") is again.session.user


def test_nickserv_identify_reaches_chatds_identify(net: Net) -> None:
    _account(net, "alice", "alices-secret")
    client = IrcClient(net.gateway)
    client.register("alice_")
    client.send("PRIVMSG NickServ :IDENTIFY alice alices-secret")
    got = client.take()
    assert got[0].command == "NICK"  # alice_ is alice now
    assert ("alice", "You are identified: alice is your account.") in [m.params for m in got]


def test_a_message_kept_for_an_away_account_is_no_401(net: Net) -> None:
    _account(net, "bob", "bobs-secret")
    alice = net.irc("alice")
    alice.send("PRIVMSG bob :see you")
    [told] = alice.take()
    assert told.command == "NOTICE" and "kept" in told.params[1]
    alice.send("NOTICE bob :quietly")  # a notice: kept, and never answered
    assert alice.take() == []
    assert net.hub.store.accounts.held("bob") == 2


def test_whois_says_which_account_a_nick_is_logged_in_as(net: Net) -> None:
    _account(net, "alice", "alices-secret")
    owner = IrcClient(net.gateway)
    owner.send("PASS alices-secret")
    owner.register("alice")
    guest = net.irc("bob")
    guest.send("WHOIS alice")
    assert ("bob", "alice", "alice", "is logged in as") in [m.params for m in guest.take()]
    guest.send("WHOIS bob")  # a guest: no 330
    assert "330" not in [m.command for m in guest.take()]


def _sasl_plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


def test_sasl_plain_logs_in_before_registration(net: Net) -> None:
    _account(net, "alice", "alices-secret")
    client = IrcClient(net.gateway)
    client.send("CAP LS", "CAP REQ :sasl")
    assert [m.params[1:] for m in client.take()] == [("LS", "server-time sasl"), ("ACK", "sasl")]
    client.send("AUTHENTICATE SCRAM-SHA-256")  # not offered: the list, then 904
    assert [m.command for m in client.take()] == ["908", "904"]
    client.send("AUTHENTICATE PLAIN")
    assert client.link.take() == ["AUTHENTICATE +\r"]  # lines end CR LF
    client.send(f"AUTHENTICATE {_sasl_plain('alice', 'alices-secret')}")
    got = client.take()
    assert [m.command for m in got] == ["900", "903"]
    assert got[0].params[2:] == ("alice", "You are now logged in as alice")
    client.send("NICK alice", "USER alice 0 * :Alice", "CAP END")
    got = client.take()
    assert got[0].command == "001"
    assert ("alice", "You are identified: alice is your account.") in [m.params for m in got]


def test_sasl_with_a_wrong_password_fails_and_registration_goes_on(net: Net) -> None:
    _account(net, "alice", "alices-secret")
    client = IrcClient(net.gateway)
    client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
    client.take()
    client.send(f"AUTHENTICATE {_sasl_plain('alice', 'wrong-one-here')}")
    [fail] = client.take()
    assert fail.command == "904"
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE *")  # begun, then aborted
    assert [m.command for m in client.take()][-1] == "906"
    client.send("NICK alice", "USER alice 0 * :Alice", "CAP END")
    [refused] = client.take()  # not logged in: the registered nick is not its
    assert refused.command == "433"


def test_sasl_logs_in_to_an_account_under_another_nick(net: Net) -> None:
    _account(net, "alice", "alices-secret")
    client = IrcClient(net.gateway)
    client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
    client.send(f"AUTHENTICATE {_sasl_plain('alice', 'alices-secret')}")
    client.take()
    client.send("NICK alice_away", "USER alice 0 * :Alice", "CAP END")
    got = client.take()
    assert got[0].command == "001"
    assert ("alice_away", "You are identified as alice.") in [m.params for m in got]
