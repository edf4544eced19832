"""The `filter` parameter: parsing, key mapping, predicate checks (docs/decisions.md K10-K13)."""

from __future__ import annotations

import pytest

from taskgate.server.errors import ServiceError
from taskgate.server.filters import parse_filter_message, validate_filter
from taskgate.store.records import Column, Condition, Op


def parse(text: str) -> tuple[Condition, ...] | None:
    message = parse_filter_message(text)
    return None if message is None else validate_filter(message)


def predicate(op: str | int, key: str, **value: object) -> str:
    import json

    return json.dumps({"predicates": [{"op": op, "key": key, **value}]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("{}", ()),
        ("null", ()),
        (
            predicate("EQUALS", "fingerprint", stringValue="abc"),
            (Condition(Column.FINGERPRINT, Op.EQ, "abc"),),
        ),
        (
            predicate("EQUALS", "fingerprint", string_value="abc"),
            (Condition(Column.FINGERPRINT, Op.EQ, "abc"),),
        ),
        (
            predicate("NOT_EQUALS", "runId", stringValue="r"),
            (Condition(Column.RUN_ID, Op.NE, "r"),),
        ),
        (
            predicate("GREATER_THAN", "created_at", intValue=10),
            (Condition(Column.CREATED_AT, Op.GT, 10),),
        ),
        (
            predicate("GREATER_THAN_EQUALS", "created_at", longValue="10"),
            (Condition(Column.CREATED_AT, Op.GE, 10),),
        ),
        (
            predicate("LESS_THAN", "finished_at", timestampValue="1970-01-01T00:00:10.9Z"),
            (Condition(Column.FINISHED_AT, Op.LT, 10),),
        ),
        (
            predicate(
                "LESS_THAN_EQUALS", "created_at", timestamp_value="1970-01-01T01:00:10+01:00"
            ),
            (Condition(Column.CREATED_AT, Op.LE, 10),),
        ),
        (
            predicate("IN", "namespace", stringValues={"values": ["a", "b"]}),
            (Condition(Column.NAMESPACE, Op.IN, ("a", "b")),),
        ),
        (
            predicate("IN", "created_at", intValues={"values": [10, 20]}),
            (Condition(Column.CREATED_AT, Op.IN, (10, 20)),),
        ),
        (
            predicate("IN", "created_at", longValues={"values": ["100", 200]}),
            (Condition(Column.CREATED_AT, Op.IN, (100, 200)),),
        ),
        (predicate("IN", "id", stringValues={}), (Condition(Column.ID, Op.IN, ()),)),
        (
            predicate("IS_SUBSTRING", "pipelineName", stringValue="50%_"),
            (Condition(Column.PIPELINE_NAME, Op.SUBSTRING, "50%_"),),
        ),
        (
            predicate(1, "mlmdExecutionID", stringValue="7"),
            (Condition(Column.MLMD_EXECUTION_ID, Op.EQ, "7"),),
        ),
        # Decision D7: KFP's UI double-encodes; one more URL-decoding when it isn't JSON.
        (
            "%7B%22predicates%22%3A%5B%7B%22op%22%3A%22EQUALS%22%2C%22key%22%3A%22fingerprint%22%2C"
            "%22stringValue%22%3A%22a%2Bb%22%7D%5D%7D",
            (Condition(Column.FINGERPRINT, Op.EQ, "a+b"),),
        ),
        # ... but raw JSON is taken as it is: '+' and '%' stay literal.
        (
            predicate("EQUALS", "fingerprint", stringValue="a+b%zz"),
            (Condition(Column.FINGERPRINT, Op.EQ, "a+b%zz"),),
        ),
    ],
)
def test_parse_filter(text: str, expected: tuple[Condition, ...] | None) -> None:
    assert parse(text) == expected


