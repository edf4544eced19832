"""Traces (docs/decisions.md P13): OpenTelemetry through its API only.

Each door starts one SERVER span per call, named by the RPC ("api.TaskService/ListTasks"),
continuing the caller's W3C `traceparent` (REST header or gRPC metadata); the store wraps each
statement in a CLIENT span (`db.system` postgresql and the operation, never SQL or values); the
gateway's calls to its upstream carry the current context as metadata. The in-process REST call
of `serve` needs nothing: the context travels with the task (contextvars).

Without an SDK configured, the API's no-op tracer answers, and the cost is a few microseconds
per call (measured in P13). `configure_from_environment` sets up the SDK at start-up when it is
installed (`pip install 'taskgate[otel]'`) and the standard OTEL_* variables ask for exporting.
This module imports no other module of taskgate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

#: A ProxyTracer: it follows whichever provider is set, before or after this import.
TRACER = trace.get_tracer("taskgate")

#: gRPC metadata: key/value pairs, iterable more than once (grpc.aio.Metadata, a tuple).
MetadataItems = Iterable[tuple[str, str | bytes]]

#: gRPC codes that are the server's fault (OpenTelemetry's semantic conventions for RPC).
_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


class _MetadataGetter(Getter[MetadataItems]):
    """Reads text values of gRPC metadata (a sequence of key/value pairs)."""

    def get(self, carrier: MetadataItems, key: str) -> list[str] | None:
        values = [value for k, value in carrier if k == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: MetadataItems) -> list[str]:
        return [key for key, _ in carrier]


_METADATA_GETTER = _MetadataGetter()


class ServerSpan:
    """One call's SERVER span, current while the call runs (`start_server_span`)."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span, token: object) -> None:
        self.span = span
        self._token = token

    def end(self, method: str, code: str, http_status: int | None = None) -> None:
        """Name the span after the RPC (`method` "/pkg.Service/Method"; "" when a REST request
        matched no route), record the outcome and end it."""
        span = self.span
        if self._token is None:  # _IDLE: nothing was started
            return
        try:
            if span.is_recording():
                _set_outcome(span, method, code, http_status)
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            span.end()


#: What a call gets when there is nothing to do: no SDK and no trace context from the caller.
_IDLE = ServerSpan(trace.INVALID_SPAN, None)


def start_server_span(name: str, parent: otel_context.Context | None) -> ServerSpan:
    """A SERVER span child of `parent` (the caller's context, `context_from_*`; None: the
    caller sent none), made current until `ServerSpan.end`: the store's spans and the upstream
    call follow it. Without an SDK and without a caller's context, nothing at all."""
    if parent is None:
        if _no_sdk():
            return _IDLE
        parent = otel_context.Context()  # a new trace, whatever is current
    span = TRACER.start_span(name, context=parent, kind=SpanKind.SERVER)
    if not span.get_span_context().is_valid:
        # The no-op tracer of older APIs (1.35 among them) drops the caller's context: keep it, so
        # that the upstream call still carries it.
        span = trace.get_current_span(parent)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return ServerSpan(span, token)


_PROXY_TRACER = TRACER
_UNKNOWN = object()
#: The API loads a provider named by this variable on first use (read once: it is start-up
#: configuration, and `os.environ` costs a microsecond or two per look).
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def _no_sdk() -> bool:
    """True while no tracer provider is set: the API's proxy would answer with no-op spans.
    Reads the API's global when it has it (a fraction of a microsecond); else asks."""
    if TRACER is not _PROXY_TRACER or _PROVIDER_FROM_ENV:
        return False
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # another API version: the public, slower way
        return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return provider is None


_fields_of: tuple[object, frozenset[str]] = (None, frozenset())


def _propagated_fields() -> frozenset[str]:
    """The keys the global propagator reads (traceparent, tracestate, baggage by default)."""
    global _fields_of
    propagator = propagate.get_global_textmap()
    if _fields_of[0] is not propagator:
        _fields_of = (propagator, frozenset(propagator.fields))
    return _fields_of[1]


