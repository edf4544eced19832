"""JSON in and out under `GatewayOptions`: request bodies, responses, `response_body`, HttpBody.

Pure. `json_format` does the proto3 JSON mapping; this module words its failures in plain terms
that name the field (`invalid value for field "runId": expected a string`), never Python's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf import descriptor, descriptor_pool, json_format
from google.protobuf.message import Message

from taskgate.gateway import json_fast
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.field_paths import (
    FieldDescriptor,
    FieldIndex,
    expected_value,
    is_map,
    is_plain_message,
)
from taskgate.gateway.json_fast import map_key
from taskgate.gateway.json_reader import Reader
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.timestamps import TIMESTAMP_TYPE, is_rfc3339

JSON_CONTENT_TYPE = "application/json"
DEFAULT_BINARY_CONTENT_TYPE = "application/octet-stream"
_WKT_PREFIX = "google.protobuf."
#: json_format's own limit (max_recursion_depth).
_MAX_DEPTH = 100

_FAILED_FIELD = re.compile(r"Failed to parse (\S+) field: ")
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]*)"')
_ONEOF_TWICE = re.compile(r'should not have multiple "([^"]*)" oneof fields')


@dataclass(frozen=True, slots=True)
class RenderedBody:
    body: bytes
    content_type: str


def load_json_body(body: bytes) -> Any:
    """The decoded JSON of a request body; None for an empty body (T30)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise TranscodeError.invalid("the request body is not valid UTF-8") from None
    if not text.strip():
        return None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise TranscodeError.invalid(f"the request body is not valid JSON ({where})") from None
    except (ValueError, RecursionError):
        raise TranscodeError.invalid("the request body is not valid JSON") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON; ProtoJSON spells them "NaN"


#: Made once: `json.loads` with an argument builds a decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_body_into(
    value: Any,
    request: Message,
    body_field: FieldDescriptor | None,
    *,
    ignore_unknown_fields: bool,
    index: FieldIndex,
    pool: descriptor_pool.DescriptorPool | None = None,
) -> None:
    """Merge a decoded JSON body into `request`: the whole message, or into `body_field`.

    `index` finds fields by name (the route table's, which covers the request's messages)."""
    if value is None:
        return  # T30: no body or `null` leaves the target unset
    if type(value) is dict and _filled_fast(value, request, body_field, index.body_reader):
        return
    if body_field is None:
        if not isinstance(value, dict):
            raise TranscodeError.invalid("the request body must be a JSON object")
        document: dict[str, Any] = value
    else:
        _check_top_level(body_field, value)
        document = {body_field.name: value}
    root = cast(descriptor.Descriptor, request.DESCRIPTOR)
    # Unknown keys are dropped here rather than by json_format, whose ignore_unknown_fields
    # would also accept unknown enum names (Go's DiscardUnknown does not).
    hidden = 1 if body_field is not None and is_plain_message(body_field) else 0
    _drop_unknown_fields(document, root, [], hidden, strict=not ignore_unknown_fields, index=index)
    try:
        json_format.ParseDict(document, request, descriptor_pool=pool)
    except json_format.ParseError as exc:
        message = _describe_parse_error(str(exc), root, body_field, index)
        raise TranscodeError.invalid(message) from None


def _filled_fast(
    document: dict[str, Any], request: Message, body_field: FieldDescriptor | None, reader: Reader
) -> bool:
    """json_reader's plan for a plain body (P35): True when it set everything."""
    if body_field is None:
        return not request.ListFields() and reader.fill(request, document)
    if not is_plain_message(body_field) or request.HasField(body_field.name):
        return False
    target = getattr(request, body_field.name)
    if reader.fill(target, document):
        target.SetInParent()
        return True
    request.ClearField(body_field.name)
    return False


def _drop_unknown_fields(
    document: dict[str, Any],
    message: descriptor.Descriptor,
    path: list[str],
    hidden: int,
    *,
    strict: bool,
    index: FieldIndex,
) -> None:
    """Remove (or, when strict, reject) keys that name no field, recursively."""
    if len(path) > _MAX_DEPTH:
        raise TranscodeError.invalid("the request body is nested too deeply")
    for key in list(document):
        field = index.find(message, key)
        if field is None:
            if strict:
                shown = ".".join([*path, key][hidden:])
                raise TranscodeError.invalid(f'unknown field "{shown}" in the request body')
            del document[key]
            continue
        child, items = _nested_messages(field, document[key])
        if child is not None and child.full_name == TIMESTAMP_TYPE:
            _check_timestamps(field, document[key], ".".join([*path, key][hidden:]))
        if child is None or child.full_name.startswith(_WKT_PREFIX):
            continue
        for item in items:
            _drop_unknown_fields(item, child, [*path, key], hidden, strict=strict, index=index)


def _check_timestamps(field: FieldDescriptor, value: Any, shown: str) -> None:
    """C14: strict RFC 3339 text for Timestamp fields (other JSON types: json_format decides)."""
    if is_map(field):
        texts = list(value.values()) if isinstance(value, dict) else []
    elif field.is_repeated:
        texts = value if isinstance(value, list) else []
    else:
        texts = [value]
    if any(isinstance(text, str) and not is_rfc3339(text) for text in texts):
        raise TranscodeError.invalid(
            f'invalid value for field "{shown}": expected {_expected(field)}'
        )


