"""Store records → API messages. Pure."""

from __future__ import annotations

from taskgate.api import task_pb2
from taskgate.store.records import TaskRecord


def record_to_task(record: TaskRecord) -> task_pb2.Task:
    """KFP's ToApiTask: every field echoed; timestamps whole seconds, finished_at always set."""
    task = task_pb2.Task(
        id=record.id,
        namespace=record.namespace,
        pipelineName=record.pipeline_name,
        runId=record.run_id,
        mlmdExecutionID=record.mlmd_execution_id,
        fingerprint=record.fingerprint,
    )
    # Setting the sub-messages in place (not Timestamp(...) copies) halves the cost of a row:
    # this runs for every task of every page (bench/RESULTS.md, profile).
    task.created_at.seconds = record.created_at
    task.finished_at.seconds = record.finished_at
    return task
