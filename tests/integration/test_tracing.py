"""Traces (docs/decisions.md P13): a caller's W3C `traceparent` continues through each door into
the store's spans, in `serve` (REST in-process, gRPC) and through `taskgate gateway`.

The SDK's in-memory exporter collects the spans; its tracer stands in for taskgate's (the
global provider is left alone, so no other test records anything)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from taskgate import tracing
from taskgate.api import task_pb2
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.servers import Taskgate

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
CREATE = "api.TaskService/CreateTask"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "TRACER", provider.get_tracer("taskgate"))
    return exporter


async def _one(spans: InMemorySpanExporter, name: str, kind: SpanKind) -> ReadableSpan:
    """The one finished span of that name and kind. A server span ends just after its answer is
    sent, so the caller may see the answer first: wait for the span, briefly."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 5.0
    while True:
        found = [s for s in spans.get_finished_spans() if s.name == name and s.kind == kind]
        if found or loop.time() > give_up:
            break
        await asyncio.sleep(0.01)
    assert len(found) == 1, [(s.name, s.kind) for s in spans.get_finished_spans()]
    return found[0]


def _check_child(span: ReadableSpan, parent_span_id: int) -> None:
    assert span.context is not None
    assert span.parent is not None
    assert span.context.trace_id == int(TRACE_ID, 16)
    assert span.parent.span_id == parent_span_id


async def _check_database(
    spans: InMemorySpanExporter, operation: str, parent: ReadableSpan
) -> None:
    assert parent.context is not None
    db = await _one(spans, f"{operation} tasks", SpanKind.CLIENT)
    _check_child(db, parent.context.span_id)
    assert dict(db.attributes or {}) == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.collection.name": "tasks",
    }


def _check_server(span: ReadableSpan, method: str, code: int = 0) -> None:
    attributes = dict(span.attributes or {})
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "api.TaskService"
    assert attributes["rpc.method"] == method
    assert attributes["rpc.grpc.status_code"] == code


async def test_rest_traceparent_reaches_the_database_span(
    taskgate: Taskgate, spans: InMemorySpanExporter
) -> None:
    body = {
        "pipelineName": "pipeline/p",
        "runId": "r",
        "mlmdExecutionID": "1",
        "fingerprint": "f",
        "created_at": "2024-05-10T10:19:13Z",
    }
    headers = {"traceparent": TRACEPARENT}
    async with taskgate.http.post(taskgate.tasks_url, json=body, headers=headers) as response:
        assert response.status == 200
    server = await _one(spans, CREATE, SpanKind.SERVER)
    _check_child(server, int(CALLER_SPAN, 16))
    _check_server(server, "CreateTask")
    assert (server.attributes or {})["http.response.status_code"] == 200
    await _check_database(spans, "INSERT", server)
    # No SQL, no values: the fingerprint appears nowhere.
    for span in spans.get_finished_spans():
        assert "f" not in (span.attributes or {}).values()


async def test_grpc_traceparent_metadata_reaches_the_database_span(
    taskgate: Taskgate, spans: InMemorySpanExporter
) -> None:
    await taskgate.stub.ListTasks(
        task_pb2.ListTasksRequest(page_size=1), metadata=(("traceparent", TRACEPARENT),)
    )
    server = await _one(spans, "api.TaskService/ListTasks", SpanKind.SERVER)
    _check_child(server, int(CALLER_SPAN, 16))
    _check_server(server, "ListTasks")
    assert "http.response.status_code" not in (server.attributes or {})
    await _check_database(spans, "SELECT", server)
    # A refused call: its span says so, and no statement ran.
    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError):
        await taskgate.stub.CreateTask(task_pb2.CreateTaskRequest())
    refused = await _one(spans, CREATE, SpanKind.SERVER)
    assert refused.parent is None  # no traceparent: a new trace
    _check_server(refused, "CreateTask", grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert len(spans.get_finished_spans()) == 1


async def test_gateway_passes_traceparent_to_its_upstream(
    taskgate: Taskgate, spans: InMemorySpanExporter
) -> None:
    config = StandaloneConfig(upstream=taskgate.grpc_target, port=0, options=GatewayOptions.kfp())
    async with gateway_serving(config) as running:
        spans.clear()  # discovery and health checks are not traced, but be sure
        url = f"http://127.0.0.1:{running.port}/apis/v1alpha1/tasks"
        headers = {"traceparent": TRACEPARENT}
        body = {
            "pipelineName": "pipeline/p",
            "runId": "r",
            "mlmdExecutionID": "1",
            "fingerprint": "f",
            "created_at": "2024-05-10T10:19:13Z",
        }
        async with taskgate.http.post(url, json=body, headers=headers) as response:
            assert response.status == 200
    server_spans = [s for s in spans.get_finished_spans() if s.name == CREATE]
    rest = next(s for s in server_spans if "http.response.status_code" in (s.attributes or {}))
    grpc_span = next(s for s in server_spans if s is not rest)
    assert len(server_spans) == 2
    _check_child(rest, int(CALLER_SPAN, 16))
    assert rest.context is not None
    _check_child(grpc_span, rest.context.span_id)
    _check_server(grpc_span, "CreateTask")
    await _check_database(spans, "INSERT", grpc_span)


async def test_unrouted_rest_request_is_named_by_its_http_method(
    taskgate: Taskgate, spans: InMemorySpanExporter
) -> None:
    async with taskgate.http.get(f"{taskgate.base_url}/nowhere") as response:
        assert response.status == 404
    span = await _one(spans, "GET", SpanKind.SERVER)
    assert dict(span.attributes or {}) == {
        "rpc.grpc.status_code": grpc.StatusCode.NOT_FOUND.value[0],
        "http.response.status_code": 404,
    }