def _nested_messages(
    field: FieldDescriptor, value: Any
) -> tuple[descriptor.Descriptor | None, list[dict[str, Any]]]:
    """The message type held by `field` and the JSON objects holding such messages."""
    if is_map(field):
        entry = field.message_type
        child = entry.fields_by_name["value"].message_type if entry else None
        values = list(value.values()) if isinstance(value, dict) else []
    elif field.is_repeated:
        child, values = field.message_type, value if isinstance(value, list) else []
    else:
        child, values = field.message_type, [value]
    return child, [v for v in values if isinstance(v, dict)]


def _check_top_level(field: FieldDescriptor, value: Any) -> None:
    if is_map(field) or is_plain_message(field):
        expected, ok = "a JSON object", isinstance(value, dict)
    elif field.is_repeated:
        expected, ok = "a JSON array", isinstance(value, list)
    else:
        return  # scalars and well-known types: json_format checks the value
    if not ok:
        raise TranscodeError.invalid(f"the request body must be {expected}")


def _describe_parse_error(
    text: str, root: descriptor.Descriptor, body_field: FieldDescriptor | None, index: FieldIndex
) -> str:
    names: list[str] = []
    while found := _FAILED_FIELD.match(text):
        names.append(found.group(1))
        text = text[found.end() :]
    field = _walk(root, names, index)
    shown = names[1:] if body_field is not None and is_plain_message(body_field) else names
    if unknown := _UNKNOWN_FIELD.search(text):
        return f'unknown field "{".".join([*shown, unknown.group(1)])}" in the request body'
    if oneof := _ONEOF_TWICE.search(text):
        return f'more than one field of oneof "{".".join([*shown, oneof.group(1)])}" is set'
    if "too deep" in text:
        return "the request body is nested too deeply"
    if field is None or not shown:
        return "the request body has an invalid value"
    return f'invalid value for field "{".".join(shown)}": expected {_expected(field)}'


def _walk(
    root: descriptor.Descriptor, names: list[str], index: FieldIndex
) -> FieldDescriptor | None:
    message: descriptor.Descriptor | None = root
    field = None
    for name in names:
        if message is None:
            return None
        field = index.find(message, name)
        if field is None:
            return None
        message = field.message_type
        if message is not None and is_map(field):
            message = message.fields_by_name["value"].message_type
    return field


def _expected(field: FieldDescriptor) -> str:
    if is_map(field):
        return "a JSON object"
    if field.is_repeated:
        return f"a JSON array of items that are each {expected_value(field)}"
    return expected_value(field)


def message_json(
    message: Message, options: GatewayOptions, pool: descriptor_pool.DescriptorPool | None = None
) -> str:
    """`message` as JSON text (an object, or a string etc. for well-known types)."""
    if not options.emit_unpopulated:
        fast = json_fast.to_json(message, options.use_proto_field_names)
        if fast is not None:
            return fast
    value = json_format.MessageToDict(
        message,
        preserving_proto_field_name=options.use_proto_field_names,
        always_print_fields_with_no_presence=options.emit_unpopulated,
        descriptor_pool=pool,
    )
    return json_fast.dump_text(value)


def render_response(
    response: Message,
    response_body: FieldDescriptor | None,
    options: GatewayOptions,
    pool: descriptor_pool.DescriptorPool | None = None,
) -> RenderedBody:
    """The HTTP body of a response: the message, its `response_body` field (T35), or HttpBody."""
    target = response if response_body is None else None
    if response_body is not None and _is_singular_message(response_body):
        target = getattr(response, response_body.name)
    if target is not None:
        if target.DESCRIPTOR.full_name == "google.api.HttpBody":
            return render_http_body(target)
        return RenderedBody(message_json(target, options, pool).encode(), JSON_CONTENT_TYPE)
    assert response_body is not None  # noqa: S101 (narrowing only)
    text = _field_json(response, response_body, options, pool)
    return RenderedBody(text.encode(), JSON_CONTENT_TYPE)


def render_http_body(http_body: Message) -> RenderedBody:
    content_type: str = getattr(http_body, "content_type") or DEFAULT_BINARY_CONTENT_TYPE  # noqa: B009
    data: bytes = getattr(http_body, "data")  # noqa: B009
    return RenderedBody(data, content_type)


def _is_singular_message(field: FieldDescriptor) -> bool:
    return field.message_type is not None and not field.is_repeated


def _field_json(
    response: Message,
    field: FieldDescriptor,
    options: GatewayOptions,
    pool: descriptor_pool.DescriptorPool | None,
) -> str:
    """A repeated, map or scalar `response_body` field as bare JSON text."""
    value = getattr(response, field.name)
    if is_map(field):
        value_field = field.message_type.fields_by_name["value"] if field.message_type else None
        if value_field is not None and value_field.message_type is not None:
            entries = [
                json_fast.dump_text(map_key(k)) + ":" + message_json(v, options, pool)
                for k, v in value.items()
            ]
            return "{" + ",".join(entries) + "}"
    elif field.is_repeated and field.message_type is not None:
        return "[" + ",".join([message_json(item, options, pool) for item in value]) + "]"
    # Scalars (and repeated/map of scalars): let json_format spell them (int64 as strings, ...).
    holder = type(response)()
    if is_map(field):
        getattr(holder, field.name).update(value)
    elif field.is_repeated:
        getattr(holder, field.name).extend(value)
    else:
        setattr(holder, field.name, value)
    rendered = json_format.MessageToDict(
        holder, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json_fast.dump_text(rendered.get(field.name))
