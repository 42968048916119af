"""TLS on the chat listeners, end to end: a real server on 127.0.0.1 with a
certificate made here (trustme), real TLS clients (`openssl s_client`, the
nc of TLS, and the standard library's), and plain nc users beside them."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.config import ServerSettings, load
from chatd.server import Server
from tests.certs import Certificate
from tests.helpers import (
    WAIT,
    LineClient,
    lifted_limits,
    make_config,
    on_loop,
    running_server,
    wait_until,
)


@pytest.fixture
def cert(tmp_path: Path) -> Certificate:
    return Certificate(tmp_path)


@pytest.fixture
def server(cert: Certificate) -> Iterator[Server]:
    config = make_config(tls=cert.settings(handshake_timeout=1))
    with running_server(config) as running:
        yield running


def named(client: LineClient, nick: str) -> LineClient:
    client.register(nick)
    return client


def tls_user(server: Server, context: ssl.SSLContext, nick: str = "") -> LineClient:
    raw = socket.create_connection(server.tls_addresses["nc"], timeout=WAIT)
    client = LineClient.adopt(context.wrap_socket(raw, server_hostname="127.0.0.1"))
    return named(client, nick) if nick else client


def nc_user(server: Server, nick: str) -> LineClient:
    assert server.address is not None
    return named(LineClient(server.address), nick)


def test_openssl_s_client_chats_with_a_plain_nc_user(server: Server, cert: Certificate) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command here")
    host, port = server.tls_addresses["nc"]
    bob = nc_user(server, "bob")
    client = subprocess.Popen(
        [openssl, "s_client", "-connect", f"{host}:{port}", "-CAfile", str(cert.ca_file),
         "-verify_return_error", "-quiet", "-no_ign_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert client.stdin is not None and client.stdout is not None
    try:
        client.stdin.write(b"alice\n")
        client.stdin.flush()
        bob.expect("*** alice joined")
        client.stdin.write(b"hello over TLS\n")
        client.stdin.flush()
        bob.expect("<alice> hello over TLS")
        bob.send("and back in plain")
        deadline = time.monotonic() + WAIT
        seen = []
        while time.monotonic() < deadline:
            line = client.stdout.readline().decode().rstrip("\r\n")
            seen.append(line)
            if line == "<bob> and back in plain":
                break
        else:
            raise AssertionError(f"s_client never got bob's line: {seen}")
        assert "*** Welcome, alice! 2 users online; you are in #lobby." in " ".join(seen)
    finally:
        client.stdin.close()
        client.wait(WAIT)


def test_a_client_that_stalls_mid_handshake_is_dropped_and_nobody_waits(
    server: Server, cert: Certificate
) -> None:
    alice, bob = nc_user(server, "alice"), nc_user(server, "bob")
    staller = socket.create_connection(server.tls_addresses["nc"], timeout=WAIT)
    staller.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
    began = time.monotonic()
    for i in range(5):  # the loop serves everyone meanwhile
        alice.send(f"line {i}")
        bob.expect(f"<alice> line {i}")
    staller.settimeout(WAIT)
    assert staller.recv(100) == b""  # closed at the timeout (1 s here)
    assert 0.8 < time.monotonic() - began < WAIT
    tls_user(server, cert.client_context(), "carol")  # and the next one is served
    alice.expect("*** carol joined")


def test_garbage_instead_of_a_client_hello_is_closed_and_logged_once(
    server: Server, cert: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = nc_user(server, "alice"), nc_user(server, "bob")
    with caplog.at_level(logging.INFO, logger="chatd.core.reactor"):
        junk = socket.create_connection(server.tls_addresses["nc"], timeout=WAIT)
        junk.sendall(b"NICK alice\r\nUSER a 0 * :a\r\n" * 50)
        assert junk.recv(4096)[:1] in (b"\x15", b"")  # an alert, or the end
        junk.settimeout(WAIT)
        while junk.recv(4096):
            pass
        alice.send("still here")
        bob.expect("<alice> still here")
    failed = [r.getMessage() for r in caplog.records if "TLS failed" in r.getMessage()]
    assert len(failed) == 1, failed
    assert re.fullmatch(r"127\.0\.0\.1:\d+: TLS failed \([a-z ]+\); closed", failed[0])


def test_a_new_certificate_is_loaded_for_new_connections_without_dropping_anyone(
    server: Server, cert: Certificate, tmp_path: Path
) -> None:
    old_trust = cert.client_context()
    alice = tls_user(server, old_trust, "alice")
    bob = nc_user(server, "bob")
    (tmp_path / "new").mkdir()
    renewed = Certificate(tmp_path / "new")
    # The server's files are replaced by a certificate of another CA.
    shutil.copy(renewed.cert_file, cert.cert_file)
    shutil.copy(renewed.key_file, cert.key_file)
    report = on_loop(server, lambda: server.reload("tls"))
    assert not report.failed and report[0].startswith("tls: ") and "loaded" in report[0]
    alice.send("still on the old one")
    bob.expect("<alice> still on the old one")
    carol = tls_user(server, renewed.client_context(), "carol")  # the new one is served
    bob.expect("*** carol joined")
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_user(server, old_trust)  # and the old one no longer
    # A certificate that does not load keeps the one there is.
    cert.cert_file.write_text("-----BEGIN CERTIFICATE-----\nnot one\n")
    report = on_loop(server, lambda: server.reload("tls"))
    assert report.failed
    kept = "tls: reload failed, kept the old certificate: [tls] certificate"
    assert report[0].startswith(f"{kept} {cert.cert_file} with key {cert.key_file}: ")
    tls_user(server, renewed.client_context(), "dave")
    carol.expect("*** dave joined")


def test_tls_only_listeners_and_bad_files_at_startup(cert: Certificate, tmp_path: Path) -> None:
    tls_only = ServerSettings(host="127.0.0.1", port=0, tls_port=0, plain=False)
    config = make_config(tls=cert.settings(), server=tls_only)
    with running_server(config) as server:
        assert server.tls_addresses["nc"] == server.address  # the chat is over TLS only
        tls_user(server, cert.client_context(), "alice")
    missing = tmp_path / "missing.pem"
    toml = tmp_path / "chatd.toml"
    toml.write_text(
        f'[tls]\ncert_file = "{missing}"\n[server]\nport = 0\ntls_port = 0\n'
        "[irc]\nenabled = false\n[web]\nenabled = false\n[admin]\nenabled = false\n"
        '[store]\npath = ":memory:"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "chatd", "serve", "--config", str(toml)],
        capture_output=True, text=True, timeout=WAIT * 3,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"chatd: [tls] certificate file {missing}: No such file or directory"
    )


def test_the_tls_listeners_are_counted_apart_in_the_metrics(
    server: Server, cert: Certificate
) -> None:
    tls_user(server, cert.client_context(), "alice")
    wait_until(
        lambda: on_loop(server, lambda: b'listener="nc-tls"' in server.metrics()),
        what="nc-tls in /metrics",
    )


def test_irc_and_the_web_listen_over_tls_too(server: Server, cert: Certificate) -> None:
    context = cert.client_context()
    raw = socket.create_connection(server.tls_addresses["irc"], timeout=WAIT)
    irc = LineClient.adopt(context.wrap_socket(raw, server_hostname="127.0.0.1"))
    irc.send("NICK alice")
    irc.send("USER alice 0 * :Alice")
    irc.expect(re.compile(r" 001 alice "))
    raw = socket.create_connection(server.tls_addresses["web"], timeout=WAIT)
    web = context.wrap_socket(raw, server_hostname="127.0.0.1")
    web.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := web.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]


class ByHand:
    """A TLS client over a real socket whose records are made in memory
    first, so that several go out in one write (lines and the end together,
    lines and a bad record)."""

    def __init__(self, server: Server, cert: Certificate) -> None:
        self.sock = socket.create_connection(server.tls_addresses["nc"], timeout=WAIT)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = cert.client_context().wrap_bio(
            self.incoming, self.outgoing, server_hostname="127.0.0.1"
        )
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.sock.sendall(self.outgoing.read())

    def records(self, data: bytes) -> bytes:
        self.tls.write(data)
        return self.outgoing.read()

    def end(self) -> bytes:
        with contextlib.suppress(ssl.SSLWantReadError):  # its answer is not waited for
            self.tls.unwrap()
        return self.outgoing.read()


def test_lines_sent_with_the_close_notify_all_arrive_at_flood_controls_pace(
    cert: Certificate,
) -> None:
    limits = lifted_limits(flood_burst=5, flood_rate=50)
    with running_server(make_config(tls=cert.settings(), limits=limits)) as server:
        bob = nc_user(server, "bob")
        alice = ByHand(server, cert)
        lines = b"alice\n" + b"".join(f"line {i}\n".encode() for i in range(20))
        # 20 lines and the end in one write: reading pauses after a few of them.
        alice.sock.sendall(alice.records(lines) + alice.end())
        for i in range(20):
            bob.expect(f"<alice> line {i}")
        bob.expect(re.compile(r"^\*\*\* alice left"))


def test_lines_before_a_bad_record_are_kept_and_the_client_is_told_why(
    server: Server, cert: Certificate
) -> None:
    bob = nc_user(server, "bob")
    alice = ByHand(server, cert)
    said = alice.records(b"alice\n" + b"".join(f"kept {i}\n".encode() for i in range(5)))
    broken = b"\x17\x03\x03\x00\x20" + bytes(32)  # a record no key made
    alice.sock.sendall(said + broken)
    for i in range(5):
        bob.expect(f"<alice> kept {i}")
    bob.expect(re.compile(r"^\*\*\* alice left \(TLS failed"))


def test_a_client_refused_in_the_handshake_hears_why(server: Server, cert: Certificate) -> None:
    context = cert.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")  # RSA key exchange, SHA-1: nothing the server offers
    raw = socket.create_connection(server.tls_addresses["nc"], timeout=WAIT)
    with pytest.raises(ssl.SSLError, match="alert"):  # an alert, not a bare close
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_tls_1_2_clients_chat_too(server: Server, cert: Certificate) -> None:
    context = cert.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    alice = tls_user(server, context, "alice")
    assert isinstance(alice.sock, ssl.SSLSocket) and alice.sock.version() == "TLSv1.2"
    bob = nc_user(server, "bob")
    alice.send("over 1.2")
    bob.expect("<alice> over 1.2")


def test_a_config_reload_that_changes_tls_applies_it(cert: Certificate, tmp_path: Path) -> None:
    toml = tmp_path / "chatd.toml"
    base = (
        "[server]\nport = 0\ntls_port = 0\n[irc]\nenabled = false\n[web]\nenabled = false\n"
        '[admin]\nenabled = false\n[store]\npath = ":memory:"\n'
        f'[tls]\ncert_file = "{cert.cert_file}"\nkey_file = "{cert.key_file}"\n'
    )
    toml.write_text(base + "handshake_timeout = 10\n")
    with running_server(load(toml)) as server:
        toml.write_text(base + "handshake_timeout = 2\n")
        report = on_loop(server, lambda: server.reload("config"))
        assert not report.failed
        assert any(line.startswith("tls: ") and "loaded" in line for line in report), report
        assert on_loop(server, lambda: server._tls.handshake_timeout) == 2  # type: ignore[union-attr]
        report = on_loop(server, lambda: server.reload("config"))  # nothing changed: not again
        assert not any(line.startswith("tls: ") for line in report), report


def test_a_tls_client_that_never_reads_is_cut_off_at_its_sendq(cert: Certificate) -> None:
    limits = lifted_limits(sendq_bytes=8192, max_line_bytes=6000)
    with running_server(make_config(tls=cert.settings(), limits=limits)) as server:
        sleeper = tls_user(server, cert.client_context(), "sleeper")  # reads nothing from now
        assert isinstance(sleeper.sock, ssl.SSLSocket)
        sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        alice, bob = nc_user(server, "alice"), nc_user(server, "bob")
        # A line a turn, each well within the sendq: what grows is what TLS
        # has sealed and the sleeper's socket does not take.
        text = "x" * 5000
        deadline = time.monotonic() + WAIT
        while on_loop(server, lambda: server.hub.find("sleeper")) is not None:
            assert time.monotonic() < deadline, "the sleeper was never cut off"
            alice.send(text)
            bob.expect(f"<alice> {text}")
        bob.expect(re.compile(r"^\*\*\* sleeper left \(sendq exceeded\)$"))
