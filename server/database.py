"""`taskgate serve`'s database, for both a single process (lifecycle.py) and --workers
(workers.py): --database-url, or the embedded PostgreSQL in --data-dir; migrated at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from taskgate.server.settings import ServeSettings
from taskgate.store.embedded import EmbeddedPostgres
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


@asynccontextmanager
async def migrated_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on `dsn` whose database has every migration applied; closed at the end."""
    async with pool_context(dsn) as pool:
        applied = await apply_migrations(pool)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        yield pool
