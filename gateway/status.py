"""The one error vocabulary of the gateway: a gRPC status (code, message, details).

Everything that fails inside the gateway, or comes back failed from an invoker, is an `RpcStatus`
before it is rendered; `gateway/errors.py` alone turns it into an HTTP status and body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """A gRPC status as the client sees it (google.rpc.Status; the code is a grpc.StatusCode)."""

    code: grpc.StatusCode
    message: str
    #: google.rpc.Status.details, as packed Anys (from grpc-status-details-bin).
    details: tuple[any_pb2.Any, ...] = field(default_factory=tuple)


class RpcStatusError(Exception):
    """Raised by an invoker (or by the transcoder itself) to fail a call with an `RpcStatus`."""

    def __init__(self, status: RpcStatus, *, http_status: int | None = None) -> None:
        super().__init__(status.message)
        self.status = status
        #: overrides the code's usual HTTP status (e.g. 502 for an upstream's garbage).
        self.http_status = http_status

    @classmethod
    def of(cls, code: grpc.StatusCode, message: str) -> RpcStatusError:
        return cls(RpcStatus(code, message))
