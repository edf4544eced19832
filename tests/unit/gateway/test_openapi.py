"""gateway/openapi.py: the OpenAPI 3.1 document of a route table (docs/decisions.md P10)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from openapi_spec_validator import validate

from taskgate.api import task_pb2
from taskgate.gateway.discovery import build_pool
from taskgate.gateway.openapi import build_openapi, comments_from_files, openapi_json
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from tests.unit.gateway.descriptors import fixture_table

GENERIC = GatewayOptions.generic()
KFP = GatewayOptions.kfp()
PROTO_NAMES = GatewayOptions.generic(use_proto_field_names=True)
REF = "#/components/schemas/"


def task_table() -> RouteTable:
    return RouteTable.from_services([task_pb2.DESCRIPTOR.services_by_name["TaskService"]])


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]
    return found


def params(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", [])}


@pytest.mark.parametrize("options", [GENERIC, KFP, PROTO_NAMES])
@pytest.mark.parametrize("table", [fixture_table, task_table])
def test_documents_validate_as_openapi_3_1(options: GatewayOptions, table: Any) -> None:
    document = build_openapi(table(), options)
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_task_service_routes_and_kfp_names() -> None:
    document = build_openapi(task_table(), KFP)
    assert set(document["paths"]) == {"/apis/v1alpha1/tasks"}
    create = operation(document, "/apis/v1alpha1/tasks", "post")
    assert create["operationId"] == "TaskService_CreateTask"
    assert create["tags"] == ["api.TaskService"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": REF + "api.Task"
    }
    listing = params(operation(document, "/apis/v1alpha1/tasks", "get"))
    assert listing["page_size"]["schema"] == {"type": "integer", "format": "int32"}
    assert listing["resource_reference_key.type"]["schema"] == {"$ref": REF + "api.ResourceType"}
    task = schema(document, "api.Task")["properties"]
    assert task["created_at"] == {"type": "string", "format": "date-time"}
    assert {"pipelineName", "mlmdExecutionID"} <= set(task)
    error = schema(document, "grpc.gateway.runtime.Error")["properties"]
    assert list(error) == ["error", "code", "message", "details"]
    assert document["components"]["responses"]["Error"]["content"]["application/json"][
        "schema"
    ] == {"$ref": REF + "grpc.gateway.runtime.Error"}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("fInt32", {"type": "integer", "format": "int32"}),
        ("fInt64", {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}),
        ("fUint64", {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}),
        ("fBool", {"type": "boolean"}),
        ("fBytes", {"type": "string", "format": "byte", "contentEncoding": "base64"}),
        ("color", {"$ref": REF + "tgtest.Color"}),
        ("tags", {"type": "array", "items": {"type": "string"}}),
        ("labels", {"type": "object", "additionalProperties": {"type": "string"}}),
        (
            "counts",
            {
                "type": "object",
                "additionalProperties": {
                    "type": "string",
                    "format": "int64",
                    "pattern": "^-?[0-9]+$",
                },
            },
        ),
        ("nested", {"$ref": REF + "tgtest.Nested"}),
        ("items", {"type": "array", "items": {"$ref": REF + "tgtest.Nested"}}),
        ("ts", {"type": "string", "format": "date-time"}),
        ("wInt64", {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}),
        ("wBool", {"type": "boolean"}),
        ("st", {"type": "object", "additionalProperties": True}),
        ("optInt", {"type": "integer", "format": "int32"}),
        ("shownAs", {"type": "string"}),
    ],
)
def test_proto3_json_mapping_of_fields(field: str, expected: dict[str, Any]) -> None:
    properties = schema(build_openapi(fixture_table(), GENERIC), "tgtest.Scalars")["properties"]
    assert properties[field] == expected


def test_well_known_types_enums_oneofs_and_recursion() -> None:
    document = build_openapi(fixture_table(), GENERIC)
    scalars = schema(document, "tgtest.Scalars")
    assert scalars["properties"]["dur"]["pattern"].endswith("s$")
    assert scalars["properties"]["mask"]["type"] == "string"
    assert scalars["properties"]["val"] == {"description": "Any JSON value."}
    assert scalars["properties"]["fDouble"]["anyOf"][0] == {"type": "number", "format": "double"}
    assert scalars["not"] == {"anyOf": [{"required": ["choiceA", "choiceB"]}]}
    assert "oneof `choice`" in scalars["properties"]["choiceA"]["description"]
    assert schema(document, "tgtest.Color") == {
        "type": "string",
        "enum": ["COLOR_UNSPECIFIED", "RED", "GREEN"],
    }
    # A recursive message refers to itself instead of unrolling.
    assert schema(document, "tgtest.Nested")["properties"]["child"] == {
        "$ref": REF + "tgtest.Nested"
    }
    empty = operation(document, "/v1/{name}", "delete")["responses"]["200"]
    assert empty["content"]["application/json"]["schema"] == {
        "type": "object",
        "additionalProperties": False,
    }
    status = schema(document, "google.rpc.Status")["properties"]
    assert list(status) == ["code", "message", "details"]
    assert status["details"]["items"] == {"$ref": REF + "google.protobuf.Any"}
    assert schema(document, "google.protobuf.Any")["required"] == ["@type"]


def test_paths_multi_segment_variables_and_collisions() -> None:
    document = build_openapi(fixture_table(), GENERIC)
    get = params(operation(document, "/v1/{name}", "get"))
    assert get["name"]["schema"] == {"type": "string", "pattern": "^shelves/[^/]+/books/[^/]+$"}
    assert get["name"]["required"] is True
    # `{book.name=...}` has the same OpenAPI path as `{name=...}`: documented under that name.
    patch = params(operation(document, "/v1/{name}", "patch"))
    assert "Sets `book.name`" in patch["name"]["description"]
    assert patch["updateMask"]["schema"]["type"] == "string"
    files = params(operation(document, "/v1/files/{path}", "get"))
    assert files["path"]["schema"] == {"type": "string", "pattern": "^.*$"}
    nested = params(operation(document, "/v1/echo/nested/{nested.name}/{nested.child.name}", "get"))
    assert nested["nested.child.name"]["schema"]["pattern"] == "^x(/.*)?$"
    assert "/v1/{name}:move" in document["paths"]
    # A custom method OpenAPI cannot name is listed, not documented; `*` is every method.
    assert document["x-undocumented-routes"] == ["SEARCH /v1/echo:search (tgtest.Echo.Echo)"]
    assert set(document["paths"]["/v1/any-method"]) == {"get", "put", "post", "delete", "patch"}


def test_query_parameters_follow_the_query_rules() -> None:
    document = build_openapi(fixture_table(), GENERIC)
    listing = params(operation(document, "/v1/{parent}/books", "get"))
    assert set(listing) == {"parent", "pageSize", "pageToken", "filter"}  # path-bound left out
    assert listing["pageSize"]["in"] == "query"
    # body "*": no query parameters (T17); body field: the rest only (T18).
    assert set(params(operation(document, "/v1/{name}:move", "post"))) == {"name"}
    create = params(operation(document, "/v1/{parent}/books", "post"))
    assert set(create) == {"parent", "bookId"}
    echo = params(operation(document, "/v1/echo/{f_string}", "get"))
    assert echo["tags"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert echo["labels"]["style"] == "deepObject"
    assert "nested.name" in echo  # a message is set field by field
    assert "nested.child.name" not in echo  # documentation stops at a message's second visit
    assert "items" not in echo  # repeated messages cannot be set from the query (T22)
    assert echo["ts"]["schema"] == {"type": "string", "format": "date-time"}
    proto = params(
        operation(build_openapi(fixture_table(), PROTO_NAMES), "/v1/{parent}/books", "get")
    )
    assert "page_size" in proto


def test_streams_http_body_and_response_body() -> None:
    document = build_openapi(fixture_table(), GENERIC)
    stream = operation(document, "/v1/{shelf}/books:stream", "get")["responses"]["200"]["content"]
    line = stream["application/x-ndjson"]["schema"]
    assert line["properties"]["result"] == {"$ref": REF + "tgtest.Book"}
    assert line["properties"]["error"] == {"$ref": REF + "google.rpc.Status"}
    assert operation(document, "/v1/files/{path}", "get")["responses"]["200"]["content"] == {
        "*/*": {}
    }
    assert operation(document, "/v1/stream-files/{path}", "get")["responses"]["200"]["content"] == {
        "*/*": {}
    }
    upload = operation(document, "/v1/{name}:upload", "post")["requestBody"]
    assert upload["content"] == {"*/*": {}}
    title = operation(document, "/v1/{name}:title", "get")["responses"]["200"]
    assert title["content"]["application/json"]["schema"] == {"type": "string"}


def test_streamed_requests_are_newline_delimited_json() -> None:
    """T62: client-streaming and bidirectional bodies are one message per line."""
    document = build_openapi(fixture_table(), GENERIC)
    imported = operation(document, "/v1/shelves/import/books", "post")
    body = imported["requestBody"]
    assert list(body["content"]) == ["application/x-ndjson", "application/json"]
    assert body["content"]["application/x-ndjson"]["schema"] == {"$ref": REF + "tgtest.Book"}
    assert "one request message per line" in body["description"]
    assert "application/json" in imported["responses"]["200"]["content"]  # answered once
    chat = operation(document, "/v1/{parent}/books:chat", "post")
    line = chat["requestBody"]["content"]["application/x-ndjson"]["schema"]
    assert line == {"$ref": REF + "tgtest.CreateBookRequest"}
    answers = chat["responses"]["200"]["content"]["application/x-ndjson"]["schema"]
    assert answers["properties"]["result"] == {"$ref": REF + "tgtest.Book"}
    upload = operation(document, "/v1/{name}:uploadStream", "post")["requestBody"]
    assert "answers 501" in upload["description"]
    validate(document)


def test_json_bytes_are_the_document() -> None:
    import json

    assert json.loads(openapi_json(task_table(), KFP)) == build_openapi(task_table(), KFP)


PROTO = """syntax = "proto3";
package c;
import "google/api/annotations.proto";
// Things to fetch.
service Things {
  // Fetch one thing.
  rpc Get(Thing) returns (Thing) { option (google.api.http) = { get: "/v1/things/{name}" }; }
}
// A thing.
message Thing {
  // Its name.
  string name = 1;
  Kind kind = 2;  // what it is
}
enum Kind {
  KIND_UNSPECIFIED = 0;
  // A big one.
  BIG = 1;
}
"""


def test_comments_from_source_info_become_descriptions() -> None:
    import grpc_tools
    from google.api import annotations_pb2  # type: ignore[import-untyped, unused-ignore]
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    googleapis = str(Path(annotations_pb2.__file__).resolve().parents[2])
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "c.proto"), "w") as file:
            file.write(PROTO)
        out = os.path.join(folder, "c.binpb")
        args = [
            "protoc",
            f"-I{folder}",
            f"-I{include}",
            f"-I{googleapis}",
            "--include_source_info",
            "--include_imports",
        ]
        assert protoc.main([*args, f"--descriptor_set_out={out}", "c.proto"]) == 0
        with open(out, "rb") as file:
            files = list(descriptor_pb2.FileDescriptorSet.FromString(file.read()).file)
    comments = comments_from_files(files)
    assert comments["c.Things.Get"] == "Fetch one thing."
    assert comments["c.Thing.kind"] == "what it is"
    service = build_pool(files).FindServiceByName("c.Things")
    document = build_openapi(RouteTable.from_services([service]), GENERIC, comments=comments)
    validate(document)
    assert document["tags"] == [{"name": "c.Things", "description": "Things to fetch."}]
    get = operation(document, "/v1/things/{name}", "get")
    assert get["description"] == "Fetch one thing."
    assert params(get)["name"]["description"] == "Its name."
    thing = schema(document, "c.Thing")
    assert thing["description"] == "A thing."
    assert thing["properties"]["kind"]["description"] == "what it is"
    assert schema(document, "c.Kind")["description"] == "- BIG: A big one."
    # Without source info: no descriptions at all.
    assert (
        "description" not in build_openapi(RouteTable.from_services([service]), GENERIC)["tags"][0]
    )
