"""Query parameters into request fields (docs/decisions.md T16-T28). Pure.

`?a.b=1&tags=x&tags=y&labels[k]=v`: each name is a dotted field path (proto or JSON names per
segment), a repeated field takes one value per repetition, and a map takes `name[key]=value`.
Unknown names are ignored, or in strict mode answered with 400 naming them. A singular field
given more than once is 400 naming it in every mode (T23): silently keeping one of the values
would hide a client's mistake, and grpc-gateway v2 refuses it too.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from google.protobuf import descriptor
from google.protobuf.message import Message

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.field_paths import (
    FieldDescriptor,
    FieldIndex,
    assign,
    descend,
    expected_value,
    is_map,
    is_text_valued,
    parse_text,
)

_PARAM = re.compile(r"(?P<path>[^\[\]]+)(?:\[(?P<key>[^\]]*)\])?")


@dataclass(frozen=True, slots=True)
class QueryBindings:
    """What the query may not set: fields bound by the path or the body (T16-T18)."""

    path_bound: tuple[tuple[str, ...], ...]
    #: "*", a top-level field name, or None.
    body_field: str | None
    strict: bool


class _UnknownFieldError(Exception):
    """The name is not a field path of the request."""


def parse_query_string(query: str) -> dict[str, list[str]]:
    """Form-decode a raw query string (`+` is a space, T26), values grouped by name in order."""
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise TranscodeError.invalid("the query string is not valid UTF-8") from None
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def apply_query(
    request: Message, params: dict[str, list[str]], bindings: QueryBindings, index: FieldIndex
) -> None:
    """Set request fields from the query; TranscodeError names the offending parameter."""
    if not params:
        return
    if bindings.body_field == "*":
        if bindings.strict:
            name = next(iter(params))
            raise TranscodeError.invalid(
                f'query parameter "{name}" is not allowed: the body is the whole request'
            )
        return  # T17
    oneofs: dict[tuple[tuple[str, ...], str], str] = {}
    singular: dict[tuple[str, ...], str] = {}
    for name, values in params.items():
        try:
            fields, key = _resolve(cast(descriptor.Descriptor, request.DESCRIPTOR), name, index)
        except _UnknownFieldError:
            if bindings.strict:
                raise TranscodeError.invalid(f'unknown query parameter "{name}"') from None
            continue  # T27
        if _is_bound(fields, bindings, name):
            continue
        values = _values_for(name, fields[-1], key, values)
        _check_oneof(oneofs, name, fields)
        _check_singular(singular, name, fields, key)
        holder = descend(request, fields)
        for value in values:
            _set(holder, fields[-1], key, name, value)


def _resolve(
    message: descriptor.Descriptor, name: str, index: FieldIndex
) -> tuple[tuple[FieldDescriptor, ...], str | None]:
    found = _PARAM.fullmatch(name)
    if found is None:
        raise _UnknownFieldError
    fields: list[FieldDescriptor] = []
    current: descriptor.Descriptor | None = message
    for part in found.group("path").split("."):
        if current is None:
            raise _UnknownFieldError
        field = index.find(current, part)
        if field is None:
            raise _UnknownFieldError
        if fields and fields[-1].is_repeated:
            raise TranscodeError.invalid(
                f'query parameter "{name}": repeated message fields cannot be set from the query'
            )
        fields.append(field)
        current = field.message_type
    return tuple(fields), found.group("key")


def _is_bound(fields: Sequence[FieldDescriptor], bindings: QueryBindings, name: str) -> bool:
    path = tuple(f.name for f in fields)
    if bindings.body_field is not None and path[0] == bindings.body_field:
        where = "the body"
    elif any(path[: len(bound)] == bound for bound in bindings.path_bound):
        where = "the path"
    else:
        return False
    if bindings.strict:
        raise TranscodeError.invalid(f'query parameter "{name}" names a field set by {where}')
    return True  # T18: ignored


def _values_for(name: str, field: FieldDescriptor, key: str | None, values: list[str]) -> list[str]:
    if is_map(field):
        if key is None:
            raise TranscodeError.invalid(
                f'query parameter "{name}" is a map: set entries as {name}[key]=value'
            )
    elif key is not None:
        raise TranscodeError.invalid(f'query parameter "{name}": only map fields take [key]')
    elif field.is_repeated and not is_text_valued(field):
        raise TranscodeError.invalid(
            f'query parameter "{name}": repeated message fields cannot be set from the query'
        )
    elif not is_text_valued(field):
        raise TranscodeError.invalid(
            f'query parameter "{name}" names a message: set its fields as "{name}.<field>"'
        )
    if len(values) > 1 and (key is not None or not field.is_repeated):
        raise TranscodeError.invalid(f'query parameter "{name}" is given more than once')
    return values


def _check_singular(
    seen: dict[tuple[str, ...], str],
    name: str,
    fields: Sequence[FieldDescriptor],
    key: str | None,
) -> None:
    """T23: one singular field (or map entry) named twice, by its proto and its JSON name."""
    if fields[-1].is_repeated and key is None:
        return
    slot = (*(f.name for f in fields), *((f"[{key}]",) if key is not None else ()))
    other = seen.setdefault(slot, name)
    if other != name:
        raise TranscodeError.invalid(
            f'query parameters "{other}" and "{name}" both set "{".".join(slot[: len(fields)])}"'
        )


def _check_oneof(
    seen: dict[tuple[tuple[str, ...], str], str], name: str, fields: Sequence[FieldDescriptor]
) -> None:
    oneof = fields[-1].containing_oneof
    if oneof is None or _is_synthetic(oneof):
        return
    slot = (tuple(f.name for f in fields[:-1]), oneof.name)
    other = seen.setdefault(slot, name)
    if other != name:
        raise TranscodeError.invalid(
            f'query parameters "{other}" and "{name}" both set oneof "{oneof.name}"'
        )


def _is_synthetic(oneof: descriptor.OneofDescriptor) -> bool:
    # proto3 `optional` fields sit alone in a synthetic oneof whose name starts with "_".
    return len(oneof.fields) == 1 and oneof.name.startswith("_")


def _set(holder: Message, field: FieldDescriptor, key: str | None, name: str, text: str) -> None:
    if key is None:
        _assign_text(holder, field, name, text)
        return
    entry = field.message_type
    assert entry is not None  # noqa: S101 (a map field always has an entry type)
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    if not is_text_valued(value_field):
        raise TranscodeError.invalid(
            f'query parameter "{name}": maps of messages cannot be set from the query'
        )
    map_key = _parse(key_field, key, f'key of query parameter "{name}"')
    value = _parse(value_field, text, f'query parameter "{name}"')
    container = getattr(holder, field.name)
    if isinstance(value, Message):
        container[map_key].CopyFrom(value)
    else:
        container[map_key] = value


def _assign_text(holder: Message, field: FieldDescriptor, name: str, text: str) -> None:
    value = _parse(field, text, f'query parameter "{name}"')
    try:
        assign(holder, field, value)
    except (ValueError, TypeError):
        raise _invalid(field, text, f'query parameter "{name}"') from None


def _parse(field: FieldDescriptor, text: str, what: str) -> object:
    try:
        return parse_text(field, text)
    except ValueError:
        raise _invalid(field, text, what) from None


def _invalid(field: FieldDescriptor, text: str, what: str) -> TranscodeError:
    return TranscodeError.invalid(
        f'invalid value "{text}" for {what}: expected {expected_value(field)}'
    )
