"""`taskgate gateway --preset kfp` in front of `taskgate serve`'s gRPC port answers the KFP REST
API exactly as `taskgate serve`'s own REST door does: same status, headers that matter, JSON."""

from __future__ import annotations

import pytest

from taskgate.api import task_pb2
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.kfp import new_task
from tests.integration.servers import Taskgate
from tests.integration.test_peer import CORPUS, answer, without_id


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: f"{c.method} {c.target} {c.body!r}"[:60])
async def test_gateway_answers_like_serve(taskgate: Taskgate, case: object) -> None:
    for i in range(3):
        await taskgate.stub.CreateTask(
            task_pb2.CreateTaskRequest(task=new_task(created_at=100 + i))
        )
    config = StandaloneConfig(upstream=taskgate.grpc_target, port=0, options=GatewayOptions.kfp())
    async with gateway_serving(config) as running:
        via_gateway = await answer(taskgate.http, f"http://127.0.0.1:{running.port}", case)  # type: ignore[arg-type]
    direct = await answer(taskgate.http, taskgate.base_url, case)  # type: ignore[arg-type]
    assert via_gateway[0] == direct[0]
    assert via_gateway[1] == direct[1]
    assert without_id(via_gateway[2]) == without_id(direct[2])
