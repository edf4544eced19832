"""Multi-user mode through both doors of a real `taskgate serve --authz-policy` (server/authz).

The matrix: {gRPC, REST} × {CreateTask, ListTasks, CreateTaskV1, ListTasksV1} × {no identity,
unknown token, reader, writer, other namespace, shared namespace}. The V1 aliases have no REST
route (neither has KFP's), so REST covers CreateTask and ListTasks.

The matrix, the cross-namespace refusals and the cache-poisoning request run over each
transport of `conftest.TRANSPORTS`: plaintext, TLS, and REST through `taskgate gateway --preset
kfp --upstream-tls` in front of the TLS `serve`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest

from taskgate.api import resource_reference_pb2, task_pb2
from taskgate.server.lifecycle import StartupError, serving
from taskgate.store.records import NewTask
from taskgate.store.task_store import TaskStore
from tests.integration.authz.conftest import POLICY, TRANSPORTS, Doors
from tests.integration.kfp import eq_filter, kfp_error, new_task
from tests.integration.servers import Taskgate, serve_settings

PREFIX = "accounts.google.com:"
HTTP_OF = {grpc.StatusCode.OK: 200, grpc.StatusCode.UNAUTHENTICATED: 401}
HTTP_OF |= {grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.INVALID_ARGUMENT: 400}

Metadata = tuple[tuple[str, str], ...]


def user(name: str) -> Metadata:
    return (("kubeflow-userid", PREFIX + name),)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


#: case → (metadata, target namespace)
CASES: dict[str, tuple[Metadata, str]] = {
    "no identity": ((), "alice"),
    "unknown token": (bearer("tok-mallory"), "alice"),
    "reader": (user("reader"), "alice"),
    "writer": (bearer("tok-alice"), "alice"),
    "other namespace": (user("bob"), "alice"),
    "shared namespace": (user("bob"), ""),
}
EXPECTED_CREATE = {
    "no identity": 401,
    "unknown token": 401,
    "reader": 403,
    "writer": 200,
    "other namespace": 403,
    "shared namespace": 403,  # shared: read
}
EXPECTED_LIST = {
    "no identity": 401,
    "unknown token": 401,
    "reader": 200,
    "writer": 200,
    "other namespace": 403,
    "shared namespace": 200,
}


async def grpc_call(tg: Taskgate, method: str, metadata: Metadata, namespace: str) -> int:
    rpc = getattr(tg.stub, method)
    if method.startswith("Create"):
        request: Any = task_pb2.CreateTaskRequest(task=new_task(namespace=namespace))
    else:
        request = task_pb2.ListTasksRequest(filter=eq_filter(namespace=namespace))
    try:
        await rpc(request, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        details = error.details() or ""
        code = error.code()
    else:
        return 200
    assert "tok-" not in details
    return HTTP_OF[code]


async def rest_call(tg: Taskgate, method: str, metadata: Metadata, namespace: str) -> int:
    status, _ = await rest_answer(tg, method, metadata, namespace)
    return status


async def rest_answer(
    tg: Taskgate, method: str, metadata: Metadata, namespace: str
) -> tuple[int, Any]:
    headers = dict(metadata)
    if method == "CreateTask":
        body = {"namespace": namespace, "pipelineName": "p", "runId": "r", "fingerprint": "f"}
        body |= {"mlmdExecutionID": "1", "created_at": "2024-01-01T00:00:00Z"}
        response = await tg.http.post(tg.tasks_url, json=body, headers=headers)
    else:
        params = {"filter": eq_filter(namespace=namespace)}
        response = await tg.http.get(tg.tasks_url, params=params, headers=headers)
    async with response:
        text = await response.text()
    assert "tok-" not in text
    assert response.content_type == "application/json"
    return response.status, json.loads(text)


#: (door, transport): the gateway serves REST only; its gRPC side is serve's, as with `tls`
MATRIX = [(door, transport) for door in ("grpc", "rest") for transport in TRANSPORTS]
MATRIX.remove(("grpc", "gateway"))


@pytest.mark.parametrize(
    ("door", "multi_user"), MATRIX, indirect=["multi_user"], ids=[f"{d}-{t}" for d, t in MATRIX]
)
async def test_the_matrix(multi_user: Taskgate, pool: asyncpg.Pool, door: str) -> None:
    methods = ["CreateTask", "ListTasks"]
    if door == "grpc":
        methods += ["CreateTaskV1", "ListTasksV1"]
    call = grpc_call if door == "grpc" else rest_call
    actual = {
        (method, case): await call(multi_user, method, metadata, namespace)
        for method in methods
        for case, (metadata, namespace) in CASES.items()
    }
    expected = {
        (method, case): (EXPECTED_CREATE if method.startswith("Create") else EXPECTED_LIST)[case]
        for method in methods
        for case in CASES
    }
    assert actual == expected
    # Only the writer's creates were written: one per Create method, all in alice's namespace.
    rows = await pool.fetch("SELECT namespace FROM tasks")
    assert [row["namespace"] for row in rows] == ["alice"] * (len(methods) // 2)


@pytest.mark.parametrize("multi_user", ["gateway"], indirect=True)
async def test_the_gateway_answers_every_case_as_serves_rest_door(
    multi_user: Doors, pool: asyncpg.Pool
) -> None:
    """Identities (kubeflow-userid and Authorization: Bearer) pass through the gateway to serve's
    pipeline: every REST case of the matrix answers the same status and body at both."""
    serve = replace(multi_user, rest_url=f"https://127.0.0.1:{multi_user.server.http_port}")
    for method in ("CreateTask", "ListTasks"):
        for case, (metadata, namespace) in CASES.items():
            answers = []
            for doors in (serve, multi_user):
                status, body = await rest_answer(doors, method, metadata, namespace)
                if method == "CreateTask" and status == 200:
                    del body["id"]  # two tasks were created
                answers.append((status, body))
            assert answers[0] == answers[1], (method, case)
    rows = await pool.fetch("SELECT namespace FROM tasks")
    assert [row["namespace"] for row in rows] == ["alice", "alice"]


async def test_messages_say_what_is_missing(multi_user: Taskgate) -> None:
    request = task_pb2.CreateTaskRequest(task=new_task(namespace="alice"))
    cases = [
        (
            (),
            "no identity: the call has no kubeflow-userid header or an `authorization: Bearer TOKEN` header",
        ),
        (bearer("tok-mallory"), "unknown bearer token"),
        (user("bob"), 'bob may not write namespace "alice"'),
    ]
    for metadata, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await multi_user.stub.CreateTask(request, metadata=metadata)
        assert kfp_error(failure.value).error_message == message
        assert "tok-mallory" not in str(failure.value.trailing_metadata())


async def seed(pool: asyncpg.Pool) -> None:
    store = TaskStore(pool)
    for namespace, count in (("alice", 3), ("bob", 2), ("", 1)):
        for i in range(count):
            await store.create_task(
                NewTask(namespace, "p", f"run-{i}", "1", 1_700_000_000 + i, 0, "fp")
            )


def namespace_filter(op: str, *values: str) -> str:
    if op == "IN":
        value: dict[str, Any] = {"stringValues": {"values": list(values)}}
    else:
        value = {"stringValue": values[0]}
    return json.dumps({"predicates": [{"op": op, "key": "namespace", **value}]})


@pytest.mark.parametrize("multi_user", TRANSPORTS, indirect=True)
async def test_lists_show_only_readable_namespaces(
    multi_user: Taskgate, pool: asyncpg.Pool
) -> None:
    await seed(pool)
    bob = user("bob")
    page = await multi_user.stub.ListTasks(task_pb2.ListTasksRequest(), metadata=bob)
    assert sorted(t.namespace for t in page.tasks) == ["", "bob", "bob"]
    assert page.total_size == 3  # counted in SQL: alice's three are not counted
    async with multi_user.http.get(multi_user.tasks_url, headers=dict(bob)) as response:
        body = await response.json()
    assert (response.status, body["total_size"]) == (200, 3)
    not_bob = task_pb2.ListTasksRequest(filter=namespace_filter("NOT_EQUALS", "bob"))
    page = await multi_user.stub.ListTasks(not_bob, metadata=bob)
    assert [t.namespace for t in page.tasks] == [""]
    substring = task_pb2.ListTasksRequest(filter=namespace_filter("IS_SUBSTRING", "ali"))
    page = await multi_user.stub.ListTasks(substring, metadata=bob)
    assert (len(page.tasks), page.total_size) == (0, 0)


@pytest.mark.parametrize(
    "request_",
    [
        task_pb2.ListTasksRequest(filter=namespace_filter("EQUALS", "alice")),
        task_pb2.ListTasksRequest(filter=namespace_filter("IN", "bob", "alice")),
        task_pb2.ListTasksRequest(
            resource_reference_key=resource_reference_pb2.ResourceKey(
                type=resource_reference_pb2.NAMESPACE, id="alice"
            )
        ),
    ],
    ids=["filter", "in-list", "resource-key"],
)
@pytest.mark.parametrize("multi_user", TRANSPORTS, indirect=True)
async def test_naming_an_unreadable_namespace_is_403(
    multi_user: Taskgate, pool: asyncpg.Pool, request_: task_pb2.ListTasksRequest
) -> None:
    await seed(pool)
    for method in (multi_user.stub.ListTasks, multi_user.stub.ListTasksV1):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await method(request_, metadata=user("bob"))
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert kfp_error(failure.value).error_message == 'bob may not read namespace "alice"'
    if request_.HasField("resource_reference_key"):
        key = request_.resource_reference_key
        query = {"resource_reference_key.type": resource_reference_pb2.ResourceType.Name(key.type)}
        query["resource_reference_key.id"] = key.id
    else:
        query = {"filter": request_.filter}
    headers = dict(user("bob"))
    async with multi_user.http.get(multi_user.tasks_url, params=query, headers=headers) as r:
        body = await r.json()
    assert r.status == 403
    assert body["details"][0]["error_message"] == 'bob may not read namespace "alice"'


async def test_a_resource_key_over_rest_is_403(multi_user: Taskgate, pool: asyncpg.Pool) -> None:
    query = "?resource_reference_key.type=NAMESPACE&resource_reference_key.id=alice"
    async with multi_user.http.get(multi_user.tasks_url + query, headers=dict(user("bob"))) as r:
        body = await r.json()
    assert r.status == 403
    assert body["message"].endswith('bob may not read namespace "alice"')


@pytest.mark.parametrize("multi_user", TRANSPORTS, indirect=True)
async def test_page_tokens_are_bound_to_the_identity(
    multi_user: Taskgate, pool: asyncpg.Pool
) -> None:
    await seed(pool)
    first = await multi_user.stub.ListTasks(
        task_pb2.ListTasksRequest(page_size=1, filter=namespace_filter("EQUALS", "alice")),
        metadata=bearer("tok-alice"),
    )
    token = first.next_page_token
    assert token
    replay = task_pb2.ListTasksRequest(page_size=1, page_token=token)
    # The same identity through a header instead of a token: the same caller.
    again = await multi_user.stub.ListTasks(replay, metadata=user("alice"))
    assert again.total_size == 3
    for metadata in (
        user("bob"),
        user("reader"),
    ):  # reader may read alice, but the token is not theirs
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await multi_user.stub.ListTasksV1(replay, metadata=metadata)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert kfp_error(failure.value).error_message == "Invalid page token."
    async with multi_user.http.get(
        multi_user.tasks_url, params={"page_token": token}, headers=dict(user("bob"))
    ) as response:
        body = await response.json()
    assert (response.status, body["details"][0]["error_message"]) == (400, "Invalid page token.")
    # A token handed out by the REST door (the gateway's, for that transport) is bound too.
    first_page = {"page_size": "1", "filter": namespace_filter("EQUALS", "alice")}
    headers = dict(bearer("tok-alice"))
    async with multi_user.http.get(multi_user.tasks_url, params=first_page, headers=headers) as r:
        rest_token = (await r.json())["next_page_token"]
    assert rest_token
    for metadata, status in ((user("alice"), 200), (user("reader"), 400), (user("bob"), 400)):
        async with multi_user.http.get(
            multi_user.tasks_url,
            params={"page_size": "1", "page_token": rest_token},
            headers=dict(metadata),
        ) as response:
            assert response.status == status, metadata


@pytest.mark.parametrize("multi_user", ["tls"], indirect=True)
async def test_a_kfp_driver_call_over_tls_answers_the_callers_tasks_only(
    multi_user: Taskgate, pool: asyncpg.Pool
) -> None:
    """What KFP's driver sends (`ListTasksV1`, `authorization: Bearer …` from the tokens file,
    over TLS): the cache lookup finds alice's newest task, never bob's newer one with the same
    fingerprint; without the namespace predicate, only what alice may read is listed and counted."""
    await seed(pool)  # alice 3, bob 2, shared 1; all with fingerprint "fp"
    await TaskStore(pool).create_task(NewTask("bob", "p", "run-bob", "9", 1_900_000_000, 0, "fp"))
    driver = bearer("tok-alice")
    lookup = task_pb2.ListTasksRequest(
        filter=eq_filter(fingerprint="fp", pipelineName="p", namespace="alice"),
        sort_by="created_at desc",
        page_size=1,
    )
    page = await multi_user.stub.ListTasksV1(lookup, metadata=driver)
    assert [(t.namespace, t.runId) for t in page.tasks] == [("alice", "run-2")]
    assert page.total_size == 3
    everything = task_pb2.ListTasksRequest(filter=eq_filter(fingerprint="fp"), page_size=100)
    page = await multi_user.stub.ListTasksV1(everything, metadata=driver)
    assert sorted(t.namespace for t in page.tasks) == ["", "alice", "alice", "alice"]
    assert page.total_size == 4
    with pytest.raises(grpc.aio.AioRpcError) as failure:  # the bearer scheme is required
        await multi_user.stub.ListTasksV1(lookup, metadata=(("authorization", "tok-alice"),))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "tok-alice" not in str(failure.value)


POISON = {
    "namespace": "alice",
    "pipelineName": "pipeline/p",
    "runId": "run-bob",
    "mlmdExecutionID": "9",
    "fingerprint": "alice-fp",
    "created_at": "2030-01-01T00:00:00Z",
}


async def poison(tg: Taskgate, content_type: str) -> tuple[int, dict[str, Any]]:
    headers = {"kubeflow-userid": PREFIX + "bob", "Content-Type": content_type}
    async with tg.http.post(tg.tasks_url, data=json.dumps(POISON), headers=headers) as response:
        assert response.content_type == "application/json"  # errors are always JSON
        return response.status, await response.json()


@pytest.mark.parametrize("multi_user", TRANSPORTS, indirect=True)
async def test_cache_poisoning_is_refused_in_multi_user_mode(
    multi_user: Taskgate, pool: asyncpg.Pool
) -> None:
    status, body = await poison(multi_user, "text/plain")
    assert status == 415
    assert 'unsupported media type "text/plain"' in body["message"]
    status, body = await poison(multi_user, "application/json")
    assert status == 403
    assert body["message"].endswith('bob may not write namespace "alice"')
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0


@pytest.mark.parametrize("single_user", TRANSPORTS, indirect=True)
async def test_cache_poisoning_is_415_in_single_user_mode(
    single_user: Taskgate, pool: asyncpg.Pool
) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        status, body = await poison(single_user, content_type)
        assert status == 415
        assert f'unsupported media type "{content_type}"' in body["message"]
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0


async def test_sighup_reloads_the_policy_and_keeps_it_when_broken(
    multi_user: Taskgate, pool: asyncpg.Pool, policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request = task_pb2.CreateTaskRequest(task=new_task(namespace="alice"))
    with pytest.raises(grpc.aio.AioRpcError):
        await multi_user.stub.CreateTask(request, metadata=user("bob"))
    policy_file.write_text(POLICY.replace("write: [alice]", "write: [alice, bob]"))  # noqa: ASYNC240
    multi_user.server.reload()  # what SIGHUP runs
    await multi_user.stub.CreateTask(request, metadata=user("bob"))
    policy_file.write_text("namespaces:\n  alice: {read: x}\n")  # noqa: ASYNC240
    multi_user.server.reload()
    assert f"{policy_file}:2: namespaces.alice.read must be a list" in caplog.text
    await multi_user.stub.CreateTask(request, metadata=user("bob"))  # the old policy still holds


async def test_a_bad_policy_stops_start_up(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("namespaces:\n  alice:\n    write: [alice]\n    raed: [bob]\n")
    settings = replace(serve_settings(database_url), authz_policy=path)
    with pytest.raises(StartupError) as failure:
        async with serving(settings):
            pass
    assert (
        str(failure.value) == f'bad --authz-policy: {path}:4: unknown key "namespaces.alice.raed"'
    )


async def test_cors_for_listed_origins_only(database_url: str, pool: asyncpg.Pool) -> None:
    settings = replace(serve_settings(database_url), cors_origins=("https://ui.example.com",))
    preflight = {"Access-Control-Request-Method": "POST"}
    async with serving(settings) as running, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{running.http_port}/apis/v1alpha1/tasks"
        origin = {"Origin": "https://ui.example.com"}
        async with http.options(url, headers=origin | preflight) as answer:
            assert answer.status == 204
            assert answer.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
        async with http.get(url, headers=origin) as answer:
            assert answer.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
        evil = {"Origin": "https://evil.example"}
        async with http.options(url, headers=evil | preflight) as answer:
            assert answer.status == 405
            assert "Access-Control-Allow-Origin" not in answer.headers
