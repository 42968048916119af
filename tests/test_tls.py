"""TLS sans-IO (chatd.wire.tls): a server session and a real client (the
standard library's, over memory) handshake and talk without a socket; a
peer that is not TLS fails with a reason; the operator's files are checked
with one line naming the one at fault."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest
import trustme

from chatd.wire.tls import TlsError, TlsFileError, TlsSession, server_context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return cert_file, key_file


class Client:
    """A TLS client over memory: what it writes is given to the server by hand."""

    def __init__(self, ca: trustme.CA, **options: object) -> None:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        for name, value in options.items():
            setattr(context, name, value)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def step(self) -> bytes:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.obj.do_handshake()
        return self.outgoing.read()


def _handshake(server: TlsSession, client: Client) -> None:
    for _ in range(10):  # a few flights each way
        server.receive(client.step())
        client.incoming.write(server.outgoing())
        if server.up and client.step() == b"":
            return
    raise AssertionError("no handshake in 10 flights")


def test_a_client_and_the_server_handshake_and_talk(
    ca: trustme.CA, files: tuple[Path, Path]
) -> None:
    server = TlsSession(server_context(*files))
    client = Client(ca)
    assert server.receive(client.step()) == b""  # the ClientHello: an answer, no plain bytes
    answer = server.outgoing()
    assert not server.up and answer  # ServerHello ... on its way back
    client.incoming.write(answer)
    _handshake(server, client)
    assert server.up and server.version in ("TLSv1.2", "TLSv1.3")
    client.obj.write(b"hello\r\n")
    assert server.receive(client.outgoing.read()) == b"hello\r\n"
    server.send(b"*** Welcome\r\n")
    client.incoming.write(server.outgoing())
    assert client.obj.read(100) == b"*** Welcome\r\n"
    server.close()  # close_notify, on its way
    client.incoming.write(server.outgoing())
    assert client.obj.read(100) == b""  # the end, said


def test_a_peer_that_says_it_is_done_is_closed(ca: trustme.CA, files: tuple[Path, Path]) -> None:
    server = TlsSession(server_context(*files))
    client = Client(ca)
    _handshake(server, client)
    client.obj.write(b"last words")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.obj.unwrap()
    assert server.receive(client.outgoing.read()) == b"last words"
    assert server.closed


def test_what_is_not_tls_fails_with_a_reason(files: tuple[Path, Path]) -> None:
    server = TlsSession(server_context(*files))
    with pytest.raises(TlsError, match=r"wrong version number|http request|unknown protocol"):
        server.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_tls_1_2_is_the_least_spoken(ca: trustme.CA, files: tuple[Path, Path]) -> None:
    context = server_context(*files)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2  # 1.0 and 1.1 refused
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_NO_COMPRESSION
    server = TlsSession(context)
    client = Client(ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    _handshake(server, client)
    assert server.version == "TLSv1.2"


def test_bad_files_are_named_in_one_line(files: tuple[Path, Path], tmp_path: Path) -> None:
    cert_file, key_file = files
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsFileError, match=rf"^certificate file {missing}: No such file"):
        server_context(missing, key_file)
    with pytest.raises(TlsFileError, match=rf"^key file {missing}: No such file"):
        server_context(cert_file, missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsFileError, match=rf"^certificate {junk} with key {key_file}: ") as info:
        server_context(junk, key_file)
    assert "\n" not in str(info.value)
    with pytest.raises(TlsFileError, match=rf"^certificate {cert_file} with key {cert_file}"):
        server_context(cert_file, cert_file)  # no key in it


def test_an_encrypted_key_is_refused_not_asked_for(ca: trustme.CA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = ca.issue_cert("localhost")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.cert_chain_pems[0].bytes())
    key_file.write_bytes(locked)
    with pytest.raises(TlsFileError, match="encrypted"):
        server_context(cert_file, key_file)


def test_a_handshake_past_its_bound_fails(files: tuple[Path, Path]) -> None:
    server = TlsSession(server_context(*files))
    # A ClientHello said to be 64 KiB long, in records of 16 KiB: OpenSSL would
    # wait for all of it.
    record = b"\x16\x03\x01\x40\x00"
    assert server.receive(record + b"\x01\x00\xff\xff" + bytes(16 * 1024 - 4)) == b""
    with pytest.raises(TlsError, match="handshake over 32 KiB"):
        server.receive(record + bytes(16 * 1024))
