"""CreateTask validation: KFP's order and messages (docs/decisions.md K3), and D11-D12."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import timestamp_pb2

from taskgate.api import task_pb2
from taskgate.server.errors import ServiceError
from taskgate.server.validation import check_create_task
from taskgate.store.records import NewTask

PREFIX = "Validate create task request failed.: Invalid input error: "


def valid_task(**changes: object) -> task_pb2.Task:
    fields: dict[str, object] = {
        "pipelineName": "pipeline/my-pipeline",
        "runId": "run-1",
        "mlmdExecutionID": "exec-1",
        "fingerprint": "abc123",
        "created_at": timestamp_pb2.Timestamp(seconds=1),
    }
    fields.update(changes)
    task = task_pb2.Task()
    for name, value in fields.items():
        if value is None:
            task.ClearField(name)  # type: ignore[arg-type]  # names come from the table above
        elif isinstance(value, timestamp_pb2.Timestamp):
            getattr(task, name).CopyFrom(value)
        else:
            setattr(task, name, value)
    return task


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (valid_task(id="some-id"), "Invalid task: Id should not be set"),
        (valid_task(pipelineName=""), "Invalid task: must specify PipelineName"),
        (valid_task(runId=""), "Invalid task: must specify RunId"),
        (valid_task(mlmdExecutionID=""), "Invalid task: must specify MlmdExecutionID"),
        (valid_task(fingerprint=""), "Invalid task: must specify FingerPrint"),
        (valid_task(created_at=None), "Invalid task: must specify CreatedAt"),
        (
            valid_task(pipelineName="namespace/ns1"),
            "invalid PipelineName for namespaced pipelines, need to follow "
            "'namespace/${namespace}/pipeline/${pipelineName}': namespace/ns1",
        ),
        (
            valid_task(namespace="other-ns", pipelineName="namespace/ns1/pipeline/my-pipeline"),
            "the namespace ns1 extracted from pipelineName is not equal to the namespace "
            "other-ns in task",
        ),
        # Order: id is checked first, then pipelineName, ... then created_at.
        (task_pb2.Task(id="x"), "Invalid task: Id should not be set"),
        (task_pb2.Task(), "Invalid task: must specify PipelineName"),
        (valid_task(runId="", fingerprint=""), "Invalid task: must specify RunId"),
        # Decision D12: taskgate's own checks come after KFP's.
        (
            valid_task(pipelineName="p" * 256),
            "Invalid task: pipelineName must be at most 255 characters",
        ),
        (valid_task(runId="r\x00"), "Invalid task: runId must not contain NUL characters"),
        (
            valid_task(finished_at=timestamp_pb2.Timestamp(seconds=-62_135_596_801)),
            "Invalid task: finished_at must be between 0001-01-01T00:00:00Z and "
            "9999-12-31T23:59:59Z",
        ),
    ],
)
def test_check_create_task_rejects_with_kfp_message(task: task_pb2.Task, message: str) -> None:
    with pytest.raises(ServiceError) as caught:
        check_create_task(task_pb2.CreateTaskRequest(task=task))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.external == message
    assert caught.value.chain == PREFIX + message


def test_missing_task_is_an_empty_task() -> None:
    with pytest.raises(ServiceError) as caught:
        check_create_task(task_pb2.CreateTaskRequest())
    assert caught.value.external == "Invalid task: must specify PipelineName"


@pytest.mark.parametrize(
    "pipeline_name",
    [
        "namespace/ns/x/y",  # KFP does not require "pipeline" as the third part
        "namespace/ns/pipeline/a/b",  # SplitN(…, 4): the fourth part keeps its slashes
        "namespace//pipeline/p",  # empty extracted namespace passes while namespace is unset
        "Namespace/ns",  # the prefix check is case-sensitive
        "p" * 255,
    ],
)
def test_check_create_task_accepts_what_kfp_accepts(pipeline_name: str) -> None:
    check_create_task(task_pb2.CreateTaskRequest(task=valid_task(pipelineName=pipeline_name)))


def test_new_task_truncates_to_seconds_and_defaults_finished_at_to_zero() -> None:
    task = valid_task(created_at=timestamp_pb2.Timestamp(seconds=1462875553, nanos=999_999_999))
    assert check_create_task(task_pb2.CreateTaskRequest(task=task)) == NewTask(
        namespace="",
        pipeline_name="pipeline/my-pipeline",
        run_id="run-1",
        mlmd_execution_id="exec-1",
        created_at=1462875553,
        finished_at=0,
        fingerprint="abc123",
    )
    task.finished_at.FromSeconds(1462875663)
    assert check_create_task(task_pb2.CreateTaskRequest(task=task)).finished_at == 1462875663
