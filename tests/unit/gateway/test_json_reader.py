"""The fast ProtoJSON reader sets what json_format.ParseDict sets, or declines (P35)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskgate.api import task_pb2
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.field_paths import FieldIndex
from taskgate.gateway.json_codec import parse_body_into
from taskgate.gateway.json_reader import MAX_DEPTH, Reader
from tests.protos import transcoding_test_pb2 as pb

TASK = {
    "namespace": "ns1",
    "pipelineName": "namespace/ns1/pipeline/p",
    "runId": "run-1",
    "mlmdExecutionID": "7",
    "fingerprint": "fp",
    "created_at": "2024-01-02T03:04:05Z",
}


def _parse_dict(document: dict[str, Any], message_class: type[Message]) -> Message | None:
    target = message_class()
    try:
        json_format.ParseDict(document, target)
    except json_format.ParseError:
        return None
    return target


def _same(a: Message, b: Message) -> bool:
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


ACCEPTED = [
    ("a KFP task, JSON and proto names", task_pb2.Task, TASK),
    ("proto names", pb.Scalars, {"f_int32": 1, "display_name": "d", "choice_a": "a"}),
    ("empty object", pb.Scalars, {}),
    ("integers of every width", pb.Scalars,
     {"fInt32": -(2**31), "fInt64": 2**63 - 1, "fUint32": 2**32 - 1, "fUint64": 2**64 - 1,
      "fSint32": -5, "fSint64": -(2**63), "fFixed32": 0, "fFixed64": 7, "fSfixed32": -1,
      "fSfixed64": 1}),
    ("bool, string, enum name", pb.Scalars, {"fBool": True, "fString": "é\u2028", "color": "RED"}),
    ("repeated", pb.Scalars, {"tags": ["a", ""], "numbers": [1, -2], "colors": ["GREEN"]}),
    ("nested and repeated messages", pb.Scalars,
     {"nested": {"name": "n", "child": {"count": 2, "child": {}}}, "items": [{"name": "x"}, {}]}),
    ("timestamp with nanos", pb.Scalars, {"ts": "2024-02-29T23:59:59.123456789Z"}),
    ("timestamp with millis", pb.Scalars, {"ts": "0001-01-01T00:00:00.5Z"}),
    ("timestamp, last second", pb.Scalars, {"ts": "9999-12-31T23:59:59Z"}),
    ("one member of a oneof", pb.Scalars, {"choiceA": "a"}),
    ("proto3 optional", pb.Scalars, {"optInt": 0}),
    ("custom json_name", pb.Scalars, {"shownAs": "d"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message_class", "document"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted_documents_set_what_parse_dict_sets(
    message_class: type[Message], document: dict[str, Any]
) -> None:
    fast = message_class()
    assert Reader().fill(fast, document)
    expected = _parse_dict(document, message_class)
    assert expected is not None
    assert _same(fast, expected)


DECLINED = [
    ("unknown key", {"nope": 1}),
    ("null value", {"fString": None}),
    ("same field by both names", {"fString": "a", "f_string": "b"}),
    ("two members of a oneof", {"choiceA": "a", "choiceB": 1}),
    ("number for a string", {"fString": 1}),
    ("string for an int64", {"fInt64": "5"}),
    ("float for an int32", {"fInt32": 1.0}),
    ("bool for an int32", {"fInt32": True}),
    ("int32 out of range", {"fInt32": 2**31}),
    ("negative uint64", {"fUint64": -1}),
    ("enum number", {"color": 1}),
    ("unknown enum name", {"color": "BLUE"}),
    ("double", {"fDouble": 1.5}),
    ("bytes", {"fBytes": "AA=="}),
    ("map", {"labels": {"a": "b"}}),
    ("well-known type", {"dur": "1s"}),
    ("array for a singular field", {"fString": ["a"]}),
    ("object for a repeated field", {"tags": {"a": 1}}),
    ("string for a message", {"nested": "x"}),
    ("lone surrogate", {"fString": "\ud800"}),
    ("timestamp with an offset", {"ts": "2024-01-02T03:04:05+01:00"}),
    ("timestamp, no such day", {"ts": "2023-02-29T00:00:00Z"}),
    ("timestamp, leap second", {"ts": "2016-12-31T23:59:60Z"}),
    ("timestamp, year 0", {"ts": "0000-01-01T00:00:00Z"}),
    ("timestamp, lowercase", {"ts": "2024-01-02t03:04:05z"}),
    ("timestamp, ten fraction digits", {"ts": "2024-01-02T03:04:05.1234567890Z"}),
    ("timestamp, not a string", {"ts": 0}),
    ("a bad value after good ones", {"fString": "a", "nested": {"name": "n"}, "fInt32": "x"}),
]


@pytest.mark.parametrize("document", [c[1] for c in DECLINED], ids=[c[0] for c in DECLINED])
def test_declined_documents_leave_the_message_empty(document: dict[str, Any]) -> None:
    message = pb.Scalars()
    assert not Reader().fill(message, document)
    assert message.ListFields() == []


def _nested(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {}
    inner = document
    for _ in range(depth):
        inner["child"] = {}
        inner = inner["child"]
    return document


def test_deep_documents_take_the_general_path() -> None:
    index = FieldIndex([pb.Nested.DESCRIPTOR])
    deep = _nested(MAX_DEPTH + 5)
    message = pb.Nested()
    assert not Reader().fill(message, deep)
    assert message.ListFields() == []
    parse_body_into(deep, message, None, ignore_unknown_fields=True, index=index)
    expected = _parse_dict(deep, pb.Nested)
    assert expected is not None
    assert _same(message, expected)
    with pytest.raises(TranscodeError, match="nested too deeply"):
        parse_body_into(_nested(150), pb.Nested(), None, ignore_unknown_fields=True, index=index)


def test_a_body_field_is_filled_and_present_even_when_empty() -> None:
    request = task_pb2.CreateTaskRequest()
    body_field = request.DESCRIPTOR.fields_by_name["task"]
    index = FieldIndex([request.DESCRIPTOR])
    parse_body_into({}, request, body_field, ignore_unknown_fields=True, index=index)
    assert request.HasField("task")
    parse_body_into(TASK, request := task_pb2.CreateTaskRequest(), body_field,
                    ignore_unknown_fields=True, index=index)  # fmt: skip
    assert request.task.created_at.seconds == 1704164645
    assert request.task.pipelineName == "namespace/ns1/pipeline/p"


def test_a_declined_body_still_gets_the_general_paths_error() -> None:
    request = task_pb2.CreateTaskRequest()
    body_field = request.DESCRIPTOR.fields_by_name["task"]
    index = FieldIndex([request.DESCRIPTOR])
    with pytest.raises(TranscodeError, match='field "created_at"'):
        parse_body_into({**TASK, "created_at": "2024-01-02T03:04:05+99:00"}, request, body_field,
                        ignore_unknown_fields=True, index=index)  # fmt: skip
    with pytest.raises(TranscodeError, match='unknown field "extra"'):
        parse_body_into({**TASK, "extra": 1}, task_pb2.CreateTaskRequest(), body_field,
                        ignore_unknown_fields=False, index=index)  # fmt: skip


# Generated documents: every field of Scalars by either name, mostly with a value of its own
# JSON type (in range or not), sometimes with anything; the reader must agree with ParseDict
# whenever it accepts, and it should accept often enough for that to mean something.
def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(good, good, good, good, bad)


_valid_timestamps = st.builds(
    lambda moment, frac: moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    + (f".{frac}" if frac else "") + "Z",
    st.datetimes(), st.text("0123456789", max_size=9),
)  # fmt: skip
_odd_timestamps = st.builds(
    lambda y, mo, d, h, mi, s, frac, zone: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    + (f".{frac}" if frac else "") + zone,
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
    st.integers(0, 60), st.integers(0, 61), st.text("0123456789", max_size=10),
    st.sampled_from(["Z", "z", "+01:00", "-00:00", ""]),
)  # fmt: skip
_timestamps = _mostly(_valid_timestamps, _odd_timestamps)
_anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["name", "count", "x"]), inner, max_size=2),
    max_leaves=4,
)  # fmt: skip
_INT_BITS = {"int32": 32, "sint32": 32, "sfixed32": 32, "uint32": 32, "fixed32": 32}


def _int_values(field_name: str) -> st.SearchStrategy[int]:
    kind = field_name.removeprefix("f_")
    bits = _INT_BITS.get(kind, 64)
    low = 0 if kind.startswith(("u", "fixed")) else -(2 ** (bits - 1))
    high = 2**bits - 1 if low == 0 else 2 ** (bits - 1) - 1
    inside = st.integers(low, high)
    return st.one_of(inside, inside, inside, st.sampled_from([low - 1, high + 1]))


def _nested_values() -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        st.fixed_dictionaries({}, optional={"name": st.text(max_size=4), "count": _int_values("int32")}),
        lambda inner: st.fixed_dictionaries({}, optional={"name": st.text(max_size=4), "child": inner}),
        max_leaves=3,
    )  # fmt: skip


def _good_values(field: Any) -> st.SearchStrategy[Any]:
    name = field.name
    if name in ("tags",):
        return st.lists(st.text(max_size=4), max_size=3)
    if name == "numbers":
        return st.lists(_int_values("int64"), max_size=3)
    if name in ("color", "colors"):
        one = st.sampled_from(["RED", "GREEN", "COLOR_UNSPECIFIED", "BLUE"])
        return st.lists(one, max_size=3) if name == "colors" else one
    if name == "nested":
        return _nested_values()
    if name == "items":
        return st.lists(_nested_values(), max_size=2)
    if name == "ts":
        return _timestamps
    if name in ("f_bool",):
        return st.booleans()
    if field.type == field.TYPE_STRING:
        return st.text(max_size=6)
    if name.startswith("f_") or name in ("choice_b", "opt_int"):
        return _int_values(name if name.startswith("f_") else "int32")
    return _anything


_UNPLANNED = ("f_double", "f_float", "f_bytes", "labels", "counts", "dur", "w_int64", "w_string",
              "w_bool", "w_double", "mask", "st", "val")  # fmt: skip
_PLANNED = [f for f in pb.Scalars.DESCRIPTOR.fields if f.name not in _UNPLANNED]
_OTHERS = [f for f in pb.Scalars.DESCRIPTOR.fields if f.name in _UNPLANNED]


def _entry(fields: list[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.sampled_from(fields).flatmap(
        lambda f: st.tuples(
            st.sampled_from([f.name, f.json_name]),
            st.one_of(
                _good_values(f), _good_values(f), _good_values(f), _good_values(f), _anything
            ),
        )
    )


_clean_documents = st.lists(
    st.sampled_from(_PLANNED).flatmap(
        lambda f: st.tuples(st.sampled_from([f.name, f.json_name]), _good_values(f))
    ),
    max_size=6,
).map(dict)
_documents = _clean_documents | st.lists(
    st.one_of(*[_entry(_PLANNED)] * 12, _entry(_OTHERS), st.tuples(st.just("unknown"), _anything)),
    max_size=6,
).map(dict)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_generated_documents_agree_with_parse_dict(document: dict[str, Any]) -> None:
    json.dumps(document)  # only what a JSON body can hold
    fast = pb.Scalars()
    accepted = Reader().fill(fast, document)
    expected = _parse_dict(document, pb.Scalars)
    if accepted:
        assert expected is not None, document
        assert _same(fast, expected), document
    else:
        assert fast.ListFields() == []


@settings(max_examples=300, deadline=None)
@given(_timestamps)
def test_generated_timestamps_agree_with_from_json_string(text: str) -> None:
    fast = pb.Scalars()
    if Reader().fill(fast, {"ts": text}):
        expected = pb.Scalars()
        expected.ts.FromJsonString(text)
        assert (fast.ts.seconds, fast.ts.nanos) == (expected.ts.seconds, expected.ts.nanos)
