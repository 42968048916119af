"""Three chatd nodes and one real redis-server on loopback: one chat.

Each node is a real server (its loop in a thread of this process, or a
process of its own where a test kills one), with nc users on real sockets.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from chatd.cluster.backplane import HEARTBEAT
from chatd.config import ClusterSettings, Config, StoreSettings
from chatd.server import Server
from chatd.wire.resp import RedisAddress
from tests.helpers import (
    LIFTED_LIMITS_TOML,
    WAIT,
    IrcLineClient,
    LineClient,
    ServerProcess,
    make_config,
    on_loop,
    running_server,
    wait_until,
)
from tests.redis_server import RedisServer, free_port


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
            wait_until(lambda s=server: on_loop(s, lambda: _up(s)), what="a node joined")
        yield servers


@contextmanager
def kept_away(server: Server) -> Iterator[None]:
    """``server`` cannot reach Redis meanwhile (it dials a closed port: trouble
    of its own), and can again after."""
    assert server.cluster is not None
    real = server.cluster.address
    closed = RedisAddress("127.0.0.1", free_port())
    on_loop(server, lambda: setattr(server.cluster, "address", closed))
    try:
        yield
    finally:
        on_loop(server, lambda: setattr(server.cluster, "address", real))


def logged(redis: RedisServer, text: str) -> bool:
    """Whether ``text`` is in one of the latest entries of the cluster's log."""
    latest = redis.call("XREVRANGE", "chatd:log", "+", "-", "COUNT", 16)
    return text.encode() in repr(latest).encode()


def user(server: Server, nick: str) -> LineClient:
    assert server.address is not None
    client = LineClient(server.address)
    client.register(nick)
    return client


def seen_everywhere(servers: list[Server], *nicks: str) -> None:
    """Wait until every node knows every one of ``nicks``."""
    for server in servers:
        wait_until(
            lambda s=server: on_loop(s, lambda: all(s.hub.find(n) is not None for n in nicks)),
            what=f"{nicks} on every node",
        )


def newest(server: Server, room: str) -> tuple[str, int]:
    """The text and id of the newest line ``server`` keeps of ``room``."""
    kept = on_loop(server, lambda: server.hub.store.lines.last(room, 1))
    return (kept[0].text, kept[0].id) if kept else ("", 0)


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
        wait_until(lambda: on_loop(a, lambda: a.hub.find_room("#rust")) is not None, what="#rust")
        alice.send("/join #rust")
        bob.expect(re.compile(r"^\*\*\* alice joined #rust"))
        alice.send("hi bob")
        bob.expect("<alice> hi bob")
        alice.send("/msg bob psst")
        bob.expect("*alice* psst")
        bob.send("/quit bye")
        alice.expect("*** bob left (Quit: bye)")


