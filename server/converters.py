"""Store records → API messages. Pure."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from api import task_pb2
from store.records import TaskRecord


def record_to_task(record: TaskRecord) -> task_pb2.Task:
    """KFP's ToApiTask: every field echoed; timestamps whole seconds, finished_at always set."""
    return task_pb2.Task(
        id=record.id,
        namespace=record.namespace,
        pipelineName=record.pipeline_name,
        runId=record.run_id,
        mlmdExecutionID=record.mlmd_execution_id,
        created_at=timestamp_pb2.Timestamp(seconds=record.created_at),
        finished_at=timestamp_pb2.Timestamp(seconds=record.finished_at),
        fingerprint=record.fingerprint,
    )
