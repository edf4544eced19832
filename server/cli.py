"""`taskgate serve`: its flags and how it runs (docs/decisions.md S1-S5). The top-level
`taskgate` command (taskgate/cli.py) and `python -m taskgate.server` (server/__main__.py) both
come here.

Each flag is also read from TASKGATE_<FLAG> (taskgate/command.py); the flag wins over the
environment variable, which wins over the default (docs/decisions.md S2). grpc is imported only
once the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from taskgate.command import (
    DEFAULT_HTTP_ADDRESS,
    Address,
    SettingsError,
    add_flag,
    configure_logging,
    log_level,
    optional,
    run_command,
)
from taskgate.server.settings import DEFAULT_DATA_DIR, DEFAULT_GRPC_ADDRESS, ServeSettings

HELP = "serve api.TaskService over gRPC and REST on PostgreSQL"
DESCRIPTION = (
    "Serve api.TaskService over gRPC (with reflection and health) and REST. "
    "Without --database-url, an embedded PostgreSQL is started in --data-dir."
)


def worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise SettingsError(f"expected a number, got {text!r}") from None
    if count < 1:
        raise SettingsError(f"expected a positive number, got {count}")
    return count


def database_url(text: str) -> str:
    if not text.startswith(("postgres://", "postgresql://")):
        raise SettingsError("expected a postgresql:// URL")
    return text


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """`taskgate serve`'s flags, defaults from `env`; the parsed namespace runs `run`."""
    add_flag(
        parser,
        env,
        "--grpc-address",
        "where to serve gRPC",
        str(DEFAULT_GRPC_ADDRESS),
        type=Address.parse,
    )
    add_flag(
        parser,
        env,
        "--http-address",
        "where to serve REST",
        str(DEFAULT_HTTP_ADDRESS),
        type=Address.parse,
    )
    database = parser.add_mutually_exclusive_group()
    add_flag(
        database,
        env,
        "--database-url",
        "an external PostgreSQL (postgresql://...)",
        type=optional(database_url),
    )
    add_flag(
        database,
        env,
        "--data-dir",
        "where the embedded PostgreSQL keeps its data",
        str(DEFAULT_DATA_DIR),
        type=Path,
    )
    add_flag(parser, env, "--workers", "worker processes sharing the ports", "1", type=worker_count)
    add_flag(parser, env, "--log-level", "DEBUG, INFO, WARNING or ERROR", "INFO", type=log_level)
    parser.set_defaults(run=run)


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(
        grpc_address=args.grpc_address,
        http_address=args.http_address,
        database_url=args.database_url,
        data_dir=args.data_dir,
        workers=args.workers,
        log_level=args.log_level,
    )


def run(args: argparse.Namespace) -> int:
    settings = serve_settings(args)
    configure_logging(settings.log_level)
    if settings.workers > 1:
        from taskgate.server.workers import run_workers

        return asyncio.run(run_workers(settings))
    from taskgate.server.lifecycle import run_serve

    return asyncio.run(run_serve(settings))


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """`taskgate serve` on its own, as `python -m taskgate.server` runs it."""
    parser = argparse.ArgumentParser(prog="taskgate serve", description=DESCRIPTION)
    add_arguments(parser, env)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_command(build_parser(os.environ if env is None else env), argv)
