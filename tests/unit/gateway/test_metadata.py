"""metadata: Grpc-Timeout parsing and the header allow-lists, both ways."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.metadata import (
    call_options_from_headers,
    headers_from_metadata,
    metadata_from_headers,
    parse_grpc_timeout,
)
from taskgate.gateway.options import GatewayOptions

KFP = GatewayOptions.kfp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1H", 3600.0),
        ("2M", 120.0),
        ("5S", 5.0),
        ("100m", 0.1),
        ("250u", 0.00025),
        ("1000n", 0.000001),
        ("0S", 0.0),
        ("99999999S", 99999999.0),
    ],
)
def test_parse_grpc_timeout(text: str, seconds: float) -> None:
    assert parse_grpc_timeout(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "S", "1.5S", "-1S", "5s", "123456789S", "5 S", "1x"])
def test_parse_grpc_timeout_rejects(text: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        parse_grpc_timeout(text)
    assert caught.value.status.message == (
        f'invalid Grpc-Timeout header "{text}": expected up to 8 digits and a unit '
        "(H, M, S, m, u or n)"
    )


def test_metadata_from_headers_forwards_the_allow_lists() -> None:
    headers = [
        ("Authorization", "Bearer x"),
        ("Kubeflow-UserID", "a@b"),
        ("Grpc-Metadata-Trace-Id", "t"),
        ("Grpc-Metadata-Token-Bin", "AAE"),
        ("Grpc-Metadata-Grpc-Timeout", "1S"),
        ("Grpc-Metadata-Content-Type", "x"),
        ("Grpc-Metadata-Bad Key", "x"),
        ("Grpc-Metadata-Uni", "caf\u00e9"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("Content-Type", "application/json"),
    ]
    assert metadata_from_headers(headers, KFP) == [
        ("authorization", "Bearer x"),
        ("kubeflow-userid", "a@b"),
        ("trace-id", "t"),
        ("token-bin", b"\x00\x01"),
    ]


def test_generic_options_do_not_forward_kubeflow_userid() -> None:
    headers = [("Kubeflow-Userid", "a"), ("Authorization", "b")]
    assert metadata_from_headers(headers, GatewayOptions.generic()) == [("authorization", "b")]


def test_bad_base64_in_a_bin_header_is_400() -> None:
    with pytest.raises(TranscodeError, match='header "Grpc-Metadata-X-Bin" must be base64'):
        metadata_from_headers([("Grpc-Metadata-X-Bin", "!!")], KFP)


def test_call_options_from_headers() -> None:
    options = GatewayOptions.kfp(default_timeout=30.0)
    with_header = call_options_from_headers(CIMultiDict({"Grpc-Timeout": "2S"}), options)
    without = call_options_from_headers(CIMultiDict({"Kubeflow-Userid": "u"}), options)
    assert with_header.timeout == 2.0
    assert without.timeout == 30.0
    assert without.metadata == (("kubeflow-userid", "u"),)


@pytest.mark.parametrize(
    ("headers", "request_id", "metadata"),
    [
        ({"Kubeflow-Userid": "u"}, None, (("kubeflow-userid", "u"),)),
        ({"Kubeflow-Userid": "u"}, "r1", (("kubeflow-userid", "u"), ("x-request-id", "r1"))),
        # P11: the gateway's id replaces one the caller sent as metadata, and goes last
        (
            {"Grpc-Metadata-X-Request-Id": "theirs", "Grpc-Metadata-X-A": "1"},
            "r1",
            (("x-a", "1"), ("x-request-id", "r1")),
        ),
        ({"Grpc-Metadata-X-Request-Id": "theirs"}, None, (("x-request-id", "theirs"),)),
    ],
)
def test_call_options_carry_the_request_id(
    headers: dict[str, str], request_id: str | None, metadata: tuple[tuple[str, str], ...]
) -> None:
    options = call_options_from_headers(CIMultiDict(headers), KFP, request_id=request_id)
    assert options.metadata == metadata


def test_headers_from_metadata() -> None:
    assert headers_from_metadata(
        [("x-a", "1"), ("x-b-bin", b"\x01"), ("x-bad", "a\r\nb")], [("x-t", "2")]
    ) == [("Grpc-Metadata-X-A", "1"), ("Grpc-Metadata-X-B-Bin", "AQ=="), ("Grpc-Trailer-X-T", "2")]
