"""Field paths and text values: resolve `a.b` by proto or JSON name; parse text for a field.

Pure. Used for path variables and query parameters (docs/decisions.md T9, T20-T25); the
`expected_value` phrases also word the JSON body errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.message import Message

from taskgate.gateway import json_reader
from taskgate.gateway.timestamps import TIMESTAMP_TYPE, is_rfc3339

FieldDescriptor = descriptor.FieldDescriptor
T = FieldDescriptor  # short alias for the type constants below

_INT32 = (T.TYPE_INT32, T.TYPE_SINT32, T.TYPE_SFIXED32)
_INT64 = (T.TYPE_INT64, T.TYPE_SINT64, T.TYPE_SFIXED64)
_UINT32 = (T.TYPE_UINT32, T.TYPE_FIXED32)
_UINT64 = (T.TYPE_UINT64, T.TYPE_FIXED64)
_RANGES = {
    **dict.fromkeys(_INT32, (-(2**31), 2**31 - 1)),
    **dict.fromkeys(_INT64, (-(2**63), 2**63 - 1)),
    **dict.fromkeys(_UINT32, (0, 2**32 - 1)),
    **dict.fromkeys(_UINT64, (0, 2**64 - 1)),
}
_INTEGER_PHRASE = {
    **dict.fromkeys(_INT32, "a 32-bit integer"),
    **dict.fromkeys(_INT64, "a 64-bit integer"),
    **dict.fromkeys(_UINT32, "an unsigned 32-bit integer"),
    **dict.fromkeys(_UINT64, "an unsigned 64-bit integer"),
}
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_JSON_TEXT_TYPES = {
    "google.protobuf.Struct": "a JSON object",
    "google.protobuf.Value": "a JSON value",
    "google.protobuf.ListValue": "a JSON array",
}
_WKT_PHRASE = {
    "google.protobuf.Timestamp": 'an RFC 3339 timestamp such as "2024-01-02T03:04:05Z"',
    "google.protobuf.Duration": 'a duration in seconds such as "1.5s"',
    "google.protobuf.FieldMask": "a comma-separated list of field paths",
    **_JSON_TEXT_TYPES,
}
# Go's strconv.ParseInt(text, 0, n), which KFP's grpc-gateway v1 uses: 0x, 0o, 0b, leading-0
# octal and "_" between digits are all accepted (docs/decisions.md K17, T24).
_GO_INT = re.compile(
    r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[0-9](?:_?[0-9])*)"
)
_GO_OCTAL = re.compile(r"([+-]?)0((?:_?[0-7])+)")
_UPPER = re.compile(r"([A-Z])")
_TRUE = frozenset({"true", "True", "TRUE", "t", "T", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "f", "F", "0"})


class FieldPathError(ValueError):
    """A name that is not a field of the message."""


class FieldIndex:
    """`find_field` for every message reachable from `roots`, each message's names read once.

    A route table builds one for its methods' request messages and its routes keep it, so it lives
    and dies with the table: when `taskgate gateway` refreshes, the old pool's messages go with the
    old table (a module-level cache would keep every pool ever loaded). A message outside the
    roots is looked up without being kept.
    """

    __slots__ = ("_by_message", "body_reader")

    def __init__(self, roots: Iterable[descriptor.Descriptor]) -> None:
        self._by_message: dict[descriptor.Descriptor, dict[str, FieldDescriptor]] = {}
        #: json_reader's plans for these messages' JSON bodies, kept as long as this index
        self.body_reader = json_reader.Reader()
        pending = list(roots)
        while pending:
            message = pending.pop()
            if message not in self._by_message:
                self._by_message[message] = _fields_by_any_name(message)
                pending.extend(f.message_type for f in message.fields if f.message_type is not None)

    def find(self, message: descriptor.Descriptor, name: str) -> FieldDescriptor | None:
        """The field called `name` by its proto name or its JSON name (T20, T38)."""
        fields = self._by_message.get(message)
        if fields is None:
            return find_field(message, name)
        return fields.get(name)


def find_field(message: descriptor.Descriptor, name: str) -> FieldDescriptor | None:
    """The field called `name` by its proto name or its JSON name (T20, T38); nothing is kept."""
    return _fields_by_any_name(message).get(name)


def _fields_by_any_name(message: descriptor.Descriptor) -> dict[str, FieldDescriptor]:
    fields = {f.json_name: f for f in message.fields}
    fields.update(message.fields_by_name)  # a proto name wins over another field's JSON name
    return fields


def resolve_field_path(
    message: descriptor.Descriptor, names: Sequence[str]
) -> tuple[FieldDescriptor, ...]:
    """The fields along `names`; every field but the last is a singular message."""
    fields: list[FieldDescriptor] = []
    current: descriptor.Descriptor | None = message
    for name in names:
        if current is None:
            raise FieldPathError(f"{fields[-1].name!r} is not a message")
        field = find_field(current, name)
        if field is None:
            raise FieldPathError(f"no field {name!r} in {current.full_name}")
        fields.append(field)
        current = None if is_repeated(field) else field.message_type
    return tuple(fields)


def is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def is_plain_message(field: FieldDescriptor) -> bool:
    """A singular message field (maps are repeated) that is not a google.protobuf type."""
    message = field.message_type
    return (
        message is not None
        and not field.is_repeated
        and not message.full_name.startswith("google.protobuf.")
    )


def is_map(field: FieldDescriptor) -> bool:
    return (
        is_repeated(field)
        and field.message_type is not None
        and (field.message_type.GetOptions().map_entry)
    )


def is_text_valued(field: FieldDescriptor) -> bool:
    """A scalar, an enum, or a well-known type with a ProtoJSON string form (T25)."""
    message = field.message_type
    return message is None or message.full_name in _WRAPPERS or message.full_name in _WKT_PHRASE


def descend(message: Message, fields: Sequence[FieldDescriptor]) -> Message:
    """The sub-message holding `fields[-1]`, creating the intermediate messages (T9)."""
    for field in fields[:-1]:
        message = getattr(message, field.name)
    return message


def expected_value(field: FieldDescriptor) -> str:
    """What a valid value looks like, in plain words: "a 32-bit integer", "one of RED, GREEN"."""
    if is_map(field):
        return "an object"
    if field.message_type is not None:
        name = field.message_type.full_name
        if name in _WRAPPERS:
            return expected_value(field.message_type.fields_by_name["value"])
        return _WKT_PHRASE.get(name, "an object")
    if field.type == T.TYPE_ENUM:
        names = [v.name for v in enum_of(field).values]
        return "one of " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    if field.type == T.TYPE_BOOL:
        return "true or false"
    if field.type == T.TYPE_STRING:
        return "a string"
    if field.type == T.TYPE_BYTES:
        return "base64-encoded bytes"
    if field.type in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return "a number"
    return _INTEGER_PHRASE[field.type]


def parse_text(field: FieldDescriptor, text: str) -> Any:
    """`text` as a value for `field` (a scalar, enum or text-valued WKT); ValueError if invalid."""
    message = field.message_type
    if message is None:
        return _parse_scalar(field, text)
    if message.full_name in _WRAPPERS:
        value_field = message.fields_by_name["value"]
        wrapper = _new_message(field)
        setattr(wrapper, "value", _parse_scalar(value_field, text))  # noqa: B010
        return wrapper
    return _parse_wkt(field, text)


def assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    """Set, append (repeated) or merge (WKT message) `value` into `message.<field>`."""
    if is_repeated(field):
        getattr(message, field.name).append(value)
    elif isinstance(value, Message):
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


def _parse_scalar(field: FieldDescriptor, text: str) -> Any:
    kind = field.type
    if kind == T.TYPE_STRING:
        return text
    if kind == T.TYPE_BOOL:
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(text)
    if kind == T.TYPE_ENUM:
        return _parse_enum(field, text)
    if kind == T.TYPE_BYTES:
        return parse_base64(text)
    if kind in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return _parse_float(kind, text)
    low, high = _RANGES[kind]
    number = parse_go_int(text)
    if not low <= number <= high:
        raise ValueError(text)
    return number


def parse_go_int(text: str) -> int:
    """An integer in Go literal syntax (what `strconv.ParseInt(text, 0, n)` accepts)."""
    if not _GO_INT.fullmatch(text):
        raise ValueError(text)
    octal = _GO_OCTAL.fullmatch(text)
    if octal:
        return int(octal.group(1) + octal.group(2), 8)
    return int(text, 0)


def _parse_float(kind: int, text: str) -> float:
    if not text.isascii() or text != text.strip() or "_" in text:
        raise ValueError(text)
    number = float(text)
    if kind == T.TYPE_FLOAT and math.isfinite(number) and abs(number) > 3.4028234663852886e38:
        raise ValueError(text)
    return number


def _parse_enum(field: FieldDescriptor, text: str) -> int:
    enum_type = enum_of(field)
    by_name = enum_type.values_by_name.get(text)
    if by_name is not None:
        return int(by_name.number)
    if _GO_INT.fullmatch(text):
        number = parse_go_int(text)
        if number in enum_type.values_by_number:
            return number
    raise ValueError(text)


def parse_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional (T24)."""
    unpadded = text.rstrip("=")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(text) from None