def context_from_headers(headers: Mapping[str, str]) -> otel_context.Context | None:
    """The caller's trace context from HTTP headers (`traceparent`, `tracestate`, `baggage`);
    None when it sent none of them."""
    if not any(field in headers for field in _propagated_fields()):
        return None
    return propagate.extract(headers, context=otel_context.Context())


def context_from_metadata(metadata: MetadataItems) -> otel_context.Context | None:
    """The caller's trace context from gRPC metadata; None when it sent none."""
    fields = _propagated_fields()
    for key, _ in metadata:
        if key in fields:
            return propagate.extract(
                metadata, context=otel_context.Context(), getter=_METADATA_GETTER
            )
    return None


def outgoing_metadata(metadata: MetadataItems) -> tuple[tuple[str, str | bytes], ...]:
    """`metadata` with the current trace context in place of any the caller sent."""
    if not otel_context.get_current():  # nothing attached: no span, no baggage
        return tuple(metadata)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return tuple(metadata)
    kept = (item for item in metadata if item[0] not in carrier)
    return (*kept, *carrier.items())


_NOTHING = nullcontext()


def database_span(operation: str, collection: str) -> AbstractContextManager[None]:
    """A CLIENT span around one statement (`operation` "SELECT", "INSERT"; `collection` the
    table), child of the current span; nothing at all when that one is not recording (no SDK,
    not sampled). Errors are named by type only: their text may quote values."""
    if not trace.get_current_span().is_recording():
        return _NOTHING
    return _database_span(operation, collection)


@contextmanager
def _database_span(operation: str, collection: str) -> Iterator[None]:
    attributes = {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.collection.name": collection,
    }
    span = TRACER.start_span(f"{operation} {collection}", kind=SpanKind.CLIENT)
    span.set_attributes(attributes)
    try:
        yield
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


def _set_outcome(span: Span, method: str, code: str, http_status: int | None) -> None:
    service, _, name = method.lstrip("/").partition("/")
    if name:
        span.update_name(f"{service}/{name}")
        span.set_attributes({"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
    span.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS.get(code, 2))
    if http_status is not None:
        span.set_attribute("http.response.status_code", http_status)
        failed = http_status >= 500
    else:
        failed = code in _SERVER_ERRORS
    if failed:
        span.set_status(Status(StatusCode.ERROR, code))


#: Any of these set (and not "none") asks for exporting.
_EXPORT_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def configure_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Install the SDK's tracer provider with a batch exporter when the OTEL_* variables ask
    for traces and the SDK is installed; True when it did. OTEL_TRACES_EXPORTER is a
    comma-separated list of `otlp` (the default: OTLP over gRPC, configured by the standard
    OTEL_EXPORTER_OTLP_* variables) and `console`; `none` or OTEL_SDK_DISABLED=true turn it off.
    The service name is `taskgate` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name one.
    """
    env = os.environ if environ is None else environ
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not any(env.get(name, "").strip() for name in _EXPORT_VARIABLES):
        return False
    if exporters == "none" or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    except ImportError:
        log.warning(
            "OTEL_* variables ask for traces, but the OpenTelemetry SDK is not installed "
            "(pip install 'taskgate[otel]'); traces are not exported"
        )
        return False
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": "taskgate"})
    )
    for name in _names(exporters or "otlp"):
        exporter: SpanExporter
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                log.warning(
                    "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-grpc "
                    "(pip install 'taskgate[otel]'); traces are not exported"
                )
                return False
            exporter = OTLPSpanExporter()
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER %r ignored (otlp, console, none)", name)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("exporting traces (%s)", exporters or "otlp")
    return True


def _names(text: str) -> Iterable[str]:
    return (name.strip() for name in text.split(",") if name.strip())
