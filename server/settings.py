"""`taskgate serve`'s settings: frozen, no I/O; its flags' types check the values
(server/cli.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskgate.command import DEFAULT_HTTP_ADDRESS, Address

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
    #: Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    grace_period: float = 10.0
    #: Seconds between database pings that drive readiness.
    health_interval: float = 5.0
