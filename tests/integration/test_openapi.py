"""`/openapi.json` of both commands validated with openapi-spec-validator, and a bounded
schemathesis run against `taskgate serve`'s REST door: no 5xx, no response outside the schema
(docs/decisions.md P10)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from openapi_spec_validator import validate

from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.servers import Taskgate
from tests.upstream_process import running_upstream

#: Examples per operation, and the whole run's budget in seconds.
MAX_EXAMPLES = 25
BUDGET_SECONDS = 60


async def get_json(taskgate: Taskgate, path: str) -> Any:
    async with taskgate.http.get(taskgate.base_url + path) as response:
        assert response.status == 200
        return json.loads(await response.read())


async def test_serve_documents_task_service_with_the_kfp_preset(taskgate: Taskgate) -> None:
    document = await get_json(taskgate, "/openapi.json")
    validate(document)
    assert set(document["paths"]) == {"/apis/v1alpha1/tasks"}
    assert set(document["paths"]["/apis/v1alpha1/tasks"]) == {"get", "post"}
    assert "grpc.gateway.runtime.Error" in document["components"]["schemas"]
    async with taskgate.http.get(taskgate.base_url + "/docs") as response:
        assert response.status == 200
        assert "swagger-ui-bundle.js" in await response.text()


async def test_gateway_documents_the_transcoding_upstream() -> None:
    import aiohttp

    with running_upstream() as upstream:
        config = StandaloneConfig(
            upstream=upstream.target, port=0, options=GatewayOptions.generic()
        )
        async with gateway_serving(config) as running, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{running.port}/openapi.json"
            async with http.get(url) as response:
                assert response.status == 200
                document = json.loads(await response.read())
    validate(document)
    tags = {tag["name"] for tag in document["tags"]}
    assert tags == {"tgtest.Library", "tgtest.Echo"}
    assert "/v1/{shelf}/books:stream" in document["paths"]


def run_schemathesis(document: dict[str, Any], base_url: str) -> list[str]:
    """Every operation with at most MAX_EXAMPLES generated requests; the failures found."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err raises: an invalid schema

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            if time.monotonic() > deadline:
                return
            response = case.call(base_url=base_url, timeout=10)
            try:
                case.validate_response(response, checks=checks)
            except Exception as failure:
                failures.append(f"{case.operation.label}: {failure}")

        exercise()
    return failures


async def test_schemathesis_finds_nothing_on_serve(taskgate: Taskgate) -> None:
    document = await get_json(taskgate, "/openapi.json")
    started = time.monotonic()
    failures = await asyncio.to_thread(run_schemathesis, document, taskgate.base_url)
    assert failures == []
    assert time.monotonic() - started < BUDGET_SECONDS + 30


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests (schemathesis' client) would send loopback calls through a configured proxy.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
