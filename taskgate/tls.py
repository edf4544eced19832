"""TLS for both commands: certificates loaded and checked, grpc credentials and an
`ssl.SSLContext` built from them, and reloaded on SIGHUP (docs/decisions.md P1, P8).

`ServerTLS` serves one set of files (--tls-cert, --tls-key, optional --tls-client-ca) on both
doors of a process: the gRPC door through `grpc.dynamic_ssl_server_credentials`, whose fetcher
hands grpc-core the new configuration at the next handshake after a reload; the HTTPS door
through one listening `SSLContext` whose SNI callback (called on every handshake, with or
without a server name) switches the connection to the newest context. A reload that fails
keeps the current certificates and says why; connections already open keep theirs.

`UpstreamTLS` is the client side of `taskgate gateway --upstream-tls`.

Every error names the flag and the file, never a file's contents. grpc is imported only by the
functions that build grpc credentials.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import grpc

log = logging.getLogger(__name__)

CERT_FLAG = "--tls-cert"
KEY_FLAG = "--tls-key"
CLIENT_CA_FLAG = "--tls-client-ca"
UPSTREAM_CA_FLAG = "--upstream-ca"

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PEM_PRIVATE_KEY = b"PRIVATE KEY-----"
_ENCRYPTED_KEY = (b"ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")
#: Attempts at reading a certificate and its key that did not change while being read (a
#: Kubernetes Secret volume swaps all its files at once, but two reads may straddle the swap).
_READ_ATTEMPTS = 3


class TLSError(Exception):
    """A TLS file cannot be used; the message names the flag and the file."""


@dataclass(frozen=True, slots=True)
class ServerTLSFiles:
    """Where a serving process reads its certificate, key and (for mTLS) client CA."""

    cert: Path
    key: Path
    #: PEM CA bundle; when set, clients must present a certificate it signed.
    client_ca: Path | None = None

    @classmethod
    def from_flags(
        cls, cert: Path | None, key: Path | None, client_ca: Path | None
    ) -> ServerTLSFiles | None:
        """The files the three flags name; None when TLS is off (neither cert nor key)."""
        if cert is None and key is None:
            if client_ca is not None:
                raise TLSError(f"{CLIENT_CA_FLAG} needs {CERT_FLAG} and {KEY_FLAG}")
            return None
        if cert is None or key is None:
            raise TLSError(f"{CERT_FLAG} and {KEY_FLAG} go together: give both or neither")
        return cls(cert, key, client_ca)


def checked_server_files(
    cert: Path | None, key: Path | None, client_ca: Path | None
) -> ServerTLSFiles | None:
    """The files the three flags name, loaded once to check them (start-up); None: no TLS."""
    files = ServerTLSFiles.from_flags(cert, key, client_ca)
    if files is not None:
        load_server_certificates(files)
    return files


@dataclass(frozen=True, slots=True)
class ServerCertificates:
    """The contents of a `ServerTLSFiles`, checked: the key matches the certificate, the CA
    bundle parses."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None


