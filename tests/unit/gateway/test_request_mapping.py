"""build_request: body, path and query into the request message (docs/decisions.md T16-T30)."""

from __future__ import annotations

import math

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import RouteMatch
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import fixture_table

TABLE = fixture_table()
LENIENT = GatewayOptions.generic()
STRICT = GatewayOptions.generic(strict=True)


def build(
    http_method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    options: GatewayOptions = LENIENT,
    content_type: str = "application/json",
) -> Message:
    found = TABLE.match(http_method, path)
    assert isinstance(found, RouteMatch), found
    return build_request(found, query, body, content_type, options)


def echo(query: str) -> dict[str, object]:
    request = build("GET", "/v1/echo/s", query)
    result = json_format.MessageToDict(request, preserving_proto_field_name=True)
    del result["f_string"]
    return result


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("f_int32=5", {"f_int32": 5}),
        ("fInt32=-5", {"f_int32": -5}),
        ("f_int32=%2B5", {"f_int32": 5}),
        ("f_int32=0x10", {"f_int32": 16}),  # Go ParseInt(s, 0, 32), as KFP's gateway
        ("f_int32=010", {"f_int32": 8}),
        ("f_int32=1_0", {"f_int32": 10}),
        ("f_int64=9223372036854775807", {"f_int64": "9223372036854775807"}),
        ("f_int64=-9223372036854775808", {"f_int64": "-9223372036854775808"}),
        ("f_uint64=18446744073709551615", {"f_uint64": "18446744073709551615"}),
        (
            "f_sint32=-3&f_fixed32=4&f_sfixed64=-6",
            {"f_sint32": -3, "f_fixed32": 4, "f_sfixed64": "-6"},
        ),
        ("f_double=1.5", {"f_double": 1.5}),
        ("f_double=Infinity", {"f_double": "Infinity"}),
        ("f_double=-Infinity", {"f_double": "-Infinity"}),
        ("f_float=2.5e3", {"f_float": 2500.0}),
        ("f_bool=true", {"f_bool": True}),
        ("f_bool=1", {"f_bool": True}),
        ("f_bool=false&f_int32=1", {"f_int32": 1}),
        ("f_bytes=AAE%3D", {"f_bytes": "AAE="}),
        ("f_bytes=AAE", {"f_bytes": "AAE="}),
        ("f_bytes=-_8", {"f_bytes": "+/8="}),
        ("color=RED", {"color": "RED"}),
        ("color=2", {"color": "GREEN"}),
        ("tags=a&tags=b&tags=a", {"tags": ["a", "b", "a"]}),
        ("tags=a,b", {"tags": ["a,b"]}),  # T21: no comma splitting
        ("numbers=1&numbers=-2", {"numbers": ["1", "-2"]}),
        ("colors=RED&colors=2", {"colors": ["RED", "GREEN"]}),
        ("labels[k]=v&labels[k2]=", {"labels": {"k": "v", "k2": ""}}),
        ("labels%5Bk%5D=v", {"labels": {"k": "v"}}),
        ("counts[3]=4", {"counts": {"3": "4"}}),
        ("nested.name=n&nested.child.count=2", {"nested": {"name": "n", "child": {"count": 2}}}),
        ("ts=2024-01-02T03:04:05.5Z", {"ts": "2024-01-02T03:04:05.500Z"}),
        ("ts=2024-01-02T03:04:05%2B01:00", {"ts": "2024-01-02T02:04:05Z"}),
        ("dur=1.5s", {"dur": "1.500s"}),
        ("w_int64=0", {"w_int64": "0"}),
        ("w_string=&w_bool=false", {"w_string": "", "w_bool": False}),
        ("w_double=NaN", {"w_double": "NaN"}),
        ("mask=title,pageCount,book_id", {"mask": "title,pageCount,bookId"}),
        ("st=%7B%22a%22%3A1%7D", {"st": {"a": 1.0}}),
        ("val=%5B1%2Cnull%5D", {"val": [1.0, None]}),
        ("val=%22x%22", {"val": "x"}),
        ("choice_b=3", {"choice_b": 3}),
        ("opt_int=0", {"opt_int": 0}),
        ("shownAs=x", {"display_name": "x"}),
        ("display_name=a+b%2Bc", {"display_name": "a b+c"}),  # T26: "+" is a space
        ("unknown=1&nested.unknown=2&a.b.c=3", {}),  # T27: ignored when lenient
        ("f_string=other", {}),  # T18: bound by the path, ignored
    ],
)
def test_query_parameters(query: str, expected: dict[str, object]) -> None:
    assert echo(query) == expected


