"""metadata: permanent headers as `grpcgateway-*`, `x-forwarded-host`/`-for`, as grpc-gateway
forwards them (docs/decisions.md T50), in both presets, and what a client cannot forge."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from taskgate.gateway.metadata import call_options_from_headers, gateway_metadata
from taskgate.gateway.options import GatewayOptions
from taskgate.rpc import Metadata
from taskgate.server.authz.credentials import read_credentials

PRESETS = [GatewayOptions.kfp(), GatewayOptions.generic()]


def metadata(
    headers: list[tuple[str, str]], remote: str | None, options: GatewayOptions
) -> Metadata:
    return call_options_from_headers(CIMultiDict(headers), options, remote=remote).metadata


@pytest.mark.parametrize("options", PRESETS)
def test_permanent_headers_are_forwarded_with_the_grpcgateway_prefix(
    options: GatewayOptions,
) -> None:
    headers = [
        ("Host", "api.example:8888"),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("User-Agent", "curl/8"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("If-None-Match", '"v1"'),
        ("X-Custom", "not forwarded"),
        ("Authorization", "Bearer t"),
    ]
    got = metadata(headers, "10.0.0.7", options)
    assert [m for m in got if m[0].startswith("grpcgateway-")] == [
        ("grpcgateway-accept", "application/json"),
        ("grpcgateway-content-type", "application/json"),
        ("grpcgateway-user-agent", "curl/8"),
        ("grpcgateway-cookie", "a=1"),
        ("grpcgateway-cookie", "b=2"),
        ("grpcgateway-if-none-match", '"v1"'),
        ("grpcgateway-authorization", "Bearer t"),
    ]
    assert ("authorization", "Bearer t") in got
    assert ("x-forwarded-host", "api.example:8888") in got
    assert ("x-forwarded-for", "10.0.0.7") in got
    assert not any(
        key in ("x-custom", "grpcgateway-host", "grpcgateway-x-custom") for key, _ in got
    )


@pytest.mark.parametrize(
    ("headers", "remote", "expected"),
    [
        # Host when there is no X-Forwarded-Host; the client's address alone.
        (
            [("Host", "h:1")],
            "1.2.3.4",
            [("x-forwarded-host", "h:1"), ("x-forwarded-for", "1.2.3.4")],
        ),
        # The first X-Forwarded-Host wins over Host; every X-Forwarded-For value is kept.
        (
            [
                ("Host", "inner"),
                ("X-Forwarded-Host", "outer"),
                ("X-Forwarded-Host", "second"),
                ("X-Forwarded-For", "9.9.9.9, 8.8.8.8"),
                ("X-Forwarded-For", "7.7.7.7"),
            ],
            "1.2.3.4",
            [
                ("x-forwarded-host", "outer"),
                ("x-forwarded-for", "9.9.9.9, 8.8.8.8, 7.7.7.7, 1.2.3.4"),
            ],
        ),
        # An empty X-Forwarded-Host falls back to Host.
        ([("X-Forwarded-Host", ""), ("Host", "h")], None, [("x-forwarded-host", "h")]),
        # No address known: the incoming chain alone; nothing at all: nothing.
        ([("X-Forwarded-For", "5.5.5.5")], None, [("x-forwarded-for", "5.5.5.5")]),
        ([], None, []),
        # Values gRPC metadata cannot carry are dropped.
        ([("Accept", "caf\u00e9"), ("User-Agent", "a\tb")], None, []),
        # Printable ASCII is space to "~": DEL is not.
        ([("Accept", "a\x7fb"), ("Via", " ~1.1 p~ ")], None, [("grpcgateway-via", " ~1.1 p~ ")]),
    ],
)
def test_gateway_metadata(
    headers: list[tuple[str, str]], remote: str | None, expected: list[tuple[str, str]]
) -> None:
    assert gateway_metadata(headers, remote) == expected


@pytest.mark.parametrize("options", PRESETS)
def test_a_client_cannot_forge_the_gateway_keys_through_grpc_metadata(
    options: GatewayOptions,
) -> None:
    headers = [
        ("Grpc-Metadata-X-Forwarded-For", "6.6.6.6"),
        ("Grpc-Metadata-X-Forwarded-Host", "forged"),
        ("Grpc-Metadata-Grpcgateway-Authorization", "Bearer forged"),
        ("Grpc-Metadata-Grpcgateway-Cookie", "forged"),
        ("Host", "real"),
    ]
    got = metadata(headers, "1.2.3.4", options)
    assert got == (("x-forwarded-host", "real"), ("x-forwarded-for", "1.2.3.4"))


def test_the_prefixed_copy_of_authorization_does_not_change_who_the_caller_is() -> None:
    """authz reads `authorization` and the identity header only: the `grpcgateway-` copy of a
    bearer token is not a second token, and no forwarded key can stand in for either."""
    options = GatewayOptions.kfp()
    token_call = metadata([("Authorization", "Bearer t1")], "1.2.3.4", options)
    assert ("grpcgateway-authorization", "Bearer t1") in token_call
    credentials = read_credentials(token_call, "kubeflow-userid", "", accept_tokens=True)
    assert credentials.token == "t1"
    identity_call = metadata(
        [
            ("Kubeflow-Userid", "accounts.google.com:alice"),
            ("Grpc-Metadata-Grpcgateway-Kubeflow-Userid", "accounts.google.com:mallory"),
            ("Cookie", "kubeflow-userid=accounts.google.com:mallory"),
        ],
        "1.2.3.4",
        options,
    )
    credentials = read_credentials(
        identity_call, "kubeflow-userid", "accounts.google.com:", accept_tokens=False
    )
    assert credentials.header_identity == "alice"
