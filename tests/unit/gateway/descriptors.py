"""Descriptor helpers: the fixture services, a copy in a separate pool, and ad-hoc services."""

from __future__ import annotations

from collections.abc import Iterable

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

from taskgate.gateway.discovery import build_pool, default_pool_file
from taskgate.gateway.routing import RouteTable
from tests.protos import transcoding_test_pb2

FIXTURE = transcoding_test_pb2.DESCRIPTOR


def fixture_services() -> list[descriptor.ServiceDescriptor]:
    return list(FIXTURE.services_by_name.values())


def fixture_table() -> RouteTable:
    return RouteTable.from_services(fixture_services())


def copy_into_new_pool(file: descriptor.FileDescriptor) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding `file` (of the default pool) and its imports, as discovery builds it."""
    return build_pool([default_pool_file(file.name)])


def service_with_rules(
    rules: Iterable[http_pb2.HttpRule], *, client_streaming: bool = False
) -> descriptor.ServiceDescriptor:
    """`adhoc.S` with one method per rule, M0, M1, ..., all taking `adhoc.Req`."""
    file = descriptor_pb2.FileDescriptorProto(name="adhoc.proto", package="adhoc", syntax="proto3")
    nested = file.message_type.add(name="Nested")
    nested.field.add(name="value", number=1, type=_T.TYPE_STRING, label=_T.LABEL_OPTIONAL)
    request = file.message_type.add(name="Req")
    request.field.add(name="name", number=1, type=_T.TYPE_STRING, label=_T.LABEL_OPTIONAL)
    request.field.add(name="tags", number=2, type=_T.TYPE_STRING, label=_T.LABEL_REPEATED)
    request.field.add(
        name="nested",
        number=3,
        type=_T.TYPE_MESSAGE,
        type_name=".adhoc.Nested",
        label=_T.LABEL_OPTIONAL,
    )
    service = file.service.add(name="S")
    for index, rule in enumerate(rules):
        method = service.method.add(
            name=f"M{index}",
            input_type=".adhoc.Req",
            output_type=".adhoc.Req",
            client_streaming=client_streaming,
        )
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool.FindServiceByName("adhoc.S")


_T = descriptor_pb2.FieldDescriptorProto
