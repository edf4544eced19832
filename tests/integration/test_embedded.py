"""EmbeddedPostgres: first start, stop, restart with the data kept, stale lock files."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from taskgate.store import (
    EmbeddedPostgres,
    NewTask,
    TaskQuery,
    TaskStore,
    apply_migrations,
    pool_context,
)
from taskgate.store.embedded_os import read_postmaster_pid, wait_for_exit
from tests.integration.conftest import private_temp_dir

TASK = NewTask("ns", "p", "r", "m", 1_700_000_000, 0, "fp")


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    """Like tmp_path, but not under /tmp/pytest-of-root (see conftest.private_temp_dir)."""
    with private_temp_dir("taskgate-test-embedded-") as path:
        yield path


@pytest.fixture
async def server(tmp_dir: Path) -> AsyncIterator[EmbeddedPostgres]:
    embedded = EmbeddedPostgres(tmp_dir / "data")
    try:
        yield embedded
    finally:
        await embedded.stop()


async def test_start_stop_restart_keeps_data(server: EmbeddedPostgres) -> None:
    started = time.monotonic()
    dsn = await server.start()
    first_start = time.monotonic() - started
    async with pool_context(dsn) as pool:
        await apply_migrations(pool)
        created = await TaskStore(pool).create_task(TASK)
    info = read_postmaster_pid(server.pgdata)
    assert info is not None

    await server.stop()

    assert wait_for_exit(info.pid, timeout=0)  # already gone, not merely its pid file
    assert not (server.pgdata / "postmaster.pid").exists()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(dsn, timeout=2)

    started = time.monotonic()
    dsn_again = await server.start()
    restart = time.monotonic() - started
    async with pool_context(dsn_again) as pool:
        assert await apply_migrations(pool) == []
        page = await TaskStore(pool).list_tasks(TaskQuery())

    assert page.records == [created]
    assert restart < 5
    print(f"embedded first start {first_start:.2f}s, restart {restart:.2f}s")  # noqa: T201


async def test_data_dir_layout_and_private_socket(server: EmbeddedPostgres) -> None:
    dsn = await server.start()

    assert server.pgdata == server.data_dir / "pgdata"
    assert (server.pgdata / "PG_VERSION").exists()
    assert oct(server.pgdata.stat().st_mode & 0o777) == oct(0o700)
    assert f"host={server.pgdata}" in dsn  # Unix socket only, inside the data directory
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SHOW listen_addresses") == ""
        assert await connection.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await connection.close()


async def test_stale_postmaster_pid_is_discarded(server: EmbeddedPostgres) -> None:
    await server.start()
    await server.stop()
    # A lock file naming a live process that is not this server (pid reuse after a reboot).
    stale = [os.getpid(), server.pgdata, 0, 5432, server.pgdata, "", "0 0", "ready"]
    (server.pgdata / "postmaster.pid").write_text("".join(f"{line}\n" for line in stale))

    dsn = await server.start()

    connection = await asyncpg.connect(dsn)
    await connection.close()
    assert server.started_here


async def test_a_server_already_running_is_reused_and_left_running(
    server: EmbeddedPostgres,
) -> None:
    dsn = await server.start()
    second = EmbeddedPostgres(server.data_dir)

    assert await second.start() == dsn
    assert not second.started_here
    await second.stop()

    connection = await asyncpg.connect(dsn)
    await connection.close()


async def test_stop_without_start_does_nothing(tmp_dir: Path) -> None:
    await EmbeddedPostgres(tmp_dir / "never").stop()

    assert not (tmp_dir / "never").exists()


async def test_long_data_dir_path_moves_the_socket(tmp_dir: Path) -> None:
    deep = tmp_dir / ("d" * 60) / ("e" * 60)
    embedded = EmbeddedPostgres(deep)
    try:
        dsn = await embedded.start()
        connection = await asyncpg.connect(dsn)
        await connection.close()
    finally:
        await embedded.stop()

    assert f"host={embedded.pgdata}" not in dsn


async def test_stop_after_the_server_died_is_quiet(server: EmbeddedPostgres) -> None:
    await server.start()
    info = read_postmaster_pid(server.pgdata)
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    assert wait_for_exit(info.pid, timeout=10)

    await server.stop()

    assert not server.started_here


async def test_restart_after_a_crash(server: EmbeddedPostgres) -> None:
    await server.start()
    info = read_postmaster_pid(server.pgdata)
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    assert wait_for_exit(info.pid, timeout=10)

    restarted = EmbeddedPostgres(server.data_dir)  # as a new taskgate process would
    try:
        dsn = await restarted.start()
        connection = await asyncpg.connect(dsn)
        await connection.close()
    finally:
        await restarted.stop()


async def test_data_dir_with_spaces(tmp_dir: Path) -> None:
    embedded = EmbeddedPostgres(tmp_dir / "my data" / "task gate")
    try:
        dsn = await embedded.start()
        connection = await asyncpg.connect(dsn)
        await connection.close()
    finally:
        await embedded.stop()
