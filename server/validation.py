"""CreateTask validation, in KFP's order and with KFP's messages (docs/decisions.md K3).

Pure: a `Task` message in, a `store.NewTask` out, or a `ServiceError` (INVALID_ARGUMENT). The
checks after KFP's own (length, NUL, timestamp range) are taskgate's (decision D12): KFP on MySQL
answers those with a 500.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from taskgate.api import task_pb2
from taskgate.server.errors import ServiceError, echo, invalid_input
from taskgate.store.records import NewTask

#: KFP stores every string in a varchar(255) column.
MAX_STRING_LENGTH = 255
#: google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
NAMESPACED_PREFIX = "namespace/"
CREATE_TASK_FAILED = "Validate create task request failed."


def check_create_task(request: task_pb2.CreateTaskRequest) -> NewTask:
    """Validate a CreateTask request (a missing `task` is an empty one, as in KFP 2.x: D11)."""
    try:
        task = request.task
        _check_kfp_rules(task)
        _check_storable(task)
    except ServiceError as error:
        raise error.wrap(CREATE_TASK_FAILED) from None
    return NewTask(
        namespace=task.namespace,
        pipeline_name=task.pipelineName,
        run_id=task.runId,
        mlmd_execution_id=task.mlmdExecutionID,
        # KFP keeps whole seconds (AsTime().Unix() floors); an absent finished_at becomes 0.
        created_at=task.created_at.seconds,
        finished_at=task.finished_at.seconds if task.HasField("finished_at") else 0,
        fingerprint=task.fingerprint,
    )


def _check_kfp_rules(task: task_pb2.Task) -> None:
    if task.id:
        raise invalid_input("Invalid task: Id should not be set")
    if not task.pipelineName:
        raise invalid_input("Invalid task: must specify PipelineName")
    _check_namespaced_pipeline_name(task.pipelineName, task.namespace)
    if not task.runId:
        raise invalid_input("Invalid task: must specify RunId")
    if not task.mlmdExecutionID:
        raise invalid_input("Invalid task: must specify MlmdExecutionID")
    if not task.fingerprint:
        raise invalid_input("Invalid task: must specify FingerPrint")
    if not task.HasField("created_at"):
        raise invalid_input("Invalid task: must specify CreatedAt")


def _check_namespaced_pipeline_name(pipeline_name: str, namespace: str) -> None:
    # KFP checks only the prefix (case-sensitive) and the part count of SplitN(name, "/", 4); it
    # neither requires "pipeline" as the third part nor copies the namespace into the task.
    if not pipeline_name.startswith(NAMESPACED_PREFIX):
        return
    parts = pipeline_name.split("/", 3)
    if len(parts) != 4:
        raise invalid_input(
            "invalid PipelineName for namespaced pipelines, need to follow "
            f"'namespace/${{namespace}}/pipeline/${{pipelineName}}': {echo(pipeline_name)}"
        )
    if namespace and parts[1] != namespace:
        raise invalid_input(
            f"the namespace {echo(parts[1])} extracted from pipelineName is not equal to the "
            f"namespace {echo(namespace)} in task"
        )


def _check_storable(task: task_pb2.Task) -> None:
    for name in ("namespace", "pipelineName", "runId", "mlmdExecutionID", "fingerprint"):
        value: str = getattr(task, name)
        if len(value) > MAX_STRING_LENGTH:
            raise invalid_input(
                f"Invalid task: {name} must be at most {MAX_STRING_LENGTH} characters"
            )
        if "\x00" in value:
            raise invalid_input(f"Invalid task: {name} must not contain NUL characters")
    timestamps = {
        "created_at": task.created_at if task.HasField("created_at") else None,
        "finished_at": task.finished_at if task.HasField("finished_at") else None,
    }
    for name, timestamp in timestamps.items():
        if timestamp is not None and not _in_range(timestamp):
            raise invalid_input(
                f"Invalid task: {name} must be between 0001-01-01T00:00:00Z and "
                "9999-12-31T23:59:59Z"
            )


def _in_range(timestamp: timestamp_pb2.Timestamp) -> bool:
    return (
        MIN_TIMESTAMP_SECONDS <= timestamp.seconds <= MAX_TIMESTAMP_SECONDS
        and 0 <= timestamp.nanos <= 999_999_999
    )
