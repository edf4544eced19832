"""A faster ProtoJSON writer for the common case, byte-identical to json_format's.

json_format.MessageToDict walks every field in Python and asks the descriptor about each one,
for every message, and the result is then encoded by `json`. This writer asks protobuf only for
the fields that are set (`ListFields`, in C) and writes each one's JSON text directly, with a plan
compiled once per message type whose writers are mostly C functions (`json`'s string encoder,
`str`, a dict lookup). It covers what list and get responses are made of: strings, bools,
integers, enums, bytes, nested messages, repeated fields and maps of those, Timestamps
(`timestamp_text`, ToJsonString's text made faster), and other google.protobuf.* values
(delegated to json_format, one field at a time). Anything else (float and double fields, Any,
types with proto2 extensions, recursive types, unpopulated output) makes `to_json` return None,
and the caller uses json_format for the whole message.

json_codec uses `dump_text` and `map_key` for what this writer declines; `dump_json` (bytes)
writes error bodies and the Connect door's JSON.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

FD = descriptor.FieldDescriptor
#: How a set field's value is written: its JSON text.
Write = Callable[[Any], str]

_INT64 = frozenset({FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_SINT64, FD.TYPE_FIXED64,
                    FD.TYPE_SFIXED64})  # fmt: skip
_INT32 = frozenset({FD.TYPE_INT32, FD.TYPE_UINT32, FD.TYPE_SINT32, FD.TYPE_FIXED32,
                    FD.TYPE_SFIXED32})  # fmt: skip
_UNSUPPORTED = object()
#: (message descriptor, use proto names) -> its plan, or _UNSUPPORTED. Keyed by the descriptor,
#: not its name: `taskgate gateway` may load a redeployed upstream's changed message under the
#: same name. Descriptors take no weak references, so the cache is simply emptied when large.
_plans: dict[tuple[descriptor.Descriptor, bool], Any] = {}
MAX_PLANS = 2048


#: Made once: `json.dumps` with any argument builds an encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: A str as JSON text exactly as `_ENCODER` writes it (ensure_ascii off): json's C function.
_string = cast(Write, json.encoder.encode_basestring)
_BOOLS = {True: "true", False: "false"}


def dump_json(value: Any) -> bytes:
    """Compact JSON, UTF-8, as grpc-gateway writes it."""
    return _ENCODER.encode(value).encode()


def dump_text(value: Any) -> str:
    """`dump_json`'s text, before UTF-8."""
    text: str = _ENCODER.encode(value)
    return text


def map_key(key: Any) -> str:
    """A map key as ProtoJSON writes it (bool keys as "true"/"false")."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def to_json(message: Message, use_proto_field_names: bool) -> str | None:
    """`message` as JSON text, exactly as `dump_text(json_format.MessageToDict(message))` would
    write it (unpopulated fields omitted), or None when this writer does not cover its type."""
    message_type: descriptor.Descriptor = message.DESCRIPTOR  # type: ignore[assignment]  # upb's twin
    if message_type.full_name.startswith("google.protobuf."):
        return None  # a well-known type is a string, a list...: json_format knows each one
    if len(_plans) > MAX_PLANS:
        _plans.clear()  # old pools' types; never mid-plan, where placeholders guard recursion
    plan = _plan(message_type, use_proto_field_names)
    if plan is _UNSUPPORTED:
        return None
    return _text(message, plan)


#: A message's plan: each field's `"key":` and its writer. Keyed by the field's descriptor, the
#: very object `ListFields` hands back (protobuf keeps one per field).
Plan = dict[descriptor.FieldDescriptor, tuple[str, Write]]


def _text(message: Message, plan: Plan) -> str:
    parts = []
    for field, value in message.ListFields():
        key, write = plan[field]
        parts.append(key + write(value))
    return "{" + ",".join(parts) + "}"


def _plan(message: descriptor.Descriptor, proto_names: bool) -> Any:
    cache_key = (message, proto_names)
    if cache_key not in _plans:
        _plans[cache_key] = _UNSUPPORTED  # a recursive type is planned once, below
        plan: Any
        try:
            if message.extension_ranges:
                raise _UnsupportedError  # an extension set is listed by ListFields, unplanned
            plan = {
                f: (_string(f.name if proto_names else f.json_name) + ":", _writer(f, proto_names))
                for f in message.fields
            }
        except _UnsupportedError:
            plan = _UNSUPPORTED
        _plans[cache_key] = plan
    return _plans[cache_key]


class _UnsupportedError(Exception):
    pass


def _writer(field: descriptor.FieldDescriptor, proto_names: bool) -> Write:
    """How to write a set field's value."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _map_key_writer(field.message_type.fields_by_name["key"])
        value = _single(field.message_type.fields_by_name["value"], proto_names)
        return lambda entries: (
            "{" + ",".join([key(k) + ":" + value(v) for k, v in entries.items()]) + "}"
        )
    single = _single(field, proto_names)
    if not field.is_repeated:
        return single
    if isinstance(single, _Nested):  # one call per element, not two (a page of messages)
        plan = single.plan
        return lambda items: "[" + ",".join([_text(item, plan) for item in items]) + "]"
    return lambda items: "[" + ",".join(map(single, items)) + "]"


