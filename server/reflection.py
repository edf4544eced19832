"""Server reflection v1 and v1alpha, and the gRPC health service.

grpcio-reflection ships only v1alpha. The v1 protocol has the same messages under another
package, so the v1 service is the v1alpha servicer behind the v1 name, with the v1 file added to
the default pool (built from the v1alpha descriptor) so that reflection can describe itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
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
        pool.Add(proto)


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection v1alpha and v1 for service_names (and for themselves and health)."""
    _add_v1_descriptor()
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME, V1_SERVICE]
    servicer = reflection.aio.ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    v1_method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1_method}),)
    )


async def enable_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    """Serve grpc.health.v1.Health; NOT_SERVING until `set_serving` (DECISIONS §2: ready means
    SERVING)."""
    servicer = health.aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, services: Iterable[str]) -> None:
    for name in ("", *services):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def enter_shutdown(servicer: health.aio.HealthServicer) -> None:
    """Everything NOT_SERVING, for good: the process is stopping."""
    await servicer.enter_graceful_shutdown()