def test_query_float_nan() -> None:
    request = build("GET", "/v1/echo/s", "f_double=NaN")
    assert isinstance(request, pb.Scalars)
    assert math.isnan(request.f_double)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "f_int32=abc",
            'invalid value "abc" for query parameter "f_int32": expected a 32-bit integer',
        ),
        (
            "f_int32=2147483648",
            'invalid value "2147483648" for query parameter "f_int32": expected a 32-bit integer',
        ),
        (
            "f_int32=1.5",
            'invalid value "1.5" for query parameter "f_int32": expected a 32-bit integer',
        ),
        ("f_int32=", 'invalid value "" for query parameter "f_int32": expected a 32-bit integer'),
        (
            "f_int32=%201",
            'invalid value " 1" for query parameter "f_int32": expected a 32-bit integer',
        ),
        (
            "f_uint32=-1",
            'invalid value "-1" for query parameter "f_uint32": expected an unsigned 32-bit integer',
        ),
        (
            "f_int64=9223372036854775808",
            'invalid value "9223372036854775808" for query parameter "f_int64": expected a 64-bit integer',
        ),
        ("f_float=1e39", 'invalid value "1e39" for query parameter "f_float": expected a number'),
        ("f_double=x", 'invalid value "x" for query parameter "f_double": expected a number'),
        ("f_bool=yes", 'invalid value "yes" for query parameter "f_bool": expected true or false'),
        (
            "f_bytes=%21%21",
            'invalid value "!!" for query parameter "f_bytes": expected base64-encoded bytes',
        ),
        (
            "color=BLUE",
            'invalid value "BLUE" for query parameter "color": expected one of COLOR_UNSPECIFIED, RED, GREEN',
        ),
        (
            "color=red",
            'invalid value "red" for query parameter "color": expected one of COLOR_UNSPECIFIED, RED, GREEN',
        ),
        (
            "color=7",
            'invalid value "7" for query parameter "color": expected one of COLOR_UNSPECIFIED, RED, GREEN',
        ),
        (
            "ts=2024-01-02",
            'invalid value "2024-01-02" for query parameter "ts": expected an RFC 3339 timestamp such as "2024-01-02T03:04:05Z"',
        ),
        (
            "ts=2024-01-02T03:04:05+01:00",
            'invalid value "2024-01-02T03:04:05 01:00" for query parameter "ts": expected an RFC 3339 timestamp such as "2024-01-02T03:04:05Z"',
        ),
        (
            "dur=1h",
            'invalid value "1h" for query parameter "dur": expected a duration in seconds such as "1.5s"',
        ),
        ("st=%5B1%5D", 'invalid value "[1]" for query parameter "st": expected a JSON object'),
        ("val=%7B", 'invalid value "{" for query parameter "val": expected a JSON value'),
        (
            "counts[x]=1",
            'invalid value "x" for key of query parameter "counts[x]": expected a 32-bit integer',
        ),
        ("labels=v", 'query parameter "labels" is a map: set entries as labels[key]=value'),
        ("f_int32[k]=1", 'query parameter "f_int32[k]": only map fields take [key]'),
        (
            "items.name=x",
            'query parameter "items.name": repeated message fields cannot be set from the query',
        ),
        (
            "items=x",
            'query parameter "items": repeated message fields cannot be set from the query',
        ),
        (
            "nested=x",
            'query parameter "nested" names a message: set its fields as "nested.<field>"',
        ),
        (
            "choice_a=x&choiceB=1",
            'query parameters "choice_a" and "choiceB" both set oneof "choice"',
        ),
        (
            "choiceB=1&choice_a=x",
            'query parameters "choiceB" and "choice_a" both set oneof "choice"',
        ),
        ("f_string=%FF", "the query string is not valid UTF-8"),
    ],
)
def test_query_errors_name_the_parameter(query: str, message: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        build("GET", "/v1/echo/s", query)
    assert caught.value.status.message == message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("zzz=1", 'unknown query parameter "zzz"'),
        ("nested.zzz=1", 'unknown query parameter "nested.zzz"'),
        ("f_string=x", 'query parameter "f_string" names a field set by the path'),
        ("f_int32=1&f_int32=2", 'query parameter "f_int32" is given more than once'),
    ],
)
def test_strict_query_errors(query: str, message: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        build("GET", "/v1/echo/s", query, options=STRICT)
    assert caught.value.status.message == message


def test_path_variables_decode_and_nest() -> None:
    request = build("GET", "/v1/echo/nested/a%2Fb%20c/x/y%2Fz%20w")
    assert request == pb.Scalars(nested=pb.Nested(name="a/b c", child=pb.Nested(name="x/y%2Fz w")))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/echo/%zz", 'invalid path variable "f_string": malformed percent-encoding'),
        ("/v1/echo/%C3%28", 'invalid path variable "f_string": not valid UTF-8'),
        ("/v1/files/a%2", 'invalid path variable "path": malformed percent-encoding'),
    ],
)
def test_bad_path_values(path: str, message: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        build("GET", path)
    assert caught.value.status.message == message


def test_body_star_fills_the_request_and_ignores_the_query() -> None:
    request = build("POST", "/v1/echo", "f_int32=9", b'{"fInt32": 2, "f_string": "s", "zzz": 1}')
    assert request == pb.Scalars(f_int32=2, f_string="s")


def test_body_star_with_query_is_400_when_strict() -> None:
    with pytest.raises(TranscodeError, match="is not allowed: the body is the whole request"):
        build("POST", "/v1/echo", "f_int32=9", b"{}", options=STRICT)


def test_body_field_with_path_and_query() -> None:
    request = build("PUT", "/v1/echo/p/nested", "f_int32=3&nested.name=q", b'{"name":"b"}')
    assert request == pb.Scalars(f_string="p", f_int32=3, nested=pb.Nested(name="b"))


@pytest.mark.parametrize(("body", "has_book"), [(b"", False), (b"null", False), (b"{}", True)])
def test_empty_body_leaves_the_field_unset(body: bytes, has_book: bool) -> None:
    request = build("POST", "/v1/shelves/s/books", body=body)
    assert isinstance(request, pb.CreateBookRequest)
    assert request.HasField("book") is has_book


def test_path_wins_over_body_and_strict_rejects_a_conflict() -> None:
    body = b'{"name":"shelves/x/books/y","title":"t"}'
    request = build("PATCH", "/v1/shelves/s/books/b", body=body)
    assert isinstance(request, pb.UpdateBookRequest)
    assert request.book == pb.Book(name="shelves/s/books/b", title="t")
    same = b'{"name":"shelves/s/books/b"}'
    build("PATCH", "/v1/shelves/s/books/b", body=same, options=STRICT)
    with pytest.raises(TranscodeError) as caught:
        build("PATCH", "/v1/shelves/s/books/b", body=body, options=STRICT)
    assert caught.value.status.message == (
        'the body sets "book.name" to a value other than the path\'s'
    )


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/echo", b"[]", "the request body must be a JSON object"),
        ("/v1/echo", b'"x"', "the request body must be a JSON object"),
        ("/v1/echo", b'{"a":1} {}', "the request body is not valid JSON (line 1, column 9)"),
        ("/v1/echo", b"{'a':1}", "the request body is not valid JSON (line 1, column 2)"),
        ("/v1/echo", b'{"fDouble": NaN}', "the request body is not valid JSON"),
        ("/v1/echo", b"\xff", "the request body is not valid UTF-8"),
        ("/v1/echo", b'{"fString": 1}', 'invalid value for field "fString": expected a string'),
        (
            "/v1/echo",
            b'{"f_int64": "1x"}',
            'invalid value for field "f_int64": expected a 64-bit integer',
        ),
        (
            "/v1/echo",
            b'{"color": "BLUE"}',
            'invalid value for field "color": expected one of COLOR_UNSPECIFIED, RED, GREEN',
        ),
        (
            "/v1/echo",
            b'{"nested": {"count": "a"}}',
            'invalid value for field "nested.count": expected a 32-bit integer',
        ),
        (
            "/v1/echo",
            b'{"tags": "a"}',
            'invalid value for field "tags": expected a JSON array of items that are each a string',
        ),
        (
            "/v1/echo",
            b'{"labels": {"a": 1}}',
            'invalid value for field "labels": expected a JSON object',
        ),
        (
            "/v1/echo",
            b'{"ts": "yesterday"}',
            'invalid value for field "ts": expected an RFC 3339 timestamp such as "2024-01-02T03:04:05Z"',
        ),
        (
            "/v1/echo",
            b'{"choiceA": "a", "choiceB": 1}',
            'more than one field of oneof "choice" is set',
        ),
        ("/v1/shelves/s/books", b"[]", "the request body must be a JSON object"),
        (
            "/v1/shelves/s/books",
            b'{"pageCount": "x"}',
            'invalid value for field "pageCount": expected a 64-bit integer',
        ),
    ],
)
def test_body_errors_name_the_field(path: str, body: bytes, message: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        build("POST", path, body=body)
    assert caught.value.status.message == message


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/echo", b'{"zzz": 1}', 'unknown field "zzz" in the request body'),
        ("/v1/echo", b'{"nested": {"zzz": 1}}', 'unknown field "nested.zzz" in the request body'),
        ("/v1/shelves/s/books", b'{"zzz": 1}', 'unknown field "zzz" in the request body'),
    ],
)
def test_unknown_body_fields_are_400_only_when_strict(path: str, body: bytes, message: str) -> None:
    build("POST", path, body=body)
    with pytest.raises(TranscodeError) as caught:
        build("POST", path, body=body, options=STRICT)
    assert caught.value.status.message == message


