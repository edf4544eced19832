"""json_codec: exact output under the presets, response_body shapes, HttpBody."""

from __future__ import annotations

import pytest
from google.api import httpbody_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway.json_codec import render_response
from taskgate.gateway.json_fast import dump_json
from taskgate.gateway.options import GatewayOptions
from tests.protos import transcoding_test_pb2 as pb

KFP = GatewayOptions.kfp()
GENERIC = GatewayOptions.generic()
FIELDS = pb.Book.DESCRIPTOR.fields_by_name


def task_shaped_book() -> pb.Book:
    """Book stands in for KFP's Task: a string id, an int64, an enum, timestamps."""
    book = pb.Book(name="3f1c", title="p", page_count=7, color=pb.GREEN)
    book.publish_time.FromJsonString("1970-01-01T00:00:00Z")
    return book


def test_kfp_preset_exact_bytes() -> None:
    assert render_response(task_shaped_book(), None, KFP).body == (
        b'{"name":"3f1c","title":"p","page_count":"7","color":"GREEN",'
        b'"publish_time":"1970-01-01T00:00:00Z"}'
    )


def test_generic_preset_uses_json_names() -> None:
    assert render_response(task_shaped_book(), None, GENERIC).body == (
        b'{"name":"3f1c","title":"p","pageCount":"7","color":"GREEN",'
        b'"publishTime":"1970-01-01T00:00:00Z"}'
    )


def test_explicit_json_name_is_kept_by_proto_names_and_used_by_json_names() -> None:
    message = pb.Scalars(display_name="d")
    assert render_response(message, None, KFP).body == b'{"display_name":"d"}'
    assert render_response(message, None, GENERIC).body == b'{"shownAs":"d"}'


def test_empty_list_is_an_empty_object_and_emit_unpopulated_fills_it() -> None:
    assert render_response(pb.ListBooksResponse(), None, KFP).body == b"{}"
    emitting = GatewayOptions.kfp(emit_unpopulated=True)
    assert render_response(pb.ListBooksResponse(), None, emitting).body == (
        b'{"books":[],"next_page_token":"","total_size":0}'
    )


@pytest.mark.parametrize(
    ("fraction", "rendered"),
    [
        ("", "2016-05-10T10:19:13Z"),
        (".5", "2016-05-10T10:19:13.500Z"),
        (".000001", "2016-05-10T10:19:13.000001Z"),
        (".000000001", "2016-05-10T10:19:13.000000001Z"),
    ],
)
def test_timestamps_use_z_and_0_3_6_9_digits(fraction: str, rendered: str) -> None:
    book = pb.Book()
    book.publish_time.FromJsonString(f"2016-05-10T10:19:13{fraction}Z")
    assert render_response(book, None, KFP).body == b'{"publish_time":"' + rendered.encode() + b'"}'


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("title", b'"p"'),
        ("page_count", b'"7"'),
        ("color", b'"GREEN"'),
        ("publish_time", b'"1970-01-01T00:00:00Z"'),
        ("authors", b'["a","b"]'),
        ("labels", b'{"k":"v"}'),
    ],
)
def test_response_body_field_is_a_bare_json_value(field: str, body: bytes) -> None:
    book = task_shaped_book()
    book.authors.extend(["a", "b"])
    book.labels["k"] = "v"
    assert render_response(book, FIELDS[field], KFP).body == body


def test_response_body_repeated_messages() -> None:
    response = pb.ListBooksResponse(books=[pb.Book(page_count=1), pb.Book()])
    field = pb.ListBooksResponse.DESCRIPTOR.fields_by_name["books"]
    assert render_response(response, field, KFP).body == b'[{"page_count":"1"},{}]'


def test_unset_scalar_response_body_is_its_default() -> None:
    assert render_response(pb.Book(), FIELDS["title"], KFP).body == b'""'


def test_http_body_response_is_raw() -> None:
    rendered = render_response(
        httpbody_pb2.HttpBody(content_type="text/csv", data=b"a,b"), None, KFP
    )
    assert (rendered.body, rendered.content_type) == (b"a,b", "text/csv")
    untyped = render_response(httpbody_pb2.HttpBody(data=b"\x00"), None, KFP)
    assert untyped.content_type == "application/octet-stream"


def test_dump_json_is_compact_utf8() -> None:
    assert dump_json({"a": ["\u00e9", 1]}) == '{"a":["\u00e9",1]}'.encode()
