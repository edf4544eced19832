"""The database fails under a running `taskgate serve`: stopped, or hung (SIGSTOP). Callers get
UNAVAILABLE / 503 within seconds, never INTERNAL; the log says so in a few lines, with no
traceback; taskgate recovers by itself. Also: clients that abort uploads cost one line at most."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.server.lifecycle import serving
from taskgate.store.embedded import EmbeddedPostgres
from taskgate.store.embedded_os import wait_for_exit
from tests.integration.conftest import private_temp_dir
from tests.integration.faults.processes import frozen, postmaster_pid
from tests.integration.kfp import new_task
from tests.integration.servers import serve_settings

#: What a caller may wait for an answer while the database is down or hung (the store's own
#: limits are 3 s to get a connection and 5 s per statement; the rest is a loaded machine).
FAIL_FAST_SECONDS = 10.0
CLIENT_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def pg_home() -> Iterator[Path]:
    """A data directory initialised once for this module; each test starts its server."""
    with private_temp_dir("taskgate-faults-db-") as home:
        database = EmbeddedPostgres(home)
        asyncio.run(database.start())
        asyncio.run(database.stop())
        yield home


@dataclass
class Clients:
    stub: task_pb2_grpc.TaskServiceAsyncStub
    http: aiohttp.ClientSession
    tasks_url: str
    http_port: int


@asynccontextmanager
async def taskgate_on(dsn: str) -> AsyncIterator[Clients]:
    async with (
        serving(serve_settings(dsn)) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)) as http,
    ):
        yield Clients(
            task_pb2_grpc.TaskServiceStub(channel),
            http,
            f"http://127.0.0.1:{running.http_port}/apis/v1alpha1/tasks",
            running.http_port,
        )


async def one_call(clients: Clients, kind: str) -> tuple[str, str, float]:
    """(kind, outcome, seconds): outcome is a gRPC code name or an HTTP status."""
    started = time.monotonic()
    try:
        if kind == "grpc-list":
            await clients.stub.ListTasks(
                task_pb2.ListTasksRequest(page_size=1), timeout=CLIENT_TIMEOUT_SECONDS
            )
        elif kind == "grpc-create":
            await clients.stub.CreateTask(
                task_pb2.CreateTaskRequest(task=new_task()), timeout=CLIENT_TIMEOUT_SECONDS
            )
        else:
            async with clients.http.get(clients.tasks_url + "?page_size=1") as response:
                await response.read()
                return kind, str(response.status), time.monotonic() - started
        outcome = "OK"
    except grpc.aio.AioRpcError as error:
        outcome = error.code().name
    except TimeoutError:
        outcome = "client timeout"
    return kind, outcome, time.monotonic() - started


KINDS = ("grpc-list", "grpc-create", "rest-list")
GOOD = {"OK", "200"}
UNAVAILABLE = {"UNAVAILABLE", "503"}


RECOVERY_SECONDS = 30.0


async def wait_for_recovery(clients: Clients) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    outcomes: list[tuple[str, str, float]] = []
    while time.monotonic() < deadline:
        outcomes = [await one_call(clients, kind) for kind in KINDS]
        if all(outcome in GOOD for _, outcome, _ in outcomes):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"taskgate did not recover: {outcomes}")


def problems(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info is not None or r.levelno >= logging.ERROR]


async def test_database_stop_is_unavailable_fast_quiet_and_recovers(
    pg_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = EmbeddedPostgres(pg_home)
    dsn = await database.start()
    try:
        async with taskgate_on(dsn) as clients:
            await wait_for_recovery(clients)
            stop = asyncio.Event()
            running = asyncio.Event()
            running.set()
            outcomes: list[tuple[str, str, float]] = []

            async def load(kind: str) -> None:
                for _ in range(20_000):  # bounded in count as well as in time
                    if stop.is_set():
                        return
                    await running.wait()
                    outcomes.append(await one_call(clients, kind))

            caplog.set_level(logging.WARNING)
            loaders = [asyncio.create_task(load(kind)) for kind in KINDS * 2]
            try:
                await asyncio.sleep(0.5)
                # Under load: fast shutdown (SIGINT, as `pg_ctl stop -m fast` sends; no fork
                # while gRPC threads are busy), every connection cut.
                postmaster = postmaster_pid(database.pgdata)
                os.kill(postmaster, signal.SIGINT)
                assert await asyncio.to_thread(wait_for_exit, postmaster, 30)
                caplog.clear()
                down_at = len(outcomes)
                await asyncio.sleep(4.0)
                outage = outcomes[down_at:]
                outage_log = list(caplog.records)
                running.clear()  # quiet while pg_ctl forks
                await asyncio.sleep(CLIENT_TIMEOUT_SECONDS / 100)
                database = EmbeddedPostgres(pg_home)
                await database.start()
                running.set()
                await wait_for_recovery(clients)
            finally:
                stop.set()
                await asyncio.gather(*loaders)
    finally:
        await database.stop()

    assert {outcome for _, outcome, _ in outcomes} <= GOOD | UNAVAILABLE, outcomes
    failed = [o for o in outage if o[1] in UNAVAILABLE]
    assert len(failed) >= 20, f"the outage was not seen: {outage[:10]}"
    assert max(seconds for _, _, seconds in outcomes) < FAIL_FAST_SECONDS
    # Hundreds of failed calls, a handful of lines: one per kind of event, no traceback.
    assert problems(outage_log) == []
    assert len(outage_log) <= 15, [r.getMessage() for r in outage_log]
    print(  # noqa: T201
        f"database stop: {len(failed)} calls failed UNAVAILABLE/503 in 4s, {len(outage_log)} "
        f"log lines, slowest answer {max(s for _, _, s in outcomes):.1f}s"
    )


async def test_database_hang_is_unavailable_within_seconds(
    pg_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = EmbeddedPostgres(pg_home)
    dsn = await database.start()
    try:
        async with taskgate_on(dsn) as clients:
            await wait_for_recovery(clients)
            caplog.set_level(logging.WARNING)
            with frozen(database.pgdata):
                started = time.monotonic()
                outcomes = await asyncio.gather(*(one_call(clients, kind) for kind in KINDS * 6))
                all_answered = time.monotonic() - started
            await wait_for_recovery(clients)
            hang_log = list(caplog.records)
    finally:
        await database.stop()

    print(f"hung database: {len(outcomes)} calls all answered in {all_answered:.1f}s")  # noqa: T201
    assert {outcome for _, outcome, _ in outcomes} == UNAVAILABLE, outcomes
    assert all_answered < FAIL_FAST_SECONDS, outcomes
    assert problems(hang_log) == []


async def test_an_aborted_upload_is_one_line_at_most(
    pg_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = EmbeddedPostgres(pg_home)
    dsn = await database.start()
    try:
        async with taskgate_on(dsn) as clients:
            caplog.set_level(logging.DEBUG)
            caplog.clear()
            for _ in range(5):
                _, writer = await asyncio.open_connection("127.0.0.1", clients.http_port)
                writer.write(
                    b"POST /apis/v1alpha1/tasks HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                    b'{"pipelineName": "'
                )
                await writer.drain()
                await asyncio.sleep(0.2)  # the handler is reading the body
                writer.close()
            await asyncio.sleep(0.5)
            await wait_for_recovery(clients)
            aborted_log = [  # the access lines (one per request, P5) aside
                r
                for r in caplog.records
                if r.levelno >= logging.INFO and r.name != "taskgate.access"
            ]
    finally:
        await database.stop()

    assert problems(aborted_log) == []
    assert len(aborted_log) <= 5, [r.getMessage() for r in aborted_log]
