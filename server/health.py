"""The gRPC health service and `/healthz`, from one state."""

from __future__ import annotations

import json
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from taskgate import __version__, metrics

#: KFP's API server answers this path on its REST port (docs/decisions.md P10).
KFP_HEALTHZ_PATH = "/apis/v1beta1/healthz"


def kfp_healthz_body(*, multi_user: bool) -> bytes:
    """KFP's `GET /apis/v1beta1/healthz` answer: always 200, `{"commit_sha", "tag_name",
    "multi_user"}`. KFP fills the first two from its build (`unknown` when not set); taskgate
    says `unknown` and its version. Not readiness: that is `/healthz` (decision S4)."""
    body = {"commit_sha": "unknown", "tag_name": __version__, "multi_user": multi_user}
    return json.dumps(body, separators=(",", ":")).encode()


class Health:
    """grpc.health.v1.Health and `/healthz` from one state (decision S4: ready means SERVING).

    NOT_SERVING until `set_serving`; `set_not_serving` while the database is unreachable;
    `shut_down` is final (the process is stopping).
    """

    def __init__(self, server: grpc.aio.Server, services: Iterable[str]) -> None:
        self._servicer = health.aio.HealthServicer()
        self._services = ("", *services)
        self._serving = False
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        await self._set(health_pb2.HealthCheckResponse.NOT_SERVING)

    async def set_serving(self) -> None:
        await self._set(health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        metrics.READY.set(1)

    async def set_not_serving(self) -> None:
        self._serving = False
        metrics.READY.set(0)
        await self._set(health_pb2.HealthCheckResponse.NOT_SERVING)

    async def shut_down(self) -> None:
        self._serving = False
        metrics.READY.set(0)
        await self._servicer.enter_graceful_shutdown()

    async def is_serving(self) -> bool:
        """What the gRPC health service answers for the server as a whole."""
        return self._serving

    async def _set(self, status: int) -> None:
        for name in self._services:
            await self._servicer.set(name, status)
