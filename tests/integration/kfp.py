"""Helpers for KFP-shaped tasks, filters and errors, shared by the integration tests."""

from __future__ import annotations

import json

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import status_pb2

from taskgate.api import error_pb2, task_pb2


def new_task(**fields: object) -> task_pb2.Task:
    """A valid task (as KFP's launcher writes it), with `fields` changed."""
    values: dict[str, object] = {
        "namespace": "ns1",
        "pipelineName": "pipeline/p1",
        "runId": "run-1",
        "mlmdExecutionID": "7",
        "fingerprint": "fp",
        "created_at": 1_700_000_000,
        "finished_at": 1_700_000_100,
    }
    values.update(fields)
    task = task_pb2.Task()
    for name, value in values.items():
        if name in ("created_at", "finished_at"):
            if value is not None:
                assert isinstance(value, int)
                getattr(task, name).CopyFrom(timestamp_pb2.Timestamp(seconds=value))
        else:
            setattr(task, name, value)
    return task


def eq_filter(**pairs: str) -> str:
    """A KFP filter of EQUALS predicates, serialised as the Go driver does (protojson)."""
    predicates = [{"op": "EQUALS", "key": k, "stringValue": v} for k, v in pairs.items()]
    return json.dumps({"predicates": predicates})


def kfp_error(error: grpc.aio.AioRpcError) -> error_pb2.Error:
    """The api.Error detail KFP attaches to every error."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            status = status_pb2.Status.FromString(value)
            assert status.code == error.code().value[0]
            assert status.message == error.details()
            (detail,) = status.details
            found = error_pb2.Error()
            assert detail.Unpack(found)
            return found
    raise AssertionError("no grpc-status-details-bin in the trailers")
