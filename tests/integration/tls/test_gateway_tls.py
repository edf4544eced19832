"""`taskgate gateway --upstream-tls --upstream-ca … --preset kfp` in front of a TLS
`taskgate serve`, itself serving HTTPS: it answers as serve's own REST door does; an upstream
certificate it cannot trust stops it at start-up with a message that says so."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from taskgate.gateway.standalone import GatewayStartupError, gateway_serving
from tests.integration.tls.certs import Pki, client_context
from tests.integration.tls.conftest import (
    UPSTREAM_NAME,
    config_from_flags,
    kfp_gateway_over_tls,
    tls_serving,
)

TASK = {
    "pipelineName": "pipeline/gw",
    "runId": "run-gw",
    "mlmdExecutionID": "2",
    "fingerprint": "fp-gw",
    "created_at": "2024-05-10T10:19:13Z",
}


async def fetch(
    http: aiohttp.ClientSession, method: str, url: str, context: ssl.SSLContext, **kw: object
) -> tuple[int, object]:
    async with http.request(method, url, ssl=context, **kw) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_gateway_over_tls_answers_like_serves_rest_door(
    database_url: str, pool: asyncpg.Pool, pki: Pki
) -> None:
    serve_files = pki.server_files(pki.ca.issue_cert(UPSTREAM_NAME), name="serve")
    async with tls_serving(database_url, serve_files) as serve:
        config = kfp_gateway_over_tls(pki, f"127.0.0.1:{serve.grpc_port}")
        async with gateway_serving(config) as gateway, aiohttp.ClientSession() as http:
            # serve's REST door is reached by the name in its certificate
            serve_context = client_context(pki.ca)
            serve_context.check_hostname = False
            doors = {
                "serve": (f"https://127.0.0.1:{serve.http_port}", serve_context),
                "gateway": (f"https://127.0.0.1:{gateway.port}", client_context(pki.ca)),
            }
            status, created = await fetch(
                http, "POST", doors["gateway"][0] + "/apis/v1alpha1/tasks",
                doors["gateway"][1], json=TASK,
            )  # fmt: skip
            assert status == 200, created
            answers = {}
            for name, (base, context) in doors.items():
                answers[name] = [
                    await fetch(http, "GET", base + "/apis/v1alpha1/tasks", context),
                    await fetch(http, "GET", base + "/apis/v1alpha1/tasks?page_size=-1", context),
                    await fetch(http, "GET", base + "/healthz", context),
                ]
            assert answers["gateway"] == answers["serve"]
            listed = answers["gateway"][0]
            assert listed[0] == 200
            assert isinstance(listed[1], dict)
            assert listed[1]["tasks"] == [created]
            assert answers["gateway"][1][0] == 400


async def test_gateway_refuses_an_upstream_it_cannot_trust(
    database_url: str, pool: asyncpg.Pool, pki: Pki, tmp_path: Path
) -> None:
    async with tls_serving(database_url, pki.server_files()) as serve:
        upstream = f"127.0.0.1:{serve.grpc_port}"
        (tmp_path / "stranger").mkdir()
        stranger = Pki(tmp_path / "stranger")  # another CA
        cases = {
            "is not trusted": ("--upstream-ca", str(stranger.ca_file)),
            "does not name it": (
                "--upstream-ca", str(pki.ca_file), "--upstream-server-name", "elsewhere.example",
            ),
        }  # fmt: skip
        for words, flags in cases.items():
            with pytest.raises(GatewayStartupError) as refused:
                async with gateway_serving(config_from_flags("--upstream", upstream, *flags)):
                    pass
            expected = f"cannot reach upstream {upstream}: TLS handshake failed: its certificate"
            assert f"{expected} {words}" in str(refused.value)
        with pytest.raises(GatewayStartupError) as plaintext:
            async with gateway_serving(config_from_flags("--upstream", upstream)):
                pass
        assert f"cannot reach upstream {upstream}" in str(plaintext.value)