def _read(flag: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TLSError(f"{flag} {path}: cannot read: {error.strerror or error}") from None


def _no_password() -> bytes:
    raise TLSError("encrypted")


def load_server_certificates(files: ServerTLSFiles) -> tuple[ServerCertificates, ssl.SSLContext]:
    """Read and check `files`; their contents and an HTTPS server context serving them."""
    for _ in range(_READ_ATTEMPTS):
        chain, key = _read(CERT_FLAG, files.cert), _read(KEY_FLAG, files.key)
        context = _server_context(files, chain, key)
        if _read(CERT_FLAG, files.cert) == chain and _read(KEY_FLAG, files.key) == key:
            break
    else:
        raise TLSError(f"{CERT_FLAG} {files.cert}: kept changing while being read")
    client_ca = None
    if files.client_ca is not None:
        client_ca = _read(CLIENT_CA_FLAG, files.client_ca)
        _load_ca(context, CLIENT_CA_FLAG, files.client_ca, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return ServerCertificates(chain, key, client_ca), context


def _server_context(files: ServerTLSFiles, chain: bytes, key: bytes) -> ssl.SSLContext:
    if _PEM_CERTIFICATE not in chain:
        raise TLSError(f"{CERT_FLAG} {files.cert}: no PEM certificate in the file")
    if _PEM_PRIVATE_KEY not in key:
        raise TLSError(f"{KEY_FLAG} {files.key}: no PEM private key in the file")
    if any(marker in key for marker in _ENCRYPTED_KEY):
        raise TLSError(f"{KEY_FLAG} {files.key}: the key is encrypted; give an unencrypted key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(files.cert, files.key, password=_no_password)
    except TLSError:
        raise TLSError(
            f"{KEY_FLAG} {files.key}: the key is encrypted; give an unencrypted key"
        ) from None
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error):
            raise TLSError(
                f"{KEY_FLAG} {files.key}: does not match the certificate in {CERT_FLAG} "
                f"{files.cert}"
            ) from None
        raise TLSError(
            f"{CERT_FLAG} {files.cert} / {KEY_FLAG} {files.key}: unusable ({_reason(error)})"
        ) from None
    except OSError as error:  # the file went away between two reads
        raise TLSError(f"{CERT_FLAG} {files.cert}: cannot read: {error.strerror}") from None
    return context


def _load_ca(context: ssl.SSLContext, flag: str, path: Path, pem: bytes) -> None:
    if _PEM_CERTIFICATE not in pem:
        raise TLSError(f"{flag} {path}: no PEM certificate in the file")
    try:
        context.load_verify_locations(cadata=pem.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError) as error:
        raise TLSError(f"{flag} {path}: not a usable CA bundle ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error).splitlines()[0]


class ServerTLS:
    """The certificates a serving process presents on both doors, reloadable.

    `ServerTLS(files)` loads them (TLSError if it cannot); `reload()` (on SIGHUP) loads them
    again and, if that works, serves them to every new connection on both doors.
    """

    def __init__(self, files: ServerTLSFiles) -> None:
        self.files = files
        certificates, context = load_server_certificates(files)
        #: (generation, certificates, context): replaced whole, read by grpc-core's threads.
        self._current = (0, certificates, context)
        self._listening = context
        context.sni_callback = self._choose_context

    @property
    def certificates(self) -> ServerCertificates:
        return self._current[1]

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The context to listen with (aiohttp's site); it hands each new connection the
        newest certificates."""
        return self._listening

    def reload(self) -> bool:
        """Read the files again; on success new handshakes on both doors get the new
        certificates. On failure keep the current ones and log why. True if reloaded."""
        try:
            certificates, context = load_server_certificates(self.files)
        except TLSError as error:
            log.error("TLS reload failed, keeping the current certificates: %s", error)
            return False
        generation = self._current[0] + 1
        self._current = (generation, certificates, context)
        log.info("TLS certificates reloaded from %s %s", CERT_FLAG, self.files.cert)
        return True

    def _choose_context(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: object
    ) -> None:
        context = self._current[2]
        if connection.context is not context:
            connection.context = context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials for `add_secure_port`; they follow `reload()`."""
        import grpc

        served = self._current[0]

        def configuration(
            certificates: ServerCertificates,
        ) -> grpc.ServerCertificateConfiguration:
            return grpc.ssl_server_certificate_configuration(
                [(certificates.private_key, certificates.cert_chain)],
                root_certificates=certificates.client_ca,
            )

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # grpc-core asks before each handshake; None keeps what it has.
            nonlocal served
            generation, certificates, _ = self._current
            if generation == served:
                return None
            served = generation
            return configuration(certificates)

        # grpc's stubs leave out that the fetcher may return None ("no change").
        fetcher = cast("Callable[[], grpc.ServerCertificateConfiguration]", fetch)
        return grpc.dynamic_ssl_server_credentials(
            configuration(self.certificates),
            fetcher,
            require_client_authentication=self.files.client_ca is not None,
        )


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """`taskgate gateway --upstream-tls [--upstream-ca FILE] [--upstream-server-name NAME]`."""

    #: PEM CA bundle the upstream's certificate must chain to; None: grpc's default roots.
    ca: Path | None = None
    #: The name to verify in the upstream's certificate (and send as SNI); None: the host.
    server_name: str | None = None

    def check(self) -> None:
        """TLSError if the CA bundle cannot be used (checked at start-up)."""
        if self.ca is not None:
            context = ssl.create_default_context()
            _load_ca(context, UPSTREAM_CA_FLAG, self.ca, _read(UPSTREAM_CA_FLAG, self.ca))

    def channel_credentials(self) -> grpc.ChannelCredentials:
        import grpc

        roots = None if self.ca is None else _read(UPSTREAM_CA_FLAG, self.ca)
        return grpc.ssl_channel_credentials(root_certificates=roots)

    def channel_options(self) -> tuple[tuple[str, str], ...]:
        if self.server_name is None:
            return ()
        return (("grpc.ssl_target_name_override", self.server_name),)
