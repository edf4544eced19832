"""taskgate's REST door against a real grpc-gateway (Go, v1 runtime, wired as KFP wires its
proxy) put in front of taskgate's own gRPC port: for a corpus of KFP REST requests, both must
answer the same status and JSON, except for the differences listed in EXPECTED.

The peer is a Go program that pip cannot install, so this test runs only when selected
(`pytest -m peer`), with the binary built at $PEER_GW_BUILD/gw: .ci/run builds it in a step of
its own, then runs this test."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from taskgate.api import task_pb2
from tests.integration.kfp import eq_filter, new_task
from tests.integration.servers import Taskgate

#: Runs only when asked for (`pytest -m peer`): the peer is a Go program pip cannot install.
pytestmark = pytest.mark.peer

PEER_BUILD = Path(os.environ.get("PEER_GW_BUILD", Path.home() / ".cache" / "peer-gw"))

#: How the peer differs from taskgate, and why. Each case names one of these (or None: identical).
EXPECTED = {
    # The peer is built without api/error.proto, so grpc-gateway cannot marshal the api.Error
    # detail KFP attaches to every service error and answers 500 (grpc-gateway#1842). taskgate
    # answers what KFP answers: the status from the code and the api.Error detail.
    "peer cannot render api.Error": {
        "status": 500,
        "body": {"error": "failed to marshal error message"},
    },
    # Errors the gateway raises itself: same status and code; the peer's message is Go's
    # (strconv.ParseInt..., json: cannot unmarshal...), taskgate's names the field (decision C9).
    "own message": None,
    # Routing misses: the peer answers text/plain, taskgate JSON with the same status (decision D14).
    "json routing error": None,
    # A trailing slash: the peer answers 404; taskgate tolerates it (decisions T14, C5).
    "trailing slash": None,
    # A singular parameter given twice: the peer takes the first value; taskgate answers 400
    # naming it, as grpc-gateway v2 does (decision T23).
    "singular parameter twice": None,
}

TASK = {
    "namespace": "ns1",
    "pipelineName": "namespace/ns1/pipeline/p1",
    "runId": "run-1",
    "mlmdExecutionID": "42",
    "created_at": "2016-05-10T10:19:13Z",
    "fingerprint": "fp-abc",
}
FILTER = eq_filter(fingerprint="fp", pipelineName="pipeline/p1", namespace="ns1")


@dataclass(frozen=True)
class Case:
    method: str
    target: str  # path and query under /apis/v1alpha1/tasks
    body: str | None = None
    difference: str | None = None


CORPUS = [
    Case("GET", ""),
    Case("GET", "?page_size=2"),
    Case("GET", "?pageSize=2&sortBy=created_at%20desc"),
    Case("GET", "?page_size=1&sort_by=created_at%20desc&filter=" + quote(FILTER, safe="")),
    Case("GET", "?page_size=1&page_size=3", difference="singular parameter twice"),
    Case("GET", "?resource_reference_key.type=NAMESPACE&resource_reference_key.id=ns1"),
    Case("GET", "?resource_reference_key.type=5&resource_reference_key.id=ns1"),
    Case("GET", "?filter=" + quote(eq_filter(namespace="nope"), safe="")),
    Case("GET", "?unknown=1&page_size=1"),
    Case("GET", "?page_size=abc", difference="own message"),
    Case("GET", "?resource_reference_key.type=NOPE", difference="own message"),
    Case("GET", "?page_size=-1", difference="peer cannot render api.Error"),
    Case("GET", "?sort_by=foo", difference="peer cannot render api.Error"),
    Case("GET", "?filter=lkj", difference="peer cannot render api.Error"),
    Case("GET", "?page_token=nope", difference="peer cannot render api.Error"),
    Case(
        "GET",
        "?resource_reference_key.type=JOB&resource_reference_key.id=j",
        difference="peer cannot render api.Error",
    ),
    Case("POST", "", json.dumps({"id": "x", "pipelineName": "p"}), "peer cannot render api.Error"),
    Case("POST", "", "", "peer cannot render api.Error"),
    Case("POST", "", json.dumps({"pipelineName": "p", "bogus": 1}), "peer cannot render api.Error"),
    Case("POST", "", '{"pipelineName": "p4",', "own message"),
    Case("POST", "", "hello", "own message"),
    Case("POST", "", json.dumps({"pipelineName": "p", "runId": 5}), "own message"),
    Case("POST", "", json.dumps({"pipelineName": "p", "created_at": "yesterday"}), "own message"),
    Case("PUT", "", "{}", "json routing error"),
    Case("DELETE", "", None, "json routing error"),
    Case("GET", "/nope", None, "json routing error"),
    Case("GET", "/", None, "trailing slash"),
    # Creates last: both succeed and are compared without their generated ids.
    Case("POST", "", json.dumps(TASK)),
    Case(
        "POST",
        "",
        json.dumps({**TASK, "createdAt": "2024-01-02T05:04:05.120+02:00", "created_at": None}),
    ),
]


@pytest.fixture(scope="session")
def peer_binary() -> Path:
    binary = PEER_BUILD / "gw"
    if not binary.exists():
        pytest.fail(
            f"the grpc-gateway peer is not built at {binary}: build it first (.ci/run's peer "
            "step does) or point PEER_GW_BUILD at a build"
        )
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def peer_url(peer_binary: Path, taskgate: Taskgate) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(peer_binary),
        "-http",
        f"127.0.0.1:{port}",
        "-upstream",
        taskgate.grpc_target,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                async with taskgate.http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def answer(http: aiohttp.ClientSession, base: str, case: Case) -> tuple[int, str, Any]:
    async with http.request(
        case.method,
        f"{base}/apis/v1alpha1/tasks{case.target}",
        data=case.body,
        headers={"Content-Type": "application/json"},  # taskgate refuses other types (D16)
    ) as r:
        text = await r.text()
        content_type = r.headers.get("Content-Type", "")
    try:
        return r.status, content_type, json.loads(text)
    except ValueError:
        return r.status, content_type, text


def without_id(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "id"} if isinstance(body, dict) else body


async def test_rest_answers_match_grpc_gateway(taskgate: Taskgate, peer_url: str) -> None:
    for i in range(3):
        await taskgate.stub.CreateTask(
            task_pb2.CreateTaskRequest(task=new_task(created_at=100 + i))
        )
    for case in CORPUS:
        label = f"{case.method} {case.target} {case.body!r}"
        peer_status, _, peer_body = await answer(taskgate.http, peer_url, case)
        ours_status, ours_type, ours_body = await answer(taskgate.http, taskgate.base_url, case)
        assert ours_type.startswith("application/json"), label
        if case.difference is None:
            assert (ours_status, without_id(ours_body)) == (peer_status, without_id(peer_body)), (
                label
            )
        elif case.difference == "peer cannot render api.Error":
            assert (peer_status, peer_body) == (500, EXPECTED[case.difference]["body"]), label  # type: ignore[index]
            assert ours_status == 400, label
            assert ours_body["details"][0]["@type"] == "type.googleapis.com/api.Error", label
        elif case.difference == "own message":
            assert ours_status == peer_status == 400, label
            assert ours_body["code"] == peer_body["code"] == 3, label
            assert ours_body["error"] == ours_body["message"], label
            assert "details" not in ours_body, label
        elif case.difference == "json routing error":
            assert ours_status == peer_status, label
            assert isinstance(peer_body, str), label
            assert ours_body["error"] == ours_body["message"], label
        elif case.difference == "trailing slash":
            assert peer_status == 404, label
            assert ours_status == 200, label
        elif case.difference == "singular parameter twice":
            assert peer_status == 200, label
            assert ours_status == 400, label
            assert ours_body["code"] == 3, label
            assert "page_size" in ours_body["message"], label
        else:
            pytest.fail(f"unknown difference {case.difference}")
