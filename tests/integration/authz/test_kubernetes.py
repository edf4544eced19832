"""`authority: kubernetes` against a local HTTP server that speaks TokenReview and
SubjectAccessReview (authentication.k8s.io/v1, authorization.k8s.io/v1), as the API server does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest
from aiohttp import web

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.server.lifecycle import serving
from tests.integration.kfp import eq_filter, kfp_error, new_task
from tests.integration.servers import serve_settings

OWN_TOKEN = "taskgate-sa-token"
DRIVER = "system:serviceaccount:alice:pipeline-runner"


@dataclass
class FakeApiServer:
    url: str = ""
    tokens: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    #: (user, namespace, verb) the RBAC allows, on pipelines.kubeflow.org/v1beta1 runs.
    allowed: set[tuple[str, str, str]] = field(default_factory=set)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    async def token_review(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {OWN_TOKEN}":
            return web.json_response({"kind": "Status"}, status=401)
        body = await request.json()
        self.reviews.append(body)
        found = self.tokens.get(body["spec"]["token"])
        status: dict[str, Any] = {"authenticated": False}
        if found is not None:
            status = {"authenticated": True, "user": {"username": found[0], "groups": found[1]}}
        return web.json_response({**body, "status": status}, status=201)

    async def access_review(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {OWN_TOKEN}":
            return web.json_response({"kind": "Status"}, status=401)
        body = await request.json()
        self.reviews.append(body)
        spec, attributes = body["spec"], body["spec"]["resourceAttributes"]
        resource = (attributes["group"], attributes["version"], attributes["resource"])
        allowed = resource == ("pipelines.kubeflow.org", "v1beta1", "runs") and (
            (spec["user"], attributes["namespace"], attributes["verb"]) in self.allowed
        )
        return web.json_response({**body, "status": {"allowed": allowed}}, status=201)


@pytest.fixture
async def api_server() -> AsyncIterator[FakeApiServer]:
    fake = FakeApiServer(tokens={"driver-token": (DRIVER, ["system:serviceaccounts"])})
    fake.allowed = {(DRIVER, "alice", "list"), (DRIVER, "alice", "create"), ("bob", "bob", "list")}
    app = web.Application()
    app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", fake.token_review)
    app.router.add_post("/apis/authorization.k8s.io/v1/subjectaccessreviews", fake.access_review)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def stub(
    database_url: str, pool: asyncpg.Pool, api_server: FakeApiServer, tmp_path: Path
) -> AsyncIterator[task_pb2_grpc.TaskServiceAsyncStub]:
    (tmp_path / "token").write_text(OWN_TOKEN + "\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"authority: kubernetes\nshared: read\n"
        f"kubernetes:\n  server: {api_server.url}\n  token_file: token\n  cache_seconds: 30\n"
    )
    settings = replace(serve_settings(database_url), authz_policy=policy)
    async with serving(settings) as running:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}")
        async with channel:
            yield task_pb2_grpc.TaskServiceStub(channel)


DRIVER_CALL = (("authorization", "Bearer driver-token"),)


async def test_a_kfp_driver_with_a_service_account_token(
    stub: task_pb2_grpc.TaskServiceAsyncStub, api_server: FakeApiServer
) -> None:
    create = task_pb2.CreateTaskRequest(task=new_task(namespace="alice"))
    await stub.CreateTaskV1(create, metadata=DRIVER_CALL)
    lookup = task_pb2.ListTasksRequest(
        filter=eq_filter(fingerprint="fp", namespace="alice"), sort_by="created_at desc"
    )
    for _ in range(3):
        page = await stub.ListTasksV1(lookup, metadata=DRIVER_CALL)
        assert page.total_size == 1
    # One TokenReview and one review per namespace and verb: the rest came from the cache.
    kinds = [review["kind"] for review in api_server.reviews]
    assert kinds == ["TokenReview", "SubjectAccessReview", "SubjectAccessReview"]
    verbs = [r["spec"]["resourceAttributes"]["verb"] for r in api_server.reviews[1:]]
    assert verbs == ["create", "list"]
    assert api_server.reviews[1]["spec"]["groups"] == ["system:serviceaccounts"]


@pytest.mark.parametrize(
    ("metadata", "namespace", "code", "message"),
    [
        (
            DRIVER_CALL,
            "bob",
            grpc.StatusCode.PERMISSION_DENIED,
            f'{DRIVER} may not write namespace "bob"',
        ),
        (
            (("authorization", "Bearer stolen"),),
            "alice",
            grpc.StatusCode.UNAUTHENTICATED,
            "the bearer token was not accepted by Kubernetes (TokenReview)",
        ),
        (
            (("kubeflow-userid", "bob"),),
            "alice",
            grpc.StatusCode.PERMISSION_DENIED,
            'bob may not write namespace "alice"',
        ),
        (
            (),
            "alice",
            grpc.StatusCode.UNAUTHENTICATED,
            "no identity: the call has no kubeflow-userid header or an `authorization: Bearer TOKEN` header",
        ),
    ],
)
async def test_refusals(
    stub: task_pb2_grpc.TaskServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
    namespace: str,
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.CreateTask(
            task_pb2.CreateTaskRequest(task=new_task(namespace=namespace)), metadata=metadata
        )
    assert failure.value.code() == code
    assert kfp_error(failure.value).error_message == message


async def test_a_list_naming_no_namespace_shows_the_shared_one_only(
    stub: task_pb2_grpc.TaskServiceAsyncStub, pool: asyncpg.Pool
) -> None:
    await stub.CreateTask(
        task_pb2.CreateTaskRequest(task=new_task(namespace="alice")), metadata=DRIVER_CALL
    )
    await pool.execute(
        "INSERT INTO tasks SELECT gen_random_uuid()::text, '', pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint FROM tasks"
    )
    page = await stub.ListTasks(task_pb2.ListTasksRequest(), metadata=(("kubeflow-userid", "bob"),))
    assert [t.namespace for t in page.tasks] == [""]
    assert page.total_size == 1


async def test_an_unreachable_api_server_is_503(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(OWN_TOKEN)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "authority: kubernetes\nkubernetes:\n  server: http://127.0.0.1:9\n  token_file: token\n  timeout_seconds: 2\n"
    )
    settings = replace(serve_settings(database_url), authz_policy=policy)
    async with (
        serving(settings) as running,
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{running.http_port}/apis/v1alpha1/tasks",
            headers={"Authorization": "Bearer driver-token"},
        ) as response,
    ):
        body = await response.json()
    assert response.status == 503
    assert body["message"] == "the Kubernetes API server cannot be asked right now"
    assert "driver-token" not in str(body)
