"""Command-line settings: frozen, validated at construction, no I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

DEFAULT_GRPC_ADDRESS = "127.0.0.1:8887"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8888"
DEFAULT_DATA_DIR = Path(".taskgate")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A flag or environment variable has a value taskgate cannot use."""


@dataclass(frozen=True, slots=True)
class Address:
    """HOST:PORT, with [v6]:PORT accepted; port 0 asks the OS for a free one."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, flag: str) -> Address:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
            raise SettingsError(f"{flag}: expected HOST:PORT (e.g. 127.0.0.1:8887), got {text!r}")
        return cls(host.removeprefix("[").removesuffix("]"), int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Everything `taskgate serve` needs (DECISIONS §2)."""

    grpc_address: Address = Address("127.0.0.1", 8887)
    http_address: Address = Address("127.0.0.1", 8888)
    #: An external PostgreSQL; None starts the embedded one in data_dir.
    database_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    workers: int = 1
    log_level: str = "INFO"
    #: Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    grace_period: float = 10.0
    #: Seconds between database pings that drive readiness.
    health_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise SettingsError(f"--workers: expected a positive number, got {self.workers}")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.database_url is not None and not self.database_url.startswith(
            ("postgres://", "postgresql://")
        ):
            raise SettingsError("--database-url: expected a postgresql:// URL")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything `taskgate gateway` needs (DECISIONS §2, §5)."""

    upstream: Address
    http_address: Address = Address("127.0.0.1", 8888)
    descriptor_set: Path | None = None
    strict: bool = False
    #: "proto" or "json"; None: the preset's choice.
    json_names: str | None = None
    emit_unpopulated: bool = False
    preset: str | None = None
    #: Seconds between re-discoveries of the upstream's services (0: never).
    refresh_interval: float = 0.0
    #: Deadline of a unary call without a Grpc-Timeout header (0: none).
    timeout: float = 30.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.json_names not in (None, "proto", "json"):
            raise SettingsError(f"--json-names: expected proto or json, got {self.json_names!r}")
        if self.preset not in (None, "kfp"):
            raise SettingsError(f"--preset: the only preset is kfp, got {self.preset!r}")
        if self.refresh_interval < 0:
            raise SettingsError("--refresh-interval: expected seconds >= 0")
        if self.timeout < 0:
            raise SettingsError("--timeout: expected seconds >= 0")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )


def configure_logging(level: str, prefix: str = "") -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
    )
