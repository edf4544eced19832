"""`/openapi.json`, `/docs` and its assets on the gateway app (docs/decisions.md P10)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from google.api import http_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway.app import GATEWAY, create_gateway_app, replace_routes
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from tests.unit.gateway.descriptors import fixture_table, service_with_rules
from tests.unit.gateway.fakes import FakeInvoker

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
KFP = GatewayOptions.kfp()


async def test_openapi_json_is_built_once_and_rebuilt_on_replace(
    aiohttp_client: ClientFactory,
) -> None:
    app = create_gateway_app(fixture_table(), FakeInvoker(), KFP)
    client = await aiohttp_client(app)
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    document = json.loads(await resp.read())
    assert document["openapi"] == "3.1.0"
    assert "/v1/{name}" in document["paths"]
    cache = app[GATEWAY].state.openapi
    assert cache is not None
    assert cache.body is cache.body  # cached bytes
    table = RouteTable.from_services([service_with_rules([http_pb2.HttpRule(get="/v2/{name}")])])
    replace_routes(app, table, FakeInvoker())
    document = json.loads(await (await client.get("/openapi.json")).read())
    assert list(document["paths"]) == ["/v2/{name}"]


async def test_a_service_route_wins_over_the_built_in_paths(
    aiohttp_client: ClientFactory,
) -> None:
    rules = [http_pb2.HttpRule(get="/openapi.json"), http_pb2.HttpRule(get="/docs")]
    table = RouteTable.from_services([service_with_rules(rules)])
    invoker = FakeInvoker()
    client = await aiohttp_client(create_gateway_app(table, invoker, KFP))
    assert (await client.get("/openapi.json")).status == 200
    assert (await client.get("/docs")).status == 200
    assert [c.method for c in invoker.calls] == ["/adhoc.S/M0", "/adhoc.S/M1"]
    assert (await client.get("/docs/static/swagger-ui.css")).status == 200  # not shadowed


async def test_docs_page_and_its_assets(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_gateway_app(fixture_table(), FakeInvoker(), KFP))
    page = await client.get("/docs")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert 'url: "openapi.json"' in html
    assert "docs/static/swagger-ui-bundle.js" in html
    script = await client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status == 200
    assert script.content_type == "text/javascript"
    assert b"SwaggerUIBundle" in await script.read()
    assert (await client.get("/docs/static/../../etc/passwd")).status == 404
    assert (await client.get("/docs/static/index.html")).status == 404
    # GET only: other methods get the usual routing answer.
    assert (await client.post("/openapi.json")).status == 404
    assert (await client.get("/openapi.json/")).status == 404
