"""A query parameter repeated for a singular field is 400 naming it, in every mode and preset
(docs/decisions.md T23); repeated fields still take one value per repetition."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import RouteMatch
from tests.unit.gateway.descriptors import fixture_table

TABLE = fixture_table()
MODES = {
    "generic": GatewayOptions.generic(),
    "generic-strict": GatewayOptions.generic(strict=True),
    "kfp": GatewayOptions.kfp(),
    "kfp-strict": GatewayOptions.kfp(strict=True),
}


def build(query: str, options: GatewayOptions) -> dict[str, object]:
    found = TABLE.match("GET", "/v1/echo/s")
    assert isinstance(found, RouteMatch)
    request = build_request(found, query, b"", "", options)
    result = json_format.MessageToDict(request, preserving_proto_field_name=True)
    del result["f_string"]
    return result


@pytest.mark.parametrize("options", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("f_int32=1&f_int32=2", 'query parameter "f_int32" is given more than once'),
        ("f_int32=1&f_int32=1", 'query parameter "f_int32" is given more than once'),
        ("color=RED&color=GREEN", 'query parameter "color" is given more than once'),
        ("nested.name=a&nested.name=b", 'query parameter "nested.name" is given more than once'),
        ("w_int64=1&w_int64=2", 'query parameter "w_int64" is given more than once'),
        (
            "ts=2024-01-01T00:00:00Z&ts=2024-01-01T00:00:00Z",
            'query parameter "ts" is given more than once',
        ),
        ("f_int32=1&fInt32=2", 'query parameters "f_int32" and "fInt32" both set "f_int32"'),
        ("labels[k]=a&labels[k]=b", 'query parameter "labels[k]" is given more than once'),
        ("f_int32=x&f_int32=2", 'query parameter "f_int32" is given more than once'),
    ],
)
def test_a_singular_field_given_twice_is_400_naming_it(
    query: str, message: str, options: GatewayOptions
) -> None:
    with pytest.raises(TranscodeError) as caught:
        build(query, options)
    assert caught.value.status.code.name == "INVALID_ARGUMENT"
    assert caught.value.status.message == message


@pytest.mark.parametrize("options", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tags=a&tags=b", {"tags": ["a", "b"]}),
        ("tags=a&tags=a", {"tags": ["a", "a"]}),
        ("colors=RED&colors=2", {"colors": ["RED", "GREEN"]}),
        ("labels[a]=1&labels[b]=2", {"labels": {"a": "1", "b": "2"}}),
        ("f_int32=1&nested.name=n", {"f_int32": 1, "nested": {"name": "n"}}),
    ],
)
def test_repeated_fields_and_distinct_parameters_are_not_affected(
    query: str, expected: dict[str, object], options: GatewayOptions
) -> None:
    assert build(query, options) == expected
