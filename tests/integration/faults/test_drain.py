"""SIGTERM under load: readiness turns NOT_SERVING and /healthz 503 at once, the listeners keep
accepting for the lag, calls in flight on both doors finish within the one grace period, and
the process exits 0 within it; with `--workers 2` too (one grace for all, not one per worker)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from urllib.parse import quote

import aiohttp
import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.store.embedded_os import read_postmaster_pid
from tests.integration.conftest import private_temp_dir
from tests.integration.faults.serve_process import healthz, start_serve, wait_ready
from tests.integration.kfp import new_task
from tests.upstream_process import free_port

GRACE = 8.0
LAG = 2.0
HELD_SECONDS = 3.0  # calls in flight wait this long after SIGTERM: past the lag, inside the grace
IN_FLIGHT_PER_DOOR = 3


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_both_doors_within_one_grace(workers: int) -> None:
    with private_temp_dir("taskgate-drain-") as home:
        data_dir = home / "data"
        grpc_port, http_port = free_port(), free_port()
        process = start_serve(
            data_dir,
            grpc_port,
            http_port,
            home / "serve.log",
            TASKGATE_SHUTDOWN_GRACE=str(GRACE),
            TASKGATE_SHUTDOWN_LAG=str(LAG),
            TASKGATE_WORKERS=str(workers),
        )
        try:
            await asyncio.to_thread(wait_ready, http_port, process)
            outcome = await _drain_under_load(process, data_dir / "pgdata", grpc_port, http_port)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        log = (home / "serve.log").read_text()

    code, exit_seconds, in_flight, during_lag = outcome
    print(f"workers {workers}: SIGTERM to exit {exit_seconds:.1f}s (grace {GRACE}s, lag {LAG}s)")  # noqa: T201
    assert code == 0, log
    assert exit_seconds < GRACE, log
    # Every call that was in flight at SIGTERM was answered, and answered OK.
    assert in_flight == ["OK"] * IN_FLIGHT_PER_DOOR + ["200"] * IN_FLIGHT_PER_DOOR, log
    # During the lag: new connections still accepted, and both doors say "not ready".
    assert during_lag["healthz"] == 503, during_lag
    assert during_lag["grpc health"] == "NOT_SERVING", during_lag
    assert "Traceback" not in log


async def _drain_under_load(
    process: subprocess.Popen[bytes], pgdata: object, grpc_port: int, http_port: int
) -> tuple[int, float, list[str], dict[str, object]]:
    info = read_postmaster_pid(pgdata)  # type: ignore[arg-type]
    assert info is not None
    dsn = (
        f"postgresql://postgres@/postgres?host={quote(info.socket_dir, safe='/')}&port={info.port}"
    )
    blocker = await asyncpg.connect(dsn)
    try:
        # Hold the tasks table so that calls stay in flight until we let go.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        ):
            stub = task_pb2_grpc.TaskServiceStub(channel)
            url = f"http://127.0.0.1:{http_port}/apis/v1alpha1/tasks"

            async def grpc_create(n: int) -> str:
                try:
                    await stub.CreateTask(
                        task_pb2.CreateTaskRequest(task=new_task(fingerprint=f"g{n}")), timeout=30
                    )
                except grpc.aio.AioRpcError as error:
                    return error.code().name
                return "OK"

            async def rest_create(n: int) -> str:
                body = json.dumps(
                    {
                        "pipelineName": "pipeline/p",
                        "runId": "run-1",
                        "mlmdExecutionID": "7",
                        "fingerprint": f"r{n}",
                        "created_at": "2024-05-10T10:19:13Z",
                    }
                )
                try:
                    async with http.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as response:
                        await response.read()
                        return str(response.status)
                except aiohttp.ClientError as error:
                    return type(error).__name__

            calls = [asyncio.create_task(grpc_create(n)) for n in range(IN_FLIGHT_PER_DOOR)]
            calls += [asyncio.create_task(rest_create(n)) for n in range(IN_FLIGHT_PER_DOOR)]
            await asyncio.sleep(1.0)  # all of them are waiting for the lock now
            assert not any(call.done() for call in calls), [c.result() for c in calls if c.done()]

            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(LAG / 4)
            during_lag: dict[str, object] = {"healthz": await asyncio.to_thread(healthz, http_port)}
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as fresh:
                try:
                    reply = await health_pb2_grpc.HealthStub(fresh).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                    during_lag["grpc health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                        reply.status
                    )
                except grpc.aio.AioRpcError as error:
                    during_lag["grpc health"] = error.code().name

            await asyncio.sleep(max(0.0, signalled + HELD_SECONDS - time.monotonic()))
            await transaction.rollback()
            in_flight = list(await asyncio.gather(*calls))
    finally:
        await blocker.close()
    code = await asyncio.to_thread(process.wait, 30)
    return code, time.monotonic() - signalled, in_flight, during_lag