def test_one_nickname_claimed_on_every_node_at_once_is_had_by_one(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b", "c") as servers:
        clients = [LineClient(s.address) for s in servers for _ in range(5)]  # type: ignore[arg-type]
        for client in clients:
            client.expect(re.compile(r"^\*\*\* Choose a nickname"))
        for client in clients:  # as near at once as one thread sends
            client.send("alice")
        outcomes = [
            client.expect(re.compile(r"^\*\*\* (Welcome, alice!|The nickname alice is taken)"))
            for client in clients
        ]
        assert sum("Welcome" in line for line in outcomes) == 1, outcomes
        for server in servers:
            wait_until(lambda s=server: on_loop(s, s.hub.nicks) == ["alice"], what="alice")
        assert redis_server.call("KEYS", "chatd:nick:*") == [b"chatd:nick:alice"]
        winner = clients[next(i for i, line in enumerate(outcomes) if "Welcome" in line)]
        winner.send("/quit")
        winner.wait_closed()
        # Gone, it lets go: the name is free on every node at once.
        wait_until(lambda: redis_server.call("KEYS", "chatd:nick:*") == [], what="lease freed")
        last = servers[2]
        wait_until(lambda: on_loop(last, last.hub.nicks) == [], what="alice gone from c")
        late = user(last, "alice")
        late.send("/quit")


def test_an_operator_on_one_node_acts_on_the_whole_chat(redis_server: RedisServer) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        on_loop(a, lambda: a.admin.say({"text": "maintenance at noon"}))
        alice.expect("*** Announcement: maintenance at noon")
        bob.expect("*** Announcement: maintenance at noon")
        users = {u["nick"]: u for u in on_loop(a, lambda: a.admin.users({}))}
        assert users["bob"]["node"] == "b" and users["bob"]["address"] == "node b"
        assert users["alice"]["node"] == "a"
        assert on_loop(a, lambda: a.admin.kick({"nick": "bob", "reason": "spam"})) == "kicked bob"
        assert any("kicked by an operator: spam" in line for line in bob.wait_closed())
        alice.expect("*** bob left (kicked by an operator: spam)")
        wait_until(lambda: on_loop(a, lambda: a.hub.find("bob")) is None, what="bob gone from a")


class NodeProcess(ServerProcess):
    """A node as a process of its own (``chatd serve --config``): one to kill."""

    def __init__(self, tmp_path: Path, redis: RedisServer, name: str) -> None:
        folder = tmp_path / name
        folder.mkdir()
        config = folder / "chatd.toml"
        config.write_text(
            '[server]\nhost = "127.0.0.1"\nport = 0\n'
            + LIFTED_LIMITS_TOML
            + '[store]\npath = ":memory:"\n[admin]\nenabled = false\n'
            + f'[cluster]\nredis = "{redis.url}"\nnode = "{name}"\nnode_timeout = 2\n'
        )
        super().__init__(folder, "--config", str(config))
        self.wait_log(re.compile(rf"cluster: node {name} joined"))


def test_a_node_killed_is_counted_lost_and_its_users_with_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    doomed = NodeProcess(tmp_path, redis_server, "doomed")
    try:
        with ExitStack() as stack:
            config = node_config(redis_server, "b", node_timeout=2)
            b = stack.enter_context(running_server(config))
            wait_until(lambda: on_loop(b, lambda: _up(b)), what="b joined")
            alice = LineClient(doomed.address)
            alice.register("alice")
            alice.send("/join #den")
            bob = user(b, "bob")
            seen_everywhere([b], "alice")
            bob.send("/join #den")
            alice.expect(re.compile(r"^\*\*\* bob joined #den"))
            bob.pending.clear()
            doomed.proc.kill()  # kill -9: no goodbye of any kind
            started = time.monotonic()
            # Once, though alice and bob share two rooms, within node_timeout
            # (and a heartbeat: a third of it).
            assert bob.expect(re.compile(r"alice left")) == "*** alice left (node lost)"
            assert time.monotonic() - started < 2 * 2  # node_timeout, a heartbeat, slack
            assert on_loop(b, b.hub.nicks) == ["bob"]
            bob.send("/who #den")
            bob.expect(re.compile(r"^\*\*\* #den: bob$|bob"))
            assert not [line for line in bob.pending if "alice" in line]
            # Its nickname is free again once its lease has run out.
            wait_until(lambda: redis_server.call("EXISTS", "chatd:nick:alice") == 0, what="free")
            user(b, "alice")
    finally:
        doomed.stop()


def test_redis_restarted_during_chat_each_node_goes_on_alone_then_together(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, carol, bob = user(a, "alice"), user(a, "carol"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob", "carol")
        bob.send("said before the restart")
        alice.expect("<bob> said before the restart")
        before = newest(a, "#lobby")[1]
        redis_server.stop()
        for client in (alice, carol, bob):
            client.expect(re.compile(r"^\*\*\* Lost touch with the other servers"))
        alice.send("only carol hears this")  # nobody is cut off: a serves its own
        carol.expect("<alice> only carol hears this")
        redis_server.restart()  # the same port, nothing kept: a new log
        for client in (alice, carol, bob):
            client.expect("*** Back in touch with the other servers of this chat.")
        alice.send("and now bob too")
        bob.expect("<alice> and now bob too")
        assert not [line for line in bob.pending if "only carol" in line]
        # The new log numbers its entries past every line the nodes keep: a
        # room's lines are one id apiece on every node still, and no entry
        # was counted as missed for it.
        wait_until(lambda: newest(a, "#lobby") == ("and now bob too", newest(b, "#lobby")[1]))
        assert newest(a, "#lobby")[1] > before
        assert on_loop(a, lambda: a.cluster.missed) == on_loop(b, lambda: b.cluster.missed) == 0
        # The new Redis knows everyone again: each node told it all it has.
        keys = redis_server.call("KEYS", "chatd:nick:*")
        assert sorted(keys) == [b"chatd:nick:alice", b"chatd:nick:bob", b"chatd:nick:carol"]
        bob.send("/who #lobby")
        bob.expect(re.compile(r"alice.*bob.*carol"))


def test_a_node_that_loses_its_subscription_misses_no_line_that_reached_redis(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        bob.pending.clear()
        alice.send("line 0")
        bob.expect("<alice> line 0")
        # b's subscriber is cut off by Redis, and b kept away a while: what a
        # logs meanwhile waits in the log.
        with kept_away(b):
            clients = redis_server.call("CLIENT", "LIST")
            assert isinstance(clients, bytes)
            found = re.search(rb"id=(\d+) .*name=chatd-b-subscriber", clients)
            assert found, clients
            assert redis_server.call("CLIENT", "KILL", "ID", found.group(1)) == 1
            for i in range(1, 30):
                alice.send(f"line {i}")
            wait_until(lambda: logged(redis_server, "line 29"), what="logged")
        got = [bob.expect(re.compile(r"^<alice> line \d+$")) for _ in range(1, 30)]
        assert got == [f"<alice> line {i}" for i in range(1, 30)]
        assert on_loop(b, b.cluster.describe)["entries_fetched"] > 0  # from the log


def test_a_node_out_of_touch_past_its_leases_renames_its_users(
    redis_server: RedisServer,
) -> None:
    config = node_config(redis_server, "a", node_timeout=2)
    with running_server(config) as a:
        wait_until(lambda: on_loop(a, lambda: _up(a)), what="a joined")
        alice = user(a, "alice")
        redis_server.pause()  # a Redis that hangs: no answer, no EOF
        alice.expect(re.compile(r"^\*\*\* Lost touch with the other servers"))
        told = alice.expect(re.compile(r"^\*\*\* The nickname alice is no longer yours"))
        assert "this server lost touch with the others for 2s" in told
        renamed = alice.expect(re.compile(r"^\*\*\* You are now known as alice-\d{4}"))
        alice.send("still here")  # chat goes on, under the new name
        redis_server.resume()
        alice.expect("*** Back in touch with the other servers of this chat.")
        nick = renamed.rsplit(" ", 1)[-1].rstrip(".")
        wait_until(
            lambda: redis_server.call("EXISTS", f"chatd:nick:{nick.lower()}") == 1,
            what="the new name's lease",
        )


def test_an_irc_user_on_one_node_chats_with_nc_users_on_another(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice = user(a, "alice")
        seen_everywhere([a, b], "alice")  # else b's NAMES may come before her
        assert b.irc_address is not None
        irc = IrcLineClient(b.irc_address)
        irc.register("ivan")
        names = irc.expect_message("353")  # NAMES of the autojoined #lobby
        assert "alice" in names.params[-1].split() and "ivan" in names.params[-1].split()
        irc.expect_message("366")
        alice.expect(re.compile(r"^\*\*\* ivan joined"))
        alice.send("hello ivan")
        said = irc.expect_message("PRIVMSG")
        assert said.source.startswith("alice!") and said.params == ("#lobby", "hello ivan")
        irc.send("PRIVMSG alice :hi from IRC")
        alice.expect("*ivan* hi from IRC")
        irc.send("WHO #lobby")
        who = {irc.expect_message("352").params[5], irc.expect_message("352").params[5]}
        assert who == {"alice", "ivan"}
        irc.send("WHOIS alice")
        assert irc.expect_message("311").params[1] == "alice"
        irc.send("NICK alice")  # another node's user has it
        assert irc.expect_message("433").params[1] == "alice"


def _get(server: Server, path: str) -> tuple[bytes, bytes]:
    """GET ``path`` from ``server``'s web listener: (status line, body)."""
    assert server.web_address is not None
    with socket.create_connection(server.web_address, timeout=WAIT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_healthz_and_metrics_show_the_backplane(redis_server: RedisServer) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        online = [user(a, "alice"), user(b, "bob")]
        seen_everywhere([a, b], "alice", "bob")
        status, body = _get(a, "/healthz")
        assert status == b"HTTP/1.1 200 OK"
        cluster = json.loads(body)["cluster"]
        assert (cluster["node"], cluster["state"], cluster["nickname_leases"]) == ("a", "up", 1)
        assert cluster["redis"] == redis_server.url
        status, body = _get(a, "/metrics")
        families = list(text_string_to_metric_families(body.decode()))
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
        }
        assert samples[("chatd_cluster_up", ())] == 1
        assert samples[("chatd_cluster_users", (("node", "a"),))] == 1
        assert samples[("chatd_cluster_users", (("node", "b"),))] == 1
        assert samples[("chatd_cluster_entries_total", (("direction", "out"),))] >= 1
        assert samples[("chatd_cluster_entries_total", (("direction", "in"),))] >= 2
        assert samples[("chatd_connections_open", (("listener", "redis-command"),))] == 1
        assert samples[("chatd_bytes_in_total", (("listener", "redis-subscriber"),))] > 0
        readme = (Path(__file__).parent.parent / "README.md").read_text()
        for family in families:
            name = family.name + ("_total" if family.type == "counter" else "")
            assert f"`{name}`" in readme, f"README's metrics table lacks {name}"
        redis_server.stop()
        wait_until(lambda: json.loads(_get(a, "/healthz")[1])["cluster"]["state"] == "down")
        status, _ = _get(a, "/healthz")
        assert status == b"HTTP/1.1 200 OK"  # serving its own users: well, if alone
        assert all(client.sock.fileno() >= 0 for client in online)


PASSWORD = "correct-horse-battery"


def test_an_account_registered_on_one_node_is_the_whole_chats(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice = user(a, "alice")
        alice.send(f"/register {PASSWORD}")
        alice.expect(re.compile(r"^\*\*\* Registered: the nickname alice is yours\."))
        wait_until(lambda: on_loop(b, lambda: b.hub.desk.registered("alice")), what="on b")
        alice.send("/quit")
        alice.wait_closed()
        # On the other node the name is alice's: a guest may not have it...
        guest = LineClient(b.address)  # type: ignore[arg-type]
        guest.expect(re.compile(r"^\*\*\* Choose a nickname"))
        guest.send("alice")
        guest.expect(re.compile(r"^\*\*\* The nickname alice is registered\. Type its password"))
        guest.close()
        # ...and her password works there.
        owner = LineClient(b.address)  # type: ignore[arg-type]
        owner.expect(re.compile(r"^\*\*\* Choose a nickname"))
        owner.send(f"alice:{PASSWORD}")
        owner.expect(re.compile(r"^\*\*\* Welcome, alice!"))
        owner.expect("*** You are identified: alice is your account.")
        # A Redis that lost everything learns the accounts again from the nodes.
        redis_server.stop()
        redis_server.restart()
        owner.expect("*** Back in touch with the other servers of this chat.")
        wait_until(lambda: redis_server.call("HEXISTS", "chatd:accounts", "alice") == 1)
        # Deleted on one node, it is gone on every node, and stays gone.
        owner.send(f"/unregister {PASSWORD}")
        owner.expect(re.compile(r"^\*\*\* Your account alice is deleted"))
        wait_until(lambda: not on_loop(a, lambda: a.hub.desk.registered("alice")), what="on a")
        assert redis_server.call("HGET", "chatd:accounts", "alice") == b"-"


def test_a_ban_of_another_nodes_user_is_done_by_its_node(redis_server: RedisServer) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        done = on_loop(a, lambda: a.hub.ban("bob", 60, "spam"))
        assert done == "banned the nickname bob for 1m, and closed it on b"
        assert "*** You have been banned by an operator for 1m: spam." in bob.wait_closed()
        alice.expect("*** bob left (banned by an operator: spam)")
        wait_until(lambda: on_loop(a, lambda: a.hub.find("bob")) is None, what="bob gone")


def test_a_node_stopped_says_its_users_are_leaving_at_once(redis_server: RedisServer) -> None:
    with nodes(redis_server, "b") as (b,):
        bob = user(b, "bob")
        with running_server(node_config(redis_server, "a")) as a:
            wait_until(lambda: on_loop(a, lambda: _up(a)), what="a joined")
            alice = user(a, "alice")
            bob.expect(re.compile(r"^\*\*\* alice joined"))
        assert any("shutting down" in line for line in alice.wait_closed())  # by its own node
        bob.expect("*** alice left (server shutting down)")
        wait_until(lambda: redis_server.call("EXISTS", "chatd:nick:alice") == 0, what="freed")
        assert redis_server.call("ZSCORE", "chatd:nodes", "a") is None


def test_a_node_back_late_after_a_redis_restart_reads_the_new_log_from_its_start(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        with kept_away(b):  # trouble of its own: it is back late
            redis_server.stop()
            bob.expect(re.compile(r"^\*\*\* Lost touch with the other servers"))
            redis_server.restart()
            alice.expect("*** Back in touch with the other servers of this chat.")
            alice.send("said once a was back")  # in the new Redis's log, before b is back
            wait_until(lambda: logged(redis_server, "said once a was back"), what="logged")
        bob.expect("*** Back in touch with the other servers of this chat.")
        bob.expect("<alice> said once a was back")


def test_a_user_back_through_another_node_is_shown_what_it_missed(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b", "c") as (a, b, c):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b, c], "alice", "bob")
        alice.send("/quit")
        bob.expect(re.compile(r"^\*\*\* alice left"))
        for text in ("one", "two"):
            bob.send(text)
        wait_until(lambda: newest(c, "#lobby")[0] == "two", what="c has the lines")
        back = user(c, "alice")  # through c, which never had her
        back.expect(re.compile(r"^\*\*\* While you were away .*: 2 lines in #lobby\.$"))
        back.expect(re.compile(r"^\*\*\* \[[^]]+\] <bob> one$"))
        back.expect(re.compile(r"^\*\*\* \[[^]]+\] <bob> two$"))
        back.expect("*** End of what you missed in #lobby.")


def test_a_node_started_late_has_the_rooms_history_from_the_log(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        alice.send("said before c started")
        bob.expect("<alice> said before c started")
        alice.send("/quit")
        bob.expect(re.compile(r"^\*\*\* alice left"))
        bob.send("missed by alice")
        wait_until(lambda: newest(a, "#lobby")[0] == "missed by alice", what="a has it")
        with nodes(redis_server, "c") as (c,):
            wait_until(lambda: newest(c, "#lobby") == newest(a, "#lobby"), what="c's history")
            carol = user(c, "carol")  # new to the room: shown its recent lines
            carol.expect(re.compile(r"^\*\*\* \[[^]]+\] <alice> said before c started$"))
            carol.send("/history 5")
            carol.expect(re.compile(r"^\*\*\* \[[^]]+\] <alice> said before c started$"))
            assert on_loop(c, lambda: c.cluster.describe()["history_entries"]) > 0
            # Where alice was, c read from the log too: back through c, she
            # is shown what she missed, not the room's recent lines.
            back = user(c, "alice")
            back.expect(re.compile(r"^\*\*\* While you were away .*: 1 line in #lobby\.$"))
            back.expect(re.compile(r"^\*\*\* \[[^]]+\] <bob> missed by alice$"))


def test_an_accounts_messages_and_nickname_follow_it_to_any_node(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b", "c") as (a, b, c):
        alice, bob = user(a, "alice"), user(c, "bob")
        alice.send(f"/register {PASSWORD}")
        alice.expect(re.compile(r"^\*\*\* Registered: the nickname alice is yours\."))
        wait_until(lambda: on_loop(b, lambda: b.hub.desk.registered("alice")), what="on b")
        alice.send("/quit")
        alice.wait_closed()
        seen_everywhere([a, b, c], "bob")
        wait_until(lambda: on_loop(c, lambda: c.hub.find("alice") is None), what="gone on c")
        bob.send("/msg alice kept for you")
        bob.expect("*** alice is offline; your message is kept until they identify.")
        wait_until(lambda: on_loop(b, lambda: b.hub.store.accounts.held("alice")) == 1)
        # Given on b, which only heard of it; then no node holds it any more.
        owner = LineClient(b.address)  # type: ignore[arg-type]
        owner.send(f"alice:{PASSWORD}")
        owner.expect("*** You are identified: alice is your account.")
        owner.expect(re.compile(r"^\*\*\* \[[^]]+\] \*bob\* kept for you$"))
        for server in (a, c):
            wait_until(lambda s=server: on_loop(s, lambda: s.hub.store.accounts.held("alice")) == 0)
        # Her password on a takes the nickname over from b's connection (not
        # "taken": a waits for b to give it up).
        seen_everywhere([a, b, c], "alice")
        again = LineClient(a.address)  # type: ignore[arg-type]
        again.send(f"alice:{PASSWORD}")
        owner.expect("*** Someone logged in as alice from elsewhere.")
        owner.wait_closed()
        again.expect("*** You are identified: alice is your account.")
        again.send("back on a")
        bob.expect("<alice> back on a")


def test_a_node_restarted_with_its_store_reads_on_from_where_it_was(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    cluster = ClusterSettings(redis=redis_server.url, node="c", node_timeout=3)
    config = make_config(cluster=cluster, store=StoreSettings(path=str(tmp_path / "c.db")))
    with nodes(redis_server, "a") as (a,):
        alice = user(a, "alice")
        alice.send(f"/register {PASSWORD}")
        alice.expect(re.compile(r"^\*\*\* Registered"))
        alice.send("/quit")
        alice.wait_closed()
        bob = user(a, "bob")
        with running_server(config) as c:
            wait_until(lambda: on_loop(c, lambda: _up(c)), what="c joined")
            bob.send("said while c was up")
            bob.send("/msg alice kept for you")
            bob.expect("*** alice is offline; your message is kept until they identify.")
            wait_until(lambda: on_loop(c, lambda: c.hub.store.accounts.held("alice")) == 1)
        bob.send("said while c was down")
        wait_until(lambda: logged(redis_server, "said while c was down"), what="logged")
        with running_server(config) as c:
            wait_until(lambda: newest(c, "#lobby")[0] == "said while c was down", what="read")
            assert newest(c, "#lobby") == newest(a, "#lobby")
            assert on_loop(c, lambda: c.hub.store.accounts.held("alice")) == 1  # not twice
            # It read on from where its store was, not the whole log again.
            assert 0 < on_loop(c, lambda: c.cluster.describe()["history_entries"]) <= 3
            carol = user(c, "carol")
            carol.send("/history 5")
            carol.expect(re.compile(r"<bob> said while c was up$"))
            carol.expect(re.compile(r"<bob> said while c was down$"))


def test_redis_losing_the_scripts_loses_no_line_and_nobody_is_told(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server, "a", "b") as (a, b):
        alice, bob = user(a, "alice"), user(b, "bob")
        seen_everywhere([a, b], "alice", "bob")
        redis_server.call("SCRIPT", "FLUSH")  # as a failover to a replica without them
        for i in range(5):
            alice.send(f"after the flush {i}")
        for i in range(5):
            bob.expect(f"<alice> after the flush {i}")  # in order, none lost
        assert on_loop(a, lambda: a.cluster.outages) == 0  # it never went alone
        # A nickname claimed just after a flush, and a quiet chat's heartbeat
        # after one: the same, scripts loaded again, nobody cut off.
        redis_server.call("SCRIPT", "FLUSH")
        carol = user(b, "carol")
        alice.expect("*** carol joined")
        redis_server.call("SCRIPT", "FLUSH")
        heartbeat = hashlib.sha1(HEARTBEAT).hexdigest()
        wait_until(lambda: redis_server.call("SCRIPT", "EXISTS", heartbeat) == [1], what="reload")
        carol.send("and back")
        alice.expect("<carol> and back")
        assert [on_loop(s, lambda s=s: s.cluster.outages) for s in (a, b)] == [0, 0]
        told = alice.pending + bob.pending + carol.pending
        assert not [line for line in told if "Lost touch" in line]
