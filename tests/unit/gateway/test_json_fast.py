"""The fast ProtoJSON writer gives json_format's output exactly, byte for byte, or declines."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from taskgate.api import task_pb2
from taskgate.gateway import json_fast
from taskgate.gateway.json_fast import dump_text, timestamp_text, to_json
from tests.protos import transcoding_test_pb2 as pb

FD = descriptor_pb2.FieldDescriptorProto


_WELL_KNOWN = (duration_pb2, struct_pb2, wrappers_pb2, field_mask_pb2)


def odd_message_class() -> type[Message]:
    """A message with the kinds the fixture protos lack beside a float: bytes, maps with int
    and bool keys and with message values, negative int64s, an enum with a number it does not
    define, repeated strings and messages, well-known types other than Timestamp."""
    file = descriptor_pb2.FileDescriptorProto(
        name="fast_test.proto",
        package="fasttest",
        syntax="proto3",
        dependency=[module.DESCRIPTOR.name for module in _WELL_KNOWN],
    )
    enum = file.enum_type.add(name="Kind")
    enum.value.add(name="KIND_UNSPECIFIED", number=0)
    enum.value.add(name="GOOD", number=1)
    message = file.message_type.add(name="Odd")
    fields = [
        ("blob", 1, FD.TYPE_BYTES, None, FD.LABEL_OPTIONAL),
        ("big", 2, FD.TYPE_SINT64, None, FD.LABEL_OPTIONAL),
        ("kind", 3, FD.TYPE_ENUM, ".fasttest.Kind", FD.LABEL_OPTIONAL),
        ("kinds", 4, FD.TYPE_ENUM, ".fasttest.Kind", FD.LABEL_REPEATED),
        ("by_id", 5, FD.TYPE_MESSAGE, ".fasttest.Odd.ByIdEntry", FD.LABEL_REPEATED),
        ("flags", 6, FD.TYPE_MESSAGE, ".fasttest.Odd.FlagsEntry", FD.LABEL_REPEATED),
        ("u64s", 7, FD.TYPE_FIXED64, None, FD.LABEL_REPEATED),
        ("dur", 8, FD.TYPE_MESSAGE, ".google.protobuf.Duration", FD.LABEL_OPTIONAL),
        ("st", 9, FD.TYPE_MESSAGE, ".google.protobuf.Struct", FD.LABEL_OPTIONAL),
        ("wrapped", 10, FD.TYPE_MESSAGE, ".google.protobuf.StringValue", FD.LABEL_OPTIONAL),
        ("mask", 11, FD.TYPE_MESSAGE, ".google.protobuf.FieldMask", FD.LABEL_OPTIONAL),
        ("children", 12, FD.TYPE_MESSAGE, ".fasttest.Child", FD.LABEL_REPEATED),
        ("kids", 13, FD.TYPE_MESSAGE, ".fasttest.Odd.KidsEntry", FD.LABEL_REPEATED),
        ("texts", 14, FD.TYPE_STRING, None, FD.LABEL_REPEATED),
        ("ok", 15, FD.TYPE_BOOL, None, FD.LABEL_OPTIONAL),
        ("u32", 16, FD.TYPE_UINT32, None, FD.LABEL_OPTIONAL),
    ]
    for name, number, kind, type_name, label in fields:
        field = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    for entry_name, key_type, value_type in (
        ("ByIdEntry", FD.TYPE_INT32, FD.TYPE_INT64),
        ("FlagsEntry", FD.TYPE_BOOL, FD.TYPE_STRING),
        ("KidsEntry", FD.TYPE_STRING, FD.TYPE_MESSAGE),
    ):
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key_type, label=FD.LABEL_OPTIONAL)
        value = entry.field.add(name="value", number=2, type=value_type, label=FD.LABEL_OPTIONAL)
        if value_type == FD.TYPE_MESSAGE:
            value.type_name = ".fasttest.Child"
    child = file.message_type.add(name="Child")
    child.field.add(name="child_name", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    child.field.add(name="size", number=2, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    for module in _WELL_KNOWN:
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fasttest.Odd"))


def odd() -> Message:
    message = odd_message_class()()
    json_format.ParseDict(
        {
            "blob": "AP8=",
            "big": "-9007199254740993",
            "kind": 7,
            "kinds": ["GOOD", 9],
            "byId": {"3": "-4", "-1": "5"},
            "flags": {"true": "t", "false": ""},
            "u64s": ["18446744073709551615", "0"],
            "dur": "-1.500s",
            "st": {"a": [1, "b\u2028", None, {"c": True}]},
            "wrapped": 'w"',
            "mask": "a.b,cD",
            "children": [{"childName": "x\n", "size": "-2"}, {}],
            "kids": {"": {"size": "1"}, "k\u00e9": {"childName": "\\"}},
            "texts": ["", "\u0000\u001f\U0001f600", "\"'<>&"],
            "ok": True,
            "u32": 4294967295,
        },
        message,
    )
    return message


def task() -> task_pb2.Task:
    result = task_pb2.Task(id="a", pipelineName="p<>&\u00e9", runId="r", fingerprint="f")
    result.created_at.FromJsonString("2024-01-02T03:04:05.120Z")
    result.finished_at.seconds = -1
    return result


def book() -> pb.Book:
    result = pb.Book(name="n", page_count=-3, color=pb.GREEN, labels={"a": "b"}, authors=["x", "y"])
    result.publish_time.FromJsonString("0001-01-01T00:00:00Z")
    return result


SUPPORTED: list[Any] = [
    task_pb2.Task(),
    task(),
    task_pb2.ListTasksResponse(),
    task_pb2.ListTasksResponse(tasks=[task(), task_pb2.Task()], next_page_token="t", total_size=2),
    book(),
    pb.ListBooksResponse(books=[book(), pb.Book()], total_size=-1),
    pb.Book(color=5),  # type: ignore[arg-type]  # an enum number the enum does not define
    odd(),
]


@pytest.mark.parametrize("message", SUPPORTED, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("proto_names", [True, False])
def test_same_output_as_json_format(message: Message, proto_names: bool) -> None:
    expected = json_format.MessageToDict(message, preserving_proto_field_name=proto_names)
    assert to_json(message, proto_names) == dump_text(expected)  # the same key order, too


@pytest.mark.parametrize(
    "message",
    [pb.Scalars(f_double=1.5), pb.Nested(child=pb.Nested(name="x")), task().created_at],
    ids=["floats", "recursive", "well-known type"],
)
def test_declines_what_it_does_not_cover(message: Message) -> None:
    assert to_json(message, True) is None


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.text(), max_size=3),
    numbers=st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**32 - 1)),
    kinds=st.lists(st.integers(0, 12), max_size=3),
    flag=st.booleans(),
)
def test_generated_values_are_written_as_json_format_writes_them(
    texts: list[str], numbers: tuple[int, int], kinds: list[int], flag: bool
) -> None:
    message: Any = odd_message_class()()
    message.texts.extend(texts)
    message.big, message.u32 = numbers
    message.kinds.extend(kinds)
    message.ok = flag
    for text in texts:
        message.kids[text].child_name = text
        message.flags[bool(text)] = text
        message.children.add(child_name=text, size=numbers[0])
    for proto_names in (True, False):
        expected = json_format.MessageToDict(message, preserving_proto_field_name=proto_names)
        assert to_json(message, proto_names) == dump_text(expected)


def test_declines_a_type_with_extensions() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="ext.proto", package="ext", syntax="proto2")
    base = file.message_type.add(name="Base")
    base.field.add(name="plain", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    base.extension_range.add(start=100, end=200)
    file.extension.add(
        name="extra", number=100, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL, extendee=".ext.Base"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    message: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName("ext.Base"))()
    message.plain = "p"
    message.Extensions[pool.FindExtensionByName("ext.extra")] = "e"
    assert to_json(message, True) is None
    assert json_format.MessageToDict(message) == {"plain": "p", "[ext.extra]": "e"}


def same_name_message(field_name: str) -> Message:
    """fasttest2.Thing with one string field, in a pool of its own (a redeployed upstream)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="thing.proto", package="fasttest2", syntax="proto3"
    )
    message = file.message_type.add(name="Thing")
    message.field.add(name=field_name, number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    thing = message_factory.GetMessageClass(pool.FindMessageTypeByName("fasttest2.Thing"))()
    setattr(thing, field_name, "v")
    return thing


def test_a_changed_type_under_the_same_name_gets_its_own_plan() -> None:
    assert to_json(same_name_message("old_name"), True) == '{"old_name":"v"}'
    assert to_json(same_name_message("new_name"), True) == '{"new_name":"v"}'


_EDGE_TIMESTAMPS = [
    (0, 0), (-1, 0), (-86400, 999_999_999), (1685577600, 0), (1685577600, 1_000_000),
    (1685577600, 120_000), (1685577600, 7), (1704164645, 123_456_789), (-62135596800, 0),
    (253402300799, 999_999_999), (951782400, 500_000_000),  # 2000-02-29
]  # fmt: skip


@pytest.mark.parametrize(("seconds", "nanos"), _EDGE_TIMESTAMPS)
def test_timestamp_text_is_to_json_strings(seconds: int, nanos: int) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert timestamp_text(stamp) == stamp.ToJsonString()


@settings(max_examples=500, deadline=None)
@given(
    st.integers(-62135596800, 253402300799),
    st.one_of(st.just(0), st.integers(0, 999).map(lambda n: n * 1_000_000),
              st.integers(0, 999_999).map(lambda n: n * 1_000), st.integers(0, 999_999_999)),
)  # fmt: skip
def test_generated_timestamps_are_written_as_to_json_string_writes_them(
    seconds: int, nanos: int
) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert timestamp_text(stamp) == stamp.ToJsonString()


@pytest.mark.parametrize(("seconds", "nanos"), [(253402300800, 0), (-62135596801, 0), (0, -1)])
def test_a_timestamp_out_of_range_fails_as_json_format_does(seconds: int, nanos: int) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(ValueError, match="Timestamp is not valid"):
        timestamp_text(stamp)
    with pytest.raises(json_format.SerializeToJsonError):
        json_format.MessageToJson(pb.Scalars(ts=stamp))


def test_remembered_timestamps_stay_right_and_bounded() -> None:
    # Neighbours whose seconds * 10**9 + nanos would collide if nanos could reach 10**9.
    for seconds, nanos in [(1, 0), (0, 999_999_999), (-1, 999_999_999), (-2, 0)] * 2:
        stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
        assert timestamp_text(stamp) == stamp.ToJsonString()
    for seconds in range(json_fast.MAX_INSTANTS + 10):
        timestamp_text(timestamp_pb2.Timestamp(seconds=seconds * 7919))
    assert 0 < len(json_fast._instants) <= json_fast.MAX_INSTANTS
    stamp = timestamp_pb2.Timestamp(seconds=7919, nanos=5)
    assert timestamp_text(stamp) == stamp.ToJsonString()
