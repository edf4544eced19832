"""KFP's `filter` parameter: decode, parse, validate and map to store conditions.

Pure. Follows KFP's rules for keys, predicate checks and their messages (docs/decisions.md
K10-K13) with taskgate's deliberate differences (D7, D8, D10): the value is parsed as JSON
first and URL-decoded only if that fails; a value whose type does not fit the key's column is
rejected, naming the key. The result is canonical (sorted), so the same filter re-sent with a
page token compares equal (D6, C2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

from google.protobuf import json_format

from taskgate.api import filter_pb2
from taskgate.gateway.timestamps import is_rfc3339
from taskgate.server.errors import ServiceError, echo, invalid_input
from taskgate.server.validation import MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS
from taskgate.store.records import Column, Condition, Op

Op_ = filter_pb2.Predicate.Op

#: Filter keys (case-sensitive KFP API names) → store columns (docs/decisions.md K11).
FILTER_KEYS: Mapping[str, Column] = {
    "id": Column.ID,
    "namespace": Column.NAMESPACE,
    "pipelineName": Column.PIPELINE_NAME,
    "runId": Column.RUN_ID,
    "mlmdExecutionID": Column.MLMD_EXECUTION_ID,
    "created_at": Column.CREATED_AT,
    "finished_at": Column.FINISHED_AT,
    "fingerprint": Column.FINGERPRINT,
}

#: KFP's model column names, which appear in some of its messages.
KFP_COLUMN_NAMES: Mapping[Column, str] = {
    Column.ID: "tasks.UUID",
    Column.NAMESPACE: "tasks.Namespace",
    Column.PIPELINE_NAME: "tasks.PipelineName",
    Column.RUN_ID: "tasks.RunUUID",
    Column.MLMD_EXECUTION_ID: "tasks.MLMDExecutionID",
    Column.CREATED_AT: "tasks.CreatedTimestamp",
    Column.FINISHED_AT: "tasks.FinishedTimestamp",
    Column.FINGERPRINT: "tasks.Fingerprint",
}

SCALAR_OPS: Mapping[int, Op] = {
    Op_.EQUALS: Op.EQ,
    Op_.NOT_EQUALS: Op.NE,
    Op_.GREATER_THAN: Op.GT,
    Op_.GREATER_THAN_EQUALS: Op.GE,
    Op_.LESS_THAN: Op.LT,
    Op_.LESS_THAN_EQUALS: Op.LE,
}

#: Go's %T of each oneof member in KFP's generated code, as its messages print them.
GO_VALUE_TYPES: Mapping[str, str] = {
    "int_value": "*go_client.Predicate_IntValue",
    "long_value": "*go_client.Predicate_LongValue",
    "string_value": "*go_client.Predicate_StringValue",
    "timestamp_value": "*go_client.Predicate_TimestampValue",
    "int_values": "*go_client.Predicate_IntValues",
    "long_values": "*go_client.Predicate_LongValues",
    "string_values": "*go_client.Predicate_StringValues",
}
ARRAY_VALUES = frozenset({"int_values", "long_values", "string_values"})
STRING_VALUES = frozenset({"string_value", "string_values"})

Filter = tuple[Condition, ...]


def parse_filter_message(text: str) -> filter_pb2.Filter | None:
    """Decode and parse a `filter` value ("" gives None); `validate_filter` checks it.

    The two stages are apart because KFP reports JSON errors before page-size and sort errors,
    and key and predicate errors after them (docs/decisions.md K5).
    """
    return _parse_filter_message(text) if text else None


def _parse_filter_message(text: str) -> filter_pb2.Filter:
    try:
        return _parse_json(text)
    except ValueError as first_error:
        # Decision D7: KFP's UI encodes the filter twice; raw-JSON callers don't. Only when the
        # value is not JSON as it stands, URL-decode it once more and try again.
        decoded = unquote_plus(text)
        if decoded == text:
            raise _parse_error(text, first_error) from None
        try:
            return _parse_json(decoded)
        except ValueError as second_error:
            raise _parse_error(text, second_error) from None


def _parse_json(text: str) -> filter_pb2.Filter:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON at character {error.pos + 1}: {error.msg}") from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if document is None:
        return filter_pb2.Filter()
    if not isinstance(document, dict):
        raise ValueError("a filter must be a JSON object")
    _check_timestamps(document)
    try:
        return json_format.ParseDict(document, filter_pb2.Filter())
    except json_format.ParseError as error:
        raise ValueError(_plain(str(error))) from None


def _check_timestamps(document: dict[str, object]) -> None:
    """Decision C14: a timestamp value is strict RFC 3339 text (protobuf's parser takes more)."""
    predicates = document.get("predicates")
    for i, predicate in enumerate(predicates if isinstance(predicates, list) else ()):
        if not isinstance(predicate, dict):
            continue
        for name in ("timestamp_value", "timestampValue"):
            value = predicate.get(name)
            if isinstance(value, str) and not is_rfc3339(value):
                raise ValueError(
                    f"predicates[{i}].{name}: expected an RFC 3339 timestamp such as "
                    '"2024-01-02T03:04:05Z"'
                )


_PARSE_PREFIX = re.compile(r"^(?:Failed to parse \w+ field: )+")


def _plain(message: str) -> str:
    """protobuf's message without its nesting prefixes, still naming the field."""
    first = message.splitlines()[0]
    fields = re.findall(r"Failed to parse (\w+) field: ", first)
    rest = re.sub(r"\.{2,}", ".", _PARSE_PREFIX.sub("", first))
    return f"{fields[-1]}: {rest}" if fields and " at " not in rest else rest


def _parse_error(text: str, cause: ValueError) -> ServiceError:
    quoted = json.dumps(echo(text), ensure_ascii=False)
    return invalid_input(f"failed to parse valid filter from {quoted}: {echo(str(cause))}")


def validate_filter(message: filter_pb2.Filter) -> Filter:
    """Check keys first (an unknown key wins over a bad predicate), then each predicate."""
    for predicate in message.predicates:
        if predicate.key not in FILTER_KEYS:
            raise invalid_input(
                f'no support for filtering on unrecognized field "{echo(predicate.key)}"'
            )
    conditions = [_condition(p, FILTER_KEYS[p.key]) for p in message.predicates]
    return tuple(sorted(conditions, key=_sort_key))


def _sort_key(condition: Condition) -> tuple[str, str, str]:
    return (condition.column.value, condition.op.value, repr(condition.value))


def _condition(predicate: filter_pb2.Predicate, column: Column) -> Condition:
    kind = predicate.WhichOneof("value")
    op = predicate.op
    if op == Op_.IN:
        if kind is not None and kind not in ARRAY_VALUES:
            raise invalid_input(f"cannot use IN operator with scalar type {GO_VALUE_TYPES[kind]}")
    elif op in SCALAR_OPS:
        if kind in ARRAY_VALUES:
            name = Op_.Name(op)
            raise invalid_input(
                f"cannot use scalar operator {name} on array type {GO_VALUE_TYPES[kind]}"
            )
    elif op == Op_.IS_SUBSTRING:
        if kind is not None and kind != "string_value":
            raise invalid_input(
                f"cannot use non string value type {GO_VALUE_TYPES[kind]} with operator "
                "IS_SUBSTRING"
            )
    else:
        label = Op_.Name(op) if op in Op_.values() else str(op)
        raise invalid_input(f"invalid predicate operation: {label}")
    if kind is None:
        raise invalid_input(f'no value set for predicate on key "{KFP_COLUMN_NAMES[column]}"')
    value = _value(predicate, kind, column)
    store_op = Op.IN if op == Op_.IN else Op.SUBSTRING if op == Op_.IS_SUBSTRING else SCALAR_OPS[op]
    return Condition(column=column, op=store_op, value=value)


def _value(
    predicate: filter_pb2.Predicate, kind: str, column: Column
) -> str | int | tuple[str, ...] | tuple[int, ...]:
    if column.is_integer == (kind in STRING_VALUES):
        wanted = "a number or a timestamp" if column.is_integer else "a string"
        raise invalid_input(
            f'the value for key "{predicate.key}" must be {wanted}, got {kind} '
            "(the key's column cannot hold it)"
        )
    if kind == "timestamp_value":
        seconds = predicate.timestamp_value.seconds
        if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
            raise invalid_input(f"invalid timestamp: seconds:{seconds} is out of range")
        return seconds  # KFP compares Unix seconds, fraction truncated
    if kind == "int_values":
        return tuple(predicate.int_values.values)
    if kind == "long_values":
        return tuple(predicate.long_values.values)
    if kind == "string_values":
        return tuple(_storable(predicate.key, v) for v in predicate.string_values.values)
    if kind == "string_value":
        return _storable(predicate.key, predicate.string_value)
    number: int = getattr(predicate, kind)
    return number


def _storable(key: str, text: str) -> str:
    if "\x00" in text:
        raise invalid_input(f'the value for key "{key}" must not contain NUL characters')
    return text
