"""Every SQL statement of the store, and the allow-lists that dynamic parts come from.

The only file with SQL. Values are always bind parameters ($n); column names, operators and
ORDER BY clauses come only from the tables below, never from request text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from taskgate.store.records import Column, Condition, Op, TaskQuery

TASK_COLUMNS: Final = (
    "id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint"
)

INSERT_TASK: Final = """
INSERT INTO tasks
    (id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING
    id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint
"""

#: Many tasks in one statement (group commit, docs/decisions.md P34): one array per column, the
#: i-th elements making the i-th row. One statement, so the triggers of migration 0003 run once.
INSERT_TASKS: Final = """
INSERT INTO tasks
    (id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
    $8::text[]
)
RETURNING
    id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at, finished_at, fingerprint
"""

INSERT_KEY_IF_ABSENT: Final = """
INSERT INTO taskgate_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
"""

SELECT_KEY: Final = "SELECT value FROM taskgate_secrets WHERE name = $1"

PING: Final = "SELECT 1"

#: total_size from migration 0003's per-namespace counts (a WHERE on `namespace` may follow).
COUNT_FROM_COUNTS: Final = "SELECT coalesce(sum(n), 0)::bigint FROM task_counts"

#: Column -> SQL identifier; the only way a column name reaches a statement.
COLUMN_SQL: Final[Mapping[Column, str]] = {column: column.value for column in Column}

#: Op -> SQL operator for the scalar comparisons (docs/decisions.md K13).
COMPARISON_SQL: Final[Mapping[Op, str]] = {
    Op.EQ: "=",
    Op.NE: "<>",
    Op.GT: ">",
    Op.GE: ">=",
    Op.LT: "<",
    Op.LE: "<=",
}

#: (sort column, descending) -> ORDER BY; ties broken by id in the sort direction (KFP).
ORDER_BY_SQL: Final[Mapping[tuple[Column, bool], str]] = {
    (column, descending): (
        f"id {direction}" if column is Column.ID else f"{column.value} {direction}, id {direction}"
    )
    for column in Column
    for descending, direction in ((False, "ASC"), (True, "DESC"))
}

# Migrations (store/migrate.py). The advisory lock key is "taskgate" in ASCII.
MIGRATION_LOCK_KEY: Final = 0x7461736B67617465
LOCK_MIGRATIONS: Final = "SELECT pg_advisory_lock($1)"
UNLOCK_MIGRATIONS: Final = "SELECT pg_advisory_unlock($1)"
CREATE_SCHEMA_MIGRATIONS: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text COLLATE "C" PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED_MIGRATIONS: Final = "SELECT name FROM schema_migrations"
INSERT_APPLIED_MIGRATION: Final = "INSERT INTO schema_migrations (name) VALUES ($1)"

_LIKE_ESCAPES: Final = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


def like_pattern(substring: str) -> str:
    """A LIKE pattern matching `substring` literally anywhere: "5%_a" gives "%5\\%\\_a%"."""
    return f"%{substring.translate(_LIKE_ESCAPES)}%"


@dataclass(frozen=True, slots=True)
class PageStatements:
    """The two queries of one page; `page_sql` runs both as one statement (one round trip, one
    snapshot). The count's parameters are the conditions', the first of `rows_args`."""

    rows_sql: str
    rows_args: tuple[object, ...]
    count_sql: str
    order_by: str

    @property
    def page_sql(self) -> str:
        """The count joined with the rows: one row per task, each carrying `total_size`, or a
        single row of NULL task columns when the page is empty. The rows query numbers its
        parameters after the count's, so `rows_args` serves both."""
        return (
            f"SELECT page.*, total.total_size FROM ({self.count_sql}) AS total(total_size)"  # noqa: S608 - built from allow-lists
            f" LEFT JOIN LATERAL ({self.rows_sql}) AS page ON true ORDER BY {self.order_by}"
        )


def task_page_statements(query: TaskQuery) -> PageStatements:
    """Rows: WHERE conditions [AND keyset] ORDER BY sort, id LIMIT limit+1; count: WHERE
    conditions only (docs/decisions.md K8), so total_size is the same on every page."""
    clauses: list[str] = []
    args: list[object] = []
    for condition in query.conditions:
        clause, value = _condition_sql(condition, len(args) + 1)
        clauses.append(clause)
        args.append(value)
    count_sql = _count_sql(query.conditions, clauses)

    if query.after is not None:
        # The cursor is the first row of this page, hence >= / <= (docs/decisions.md K8).
        # A row-value comparison, so the (col, id) index serves it.
        cmp = "<=" if query.descending else ">="
        if query.sort is Column.ID:
            clauses.append(f"id {cmp} ${len(args) + 1}")
            args.append(query.after.id)
        else:
            column = COLUMN_SQL[query.sort]
            clauses.append(f"({column}, id) {cmp} (${len(args) + 1}, ${len(args) + 2})")
            args.extend((query.after.sort_value, query.after.id))
    args.append(query.limit + 1)
    order_by = ORDER_BY_SQL[query.sort, query.descending]
    rows_sql = (
        f"SELECT {TASK_COLUMNS} FROM tasks{_where(clauses)}"  # noqa: S608 - fragments from allow-lists
        f" ORDER BY {order_by} LIMIT ${len(args)}"
    )
    return PageStatements(rows_sql, tuple(args), count_sql, order_by)


def _count_sql(conditions: tuple[Condition, ...], clauses: list[str]) -> str:
    """The exact count of the conditions' rows. With no condition, or conditions on the
    namespace alone (a resource reference, a namespace filter, multi-user mode's readable
    namespaces), it is a sum of the per-namespace counts the triggers of migration 0003 keep,
    whatever the table's size (docs/decisions.md P20-P22); any other filter counts the
    matching rows, through an index when one fits (P23). The clauses name the column
    `namespace`, which both tables have."""
    if all(condition.column is Column.NAMESPACE for condition in conditions):
        return COUNT_FROM_COUNTS + _where(clauses)
    return "SELECT count(*) FROM tasks" + _where(clauses)  # noqa: S608 - allow-listed


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def _condition_sql(condition: Condition, number: int) -> tuple[str, object]:
    column = COLUMN_SQL[condition.column]
    value = condition.value
    if isinstance(value, tuple):  # Op.IN, as Condition guarantees
        # = ANY(array): one parameter whatever the length; an empty array matches nothing.
        return f"{column} = ANY(${number})", list(value)
    if condition.op is Op.SUBSTRING and isinstance(value, str):
        return f"{column} LIKE ${number} ESCAPE E'\\\\'", like_pattern(value)
    return f"{column} {COMPARISON_SQL[condition.op]} ${number}", value
