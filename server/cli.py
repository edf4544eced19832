"""`taskgate serve`: its flags and how it runs (docs/decisions.md S1-S5). The top-level
`taskgate` command (taskgate/cli.py) and `python -m taskgate.server` (server/__main__.py) both
come here.

Each flag is also read from TASKGATE_<FLAG> (taskgate/command.py); the flag wins over the
environment variable, which wins over the default (docs/decisions.md S2). grpc is imported only
once the command runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from taskgate.command import (
    DEFAULT_HTTP_ADDRESS,
    Address,
    SettingsError,
    add_cors_arguments,
    add_flag,
    add_limit_arguments,
    add_log_arguments,
    add_loop_argument,
    add_shutdown_arguments,
    add_tls_arguments,
    configure_logging,
    cors_origins,
    optional,
    positive_int,
    run_command,
    run_on_loop,
    tls_files,
)
from taskgate.server.settings import DEFAULT_DATA_DIR, DEFAULT_GRPC_ADDRESS, ServeSettings

HELP = "serve api.TaskService over gRPC and REST on PostgreSQL"
DESCRIPTION = (
    "Serve api.TaskService over gRPC (with reflection and health) and REST. "
    "Without --database-url, an embedded PostgreSQL is started in --data-dir."
)


def database_url(text: str) -> str:
    """A postgresql:// URL whose host and port can be read (asyncpg would fail on them later,
    with a traceback); whether the server is there is found out at start-up."""
    if not text.startswith(("postgres://", "postgresql://")):
        raise SettingsError("expected a postgresql:// URL")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as error:
        raise SettingsError(f"not a valid postgresql:// URL: {error}") from None
    return text


def database_url_file(text: str) -> str:
    """The URL held in a file (e.g. a mounted Kubernetes Secret), surrounding whitespace
    stripped. Errors name the file, never its contents."""
    path = Path(text)
    try:
        url = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        raise SettingsError(f"cannot read {path}: {reason}") from None
    if not url:
        raise SettingsError(f"{path} is empty")
    try:
        return database_url(url)
    except SettingsError as error:
        raise SettingsError(f"{path}: {error}") from None


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """`taskgate serve`'s flags, defaults from `env`; the parsed namespace runs `run`."""
    add_flag(
        parser,
        env,
        "--grpc-address",
        "where to serve gRPC",
        str(DEFAULT_GRPC_ADDRESS),
        metavar="HOST:PORT",
        type=Address.parse,
    )
    add_flag(
        parser,
        env,
        "--http-address",
        "where to serve REST",
        str(DEFAULT_HTTP_ADDRESS),
        metavar="HOST:PORT",
        type=Address.parse,
    )
    add_database_arguments(parser, env)
    add_flag(
        parser,
        env,
        "--workers",
        "worker processes sharing the ports",
        "1",
        metavar="N",
        type=positive_int,
    )
    add_shutdown_arguments(parser, env)
    add_tls_arguments(parser, env)
    add_log_arguments(parser, env)
    add_loop_argument(parser, env)
    add_limit_arguments(parser, env)
    add_cors_arguments(parser, env)
    add_authz_arguments(parser, env)
    parser.set_defaults(run=run)


def add_database_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--database-url URL | --database-url-file FILE | --data-dir DIR, shared by `serve` and
    `migrate` (server/migrate_cli.py); `database_settings(args)` reads them."""
    database = parser.add_mutually_exclusive_group()
    add_flag(
        database,
        env,
        "--database-url",
        "an external PostgreSQL (postgresql://...)",
        metavar="URL",
        type=optional(database_url),
    )
    add_flag(
        database,
        env,
        "--database-url-file",
        "a file holding the postgresql:// URL (a mounted secret), kept out of ps and the "
        "environment",
        metavar="FILE",
        type=optional(database_url_file),
    )
    add_flag(
        database,
        env,
        "--data-dir",
        "where the embedded PostgreSQL keeps its data",
        str(DEFAULT_DATA_DIR),
        metavar="DIR",
        type=Path,
    )


def add_authz_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--authz-policy FILE: multi-user mode (server/authz; docs/security.md)."""
    add_flag(
        parser,
        env,
        "--authz-policy",
        "multi-user mode: identities and per-namespace rights from this YAML or JSON policy "
        "(reloaded on SIGHUP); off by default",
        metavar="FILE",
        type=optional(Path),
    )


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(
        grpc_address=args.grpc_address,
        http_address=args.http_address,
        database_url=_database_url(args),
        data_dir=args.data_dir,
        workers=args.workers,
        log_level=args.log_level,
        loop=args.loop,
        log_format=args.log_format,
        grace_period=args.shutdown_grace,
        shutdown_lag=args.shutdown_lag,
        max_message_bytes=args.max_message_bytes,
        max_concurrent_calls=args.max_concurrent_calls,
        tls=tls_files(args),
        authz_policy=args.authz_policy,
        cors_origins=cors_origins(args),
    )


def database_url_of(args: argparse.Namespace) -> str | None:
    """--database-url or the URL read from --database-url-file; None: the embedded one."""
    return _database_url(args)


def _database_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.database_url
    from_file: str | None = args.database_url_file
    if url is not None and from_file is not None:
        raise SettingsError("give --database-url or --database-url-file, not both")
    return url if from_file is None else from_file


def run(args: argparse.Namespace) -> int:
    settings = serve_settings(args)
    configure_logging(settings.log_level, log_format=settings.log_format)
    if settings.workers > 1:
        from taskgate.server.workers import run_workers

        return run_on_loop(run_workers(settings), settings.loop)  # each worker: its traces
    from taskgate.server.lifecycle import run_serve
    from taskgate.tracing import configure_from_environment

    configure_from_environment()  # P13: OTEL_* variables, with the SDK installed

    return run_on_loop(run_serve(settings), settings.loop)


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """`taskgate serve` on its own, as `python -m taskgate.server` runs it."""
    parser = argparse.ArgumentParser(prog="taskgate serve", description=DESCRIPTION)
    add_arguments(parser, env)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_command(build_parser(os.environ if env is None else env), argv)