def test_body_accepts_proto_and_json_names() -> None:
    request = build("POST", "/v1/echo", body=b'{"f_int64": "5", "shownAs": "d", "w_int64": null}')
    assert request == pb.Scalars(f_int64=5, display_name="d")


def test_http_body_request_field() -> None:
    request = build(
        "POST", "/v1/shelves/s/books/b:upload", body=b"\x89PNG", content_type="image/png"
    )
    assert isinstance(request, pb.UploadRequest)
    assert request.name == "shelves/s/books/b"
    assert (request.body.content_type, request.body.data) == ("image/png", b"\x89PNG")


@pytest.mark.parametrize("depth", [150, 990, 5000])
def test_deeply_nested_bodies_are_400_not_500(depth: int) -> None:
    body = b'{"nested":' + b'{"child":' * depth + b"{}" + b"}" * depth + b"}"
    with pytest.raises(TranscodeError) as caught:
        build("POST", "/v1/echo", body=body)
    assert caught.value.status.message in (
        "the request body is nested too deeply",
        "the request body is not valid JSON",
    )


@pytest.mark.parametrize(
    ("target", "query", "body", "paths"),
    [
        # T34: the body's leaf paths, proto names, sorted; path-bound book.name left out.
        (
            "/v1/shelves/s/books/b",
            "",
            b'{"title":"t","pageCount":"3","name":"x"}',
            ["page_count", "title"],
        ),
        (
            "/v1/shelves/s/books/b",
            "",
            b'{"labels":{"a":"b"},"authors":["x"],"publishTime":"2024-01-01T00:00:00Z"}',
            ["authors", "labels", "publish_time"],
        ),
        ("/v1/shelves/s/books/b", "", b"{}", []),
        ("/v1/shelves/s/books/b", "", b'{"unknown":1,"title":"t"}', ["title"]),
        # A mask the client sent is kept as it is.
        ("/v1/shelves/s/books/b", "updateMask=title", b'{"title":"t","pageCount":"3"}', ["title"]),
    ],
)
def test_patch_fills_the_field_mask_from_the_body(
    target: str, query: str, body: bytes, paths: list[str]
) -> None:
    request = build("PATCH", target, query=query, body=body)
    assert isinstance(request, pb.UpdateBookRequest)
    assert list(request.update_mask.paths) == paths


def test_no_mask_is_filled_outside_patch() -> None:
    request = build("POST", "/v1/shelves/s/books", body=b'{"title":"t"}')
    assert isinstance(request, pb.CreateBookRequest)
    assert request.book.title == "t"
