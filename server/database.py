"""`taskgate serve`'s database, for both a single process (lifecycle.py) and --workers
(workers.py): --database-url, or the embedded PostgreSQL in --data-dir; migrated at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg

from taskgate.server.settings import ServeSettings
from taskgate.store.embedded import EmbeddedPostgres
from taskgate.store.errors import StoreError
from taskgate.store.migrate import apply_migrations
from taskgate.store.pool import pool_context

log = logging.getLogger(__name__)


@asynccontextmanager
async def database_url(settings: ServeSettings) -> AsyncIterator[str]:
    """The DSN to use: --database-url, or the embedded PostgreSQL's, started in --data-dir (and
    stopped at the end if this process started it)."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    log.info("starting the embedded PostgreSQL in %s", settings.data_dir.resolve())
    dsn = await embedded.start()
    try:
        yield dsn
    finally:
        await embedded.stop()


def database_origin(settings: ServeSettings) -> str | None:
    """What start-up errors about the database name: the flag, when one was given."""
    return "--database-url" if settings.database_url is not None else None


@asynccontextmanager
async def migrated_pool(dsn: str, origin: str | None = None) -> AsyncIterator[asyncpg.Pool]:
    """A pool on `dsn` whose database has every migration applied; closed at the end. A pool
    that cannot be opened is a StoreError whose one-line message starts with `origin`."""
    async with AsyncExitStack() as stack:
        try:
            pool = await stack.enter_async_context(pool_context(dsn))
        except StoreError as error:
            if origin is None:
                raise
            raise type(error)(f"{origin}: {error}") from error
        applied = await apply_migrations(pool)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        yield pool
