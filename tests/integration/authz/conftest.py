"""Multi-user mode fixtures: a policy, and `taskgate serve --authz-policy` with clients, over
one of three transports (indirect parametrisation of `multi_user` / `single_user`; plaintext
when not parametrised):

- `plaintext`: gRPC and REST as they are by default;
- `tls`: `serve --tls-cert … --tls-key …`; gRPC over `grpc.ssl_channel_credentials`, REST over
  HTTPS, both trusting the test CA (trustme);
- `gateway`: the same TLS `serve`, with REST through `taskgate gateway --preset kfp
  --upstream-tls --upstream-ca … --upstream-server-name …`, itself on HTTPS (gRPC still goes to
  serve over TLS).

Servers are cheap to start (well under 0.1 s), so each test gets its own; `pool` empties
`tasks` before each test, so no case sees another's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest

from taskgate.api import task_pb2_grpc
from taskgate.gateway.standalone import gateway_serving
from taskgate.server.lifecycle import serving
from tests.integration.servers import Taskgate, serve_settings
from tests.integration.tls.certs import IDENTITIES, Pki, channel_credentials, client_context
from tests.integration.tls.conftest import UPSTREAM_NAME, kfp_gateway_over_tls

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


TRANSPORTS = ("plaintext", "tls", "gateway")
#: the only name serve's certificate gives beyond 127.0.0.1: the gateway must be told it


@dataclass(frozen=True)
class Doors(Taskgate):
    """A `Taskgate` whose REST door may be HTTPS, or a gateway in front of it."""

    rest_url: str = ""

    @property
    def base_url(self) -> str:
        return self.rest_url


@asynccontextmanager
async def taskgate_over(
    transport: str, database_url: str, directory: Path, policy: Path | None
) -> AsyncIterator[Doors]:
    """`taskgate serve [--authz-policy policy]` with clients over `transport`."""
    settings = replace(serve_settings(database_url), authz_policy=policy)
    async with AsyncExitStack() as stack:
        if transport == "plaintext":
            running = await stack.enter_async_context(serving(settings))
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}")
            http = aiohttp.ClientSession()
            rest_url = f"http://127.0.0.1:{running.http_port}"
        else:
            pki = Pki(directory)
            files = pki.server_files(pki.ca.issue_cert(*IDENTITIES, UPSTREAM_NAME), name="serve")
            running = await stack.enter_async_context(serving(replace(settings, tls=files)))
            target = f"127.0.0.1:{running.grpc_port}"
            channel = grpc.aio.secure_channel(target, channel_credentials(pki.ca))
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(pki.ca)))
            rest_url = f"https://127.0.0.1:{running.http_port}"
            if transport == "gateway":
                config = kfp_gateway_over_tls(pki, target)
                gateway = await stack.enter_async_context(gateway_serving(config))
                rest_url = f"https://127.0.0.1:{gateway.port}"
        await stack.enter_async_context(channel)
        await stack.enter_async_context(http)
        stub = task_pb2_grpc.TaskServiceStub(channel)
        yield Doors(running, stub, channel, http, rest_url)


@pytest.fixture
async def multi_user(
    request: pytest.FixtureRequest,
    database_url: str,
    pool: asyncpg.Pool,
    policy_file: Path,
    tmp_path: Path,
) -> AsyncIterator[Doors]:
    """Multi-user `serve` over `request.param` (one of TRANSPORTS; default plaintext)."""
    transport = getattr(request, "param", "plaintext")
    async with taskgate_over(transport, database_url, tmp_path, policy_file) as doors:
        yield doors


@pytest.fixture
async def single_user(
    request: pytest.FixtureRequest, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[Doors]:
    """`serve` without a policy over `request.param` (one of TRANSPORTS; default plaintext)."""
    transport = getattr(request, "param", "plaintext")
    async with taskgate_over(transport, database_url, tmp_path, None) as doors:
        yield doors
