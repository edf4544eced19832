"""Shared PostgreSQL fixtures for every integration test.

`database_url`: TEST_DATABASE_URL's server with a fresh database for the session, else an
EmbeddedPostgres in a session temp dir; migrated once. `pool` truncates `tasks` first;
`task_store` wraps it. Every test under tests/integration is marked `integration`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from taskgate.store import EmbeddedPostgres, TaskStore, apply_migrations, open_pool
from taskgate.store.pool import close_pool

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_database(server_url: str) -> str:
    """Create an empty, uniquely named database; return its URL."""
    name = f"taskgate_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await apply_migrations(connection)
    finally:
        await connection.close()


@contextmanager
def private_temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory of our own under /tmp, removed afterwards.

    Not pytest's tmp_path: as root the server runs as another user that must traverse the
    path, and every new pytest session (other runs on the same machine included) resets
    /tmp/pytest-of-<user> to 0700 and prunes old session directories.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server we may create databases on (superuser URL)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with private_temp_dir("taskgate-test-pg-") as data_dir:
        embedded = EmbeddedPostgres(data_dir)
        url = asyncio.run(embedded.start())
        try:
            yield url
        finally:
            asyncio.run(embedded.stop())


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A migrated database for this session, dropped at the end."""
    url = asyncio.run(create_database(server_url))
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(drop_database(server_url, url))


@pytest.fixture
async def scratch_database_url(server_url: str) -> AsyncIterator[str]:
    """An empty, unmigrated database for this test only."""
    url = await create_database(server_url)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session database, with `tasks` emptied first."""
    pool = await open_pool(database_url, min_size=1, max_size=5)
    try:
        await pool.execute("TRUNCATE tasks")
        yield pool
    finally:
        await close_pool(pool)


@pytest.fixture
def task_store(pool: asyncpg.Pool) -> TaskStore:
    return TaskStore(pool)
