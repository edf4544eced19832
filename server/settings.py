"""`taskgate serve`'s settings: frozen, no I/O; its flags' types check the values
(server/cli.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskgate.command import (
    DEFAULT_HTTP_ADDRESS,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SHUTDOWN_LAG,
    Address,
)
from taskgate.tls import ServerTLSFiles

DEFAULT_GRPC_ADDRESS = Address("127.0.0.1", 8887)
DEFAULT_DATA_DIR = Path(".taskgate")


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Everything `taskgate serve` needs (docs/decisions.md S1-S5)."""

    grpc_address: Address = DEFAULT_GRPC_ADDRESS
    http_address: Address = DEFAULT_HTTP_ADDRESS
    #: An external PostgreSQL; None starts the embedded one in data_dir.
    database_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    workers: int = 1
    log_level: str = "INFO"
    #: --loop: "asyncio" or "uvloop" (decision P30); --workers children run on it too.
    loop: str = "asyncio"
    #: --log-format: "text" or "json" (one JSON object per line).
    log_format: str = "text"
    #: --shutdown-grace: seconds after SIGTERM/SIGINT within which in-flight calls on both
    #: doors finish (one budget, the lag included).
    grace_period: float = DEFAULT_SHUTDOWN_GRACE
    #: --shutdown-lag: seconds the listeners keep accepting after SIGTERM/SIGINT while
    #: readiness says NOT_SERVING (at most half the grace).
    shutdown_lag: float = DEFAULT_SHUTDOWN_LAG
    #: Seconds between database pings that drive readiness.
    health_interval: float = 5.0
    #: --tls-cert, --tls-key, --tls-client-ca: TLS on both doors; None serves plaintext.
    tls: ServerTLSFiles | None = None
    #: --max-message-bytes: REST bodies (after decompression) and gRPC messages either way.
    max_message_bytes: int = 4 * 1024 * 1024
    #: --max-concurrent-calls: calls each door runs at once; more are refused at once.
    max_concurrent_calls: int = 1000
    #: --authz-policy: multi-user mode's policy file (server/authz); None: single-user (KFP).
    authz_policy: Path | None = None
    #: --cors-origin: origins allowed to call the REST door from a browser; none by default.
    cors_origins: tuple[str, ...] = ()
