"""The database goes away and comes back: callers get UNAVAILABLE / 503 with a plain message,
never INTERNAL or a traceback, and taskgate recovers by itself."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.server.lifecycle import serving
from taskgate.store.embedded import EmbeddedPostgres
from tests.integration.conftest import private_temp_dir
from tests.integration.kfp import new_task
from tests.integration.servers import serve_settings


async def test_database_outage_is_unavailable_then_recovers() -> None:
    with private_temp_dir("taskgate-outage-") as home:
        await _outage_and_recovery(home)


async def _outage_and_recovery(home: Path) -> None:
    database = EmbeddedPostgres(home / "pg")
    dsn = await database.start()
    try:
        async with (
            serving(serve_settings(dsn)) as running,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel,
            aiohttp.ClientSession() as http,
        ):
            stub = task_pb2_grpc.TaskServiceStub(channel)
            url = f"http://127.0.0.1:{running.http_port}/apis/v1alpha1/tasks"
            created = await stub.CreateTask(task_pb2.CreateTaskRequest(task=new_task()))

            await database.stop()
            for call in (
                stub.ListTasks(task_pb2.ListTasksRequest()),
                stub.CreateTask(task_pb2.CreateTaskRequest(task=new_task())),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "the database is unavailable" in (caught.value.details() or "")
                assert "Traceback" not in (caught.value.details() or "")
            async with http.get(url) as response:
                assert response.status == 503
                body = json.loads(await response.read())
            assert body["code"] == 14
            assert (
                body["message"]
                == "List tasks failed.: the database is unavailable, try again later"
            )

            # Readiness follows: both health endpoints say NOT_SERVING while it is away.
            health = health_pb2_grpc.HealthStub(channel)
            await wait_for_health(health, http, running.http_port, serving=False)

            database = EmbeddedPostgres(home / "pg")
            await database.start()
            page = await stub.ListTasks(task_pb2.ListTasksRequest())
            assert list(page.tasks) == [created]
            await wait_for_health(health, http, running.http_port, serving=True)
    finally:
        await database.stop()


async def wait_for_health(
    health: health_pb2_grpc.HealthStub,
    http: aiohttp.ClientSession,
    http_port: int,
    *,
    serving: bool,
) -> None:
    wanted = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for _ in range(100):
        reply = await health.Check(health_pb2.HealthCheckRequest())
        async with http.get(f"http://127.0.0.1:{http_port}/healthz") as response:
            rest_status = response.status
        if reply.status == wanted and rest_status == (200 if serving else 503):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health did not become {'SERVING' if serving else 'NOT_SERVING'}")