def _parse_wkt(field: FieldDescriptor, text: str) -> Message:
    name = message_of(field).full_name
    wkt = _new_message(field)
    if name == "google.protobuf.FieldMask":
        paths = [p for p in text.split(",") if p]
        # T25: camelCase becomes snake_case; paths already holding "_" are kept as given.
        snake = [p if "_" in p else _UPPER.sub(r"_\1", p).lower() for p in paths]
        getattr(wkt, "paths").extend(snake)  # noqa: B009
        return wkt
    if name == TIMESTAMP_TYPE and not is_rfc3339(text):
        raise ValueError(text)  # C14: strict RFC 3339, not all that protobuf's parser takes
    try:
        if name in _JSON_TEXT_TYPES:
            json_format.ParseDict(json.loads(text), wkt)
        else:
            json_format.Parse(json.dumps(text), wkt)
    except (json_format.ParseError, json.JSONDecodeError, RecursionError):
        raise ValueError(text) from None
    return wkt


def _new_message(field: FieldDescriptor) -> Message:
    return message_factory.GetMessageClass(message_of(field))()


def message_of(field: FieldDescriptor) -> descriptor.Descriptor:
    """The message type of a message (or map) field."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_of(field: FieldDescriptor) -> descriptor.EnumDescriptor:
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type
