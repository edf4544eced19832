"""Fixtures that run `taskgate serve` for real: gRPC and REST on 127.0.0.1 port 0, on the
session's PostgreSQL (tests/integration/conftest.py), with `tasks` emptied before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import grpc
import pytest

from taskgate.api import task_pb2_grpc
from taskgate.command import Address
from taskgate.server.lifecycle import RunningServer, serving
from taskgate.server.settings import ServeSettings


@dataclass(frozen=True)
class Taskgate:
    """A running `taskgate serve` and clients for both doors."""

    server: RunningServer
    stub: task_pb2_grpc.TaskServiceAsyncStub
    channel: grpc.aio.Channel
    http: aiohttp.ClientSession

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def tasks_url(self) -> str:
        return f"{self.base_url}/apis/v1alpha1/tasks"


def serve_settings(database_url: str) -> ServeSettings:
    return ServeSettings(
        grpc_address=Address("127.0.0.1", 0),
        http_address=Address("127.0.0.1", 0),
        database_url=database_url,
        grace_period=1.0,
        health_interval=0.2,
    )


@pytest.fixture
async def taskgate(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Taskgate]:
    async with serving(serve_settings(database_url)) as running:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}")
        async with channel, aiohttp.ClientSession() as http:
            yield Taskgate(running, task_pb2_grpc.TaskServiceStub(channel), channel, http)
