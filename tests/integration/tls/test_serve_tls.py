"""`taskgate serve --tls-cert --tls-key [--tls-client-ca]`, seen by real clients: grpcurl,
grpcio, aiohttp and curl over TLS; plaintext, expired, wrong-CA and certificate-less clients
refused; certificates reloaded without a restart (docs/security.md, "What the tests prove")."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
import subprocess

import aiohttp
import asyncpg
import grpc
import pytest
import trustme

from taskgate.api import task_pb2, task_pb2_grpc
from tests.integration.kfp import eq_filter
from tests.integration.tls.certs import (
    IDENTITIES,
    Pki,
    channel_credentials,
    client_context,
    der,
    expired,
    served_certificate,
)
from tests.integration.tls.conftest import tls_serving

GRPCURL = shutil.which("grpcurl") or "grpcurl"
CURL = shutil.which("curl")
TASK = {
    "pipelineName": "pipeline/tls",
    "runId": "run-tls",
    "mlmdExecutionID": "1",
    "fingerprint": "fp-tls",
    "created_at": "2024-05-10T10:19:13Z",
}


async def run(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def grpc_health(target: str, credentials: grpc.ChannelCredentials | None) -> None:
    """A health check; AioRpcError if the connection is refused."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


async def https_status(url: str, context: ssl.SSLContext | bool) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        return response.status


async def test_grpcurl_grpcio_aiohttp_and_curl_over_tls(
    database_url: str, pool: asyncpg.Pool, pki: Pki
) -> None:
    async with tls_serving(database_url, pki.server_files()) as running:
        target = f"127.0.0.1:{running.grpc_port}"
        ca = str(pki.ca_file)

        code, listed = await run(GRPCURL, "-cacert", ca, target, "list")
        assert code == 0, listed
        assert "api.TaskService" in listed.split()
        code, described = await run(GRPCURL, "-cacert", ca, target, "describe", "api.TaskService")
        assert code == 0, described
        assert "rpc ListTasksV1 ( .api.ListTasksRequest ) returns ( .api.ListTasksResponse )" in (
            described
        )
        request = json.dumps({"task": TASK})
        code, output = await run(
            GRPCURL, "-cacert", ca, "-d", request, target, "api.TaskService/CreateTask"
        )
        assert code == 0, output
        created = json.loads(output)
        assert created["fingerprint"] == "fp-tls"

        # What KFP's driver does: ListTasksV1 with a bearer token, over TLS.
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca)) as channel:
            reply = await task_pb2_grpc.TaskServiceStub(channel).ListTasksV1(
                task_pb2.ListTasksRequest(filter=eq_filter(fingerprint="fp-tls")),
                metadata=(("authorization", "Bearer x"),),
                timeout=10,
            )
        assert [task.id for task in reply.tasks] == [created["id"]]

        base = f"https://127.0.0.1:{running.http_port}"
        context = client_context(pki.ca)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/apis/v1alpha1/tasks", json=TASK, ssl=context) as posted:
                assert posted.status == 200, await posted.text()
            async with http.get(f"{base}/apis/v1alpha1/tasks", ssl=context) as listed_rest:
                assert listed_rest.status == 200
                assert (await listed_rest.json())["total_size"] == 2
            async with http.get(f"{base}/healthz", ssl=context) as health:
                assert health.status == 200

        if CURL is not None:  # the machine's curl too, when it has one
            code, output = await run(CURL, "-sS", "--cacert", ca, f"{base}/healthz")
            assert code == 0, output
            assert json.loads(output) == {"status": "SERVING"}


async def test_plaintext_clients_are_refused(
    database_url: str, pool: asyncpg.Pool, pki: Pki
) -> None:
    async with tls_serving(database_url, pki.server_files()) as running:
        target = f"127.0.0.1:{running.grpc_port}"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grpc_health(target, None)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        code, output = await run(GRPCURL, "-plaintext", "-connect-timeout", "1", target, "list")
        assert code != 0
        assert "Failed to dial target host" in output, output

        with pytest.raises(aiohttp.ClientError):
            await https_status(f"http://127.0.0.1:{running.http_port}/healthz", False)
        if CURL is not None:
            code, output = await run(CURL, "-sS", f"http://127.0.0.1:{running.http_port}/healthz")
            assert code != 0, output  # curl: (52) Empty reply from server