def test_conditions_are_canonical_whatever_the_order_or_spelling() -> None:
    driver = (
        '{"predicates":[{"op":"EQUALS", "key":"fingerprint", "stringValue":"abc"}, '
        '{"op":"EQUALS", "key":"pipelineName", "stringValue":"pipeline/p"}, '
        '{"op":"EQUALS", "key":"namespace", "stringValue":""}]}'
    )
    reordered = (
        '{"predicates":[{"key":"namespace","op":1,"string_value":""},'
        '{"key":"pipelineName","op":"EQUALS","stringValue":"pipeline/p"},'
        '{"key":"fingerprint","op":"EQUALS","stringValue":"abc"}]}'
    )
    assert parse(driver) == parse(reordered)
    assert len(parse(driver) or ()) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "lkjlkjlkj",
            'failed to parse valid filter from "lkjlkjlkj": invalid JSON at character 1: Expecting value',
        ),
        (
            predicate("EQUALS", "status", stringValue="x"),
            'no support for filtering on unrecognized field "status"',
        ),
        (
            predicate("EQUALS", "Fingerprint", stringValue="x"),
            'no support for filtering on unrecognized field "Fingerprint"',
        ),
        (
            predicate("UNKNOWN", "fingerprint", stringValue="x"),
            "invalid predicate operation: UNKNOWN",
        ),
        (predicate(4, "fingerprint", stringValue="x"), "invalid predicate operation: 4"),
        (
            predicate("IN", "fingerprint", stringValue="x"),
            "cannot use IN operator with scalar type *go_client.Predicate_StringValue",
        ),
        (
            predicate("EQUALS", "fingerprint", stringValues={"values": ["x"]}),
            "cannot use scalar operator EQUALS on array type *go_client.Predicate_StringValues",
        ),
        (
            predicate("IS_SUBSTRING", "created_at", intValue=1),
            "cannot use non string value type *go_client.Predicate_IntValue with operator "
            "IS_SUBSTRING",
        ),
        (
            predicate("EQUALS", "fingerprint"),
            'no value set for predicate on key "tasks.Fingerprint"',
        ),
        (predicate("IN", "fingerprint"), 'no value set for predicate on key "tasks.Fingerprint"'),
        # Decision D10: the value's type must fit the key's column.
        (
            predicate("EQUALS", "created_at", stringValue="yesterday"),
            'the value for key "created_at" must be a number or a timestamp, got string_value '
            "(the key's column cannot hold it)",
        ),
        (
            predicate("EQUALS", "fingerprint", intValue=3),
            'the value for key "fingerprint" must be a string, got int_value '
            "(the key's column cannot hold it)",
        ),
        (
            predicate("EQUALS", "fingerprint", stringValue="a\x00b"),
            'the value for key "fingerprint" must not contain NUL characters',
        ),
    ],
)
def test_parse_filter_errors(text: str, message: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse(text)
    assert caught.value.external == message
    assert caught.value.chain == f"Invalid input error: {message}"


def test_unknown_key_wins_over_a_bad_predicate() -> None:
    text = '{"predicates":[{"op":"UNKNOWN","key":"fingerprint"},{"op":"EQUALS","key":"x"}]}'
    with pytest.raises(ServiceError, match='unrecognized field "x"'):
        parse(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"predicates":[{"op":"EQUALS","key":"id","foo":1}]}', "foo"),
        ('{"predicates":[{"op":"equals","key":"id"}]}', "equals"),
        (
            '{"predicates":[{"op":"EQUALS","key":"created_at","timestampValue":"yesterday"}]}',
            "timestampValue",
        ),
        ("%zz", "%zz"),
        ("[1]", "a filter must be a JSON object"),
    ],
)
def test_parse_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse(text)
    assert caught.value.external.startswith("failed to parse valid filter from ")
    assert fragment in caught.value.external
    assert "Traceback" not in caught.value.external


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (
            '{"predicates":[{"op":"EQUALS","key":"created_at","longValue":"99999999999999999999"}]}',
            "longValue: Value out of range: 99999999999999999999.",
        ),
        (
            '{"predicates":[{"op":"EQUALS","key":"id","foo":1}]}',
            'Message type "api.Predicate" has no field named "foo" at "Filter.predicates[0]".',
        ),
    ],
)
def test_parse_error_causes_are_plain(text: str, cause: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse(text)
    assert caught.value.external.endswith(f": {cause}")


def test_deeply_nested_json_is_a_parse_error() -> None:
    with pytest.raises(ServiceError) as caught:
        parse("[" * 50_000)
    assert caught.value.external.endswith(": the JSON is nested too deeply")


def test_long_values_are_echoed_only_in_part() -> None:
    with pytest.raises(ServiceError) as caught:
        parse("x" * 100_000)
    assert len(caught.value.chain) < 1_200
    assert "…" in caught.value.external
