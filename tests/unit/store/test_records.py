"""Condition and TaskQuery validation: misfits are programming errors (ValueError)."""

from __future__ import annotations

import pytest

from taskgate.store import Column, Condition, Cursor, Op, TaskQuery, TaskRecord


def test_integer_columns() -> None:
    assert {c for c in Column if c.is_integer} == {Column.CREATED_AT, Column.FINISHED_AT}


@pytest.mark.parametrize(
    "condition",
    [
        lambda: Condition(Column.CREATED_AT, Op.EQ, 5),
        lambda: Condition(Column.CREATED_AT, Op.IN, (1, 2)),
        lambda: Condition(Column.CREATED_AT, Op.IN, ()),
        lambda: Condition(Column.NAMESPACE, Op.IN, ("a",)),
        lambda: Condition(Column.NAMESPACE, Op.SUBSTRING, "%"),
        lambda: Condition(Column.ID, Op.LE, ""),
        lambda: Condition(Column.FINISHED_AT, Op.GT, -(2**63)),
    ],
)
def test_fitting_conditions(condition: object) -> None:
    assert callable(condition)
    condition()


@pytest.mark.parametrize(
    ("column", "op", "value", "message"),
    [
        (Column.CREATED_AT, Op.EQ, "5", "created_at needs a 64-bit integer, got '5'"),
        (Column.CREATED_AT, Op.EQ, True, "needs a 64-bit integer, got True"),
        (Column.CREATED_AT, Op.EQ, 2**63, "needs a 64-bit integer"),
        (Column.NAMESPACE, Op.EQ, 5, "namespace needs a string, got 5"),
        (Column.NAMESPACE, Op.IN, "a", "IN on namespace needs a tuple"),
        (Column.NAMESPACE, Op.IN, ("a", 1), "namespace needs a string, got 1"),
        (Column.NAMESPACE, Op.EQ, ("a",), "EQ on namespace needs a single value"),
        (Column.CREATED_AT, Op.SUBSTRING, 5, "SUBSTRING does not apply to integer column"),
    ],
)
def test_misfitting_conditions(column: Column, op: Op, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Condition(column, op, value)  # type: ignore[arg-type]


def test_query_limit_and_cursor_type() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        TaskQuery(limit=0)
    with pytest.raises(ValueError, match="created_at needs a 64-bit integer"):
        TaskQuery(after=Cursor("5", "id"))
    assert TaskQuery(sort=Column.ID, after=Cursor("id", "id")).after == Cursor("id", "id")


def test_sort_value() -> None:
    record = TaskRecord("i", "n", "p", "r", "m", 1, 2, "f")

    assert [record.sort_value(c) for c in Column] == ["i", "n", "p", "r", "m", 1, 2, "f"]