async def test_wrong_ca_and_expired_certificates_are_refused(
    database_url: str, pool: asyncpg.Pool, pki: Pki
) -> None:
    files = pki.server_files()
    async with tls_serving(database_url, files) as running:
        assert running.tls is not None
        target = f"127.0.0.1:{running.grpc_port}"
        url = f"https://127.0.0.1:{running.http_port}/healthz"
        stranger = trustme.CA()  # a client that trusts another CA

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grpc_health(target, channel_credentials(stranger))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await https_status(url, client_context(stranger))
        stranger_file = pki.write_ca(stranger, "stranger.pem")
        code, output = await run(
            GRPCURL, "-cacert", str(stranger_file), "-max-time", "5", target, "list"
        )
        assert code != 0
        assert "certificate signed by unknown authority" in output

        pki.install(files, expired(pki.ca))
        assert running.tls.reload()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grpc_health(target, channel_credentials(pki.ca))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as expired_error:
            await https_status(url, client_context(pki.ca))
        assert "expired" in str(expired_error.value)
        code, output = await run(
            GRPCURL, "-cacert", str(pki.ca_file), "-max-time", "5", target, "list"
        )
        assert code != 0
        assert "expired" in output


async def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(
    database_url: str, pool: asyncpg.Pool, pki: Pki
) -> None:
    async with tls_serving(database_url, pki.server_files(mutual=True)) as running:
        target = f"127.0.0.1:{running.grpc_port}"
        url = f"https://127.0.0.1:{running.http_port}/healthz"
        client = pki.client_ca.issue_cert("driver@kubeflow")
        impostor = pki.ca.issue_cert("impostor")  # signed by a CA the server does not ask for

        await grpc_health(target, channel_credentials(pki.ca, client))
        assert await https_status(url, client_context(pki.ca, client)) == 200
        cert, key = pki.client_files(client)
        code, output = await run(
            GRPCURL, "-cacert", str(pki.ca_file), "-cert", str(cert), "-key", str(key),
            target, "list",
        )  # fmt: skip
        assert code == 0, output
        assert "api.TaskService" in output

        for credentials in (channel_credentials(pki.ca), channel_credentials(pki.ca, impostor)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await grpc_health(target, credentials)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        for context in (client_context(pki.ca), client_context(pki.ca, impostor)):
            with pytest.raises(aiohttp.ClientError):
                await https_status(url, context)
        code, output = await run(
            GRPCURL, "-cacert", str(pki.ca_file), "-max-time", "5", target, "list"
        )
        assert code != 0, output


async def test_reload_serves_new_certificates_on_both_doors_and_keeps_them_if_bad(
    database_url: str, pool: asyncpg.Pool, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    first = pki.ca.issue_cert(*IDENTITIES)
    files = pki.server_files(first)
    async with tls_serving(database_url, files) as running:
        assert running.tls is not None
        target = f"127.0.0.1:{running.grpc_port}"
        ports = (running.http_port, running.grpc_port)
        assert await asyncio.to_thread(served_certificate, running.http_port, pki.ca) == der(first)

        new_ca = trustme.CA()  # a rotation to a new CA: old clients can no longer connect
        second = new_ca.issue_cert(*IDENTITIES)
        pki.install(files, second)
        assert running.tls.reload()
        for port, alpn in zip(ports, ("http/1.1", "h2"), strict=True):
            assert await asyncio.to_thread(served_certificate, port, new_ca, alpn) == der(second)
        await grpc_health(target, channel_credentials(new_ca))
        with pytest.raises(grpc.aio.AioRpcError):
            await grpc_health(target, channel_credentials(pki.ca))

        files.key.write_text("not a key")
        with caplog.at_level(logging.ERROR, logger="taskgate.tls"):
            assert not running.tls.reload()
        assert f"TLS reload failed, keeping the current certificates: --tls-key {files.key}" in (
            caplog.text
        )
        assert "not a key" not in caplog.text
        assert await asyncio.to_thread(served_certificate, running.http_port, new_ca) == der(second)
        await grpc_health(target, channel_credentials(new_ca))
