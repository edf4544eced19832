"""Certificates made at test time (trustme), written as the files taskgate reads, and the
client-side settings that trust them."""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

import grpc
import trustme

from taskgate.tls import ServerTLSFiles

IDENTITIES = ("127.0.0.1", "localhost")


def write_atomically(path: Path, data: bytes) -> None:
    """As a Kubernetes Secret volume updates: the new file appears whole."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def expired(ca: trustme.CA, *identities: str) -> trustme.LeafCert:
    now = datetime.datetime.now(datetime.UTC)
    return ca.issue_cert(
        *(identities or IDENTITIES),
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )


class Pki:
    """A server CA, a client CA (for mutual TLS), and files in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.ca_file = self.write_ca(self.ca, "ca.pem")
        self.client_ca_file = self.write_ca(self.client_ca, "client-ca.pem")

    def write_ca(self, ca: trustme.CA, name: str) -> Path:
        path = self.directory / name
        write_atomically(path, ca.cert_pem.bytes())
        return path

    def server_files(
        self,
        leaf: trustme.LeafCert | None = None,
        *,
        name: str = "server",
        mutual: bool = False,
    ) -> ServerTLSFiles:
        """--tls-cert/--tls-key (and --tls-client-ca if `mutual`) files holding `leaf`
        (default: a certificate for 127.0.0.1 from `ca`)."""
        files = ServerTLSFiles(
            self.directory / f"{name}.crt",
            self.directory / f"{name}.key",
            self.client_ca_file if mutual else None,
        )
        self.install(files, leaf or self.ca.issue_cert(*IDENTITIES))
        return files

    @staticmethod
    def install(files: ServerTLSFiles, leaf: trustme.LeafCert) -> None:
        write_atomically(files.cert, b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        write_atomically(files.key, leaf.private_key_pem.bytes())

    def client_files(self, leaf: trustme.LeafCert, name: str = "client") -> tuple[Path, Path]:
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        write_atomically(cert, leaf.cert_chain_pems[0].bytes())
        write_atomically(key, leaf.private_key_pem.bytes())
        return cert, key


def client_context(ca: trustme.CA, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    return context


def channel_credentials(
    ca: trustme.CA, client: trustme.LeafCert | None = None
) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(ca.cert_pem.bytes())
    return grpc.ssl_channel_credentials(
        ca.cert_pem.bytes(), client.private_key_pem.bytes(), client.cert_chain_pems[0].bytes()
    )


def served_certificate(port: int, ca: trustme.CA, alpn: str = "http/1.1") -> bytes:
    """The DER certificate a new TLS connection to 127.0.0.1:port is served (verified
    against `ca`)."""
    import socket

    context = client_context(ca)
    context.set_alpn_protocols([alpn])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
