"""What a call presents as its identity: the trusted header or a bearer token. Pure.

Rules (docs/security.md "Multi-user mode"): a bearer token (`authorization: Bearer TOKEN`) is
used when the authority accepts tokens, and then must be known; otherwise the identity header
(gRPC metadata key, or the REST header of that name) names the caller, with the policy's prefix
stripped (a value without the prefix is refused, as KFP refuses it). Messages name what was
missing and never repeat a token.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskgate.rpc import Metadata

BEARER = "bearer"


class CredentialsError(Exception):
    """The call carries no usable identity (401 / UNAUTHENTICATED); the message says why."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Exactly one of the two is set."""

    #: the identity named by the trusted header, prefix stripped.
    header_identity: str | None = None
    #: the bearer token, to be looked up (never logged, never echoed).
    token: str | None = None


def read_credentials(
    metadata: Metadata, identity_header: str, identity_prefix: str, *, accept_tokens: bool
) -> Credentials:
    """The caller's credentials from request metadata; CredentialsError when there are none."""
    if accept_tokens:
        tokens = [_bearer(value) for key, value in metadata if key == "authorization"]
        presented = [token for token in tokens if token is not None]
        if len(presented) > 1:
            raise CredentialsError("more than one bearer token in the authorization metadata")
        if presented:
            if not presented[0]:
                raise CredentialsError("the bearer token is empty")
            return Credentials(token=presented[0])
    values = [value for key, value in metadata if key == identity_header]
    if not values:
        hint = " or an `authorization: Bearer TOKEN` header" if accept_tokens else ""
        raise CredentialsError(f"no identity: the call has no {identity_header} header{hint}")
    if len(values) > 1:
        raise CredentialsError(f"no identity: the {identity_header} header appears more than once")
    value = values[0]
    if not isinstance(value, str):
        raise CredentialsError(f"no identity: the {identity_header} header is not text")
    if not value.startswith(identity_prefix):
        raise CredentialsError(
            f'no identity: the {identity_header} header must start with "{identity_prefix}"'
        )
    identity = value[len(identity_prefix) :].strip()
    if not identity:
        raise CredentialsError(f"no identity: the {identity_header} header is empty")
    return Credentials(header_identity=identity)


def _bearer(value: str | bytes) -> str | None:
    """The token of an `authorization: Bearer TOKEN` value; None for other schemes."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == BEARER else None
