"""Certificates for the TLS tests, made in memory by trustme: a CA of the
test's own, and the server's certificate and key in files, as an operator
has them."""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path

import trustme

from chatd.config import TlsSettings


class Certificate:
    """A CA of its own, and files for the server: what an operator has."""

    def __init__(self, folder: Path, name: str = "chat") -> None:
        self.ca = trustme.CA()
        self.folder = folder
        self.ca_file = folder / f"{name}-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file = folder / "cert.pem"
        self.key_file = folder / "key.pem"
        self.issue()

    def issue(self) -> None:
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.key_file))

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return context

    def spki_sha256(self) -> str:
        """The server key's SubjectPublicKeyInfo hashed, base64: what Chromium's
        --ignore-certificate-errors-spki-list trusts."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    def settings(self, **more: object) -> TlsSettings:
        return TlsSettings(
            cert_file=str(self.cert_file),
            key_file=str(self.key_file),
            **more,  # type: ignore[arg-type]
        )
