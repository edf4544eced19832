"""GatewayOptions: every switch of the REST transcoder, each default defined once.

Two presets: `GatewayOptions.kfp()` reproduces KFP's grpc-gateway set-up (docs/decisions.md S7) and
`GatewayOptions.generic()` follows the proto3 JSON mapping and grpc-gateway v2 (the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

ErrorStyle = Literal["kfp", "status"]

#: 4 MiB, grpc's default maximum message size.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: `--max-concurrent-calls`' default.
DEFAULT_MAX_CONCURRENT_CALLS = 1000
#: Seconds a whole request body may take to arrive (at least 140 KB/s for a 4 MiB body).
DEFAULT_BODY_TIMEOUT = 30.0
#: KFP's `grpcCustomMatcher` forwards only the user-id header (`kubeflow-userid` by default).
KFP_FORWARDED_HEADERS = frozenset({"kubeflow-userid"})


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """How requests are decoded and responses rendered."""

    #: JSON keys are proto field names (KFP's `UseProtoNames`) instead of `json_name`.
    use_proto_field_names: bool = False
    #: write implicit-presence fields at their default value (protojson `EmitUnpopulated`).
    emit_unpopulated: bool = False
    #: 400 on unknown query parameters, unknown JSON fields, a query with `body: "*"`, a query
    #: naming a path- or body-bound field, and a body that contradicts the path; else ignore them.
    strict: bool = False
    #: "kfp": `{"error","code","message","details"}` (grpc-gateway v1); "status": google.rpc.Status.
    error_style: ErrorStyle = "status"
    #: lower-case request headers forwarded as metadata, besides `authorization` and
    #: `grpc-metadata-*`.
    forwarded_headers: frozenset[str] = field(default_factory=frozenset)
    #: larger request bodies are refused with 413.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: seconds allowed per call when the request has no `Grpc-Timeout` header; None: no deadline.
    default_timeout: float | None = None
    #: calls served at once (`/healthz` aside); more are refused at once with 429.
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    #: seconds a request body may take to arrive; a slower one is refused with 408.
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: send trailing metadata as HTTP trailers (`Grpc-Trailer-*`) even without `TE: trailers`,
    #: as KFP's grpc-gateway does (docs/decisions.md T60).
    always_send_trailers: bool = False

    def __post_init__(self) -> None:
        if self.error_style not in ("kfp", "status"):
            raise ValueError(f"error_style must be 'kfp' or 'status', not {self.error_style!r}")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        if self.max_concurrent_calls <= 0:
            raise ValueError("max_concurrent_calls must be positive")
        if self.body_timeout <= 0:
            raise ValueError("body_timeout must be positive")
        if self.default_timeout is not None and self.default_timeout <= 0:
            raise ValueError("default_timeout must be positive")
        if any(name != name.lower() for name in self.forwarded_headers):
            raise ValueError("forwarded_headers must be lower-case")

    @classmethod
    def kfp(cls, **overrides: Any) -> GatewayOptions:
        """KFP's REST surface: proto names, unpopulated omitted, v1 error body, lenient input."""
        preset = cls(
            use_proto_field_names=True,
            emit_unpopulated=False,
            strict=False,
            error_style="kfp",
            forwarded_headers=KFP_FORWARDED_HEADERS,
            always_send_trailers=True,
        )
        return replace(preset, **overrides)

    @classmethod
    def generic(cls, **overrides: Any) -> GatewayOptions:
        """The proto3 JSON mapping: `json_name` keys, unpopulated omitted, Status error body."""
        return cls(**overrides)
