"""The RPC vocabulary that server/ and gateway/ share: a call's options, its failure, metadata.

A call is made with `CallOptions` (metadata and deadline) and fails with an `RpcStatusError`
carrying an `RpcStatus` (code, message, details), whichever side runs it: the server's call
pipeline, the gRPC door, the in-process invoker, or the gateway's grpc.aio client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2

#: gRPC metadata: lower-case keys; values are str, or bytes for keys ending in "-bin".
Metadata = Sequence[tuple[str, str | bytes]]

#: The trailer that carries a google.rpc.Status (with its details) next to grpc-status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"

#: The default of `--max-message-bytes`, the largest message either door accepts or sends (a
#: REST body after decompression, a gRPC message either way): 4 MiB, gRPC's own default.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: The default of `--max-concurrent-calls`: calls each door runs at once before it refuses more.
MAX_CONCURRENT_CALLS = 1000


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call inputs that are not the request message."""

    #: request metadata (for REST, already filtered by the header allow-list).
    metadata: Metadata = ()
    #: seconds until the caller's deadline, or None for no deadline.
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """A gRPC status as the client sees it (google.rpc.Status; the code is a grpc.StatusCode)."""

    code: grpc.StatusCode
    message: str
    #: google.rpc.Status.details, as packed Anys (grpc-status-details-bin).
    details: tuple[any_pb2.Any, ...] = field(default_factory=tuple)


class RpcStatusError(Exception):
    """A call that ended in a non-OK status: raised by the call pipeline, by an invoker, or by
    the transcoder itself."""

    def __init__(
        self,
        status: RpcStatus,
        *,
        header_metadata: Metadata = (),
        trailing_metadata: Metadata = (),
    ) -> None:
        super().__init__(status.message)
        self.status = status
        #: the failed call's response metadata, for the REST door's `Grpc-Metadata-*` and
        #: `Grpc-Trailer-*` headers (empty when the failure is not a call's).
        self.header_metadata: Metadata = tuple(header_metadata)
        self.trailing_metadata: Metadata = tuple(trailing_metadata)

    @classmethod
    def of(
        cls, code: grpc.StatusCode, message: str, details: tuple[any_pb2.Any, ...] = ()
    ) -> RpcStatusError:
        return cls(RpcStatus(code, message, details))


def code_number(code: grpc.StatusCode) -> int:
    """The code's number in google.rpc.Code (INVALID_ARGUMENT is 3)."""
    number: int = code.value[0]
    return number