class _Nested:
    """Writes a nested message with its plan; `_writer` reads the plan of repeated ones."""

    __slots__ = ("plan",)

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def __call__(self, sub: Message) -> str:
        return _text(sub, self.plan)


def _single(field: descriptor.FieldDescriptor, proto_names: bool) -> Write:
    message = field.message_type
    if message is None:
        return _scalar(field)
    if message.full_name == "google.protobuf.Timestamp":
        return lambda timestamp: '"' + timestamp_text(timestamp) + '"'  # digits, -, :, T, ., Z
    if message.full_name in _TO_JSON_STRING:
        return lambda value: _string(_to_json_string(value))  # what json_format calls for these
    if message.full_name.startswith("google.protobuf."):
        if message.full_name == "google.protobuf.Any":
            raise _UnsupportedError
        return lambda value: dump_text(json_format.MessageToDict(value))  # its own form
    if message.full_name == getattr(field.containing_type, "full_name", None):
        raise _UnsupportedError  # keep recursion out of the fast path
    plan = _plan(message, proto_names)
    if plan is _UNSUPPORTED:
        raise _UnsupportedError
    return _Nested(plan)


def _scalar(field: descriptor.FieldDescriptor) -> Write:
    if field.type == FD.TYPE_STRING:
        return _string
    if field.type == FD.TYPE_BOOL:
        return _BOOLS.__getitem__
    if field.type in _INT32:
        return str  # an int as json writes it
    if field.type in _INT64:
        return lambda number: f'"{number}"'
    if field.type == FD.TYPE_BYTES:
        return lambda data: '"' + base64.b64encode(data).decode("ascii") + '"'
    if field.type == FD.TYPE_ENUM and field.enum_type is not None:
        return _EnumNames({v.number: _string(v.name) for v in field.enum_type.values}).__getitem__
    raise _UnsupportedError  # float, double (NaN, Infinity, float32 rounding), groups


def _map_key_writer(field: descriptor.FieldDescriptor) -> Write:
    """A map key is a string, an integer or a bool (protobuf allows no other kind)."""
    if field.type == FD.TYPE_STRING:
        return _string
    return lambda key: '"' + map_key(key) + '"'  # digits, -, true, false


class _EnumNames(dict[int, str]):
    """An enum's numbers to their quoted names; a number the enum does not define is written as
    a number, as json_format writes it."""

    def __missing__(self, number: int) -> str:
        return str(number)


_TO_JSON_STRING = frozenset({"google.protobuf.Duration"})
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
#: protobuf's range for a Timestamp (0001-01-01 to 9999-12-31); outside it, ToJsonString raises.
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
#: days since 1970 -> "YYYY-MM-DD", for the days recently written (ints and strings only).
_days: dict[int, str] = {}
MAX_DAYS = 4096
#: seconds * 10**9 + nanos -> the text, for the instants recently written (ints and strings
#: only): a listing is mostly the same rows again, each with its two timestamps.
_instants: dict[int, str] = {}
MAX_INSTANTS = 8192


def timestamp_text(timestamp: Any) -> str:
    """Timestamp.ToJsonString's text (UTC, `Z`, 0, 3, 6 or 9 fraction digits), made with a
    table and integer arithmetic instead of datetime objects and %-formatting, and remembered:
    a page of 10 tasks has 20 timestamps."""
    seconds: int = timestamp.seconds
    nanos: int = timestamp.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        return _to_json_string(timestamp)  # raises ValueError, as json_format would
    key = seconds * 1_000_000_000 + nanos
    text = _instants.get(key)
    if text is None:
        if len(_instants) >= MAX_INSTANTS:
            _instants.clear()
        text = _instants[key] = _instant_text(seconds, nanos)
    return text


def _instant_text(seconds: int, nanos: int) -> str:
    days, rest = divmod(seconds, 86400)
    day = _days.get(days)
    if day is None:
        if len(_days) > MAX_DAYS:
            _days.clear()
        day = _days[days] = datetime.date.fromordinal(days + _EPOCH_ORDINAL).isoformat()
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{day}T{_TWO_DIGITS[hours]}:{_TWO_DIGITS[minutes]}:{_TWO_DIGITS[secs]}"
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _to_json_string(message: Any) -> str:
    text: str = message.ToJsonString()
    return text
