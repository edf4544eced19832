"""`taskgate migrate` as a process, KFP's `/apis/v1beta1/healthz` and `/livez` on `taskgate
serve`, and `serve` on every interface (`:PORT`, `[::]:PORT`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskgate import __version__
from taskgate.command import Address
from taskgate.server.lifecycle import serving
from tests.integration.servers import Taskgate, serve_settings
from tests.upstream_process import free_port


async def _migrate(*flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "taskgate", "migrate", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_migrate_applies_the_migrations_and_exits_0(
    scratch_database_url: str, tmp_path: Path
) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(scratch_database_url + "\n")
    first = await _migrate("--database-url-file", str(url_file))
    assert first.returncode == 0, first.stderr
    assert "applied migrations: 0001_create_tasks.sql" in first.stderr
    connection = await asyncpg.connect(scratch_database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM tasks") == 0
    finally:
        await connection.close()
    again = await _migrate("--database-url", scratch_database_url)  # nothing left to do
    assert again.returncode == 0, again.stderr
    assert "applied migrations" not in again.stderr


async def test_migrate_fails_in_one_line_when_the_database_is_unreachable() -> None:
    result = await _migrate("--database-url", f"postgresql://u:secret@127.0.0.1:{free_port()}/d")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("taskgate migrate: --database-url: ")
    assert "secret" not in result.stderr


async def test_migrate_names_an_unreadable_url_file_as_a_usage_error(tmp_path: Path) -> None:
    result = await _migrate("--database-url-file", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "taskgate migrate: error: argument --database-url-file: cannot read" in result.stderr


async def test_kfps_healthz_and_livez(taskgate: Taskgate) -> None:
    async with taskgate.http.get(f"{taskgate.base_url}/apis/v1beta1/healthz") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = json.loads(await response.read())
    assert body == {"commit_sha": "unknown", "tag_name": __version__, "multi_user": False}
    async with taskgate.http.get(f"{taskgate.base_url}/livez") as response:
        assert response.status == 200
        assert json.loads(await response.read()) == {"status": "ALIVE"}


async def test_serve_on_every_interface(database_url: str) -> None:
    http_port = free_port()
    settings = replace(
        serve_settings(database_url),
        grpc_address=Address.parse(":0"),
        http_address=Address.parse(f"[::]:{http_port}"),
    )
    hosts = ["127.0.0.1"] + (["[::1]"] if socket.has_ipv6 and _has_ipv6_loopback() else [])
    async with serving(settings) as running, aiohttp.ClientSession() as http:
        assert running.http_port == http_port
        for host in hosts:
            async with http.get(f"http://{host}:{http_port}/healthz") as response:
                assert response.status == 200
            async with grpc.aio.insecure_channel(f"{host}:{running.grpc_port}") as channel:
                check = health_pb2_grpc.HealthStub(channel).Check
                reply = await check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
