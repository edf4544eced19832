"""One bad or conflicting binding does not take down the other routes (docs/decisions.md T51);
`strict` refuses them all; repeated-field path variables take comma-separated values."""

from __future__ import annotations

import logging

import pytest
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import descriptor, descriptor_pb2, json_format

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import NoRoute, RouteConfigError, RouteMatch, RouteTable
from tests.unit.gateway.descriptors import FIXTURE, copy_into_new_pool, service_with_rules

STRICT = GatewayOptions.generic(strict=True)
LENIENT = GatewayOptions.generic()


def rule(**fields: object) -> http_pb2.HttpRule:
    return http_pb2.HttpRule(**fields)


def rpc_of(table: RouteTable, http_method: str, path: str) -> str | None:
    found = table.match(http_method, path)
    return found.route.rpc if isinstance(found, RouteMatch) else None


BAD_RULES = [
    (rule(get="/v1/{name"), "invalid path template '/v1/{name'"),
    (rule(get="/v1/m/{missing}"), "path variable 'missing': no field 'missing' in adhoc.Req"),
    (rule(get="/v1/n/{nested}"), "path variable 'nested' must name a non-message field"),
    (rule(post="/v1/b", body="nope"), "body 'nope' is not a field of adhoc.Req"),
    (rule(get="/v1/r", response_body="nope"), "response_body 'nope' is not a field of adhoc.Req"),
    (rule(body="*"), "HttpRule has no pattern"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_RULES)
def test_a_bad_binding_is_skipped_with_a_warning_and_the_rest_serve(
    bad: http_pb2.HttpRule, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_with_rules([rule(get="/v1/good/{name}"), bad, rule(get="/v1/also/{name}")])
    with caplog.at_level(logging.WARNING, "taskgate.gateway.routing"):
        table = RouteTable.from_services([service])
    assert rpc_of(table, "GET", "/v1/good/x") == "/adhoc.S/M0"
    assert rpc_of(table, "GET", "/v1/also/x") == "/adhoc.S/M2"
    assert [r.method.name for r in table.routes] == ["M0", "M2"]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "adhoc.S.M1" in warning.getMessage()
    assert reason in warning.getMessage()


@pytest.mark.parametrize(("bad", "reason"), BAD_RULES)
def test_strict_refuses_the_table(bad: http_pb2.HttpRule, reason: str) -> None:
    service = service_with_rules([rule(get="/v1/good/{name}"), bad])
    with pytest.raises(RouteConfigError, match=r"adhoc\.S\.M1") as caught:
        RouteTable.from_services([service], strict=True)
    assert reason in str(caught.value)


def test_one_bad_additional_binding_leaves_the_methods_other_bindings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    main = rule(get="/v1/main/{name}", additional_bindings=[rule(get="/v1/{zzz}/x")])
    main.additional_bindings.add(get="/v1/extra/{name}")
    table = RouteTable.from_services([service_with_rules([main])])
    assert rpc_of(table, "GET", "/v1/main/a") == "/adhoc.S/M0"
    assert rpc_of(table, "GET", "/v1/extra/a") == "/adhoc.S/M0"
    assert isinstance(table.match("GET", "/v1/q/x"), NoRoute)
    assert "adhoc.S.M0 (GET /v1/{zzz}/x): path variable 'zzz'" in caplog.text


def test_a_duplicate_binding_loses_to_the_first_with_a_warning_naming_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = service_with_rules(
        [rule(get="/v1/{name}"), rule(get="/v1/{name=*}"), rule(post="/v1/{name}", body="*")]
    )
    with caplog.at_level(logging.WARNING, "taskgate.gateway.routing"):
        table = RouteTable.from_services([service])
    assert rpc_of(table, "GET", "/v1/x") == "/adhoc.S/M0"
    assert rpc_of(table, "POST", "/v1/x") == "/adhoc.S/M2"  # another method: no conflict
    assert [r.method.name for r in table.routes] == ["M0", "M2"]
    assert "GET /v1/{name=*} (adhoc.S.M1) duplicates /v1/{name} (adhoc.S.M0)" in caplog.text


def test_strict_refuses_a_duplicate_with_the_same_message() -> None:
    service = service_with_rules([rule(get="/v1/{name}"), rule(get="/v1/{name=*}")])
    with pytest.raises(RouteConfigError) as caught:
        RouteTable.from_services([service], strict=True)
    assert str(caught.value) == "GET /v1/{name=*} (adhoc.S.M1) duplicates /v1/{name} (adhoc.S.M0)"


def scalars_service(*rules: http_pb2.HttpRule) -> descriptor.ServiceDescriptor:
    """`rep.S` with one method per rule, M0, M1, ..., taking tgtest.Scalars (repeated strings,
    int64s and enums), in a pool of its own."""
    pool = copy_into_new_pool(FIXTURE)
    file = descriptor_pb2.FileDescriptorProto(
        name="rep.proto", package="rep", syntax="proto3", dependency=[FIXTURE.name]
    )
    service = file.service.add(name="S")
    for index, each in enumerate(rules):
        method = service.method.add(
            name=f"M{index}", input_type=".tgtest.Scalars", output_type=".tgtest.Scalars"
        )
        method.options.Extensions[annotations_pb2.http].CopyFrom(each)
    pool.Add(file)
    return pool.FindServiceByName("rep.S")


REPEATED = RouteTable.from_services(
    [
        scalars_service(
            rule(get="/v1/tags/{tags}"),
            rule(get="/v1/numbers/{numbers}"),
            rule(get="/v1/colors/{colors}"),
            rule(post="/v1/tags/{tags}", body="*"),
            rule(get="/v1/deep/{tags=**}"),
        )
    ],
    strict=True,
)


def repeated(
    http_method: str, path: str, query: str = "", body: bytes = b"", strict: bool = False
) -> dict[str, object]:
    found = REPEATED.match(http_method, path)
    assert isinstance(found, RouteMatch), found
    request = build_request(found, query, body, "application/json", STRICT if strict else LENIENT)
    return json_format.MessageToDict(request, preserving_proto_field_name=True)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/tags/a", {"tags": ["a"]}),
        ("/v1/tags/a,b,c", {"tags": ["a", "b", "c"]}),
        ("/v1/tags/a%2Cb", {"tags": ["a", "b"]}),  # decoded, then split: as grpc-gateway v2
        ("/v1/tags/a,,b", {"tags": ["a", "", "b"]}),
        ("/v1/tags/a%20b,%C3%A9", {"tags": ["a b", "é"]}),
        ("/v1/numbers/1,-2,0x10", {"numbers": ["1", "-2", "16"]}),
        ("/v1/colors/RED,2", {"colors": ["RED", "GREEN"]}),
        ("/v1/deep/a/b,c/d", {"tags": ["a/b", "c/d"]}),
    ],
)
def test_a_repeated_path_variable_takes_comma_separated_values(
    path: str, expected: dict[str, object]
) -> None:
    assert repeated("GET", path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/v1/numbers/1,x",
            'invalid value "x" for path variable "numbers": expected a 64-bit integer',
        ),
        (
            "/v1/numbers/1,",
            'invalid value "" for path variable "numbers": expected a 64-bit integer',
        ),
        ("/v1/colors/RED,BLUE", 'invalid value "BLUE" for path variable "colors"'),
    ],
)
def test_a_bad_element_is_400_naming_the_variable(path: str, message: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        repeated("GET", path)
    assert caught.value.status.code.name == "INVALID_ARGUMENT"
    assert caught.value.status.message.startswith(message)


def test_the_path_replaces_the_bodys_values_and_the_query_cannot_add_any() -> None:
    assert repeated("POST", "/v1/tags/a,b", body=b'{"tags": ["z"], "fInt32": 1}') == {
        "tags": ["a", "b"],
        "f_int32": 1,
    }
    assert repeated("GET", "/v1/tags/a", query="tags=q") == {"tags": ["a"]}
    with pytest.raises(TranscodeError, match='"tags" names a field set by the path'):
        repeated("GET", "/v1/tags/a", query="tags=q", strict=True)
