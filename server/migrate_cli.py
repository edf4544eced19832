"""`taskgate migrate`: apply the database migrations and exit (docs/decisions.md P9).

The same database flags as `taskgate serve` (server/cli.py) and the same bootstrap
(server/database.py): an external PostgreSQL from --database-url or --database-url-file, or the
embedded one in --data-dir (started, migrated, stopped). Migrations are applied under an
advisory lock, so an init container in every replica may run this at once. Exit 0 when the
database holds every migration; otherwise one line on stderr and exit 1 (a usage error, such as
an unreadable --database-url-file, exits 2 like every flag error).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping

from taskgate.command import add_log_arguments, configure_logging
from taskgate.server.cli import add_database_arguments, database_url_of
from taskgate.server.settings import ServeSettings

HELP = "apply the database migrations and exit"
DESCRIPTION = (
    "Apply taskgate's database migrations and exit: 0 when the database is up to date. "
    "Safe to run from several replicas at once (an advisory lock serialises them). Without "
    "--database-url, migrates the embedded PostgreSQL in --data-dir."
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """`taskgate migrate`'s flags, defaults from `env`; the parsed namespace runs `run`."""
    add_database_arguments(parser, env)
    add_log_arguments(parser, env)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = ServeSettings(database_url=database_url_of(args), data_dir=args.data_dir)
    configure_logging(args.log_level, log_format=args.log_format)
    from taskgate.store.errors import StoreError  # the database's modules load only now

    try:
        asyncio.run(migrate(settings))
    except StoreError as error:
        # One line; what follows it (an embedded server's log tail) only at DEBUG.
        first, _, rest = str(error).partition("\n")
        print(f"taskgate migrate: {first}", file=sys.stderr)  # noqa: T201 - the command's output
        if rest:
            log.debug("%s", rest)
        return 1
    log.info("the database is up to date")
    return 0


async def migrate(settings: ServeSettings) -> None:
    """Every migration applied to the database `settings` name (StoreError otherwise)."""
    from taskgate.server.database import database_origin, database_url, migrated_pool

    async with database_url(settings) as dsn, migrated_pool(dsn, database_origin(settings)):
        pass
