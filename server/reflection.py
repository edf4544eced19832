"""Server reflection v1 and v1alpha.

grpcio-reflection ships only v1alpha. The v1 protocol has the same messages under another
package, so the v1 service is the v1alpha servicer behind the v1 name, and a v1 file (the v1alpha
descriptor with its package and type names rewritten) is added to the default pool so that
reflection can describe the v1 service too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"


def _add_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(V1_FILE)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto()
        reflection_pb2.DESCRIPTOR.CopyToProto(proto)
        proto.name = V1_FILE
        proto.package = "grpc.reflection.v1"
        proto.options.Clear()
        for message in proto.message_type:
            for field in message.field:
                if field.HasField("type_name"):
                    field.type_name = _to_v1(field.type_name)
        for service in proto.service:
            for method in service.method:
                method.input_type = _to_v1(method.input_type)
                method.output_type = _to_v1(method.output_type)
        pool.Add(proto)


def _to_v1(type_name: str) -> str:
    return type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.", 1)


def enable_reflection(
    server: grpc.aio.Server,
    service_names: Iterable[str],
    versions: Collection[str] = ("v1alpha", "v1"),
) -> None:
    """Serve reflection `versions` for service_names (and for themselves and health)."""
    by_version = {"v1alpha": reflection.SERVICE_NAME, "v1": V1_SERVICE}
    names = [*service_names, health.SERVICE_NAME, *(by_version[v] for v in versions)]
    if "v1alpha" in versions:
        reflection.enable_server_reflection(names, server)
    if "v1" not in versions:
        return
    _add_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer(names)
    v1_method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1_method}),)
    )
