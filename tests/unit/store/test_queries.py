"""The SQL that store.queries builds: shapes, parameter numbering, allow-lists, escaping."""
# ruff: noqa: S608  (expected SQL text spelled out for comparison, nothing is executed)

from __future__ import annotations

import pytest

from taskgate.store import Column, Condition, Cursor, Op, TaskQuery
from taskgate.store.queries import ORDER_BY_SQL, like_pattern, task_page_statements

COLUMNS = (
    "id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint"
)


def test_default_query() -> None:
    statements = task_page_statements(TaskQuery())

    assert statements.rows_sql == (
        f"SELECT {COLUMNS} FROM tasks ORDER BY created_at ASC, id ASC LIMIT $1"
    )
    assert statements.rows_args == (21,)
    # No condition: the sum of the per-namespace counts (P20), not a count of the rows.
    assert statements.count_sql == "SELECT coalesce(sum(n), 0)::bigint FROM task_counts"


def test_kfp_cache_lookup_second_page() -> None:
    query = TaskQuery(
        conditions=(
            Condition(Column.FINGERPRINT, Op.EQ, "abc"),
            Condition(Column.PIPELINE_NAME, Op.EQ, "pipeline/p"),
            Condition(Column.NAMESPACE, Op.EQ, ""),
        ),
        descending=True,
        limit=1,
        after=Cursor(5, "u2"),
    )

    statements = task_page_statements(query)

    where = "fingerprint = $1 AND pipeline_name = $2 AND namespace = $3"
    assert statements.rows_sql == (
        f"SELECT {COLUMNS} FROM tasks WHERE {where} AND (created_at, id) <= ($4, $5)"
        " ORDER BY created_at DESC, id DESC LIMIT $6"
    )
    assert statements.rows_args == ("abc", "pipeline/p", "", 5, "u2", 2)
    assert statements.count_sql == f"SELECT count(*) FROM tasks WHERE {where}"


def test_keyset_on_id_alone() -> None:
    statements = task_page_statements(TaskQuery(sort=Column.ID, after=Cursor("k", "k")))

    assert statements.rows_sql.endswith("WHERE id >= $1 ORDER BY id ASC LIMIT $2")
    assert statements.rows_args == ("k", 21)


@pytest.mark.parametrize(
    ("condition", "clause", "arg"),
    [
        (Condition(Column.RUN_ID, Op.NE, "r"), "run_id <> $1", "r"),
        (Condition(Column.CREATED_AT, Op.GT, 1), "created_at > $1", 1),
        (Condition(Column.CREATED_AT, Op.GE, 1), "created_at >= $1", 1),
        (Condition(Column.FINISHED_AT, Op.LT, 1), "finished_at < $1", 1),
        (Condition(Column.FINISHED_AT, Op.LE, 1), "finished_at <= $1", 1),
        (Condition(Column.ID, Op.IN, ("a", "b")), "id = ANY($1)", ["a", "b"]),
        (Condition(Column.CREATED_AT, Op.IN, ()), "created_at = ANY($1)", []),
        (
            Condition(Column.FINGERPRINT, Op.SUBSTRING, "5%_a"),
            "fingerprint LIKE $1 ESCAPE E'\\\\'",
            "%5\\%\\_a%",
        ),
    ],
)
def test_condition_clauses(condition: Condition, clause: str, arg: object) -> None:
    statements = task_page_statements(TaskQuery(conditions=(condition,)))

    assert statements.count_sql == f"SELECT count(*) FROM tasks WHERE {clause}"
    assert statements.rows_args == (arg, 21)


def test_hostile_values_stay_arguments() -> None:
    hostile = "'; DROP TABLE tasks; --"
    statements = task_page_statements(
        TaskQuery(conditions=(Condition(Column.NAMESPACE, Op.EQ, hostile),), sort=Column.NAMESPACE)
    )

    assert hostile not in statements.rows_sql
    assert statements.rows_args[0] == hostile


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("", "%%"), ("abc", "%abc%"), ("%", "%\\%%"), ("_", "%\\_%"), ("a\\b", "%a\\\\b%")],
)
def test_like_pattern(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


def test_order_by_covers_every_column_and_direction() -> None:
    assert len(ORDER_BY_SQL) == 2 * len(Column)
    assert ORDER_BY_SQL[Column.ID, True] == "id DESC"
    assert ORDER_BY_SQL[Column.RUN_ID, False] == "run_id ASC, id ASC"


def test_page_sql_joins_the_count_with_the_rows_in_one_statement() -> None:
    statements = task_page_statements(
        TaskQuery(conditions=(Condition(Column.NAMESPACE, Op.EQ, "ns"),), limit=5)
    )

    assert statements.page_sql == (
        "SELECT page.*, total.total_size FROM"
        " (SELECT coalesce(sum(n), 0)::bigint FROM task_counts WHERE namespace = $1)"
        f" AS total(total_size) LEFT JOIN LATERAL (SELECT {COLUMNS} FROM tasks WHERE"
        " namespace = $1 ORDER BY created_at ASC, id ASC LIMIT $2) AS page ON true"
        " ORDER BY created_at ASC, id ASC"
    )
    assert statements.rows_args == ("ns", 6)


@pytest.mark.parametrize(
    ("conditions", "where"),
    [
        ((), ""),
        ((Condition(Column.NAMESPACE, Op.EQ, "ns"),), " WHERE namespace = $1"),
        # Multi-user mode's readable namespaces, with or without a namespace filter (P22).
        ((Condition(Column.NAMESPACE, Op.IN, ("a", "b")),), " WHERE namespace = ANY($1)"),
        (
            (Condition(Column.NAMESPACE, Op.EQ, "a"), Condition(Column.NAMESPACE, Op.IN, ("a",))),
            " WHERE namespace = $1 AND namespace = ANY($2)",
        ),
        (
            (Condition(Column.NAMESPACE, Op.SUBSTRING, "n"),),
            " WHERE namespace LIKE $1 ESCAPE E'\\\\'",
        ),
    ],
)
def test_namespace_only_counts_come_from_the_counts_table(
    conditions: tuple[Condition, ...], where: str
) -> None:
    statements = task_page_statements(TaskQuery(conditions=conditions))

    assert statements.count_sql == "SELECT coalesce(sum(n), 0)::bigint FROM task_counts" + where


def test_any_other_condition_counts_the_rows() -> None:
    query = TaskQuery(
        conditions=(
            Condition(Column.NAMESPACE, Op.EQ, "ns"),
            Condition(Column.RUN_ID, Op.EQ, "r"),
        )
    )

    statements = task_page_statements(query)

    assert statements.count_sql == "SELECT count(*) FROM tasks WHERE namespace = $1 AND run_id = $2"
