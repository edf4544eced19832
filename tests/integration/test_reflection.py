"""Server reflection and health, seen by real reflection clients: grpcio-reflection's descriptor
database (with a dynamic call built only from what reflection returned) and the grpcurl binary."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.integration.servers import Taskgate

GRPCURL = shutil.which("grpcurl") or "grpcurl"


def reflect_and_call(target: str) -> tuple[list[str], dict[str, object], dict[str, object]]:
    """List services, then create and list a task using only reflected descriptors."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("api.TaskService")
        create = service.methods_by_name["CreateTask"]
        request_class = message_factory.GetMessageClass(create.input_type)
        response_class = message_factory.GetMessageClass(create.output_type)
        request = json_format.Parse(
            json.dumps(
                {
                    "task": {
                        "pipelineName": "pipeline/r",
                        "runId": "r",
                        "mlmdExecutionID": "1",
                        "fingerprint": "f",
                        "createdAt": "2024-01-01T00:00:00Z",
                    }
                }
            ),
            request_class(),
        )
        call: grpc.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
            f"/{service.full_name}/{create.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        created = json_format.MessageToDict(call(request))
        list_method = service.methods_by_name["ListTasks"]
        list_call: grpc.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
            f"/{service.full_name}/{list_method.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message_factory.GetMessageClass(
                list_method.output_type
            ).FromString,
        )
        listed = json_format.MessageToDict(
            list_call(message_factory.GetMessageClass(list_method.input_type)())
        )
        return services, created, listed


async def test_reflection_lists_describes_and_drives_a_dynamic_call(taskgate: Taskgate) -> None:
    services, created, listed = await asyncio.to_thread(reflect_and_call, taskgate.grpc_target)
    assert services == [
        "api.TaskService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    assert created["pipelineName"] == "pipeline/r"
    assert listed == {"tasks": [created], "totalSize": 1}


async def test_health_serving(taskgate: Taskgate) -> None:
    stub = health_pb2_grpc.HealthStub(taskgate.channel)
    for service in ("", "api.TaskService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with taskgate.http.get(f"{taskgate.base_url}/healthz") as response:
        assert response.status == 200


async def grpcurl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_grpcurl_list_describe_and_call(taskgate: Taskgate) -> None:
    target = taskgate.grpc_target
    listed = (await grpcurl(target, "list")).split()
    assert "api.TaskService" in listed
    described = await grpcurl(target, "describe", "api.TaskService")
    assert "rpc CreateTask ( .api.CreateTaskRequest ) returns ( .api.Task )" in described
    assert '"/apis/v1alpha1/tasks"' in described  # the google.api.http option is describable
    message = await grpcurl(target, "describe", "api.Task")
    assert "string pipelineName = 3;" in message
    for reflection in (
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ):
        described = await grpcurl(target, "describe", reflection)
        assert "rpc ServerReflectionInfo" in described
    task = {
        "pipelineName": "pipeline/g",
        "runId": "r",
        "mlmdExecutionID": "1",
        "fingerprint": "f",
        "createdAt": "2024-01-01T00:00:00Z",
    }
    created = json.loads(
        await grpcurl("-d", json.dumps({"task": task}), target, "api.TaskService/CreateTask")
    )
    assert created["pipelineName"] == "pipeline/g"
    listed_tasks = json.loads(
        await grpcurl("-d", '{"page_size": 1}', target, "api.TaskService/ListTasks")
    )
    assert listed_tasks["tasks"][0]["id"] == created["id"]
    assert listed_tasks.get("totalSize", listed_tasks.get("total_size")) == 1


async def test_grpcurl_sees_kfp_errors(taskgate: Taskgate) -> None:
    process = await asyncio.create_subprocess_exec(
        GRPCURL,
        "-plaintext",
        "-d",
        "{}",
        taskgate.grpc_target,
        "api.TaskService/CreateTask",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    text = output.decode()
    assert process.returncode != 0
    assert "Code: InvalidArgument" in text
    assert "Invalid task: must specify PipelineName" in text
