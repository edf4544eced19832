"""OpenAPI 3.1 for a route table under the active `GatewayOptions`. Pure.

`build_openapi(routes, options)` documents every route the gateway serves: path templates as
OpenAPI paths, path and query parameters as the transcoder reads them (T16-T28), request and
response bodies in the proto3 JSON mapping with the options' field names, the error body of the
active style (T40), streamed answers (T45) and streamed requests (T62) as newline-delimited JSON
and HttpBody as any media type (T36). Comments
from `SourceCodeInfo`, when the caller has them (`comments_from_files`), become descriptions.
docs/decisions.md P10 says how templates that OpenAPI cannot express are written.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.protobuf import descriptor, descriptor_pb2

from taskgate.gateway.field_paths import FieldDescriptor, is_map, is_text_valued
from taskgate.gateway.media import NDJSON_MEDIA_TYPE
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.path_template import PathTemplate, SegmentKind, Variable
from taskgate.gateway.routing import HTTP_BODY, Route, RouteTable

__all__ = ["OPENAPI_VERSION", "build_openapi", "comments_from_files", "openapi_json"]

OPENAPI_VERSION = "3.1.0"
NDJSON = NDJSON_MEDIA_TYPE
SSE = "text/event-stream"
#: HTTP methods an OpenAPI 3.1 path item can hold.
_OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: What a custom `*` rule is documented as: every method it serves that OpenAPI can name.
_ANY_METHOD = ("get", "put", "post", "delete", "patch")
_REF = "#/components/schemas/"
_ANY = "google.protobuf.Any"
_KFP_ERROR = "grpc.gateway.runtime.Error"
_STATUS = "google.rpc.Status"
_INT64_PATTERN = r"^-?[0-9]+$"
_PARAM = re.compile(r"\{([^}]*)\}")
_UINT64_PATTERN = r"^[0-9]+$"

T = FieldDescriptor
_INT32 = {T.TYPE_INT32: "int32", T.TYPE_SINT32: "int32", T.TYPE_SFIXED32: "int32"}
_UINT32 = {T.TYPE_UINT32: "uint32", T.TYPE_FIXED32: "uint32"}
_INT64 = {T.TYPE_INT64: "int64", T.TYPE_SINT64: "int64", T.TYPE_SFIXED64: "int64"}
_UINT64 = {T.TYPE_UINT64: "uint64", T.TYPE_FIXED64: "uint64"}
_NON_FINITE = ["NaN", "Infinity", "-Infinity"]

_WRAPPER = re.compile(
    r"google\.protobuf\.(Double|Float|Int64|UInt64|Int32|UInt32|Bool|String|Bytes)Value"
)
_WKT_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": 'Seconds with up to 9 fractional digits and an "s", such as "1.5s".',
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": 'Comma-separated field paths (lowerCamel), such as "title,pageCount".',
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}


def openapi_json(
    routes: RouteTable,
    options: GatewayOptions,
    *,
    title: str = "taskgate",
    version: str = "0",
    comments: Mapping[str, str] | None = None,
) -> bytes:
    """`build_openapi` as compact UTF-8 JSON bytes."""
    document = build_openapi(routes, options, title=title, version=version, comments=comments)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def build_openapi(
    routes: RouteTable,
    options: GatewayOptions,
    *,
    title: str = "taskgate",
    version: str = "0",
    comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` as `options` serve them (a JSON-ready dict)."""
    return _Builder(options, comments or {}).document(routes, title, version)


