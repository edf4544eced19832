"""Multi-user mode fixtures: a policy, and `taskgate serve --authz-policy` with clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest

from taskgate.api import task_pb2_grpc
from taskgate.server.lifecycle import serving
from tests.integration.servers import Taskgate, serve_settings

#: alice writes alice; reader reads alice; bob owns bob; the empty namespace is readable by all.
POLICY = """\
identity_prefix: "accounts.google.com:"
tokens_file: tokens.txt
namespaces:
  alice: {read: [reader], write: [alice]}
  bob: {read: [bob], write: [bob]}
shared: read
"""
TOKENS = "tok-alice alice\ntok-bob bob\n"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    (tmp_path / "tokens.txt").write_text(TOKENS)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
async def multi_user(
    database_url: str, pool: asyncpg.Pool, policy_file: Path
) -> AsyncIterator[Taskgate]:
    settings = replace(serve_settings(database_url), authz_policy=policy_file)
    async with serving(settings) as running:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}")
        async with channel, aiohttp.ClientSession() as http:
            yield Taskgate(running, task_pb2_grpc.TaskServiceStub(channel), channel, http)
