"""TLS for a listener's connections, sans-IO: bytes from the peer in, plain
bytes out; plain bytes in, bytes for the peer out.

Rule: nothing here touches a socket. The reactor moves the bytes (what it
reads goes to :meth:`TlsSession.receive`, what :meth:`TlsSession.outgoing`
returns it writes); the standard library's ``ssl.SSLObject`` over two
``ssl.MemoryBIO`` does the protocol. So a handshake never blocks the loop: it
is as many turns of receive() as the peer's flights take, and the reactor
bounds it in time (``[tls] handshake_timeout``).

:func:`server_context` makes the context a listener's sessions share, from
the operator's PEM files: ssl.create_default_context's server defaults (its
ciphers, no compression), no renegotiation, TLS 1.2 at least.
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Final

#: The least a peer may speak: TLS 1.0 and 1.1 are deprecated (RFC 8996).
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2
#: Plain bytes read out of the TLS object at most per call (a record is at
#: most 16 KiB of them): what one receive() returns is bounded by what the
#: reactor read (one recv), never more.
READ_BYTES: Final = 64 * 1024
#: Bytes a peer may send before its handshake is done: a ClientHello is a few
#: KiB (post-quantum key shares included), but OpenSSL would buffer one of up
#: to 128 KiB, per connection, for as long as the handshake may take.
MAX_HANDSHAKE_BYTES: Final = 32 * 1024


class TlsError(Exception):
    """The peer's TLS failed (a bad handshake, not TLS at all, a broken
    record): one line that says why, for the log. ``plain``: what the records
    before the failure carried, already decrypted (the server keeps it)."""

    def __init__(self, reason: str, plain: bytes = b"") -> None:
        super().__init__(reason)
        self.plain = plain


class TlsFileError(Exception):
    """A certificate or key that cannot be used: one line naming the file."""


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context with ``cert_file`` (PEM: the certificate, then any
    chain) and ``key_file`` (PEM, unencrypted); TlsFileError naming the file
    when one is missing, unreadable, or not a certificate and its key."""
    for path, what in ((cert_file, "certificate"), (key_file, "key")):
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            raise TlsFileError(f"{what} file {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    # A peer asking for a new handshake, again and again, would cost a
    # handshake's CPU each time on the one loop: TLS 1.2 renegotiation is off
    # (TLS 1.3 has none).
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        # An encrypted key would ask for its passphrase on the terminal:
        # the callback refuses instead (the loop never waits on a person).
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except ssl.SSLError as exc:
        raise TlsFileError(f"certificate {cert_file} with key {key_file}: {_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise TlsFileError(f"certificate {cert_file} with key {key_file}: {exc}") from None
    return context


def _no_passphrase() -> bytes:
    raise ValueError("the key is encrypted; chatd needs it unencrypted (readable only by chatd)")


class TlsSession:
    """One connection's TLS, server side, over ``context``."""

    __slots__ = ("_incoming", "_object", "_outgoing", "_shaking", "closed", "ended", "up")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        #: The handshake is done: plain bytes flow both ways.
        self.up = False
        #: The peer said it is done (close_notify): nothing more comes from it.
        self.closed = False
        #: We said we are done (close()): nothing more goes to it.
        self.ended = False
        self._shaking = 0  # bytes received before the handshake was done

    def receive(self, data: bytes) -> bytes:
        """Bytes from the peer: the plain bytes they carry (none while the
        handshake goes on; its answers are in :meth:`outgoing`). TlsError
        when the peer's TLS fails."""
        obj = self._object
        if not self.up:
            self._shaking += len(data)
            if self._shaking > MAX_HANDSHAKE_BYTES:
                raise TlsError(f"handshake over {MAX_HANDSHAKE_BYTES // 1024} KiB")
        self._incoming.write(data)
        chunks: list[bytes] = []
        try:
            if not self.up:
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    return b""
                self.up = True
            # Read while there are bytes to read: asking once more only to
            # hear SSLWantReadError costs an exception a call (microseconds,
            # on every read of every connection).
            while not self.closed and (self._incoming.pending or obj.pending()):
                try:
                    chunk = obj.read(READ_BYTES)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    self.closed = True
                    break
                if not chunk:  # (what read() gives for a close_notify)
                    self.closed = True
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except ssl.SSLError as exc:
            raise TlsError(_reason(exc), b"".join(chunks)) from None

    def send(self, data: bytes | memoryview) -> None:
        """Plain bytes for the peer (once :attr:`up`): encrypted into
        :meth:`outgoing`."""
        try:
            self._object.write(data)
        except ssl.SSLError as exc:
            raise TlsError(_reason(exc)) from None

    def outgoing(self) -> bytes:
        """The bytes to write to the peer now (handshake answers, records)."""
        return self._outgoing.read()

    def pending_bytes(self) -> int:
        """How many bytes :meth:`outgoing` holds."""
        return self._outgoing.pending

    def close(self) -> None:
        """Say we are done (close_notify, into :meth:`outgoing`): a courtesy;
        whatever the peer does next is not waited for."""
        if not self.up or self.ended:
            return
        self.ended = True
        # SSLWantReadError: its answer is not waited for; another: it is gone.
        with contextlib.suppress(ssl.SSLError):
            self._object.unwrap()

    @property
    def version(self) -> str:
        """The TLS version agreed ("TLSv1.3"), once up; "" before."""
        return (self._object.version() or "") if self.up else ""


def _reason(exc: ssl.SSLError) -> str:
    """An SSLError as one short line: OpenSSL's reason, without the file and
    line of its source it appends."""
    reason = exc.reason or exc.strerror or str(exc)
    return str(reason).replace("_", " ").lower()