def comments_from_files(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Leading (else trailing) comments by full name, from files that carry `SourceCodeInfo`.

    Keys: messages, fields (`pkg.Msg.field`), enums, enum values (`pkg.Enum.VALUE`), services
    and methods (`pkg.Service.Method`). Files without source info add nothing."""
    found: dict[str, str] = {}
    for file in files:
        if not file.source_code_info.location:
            continue
        by_path: dict[tuple[int, ...], str] = {}
        for location in file.source_code_info.location:
            text = (location.leading_comments or location.trailing_comments).strip()
            if text:
                by_path[tuple(location.path)] = _clean_comment(text)
        for name, path in _named_paths(file):
            if path in by_path:
                found[name] = by_path[path]
    return found


def _clean_comment(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines()).strip()


def _named_paths(file: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[str, tuple[int, ...]]]:
    prefix = f"{file.package}." if file.package else ""
    for i, message in enumerate(file.message_type):
        yield from _message_paths(message, prefix, (4, i))
    for i, enum in enumerate(file.enum_type):
        yield from _enum_paths(enum, prefix, (5, i))
    for i, service in enumerate(file.service):
        name = prefix + service.name
        yield name, (6, i)
        for j, method in enumerate(service.method):
            yield f"{name}.{method.name}", (6, i, 2, j)


def _message_paths(
    message: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...]
) -> Iterator[tuple[str, tuple[int, ...]]]:
    name = prefix + message.name
    yield name, path
    for i, field in enumerate(message.field):
        yield f"{name}.{field.name}", (*path, 2, i)
    for i, nested in enumerate(message.nested_type):
        yield from _message_paths(nested, f"{name}.", (*path, 3, i))
    for i, enum in enumerate(message.enum_type):
        yield from _enum_paths(enum, f"{name}.", (*path, 4, i))


def _enum_paths(
    enum: descriptor_pb2.EnumDescriptorProto, prefix: str, path: tuple[int, ...]
) -> Iterator[tuple[str, tuple[int, ...]]]:
    name = prefix + enum.name
    yield name, path
    for i, value in enumerate(enum.value):
        yield f"{name}.{value.name}", (*path, 2, i)


class _Builder:
    def __init__(self, options: GatewayOptions, comments: Mapping[str, str]) -> None:
        self.options = options
        self.comments = comments
        self.schemas: dict[str, dict[str, Any]] = {}
        self.paths: dict[str, dict[str, Any]] = {}
        #: rendered path with parameter names blanked -> its key in `paths` (OpenAPI treats
        #: `/v1/{a}` and `/v1/{b}` as the same path).
        self.shapes: dict[str, str] = {}
        self.operation_ids: set[str] = set()
        self.undocumented: list[str] = []

    # -- document ---------------------------------------------------------------------------

    def document(self, routes: RouteTable, title: str, version: str) -> dict[str, Any]:
        services: dict[str, descriptor.ServiceDescriptor] = {}
        bindings: dict[str, int] = {}
        for route in routes.routes:
            service = route.method.containing_service
            services.setdefault(service.full_name, service)
            number = bindings[route.rpc] = bindings.get(route.rpc, 0) + 1
            self.add_route(route, number)
        error_name = self.error_schema()
        document: dict[str, Any] = {
            "openapi": OPENAPI_VERSION,
            "info": {"title": title, "version": version, "description": self.info_text()},
            "tags": [self.tag(service) for service in services.values()],
            "paths": self.paths,
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "responses": {
                    "Error": {
                        "description": "An error (docs/decisions.md T39, T40).",
                        "content": {"application/json": {"schema": _ref(error_name)}},
                    }
                },
            },
        }
        if self.undocumented:
            document["x-undocumented-routes"] = self.undocumented
        return document

    def info_text(self) -> str:
        names = "proto field names" if self.options.use_proto_field_names else "lowerCamel"
        style = (
            "KFP (grpc-gateway v1)" if self.options.error_style == "kfp" else "google.rpc.Status"
        )
        return (
            f"REST transcoding of gRPC services (proto3 JSON mapping; responses use {names}, "
            "requests accept both spellings). Errors use the "
            f"{style} shape."
        )

    def tag(self, service: descriptor.ServiceDescriptor) -> dict[str, Any]:
        tag: dict[str, Any] = {"name": service.full_name}
        self.describe(tag, service.full_name)
        return tag

    # -- operations -------------------------------------------------------------------------

    def add_route(self, route: Route, number: int) -> None:
        path, _ = _openapi_path(route.template)
        shape = re.sub(r"\{[^}]*\}", "{}", path)
        key = self.shapes.setdefault(shape, path)
        item = self.paths.setdefault(key, {})
        if route.http_method == "*":
            methods: tuple[str, ...] = _ANY_METHOD
        elif route.http_method.lower() in _OPERATIONS:
            methods = (route.http_method.lower(),)
        else:
            methods = ()
        where = f"{route.http_method} {route.template.text} ({route.method.full_name})"
        if not methods:
            self.undocumented.append(where)  # a custom method OpenAPI cannot name
            if not item:
                del self.paths[key]
            return
        # OpenAPI takes `/v1/{a}` and `/v1/{b}` for one path: use the names already there.
        renames = dict(zip(_PARAM.findall(path), _PARAM.findall(key), strict=True))
        for method in methods:
            if method in item:
                self.undocumented.append(f"{method.upper()} {where}")
                continue
            suffix = method if len(methods) > 1 else ""
            item[method] = self.operation(route, number, suffix, renames)

    def operation(
        self, route: Route, number: int, suffix: str, renames: Mapping[str, str]
    ) -> dict[str, Any]:
        method = route.method
        base = f"{method.containing_service.name}_{method.name}"
        operation_id = base + (str(number) if number > 1 else "") + (f"_{suffix}" if suffix else "")
        while operation_id in self.operation_ids:
            operation_id += "_"
        self.operation_ids.add(operation_id)
        operation: dict[str, Any] = {
            "tags": [method.containing_service.full_name],
            "operationId": operation_id,
            "summary": method.name,
        }
        self.describe(operation, method.full_name)
        operation["x-grpc-method"] = route.rpc
        operation["x-http-template"] = route.template.text
        parameters = [*self.path_parameters(route, renames), *self.query_parameters(route)]
        if parameters:
            operation["parameters"] = parameters
        body = self.request_body(route)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = {
            "200": self.success(route),
            "default": {"$ref": "#/components/responses/Error"},
        }
        return operation

    def path_parameters(self, route: Route, renames: Mapping[str, str]) -> list[dict[str, Any]]:
        parameters = []
        for variable, fields in route.path_fields:
            leaf = fields[-1]
            schema = self.field_schema(leaf, in_query=True)
            pattern = _variable_pattern(route.template, variable)
            if pattern is not None:
                schema = {"type": "string", "pattern": pattern}
            name = renames.get(variable.name, variable.name)
            parameter: dict[str, Any] = {
                "name": name,
                "in": "path",
                "required": True,
                "schema": schema,
            }
            description = self.comment(leaf)
            if name != variable.name:
                description = f"Sets `{variable.name}`. {description or ''}"
            if variable.multi_segment:
                spans = 'Spans several path segments: send its "/" unescaped. '
                description = spans + (description or "")
            if description:
                parameter["description"] = description.strip()
            parameters.append(parameter)
        for name in _openapi_path(route.template)[1]:
            parameters.append(
                {
                    "name": renames.get(name, name),
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "A wildcard segment the template binds to no field.",
                }
            )
        return parameters

    def query_parameters(self, route: Route) -> list[dict[str, Any]]:
        if route.body_field == "*":
            return []  # T17
        bound = {tuple(f.name for f in fields) for _, fields in route.path_fields}
        parameters: list[dict[str, Any]] = []
        root = route.method.input_type
        self.collect_query(root, (), (), frozenset({root}), route.body_field, bound, parameters)
        return parameters

    def collect_query(
        self,
        message: descriptor.Descriptor,
        path: tuple[str, ...],
        names: tuple[str, ...],
        ancestors: frozenset[descriptor.Descriptor],
        body_field: str | None,
        bound: set[tuple[str, ...]],
        out: list[dict[str, Any]],
    ) -> None:
        for field in message.fields:
            field_path = (*path, field.name)
            if not path and field.name == body_field:
                continue  # T18
            if any(field_path[: len(b)] == b for b in bound):
                continue  # T18
            name = ".".join((*names, self.name_of(field)))
            if is_map(field):
                value = _map_value(field)
                if is_text_valued(value):
                    out.append(self.query_parameter(name, field, deep_object=True))
            elif is_text_valued(field):
                out.append(self.query_parameter(name, field))
            elif (
                not field.is_repeated
                and field.message_type is not None
                and field.message_type not in ancestors
            ):
                # T22: a singular message is set field by field; recursion stops at a cycle.
                self.collect_query(
                    field.message_type,
                    field_path,
                    (*names, self.name_of(field)),
                    ancestors | {field.message_type},
                    body_field,
                    bound,
                    out,
                )

    def query_parameter(
        self, name: str, field: FieldDescriptor, *, deep_object: bool = False
    ) -> dict[str, Any]:
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "schema": self.field_schema(field, in_query=True),
        }
        if deep_object:
            parameter["style"] = "deepObject"  # name[key]=value (T22)
            parameter["explode"] = True
        description = self.comment(field)
        if description:
            parameter["description"] = description
        return parameter

    def request_body(self, route: Route) -> dict[str, Any] | None:
        if route.body_field is None:
            return None
        if route.request_is_http_body:
            text = "Raw bytes (google.api.HttpBody)."
            if route.client_streaming:  # T62: bytes have no line framing
                text = "Not served: a stream of raw bytes has no line framing; answers 501."
            return {"content": {"*/*": {}}, "description": text}
        if route.body_descriptor is None:
            schema = self.message_ref(route.method.input_type)
            description = "The whole request; fields bound by the path come from the path."
        else:
            schema = self.field_schema(route.body_descriptor)
            description = f"The request field `{route.body_descriptor.name}`."
        if route.client_streaming:  # T62: one request message per line, sent as each arrives
            return {
                "description": "A stream: newline-delimited JSON, one request message per line, "
                "each built as a single body would be. " + description,
                "content": {NDJSON: {"schema": schema}, "application/json": {"schema": schema}},
            }
        return {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }

    def success(self, route: Route) -> dict[str, Any]:
        if route.response_is_http_body:
            media: dict[str, Any] = {"*/*": {}}
            text = "Raw bytes with their own media type (google.api.HttpBody)."
            if route.server_streaming:
                text = "Raw bytes, streamed (google.api.HttpBody)."
            return {"description": text, "content": media}
        if route.response_body_descriptor is not None:
            schema = self.field_schema(route.response_body_descriptor)
        else:
            schema = self.message_ref(route.method.output_type)
        if not route.server_streaming:
            return {"description": "OK", "content": {"application/json": {"schema": schema}}}
        line = {
            "type": "object",
            "properties": {"result": schema, "error": _ref(self.error_schema(status=True))},
            "description": 'One JSON object per line: {"result": ...} per message, a final '
            '{"error": ...} if the stream fails midway.',
        }
        return {
            "description": "A stream: newline-delimited JSON (T45), or Server-Sent Events.",
            "content": {
                NDJSON: {"schema": line},
                SSE: {"schema": {"type": "string"}},
            },
        }

    # -- schemas ----------------------------------------------------------------------------

    def error_schema(self, *, status: bool = False) -> str:
        self.message_ref_named(_ANY, _any_schema)
        details = {"type": "array", "items": _ref(_ANY)}
        code = {"type": "integer", "format": "int32", "description": "The gRPC status code."}
        if status or self.options.error_style == "status":
            self.schemas.setdefault(
                _STATUS,
                {
                    "type": "object",
                    "description": "google.rpc.Status in JSON.",
                    "properties": {"code": code, "message": {"type": "string"}, "details": details},
                },
            )
            return _STATUS
        self.schemas.setdefault(
            _KFP_ERROR,
            {
                "type": "object",
                "description": "KFP's error body (grpc-gateway v1): error and message are equal.",
                "properties": {
                    "error": {"type": "string"},
                    "code": code,
                    "message": {"type": "string"},
                    "details": details,
                },
            },
        )
        return _KFP_ERROR

    def message_ref_named(self, name: str, make: Any) -> None:
        if name not in self.schemas:
            self.schemas[name] = {}
            self.schemas[name] = make()

    def message_ref(self, message: descriptor.Descriptor) -> dict[str, Any]:
        name = message.full_name
        wkt = _well_known(message)
        if wkt is not None:
            return wkt
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive messages refer to it
            self.schemas[name] = self.message_schema(message)
        return _ref(name)

    def message_schema(self, message: descriptor.Descriptor) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field in message.fields:
            properties[self.name_of(field)] = self.field_schema(field)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        self.describe(schema, message.full_name)
        exclusive = [
            [self.name_of(f) for f in oneof.fields]
            for oneof in message.oneofs
            if not _is_synthetic(oneof) and len(oneof.fields) > 1
        ]
        pairs = [list(p) for group in exclusive for p in itertools.combinations(group, 2)]
        if pairs:
            # At most one member of each oneof (json_format refuses two).
            schema["not"] = {"anyOf": [{"required": pair} for pair in pairs]}
        return schema

    def field_schema(self, field: FieldDescriptor, *, in_query: bool = False) -> dict[str, Any]:
        if is_map(field):
            value = _map_value(field)
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.singular_schema(value),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self.singular_schema(field)}
        else:
            schema = self.singular_schema(field)
        if in_query:
            return schema
        description = self.comment(field)
        oneof = field.containing_oneof
        if oneof is not None and not _is_synthetic(oneof):
            note = f"Member of oneof `{oneof.name}`: set at most one of its fields."
            description = f"{description}\n\n{note}" if description else note
        if description:
            if "$ref" in schema:
                schema = {"$ref": schema["$ref"], "description": description}
            else:
                schema = {**schema, "description": description}
        return schema

    def singular_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        return _scalar_schema(field.type)

    def enum_ref(self, enum: descriptor.EnumDescriptor) -> dict[str, Any]:
        if enum.full_name == "google.protobuf.NullValue":
            return {"type": "null"}
        if enum.full_name not in self.schemas:
            schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.values]}
            lines = [
                f"- {v.name}: {self.comments[key]}"
                for v in enum.values
                if (key := f"{enum.full_name}.{v.name}") in self.comments
            ]
            text = "\n".join(filter(None, [self.comments.get(enum.full_name, ""), *lines]))
            if text:
                schema["description"] = text
            self.schemas[enum.full_name] = schema
        return _ref(enum.full_name)

    # -- names and comments -----------------------------------------------------------------

    def name_of(self, field: FieldDescriptor) -> str:
        return field.name if self.options.use_proto_field_names else field.json_name

    def comment(self, field: FieldDescriptor) -> str:
        return self.comments.get(field.full_name, "")

    def describe(self, target: dict[str, Any], full_name: str) -> None:
        text = self.comments.get(full_name)
        if text:
            target["description"] = text


def _map_value(field: FieldDescriptor) -> FieldDescriptor:
    entry = field.message_type
    assert entry is not None  # noqa: S101 (a map field always has an entry type)
    return entry.fields_by_name["value"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _scalar_schema(kind: int) -> dict[str, Any]:
    if kind in _INT32:
        return {"type": "integer", "format": "int32"}
    if kind in _UINT32:
        return {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
    if kind in _INT64:
        return {"type": "string", "format": "int64", "pattern": _INT64_PATTERN}
    if kind in _UINT64:
        return {"type": "string", "format": "uint64", "pattern": _UINT64_PATTERN}
    if kind in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        number = {"type": "number", "format": "double" if kind == T.TYPE_DOUBLE else "float"}
        return {"anyOf": [number, {"type": "string", "enum": _NON_FINITE}]}
    if kind == T.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == T.TYPE_BYTES:
        return {"type": "string", "format": "byte", "contentEncoding": "base64"}
    return {"type": "string"}


_WRAPPED_KIND = {
    "Double": T.TYPE_DOUBLE,
    "Float": T.TYPE_FLOAT,
    "Int64": T.TYPE_INT64,
    "UInt64": T.TYPE_UINT64,
    "Int32": T.TYPE_INT32,
    "UInt32": T.TYPE_UINT32,
    "Bool": T.TYPE_BOOL,
    "String": T.TYPE_STRING,
    "Bytes": T.TYPE_BYTES,
}


def _well_known(message: descriptor.Descriptor) -> dict[str, Any] | None:
    """The inline schema of a well-known type with a special JSON form; None for others."""
    name = message.full_name
    if name in _WKT_SCHEMAS:
        return dict(_WKT_SCHEMAS[name])
    wrapper = _WRAPPER.fullmatch(name)
    if wrapper is not None:
        return _scalar_schema(_WRAPPED_KIND[wrapper.group(1)])
    if name == _ANY:
        return _ref(_ANY)  # registered by the error schema, which every document has
    if name == HTTP_BODY:
        return {"type": "string", "description": "Raw bytes (google.api.HttpBody)."}
    return None


def _any_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": 'A message of any type: "@type" names it, its fields follow (or '
        '"value" for types with a special JSON form).',
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    }


def _is_synthetic(oneof: descriptor.OneofDescriptor) -> bool:
    # proto3 `optional` fields sit alone in a synthetic oneof whose name starts with "_".
    return len(oneof.fields) == 1 and oneof.name.startswith("_")


def _openapi_path(template: PathTemplate) -> tuple[str, list[str]]:
    """`/v1/{name=shelves/*}/books:list` -> `/v1/{name}/books:list`, and the names given to
    wildcards outside any variable (`_1`, `_2`, ...)."""
    parts: list[str] = []
    by_start = {v.start: v for v in template.variables}
    index = 0
    anonymous = 0
    while index < len(template.segments):
        variable = by_start.get(index)
        if variable is not None:
            parts.append("{" + variable.name + "}")
            index = variable.end
            continue
        segment = template.segments[index]
        if segment.kind is SegmentKind.LITERAL:
            parts.append(segment.literal)
        else:
            anonymous += 1  # a wildcard outside any variable: matched, but bound to nothing
            parts.append("{" + f"_{anonymous}" + "}")
        index += 1
    path = "/" + "/".join(parts)
    verb = f":{template.verb}" if template.verb is not None else ""
    return path + verb, [f"_{n}" for n in range(1, anonymous + 1)]


def _variable_pattern(template: PathTemplate, variable: Variable) -> str | None:
    """The regular expression of a multi-segment variable's value; None for a single `*`."""
    if not variable.multi_segment:
        return None
    parts = []
    for segment in template.segments[variable.start : variable.end]:
        if segment.kind is SegmentKind.LITERAL:
            parts.append(re.escape(segment.literal))
        elif segment.kind is SegmentKind.STAR:
            parts.append("[^/]+")
        else:
            parts.append(".*")
    return "^" + "/".join(parts).replace("/.*", "(/.*)?") + "$"
