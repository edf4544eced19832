"""KFP's error model: a wrapped internal chain, an external message and a gRPC code.

KFP's `util.UserError` (docs/decisions.md K2) carries three things: the internal error chain that
becomes the gRPC status message ("Failed to create list options: Invalid input error: ..."), the
short external message that goes into the `api.Error` detail, and a code. `ServiceError` is that
object; `to_status` turns it into what a client sees.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2

from taskgate.api import error_pb2


class ServiceError(Exception):
    """An error a servicer raises on purpose; the call pipeline turns it into a gRPC status."""

    def __init__(self, code: grpc.StatusCode, chain: str, external: str) -> None:
        super().__init__(chain)
        self.code = code
        #: The full chain: the gRPC status message and `api.Error.error_details`.
        self.chain = chain
        #: The innermost, human message: `api.Error.error_message`.
        self.external = external

    def __str__(self) -> str:
        return self.chain

    def wrap(self, prefix: str) -> ServiceError:
        """KFP's `util.Wrap(err, prefix)`: prepend "prefix: " to the chain, keep the rest."""
        return ServiceError(self.code, f"{prefix}: {self.chain}", self.external)

    def details(self) -> tuple[any_pb2.Any, ...]:
        """The one `api.Error` detail KFP attaches to every error (grpc-status-details-bin)."""
        packed = any_pb2.Any()
        packed.Pack(error_pb2.Error(error_message=self.external, error_details=self.chain))
        return (packed,)


def invalid_input(message: str) -> ServiceError:
    """KFP's `NewInvalidInputError`: chain "Invalid input error: <message>", code 3."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, f"Invalid input error: {message}", message
    )


def invalid_input_with_details(cause: str, message: str) -> ServiceError:
    """KFP's `NewInvalidInputErrorWithDetails`: chain "InvalidInputError: <message>: <cause>"."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, f"InvalidInputError: {message}: {cause}", message
    )


def unavailable(message: str) -> ServiceError:
    """The database (or another dependency) cannot be reached right now; retrying may succeed."""
    return ServiceError(grpc.StatusCode.UNAVAILABLE, message, message)


def internal(cause: str) -> ServiceError:
    """KFP's `NewInternalServerError`: the client sees "Internal Server Error" as the message."""
    return ServiceError(
        grpc.StatusCode.INTERNAL, f"InternalServerError: {cause}", "Internal Server Error"
    )


#: How much of a caller's own text an error message repeats back. KFP repeats all of it, but
#: gRPC carries the message in headers (grpc-message, and twice more in grpc-status-details-bin)
#: that clients refuse past 16 KiB: a long sort_by or filter would break the gRPC door.
ECHO_LIMIT = 512


def echo(text: str) -> str:
    """`text` for an error message: as it is, or its first ECHO_LIMIT characters and "…"."""
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "…"
