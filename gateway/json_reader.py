"""A faster ProtoJSON reader for the common case, with json_format.ParseDict's result.

Pure. json_format.ParseDict walks a JSON document in Python, looks every key up twice and parses
timestamps with `strptime`: about 100 µs for a CreateTask body, the biggest single cost of a REST
POST after the socket writes. This reader fills a message from a plan compiled once per message
type, for documents made only of what request bodies usually hold: known keys (JSON or proto
names) whose values have exactly the expected JSON type: strings, booleans, integers (not for
64-bit fields given as strings), enum names, nested objects, arrays of those, and
`google.protobuf.Timestamp` as `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.

Anything else (an unknown key, `null`, a number for a string field, a field set twice, floats,
bytes, maps, other well-known types, an offset timestamp, a value out of range...) makes
`fill` answer False with the message left empty, and the caller takes the general path
(json_codec: unknown-field policy, C14 timestamps, json_format, worded errors). So the general
path still decides every error, and what this reader accepts it sets exactly as ParseDict would
(the property tests compare both on generated documents).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor
from google.protobuf.message import Message

from taskgate.gateway.timestamps import TIMESTAMP_TYPE, utc_timestamp

FD = descriptor.FieldDescriptor

#: (message, value) -> whether the value was set; a False leaves the caller to clear the message.
Setter = Callable[[Message, Any], bool]

_INTEGER_RANGES: dict[int, tuple[int, int]] = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}

_UNSUPPORTED = object()
#: Deeper documents take the general path, which words the error for documents too deep.
MAX_DEPTH = 32


class Reader:
    """Plans for the messages of one route table: made when first needed, dropped with the
    table (a module-level cache would keep every descriptor pool `taskgate gateway` loads)."""

    __slots__ = ("_depth", "_nested", "_plans")

    def __init__(self) -> None:
        #: message descriptor -> {key: (field number, oneof, setter)} or _UNSUPPORTED
        self._plans: dict[descriptor.Descriptor, Any] = {}
        self._depth = 0  # of the fill running now (fills are synchronous: one at a time)
        self._nested = self._fill_nested

    def fill(self, message: Message, document: dict[str, Any]) -> bool:
        """Set `document`'s fields on the empty `message`, as json_format.ParseDict would;
        False (and `message` cleared) when the document needs the general path."""
        self._depth = 0
        try:
            done = self._fill(message, document)
        except (TypeError, ValueError):  # a value protobuf refuses (a lone surrogate...)
            done = False
        if not done:
            message.Clear()
        return done

    def _fill(self, message: Message, document: dict[str, Any]) -> bool:
        message_type: descriptor.Descriptor = message.DESCRIPTOR  # type: ignore[assignment]
        plan = self._plans.get(message_type)
        if plan is None:
            plan = self._plans[message_type] = _build_plan(message_type, self._nested)
        if plan is _UNSUPPORTED:
            return False
        seen: set[int] = set()
        for key, value in document.items():
            entry = plan.get(key)
            if entry is None:
                return False
            number, oneof, setter = entry
            if number in seen or (oneof is not None and oneof in seen):
                return False  # the same field twice (both names), or two members of one oneof
            seen.add(number)
            if oneof is not None:
                seen.add(oneof)
            if not setter(message, value):
                return False
        return True

    def _fill_nested(self, pair: tuple[Message, Any]) -> bool:
        """A nested message's JSON object; past MAX_DEPTH, the general path's error."""
        sub, value = pair
        if type(value) is not dict or self._depth >= MAX_DEPTH:
            return False
        self._depth += 1
        try:
            return self._fill(sub, value)
        finally:
            self._depth -= 1


def _build_plan(message: descriptor.Descriptor, nested: Callable[[Any], Any]) -> Any:
    if message.full_name.startswith("google.protobuf.") or message.GetOptions().map_entry:
        return _UNSUPPORTED
    by_json = {f.json_name: f for f in message.fields}
    if any(by_json.get(f.name, f) is not f for f in message.fields):
        return _UNSUPPORTED  # a JSON name that is another field's proto name: no guessing
    plan: dict[str, tuple[int, int | None, Setter]] = {}
    for field in message.fields:
        setter = _setter(field, nested)
        if setter is None:
            continue  # a key naming this field takes the general path
        oneof = field.containing_oneof
        real_oneof = None
        if oneof is not None and not _is_synthetic(oneof):
            real_oneof = -1 - oneof.index  # negative: never a field number
        entry = (field.number, real_oneof, setter)
        plan[field.name] = entry
        plan[field.json_name] = entry
    return plan


def _is_synthetic(oneof: descriptor.OneofDescriptor) -> bool:
    """A proto3 `optional` field's own oneof."""
    synthetic = getattr(oneof, "is_synthetic", None)
    if synthetic is not None:
        return bool(synthetic)
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def _setter(field: FD, nested: Callable[[Any], Any]) -> Setter | None:
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        return None
    check = _check(field, nested)
    if check is None:
        return None
    name = field.name
    if field.is_repeated:
        if message_type is not None:
            return _repeated_messages(name, check)
        return _repeated_scalars(name, check)
    if message_type is not None:
        return _single_message(name, check)
    return _single_scalar(name, check)


