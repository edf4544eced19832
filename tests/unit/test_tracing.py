"""taskgate/tracing.py without an SDK configured: the API's no-op tracer, which still carries a
caller's trace context through (docs/decisions.md P13)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace

from taskgate import tracing

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_no_sdk_passes_the_callers_context_on() -> None:
    parent = tracing.context_from_metadata((("x-request-id", "r"), ("traceparent", TRACEPARENT)))
    traced = tracing.start_server_span("api.TaskService/ListTasks", parent)
    try:
        assert not traced.span.is_recording()
        with tracing.database_span("SELECT", "tasks"):
            pass
        sent = tracing.outgoing_metadata((("traceparent", "stale"), ("a", "b")))
    finally:
        traced.end("/api.TaskService/ListTasks", "OK")
    assert sent == (("a", "b"), ("traceparent", TRACEPARENT))
    assert not trace.get_current_span().get_span_context().is_valid


def test_no_context_sends_none() -> None:
    headers = {"traceparent": "not a traceparent"}
    traced = tracing.start_server_span("GET", tracing.context_from_headers(headers))
    try:
        assert tracing.outgoing_metadata((("a", "b"),)) == (("a", "b"),)
    finally:
        traced.end("", "NOT_FOUND", 404)


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_SERVICE_NAME": "x"},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_exporting_stays_off_unless_asked(environ: dict[str, str]) -> None:
    assert tracing.configure_from_environment(environ) is False


def test_sdk_missing_is_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "opentelemetry.sdk.trace", None)
    with caplog.at_level(logging.WARNING, "taskgate.tracing"):
        assert tracing.configure_from_environment({"OTEL_TRACES_EXPORTER": "otlp"}) is False
    assert "taskgate[otel]" in caplog.text


def test_no_sdk_and_no_context_starts_nothing() -> None:
    assert tracing.context_from_metadata((("x-request-id", "r"),)) is None
    assert tracing.context_from_headers({"X-Request-Id": "r"}) is None
    traced = tracing.start_server_span("api.TaskService/ListTasks", None)
    assert not traced.span.get_span_context().is_valid
    assert tracing.outgoing_metadata((("a", "b"),)) == (("a", "b"),)
    traced.end("/api.TaskService/ListTasks", "OK")
