"""The store's own value types: what goes in, what comes out, how to ask.

Frozen dataclasses only; no asyncpg, no protobuf. Timestamps are whole seconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class Column(StrEnum):
    """A column of the `tasks` table that can be filtered and sorted on (docs/decisions.md D9)."""

    ID = "id"
    NAMESPACE = "namespace"
    PIPELINE_NAME = "pipeline_name"
    RUN_ID = "run_id"
    MLMD_EXECUTION_ID = "mlmd_execution_id"
    CREATED_AT = "created_at"
    FINISHED_AT = "finished_at"
    FINGERPRINT = "fingerprint"

    @property
    def is_integer(self) -> bool:
        """True for the bigint columns (Unix seconds); every other column is text."""
        return self in (Column.CREATED_AT, Column.FINISHED_AT)


class Op(StrEnum):
    """A predicate operator (docs/decisions.md K13)."""

    EQ = "eq"  #: `=`
    NE = "ne"  #: `<>`
    GT = "gt"  #: `>`
    GE = "ge"  #: `>=`
    LT = "lt"  #: `<`
    LE = "le"  #: `<=`
    IN = "in"  #: one of a tuple of values; an empty tuple matches nothing
    SUBSTRING = "substring"  #: literal substring, `%` and `_` included (decision D8)


@dataclass(frozen=True, slots=True)
class Condition:
    """One predicate. The value's type must fit the column: `int` for the timestamp columns,
    `str` for the others, a tuple of those for `IN`; `SUBSTRING` applies to text columns only.

    A misfit raises ValueError: the server validates filters first (decision D10), so reaching
    the store with one is a programming error.
    """

    column: Column
    op: Op
    value: str | int | tuple[str, ...] | tuple[int, ...]

    def __post_init__(self) -> None:
        if self.op is Op.SUBSTRING and self.column.is_integer:
            raise ValueError(f"SUBSTRING does not apply to integer column {self.column}")
        if self.op is Op.IN:
            if not isinstance(self.value, tuple):
                raise ValueError(f"IN on {self.column} needs a tuple of values")
            values: tuple[object, ...] = self.value
        else:
            if isinstance(self.value, tuple):
                raise ValueError(f"{self.op.name} on {self.column} needs a single value")
            values = (self.value,)
        for value in values:
            _check_value_fits(self.column, value)


def _check_value_fits(column: Column, value: object) -> None:
    if column.is_integer:
        if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{column} needs a 64-bit integer, got {value!r}")
    elif type(value) is not str:
        raise ValueError(f"{column} needs a string, got {value!r}")


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to insert; the store generates its id. `finished_at` is 0 when absent (KFP)."""

    namespace: str
    pipeline_name: str
    run_id: str
    mlmd_execution_id: str
    created_at: int
    finished_at: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A stored task, as read back."""

    id: str
    namespace: str
    pipeline_name: str
    run_id: str
    mlmd_execution_id: str
    created_at: int
    finished_at: int
    fingerprint: str

    def sort_value(self, column: Column) -> str | int:
        """The value of `column` in this record, e.g. for building a Cursor."""
        value: str | int = getattr(self, column.value)
        return value


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the sort value and id of its FIRST row (KFP semantics)."""

    sort_value: str | int
    id: str


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """One page request: conditions AND-ed, ordered by `sort` then id in the same direction."""

    conditions: tuple[Condition, ...] = ()
    sort: Column = Column.CREATED_AT
    descending: bool = False
    limit: int = 20
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if self.after is not None:
            _check_value_fits(self.sort, self.after.sort_value)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of records, where the next one starts (None on the last page), and the exact
    number of records matching the conditions (the same on every page)."""

    records: list[TaskRecord]
    next_cursor: Cursor | None
    total_size: int