def _single_scalar(name: str, check: Callable[[Any], Any]) -> Setter:
    def set_scalar(message: Message, value: Any) -> bool:
        converted = check(value)
        if converted is _UNSUPPORTED:
            return False
        setattr(message, name, converted)
        return True

    return set_scalar


def _repeated_scalars(name: str, check: Callable[[Any], Any]) -> Setter:
    def set_repeated(message: Message, values: Any) -> bool:
        if type(values) is not list:
            return False
        converted = [check(value) for value in values]
        if _UNSUPPORTED in converted:
            return False
        getattr(message, name).extend(converted)
        return True

    return set_repeated


def _single_message(name: str, check: Callable[[Any], Any]) -> Setter:
    def set_message(message: Message, value: Any) -> bool:
        sub = getattr(message, name)
        sub.SetInParent()
        return bool(check((sub, value)))

    return set_message


def _repeated_messages(name: str, check: Callable[[Any], Any]) -> Setter:
    def set_repeated(message: Message, values: Any) -> bool:
        if type(values) is not list:
            return False
        items = getattr(message, name)
        return all(check((items.add(), value)) for value in values)

    return set_repeated


def _check(field: FD, nested: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
    """value -> what to set (or _UNSUPPORTED); for messages (sub, value) -> filled?"""
    message_type = field.message_type
    if message_type is not None:
        if message_type.full_name == TIMESTAMP_TYPE:
            return _timestamp
        if message_type.full_name.startswith("google.protobuf."):
            return None
        return nested
    if field.type == FD.TYPE_STRING:
        return _string
    if field.type == FD.TYPE_BOOL:
        return _bool
    if field.type in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[field.type]
        return lambda value: value if type(value) is int and low <= value <= high else _UNSUPPORTED
    if field.type == FD.TYPE_ENUM and field.enum_type is not None:
        numbers = {v.name: v.number for v in field.enum_type.values}
        return lambda value: (
            numbers.get(value, _UNSUPPORTED) if type(value) is str else _UNSUPPORTED
        )
    return None  # float, double, bytes, groups


def _string(value: Any) -> Any:
    return value if type(value) is str else _UNSUPPORTED


def _bool(value: Any) -> Any:
    return value if type(value) is bool else _UNSUPPORTED


def _timestamp(pair: tuple[Message, Any]) -> bool:
    """A `Z` timestamp (timestamps.utc_timestamp: C14's strict text, FromJsonString's values)."""
    sub, value = pair
    parts = utc_timestamp(value) if type(value) is str else None
    if parts is None:
        return False
    sub.seconds, sub.nanos = parts  # type: ignore[attr-defined]
    return True
