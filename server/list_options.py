"""ListTasks request → store query, in KFP's validation order (docs/decisions.md K5-K9, K14).

Pure: the page-token key is passed in. Errors are `ServiceError`s already wrapped the way KFP
wraps them ("Failed to create list options: ...", "Validating filter failed.: ...").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from taskgate.api import resource_reference_pb2, task_pb2
from taskgate.server.errors import ServiceError, echo, invalid_input, invalid_input_with_details
from taskgate.server.filters import FILTER_KEYS, Filter, parse_filter_message, validate_filter
from taskgate.server.page_tokens import PageToken, PageTokenError, decode_page_token
from taskgate.store.records import Column, Condition, Cursor, Op, TaskQuery

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
LIST_OPTIONS_FAILED = "Failed to create list options"
FILTER_FAILED = "Validating filter failed."
INVALID_PAGE_TOKEN = "Invalid page token."  # noqa: S105 - a message

#: sort_by field names: the filter keys, matched after lower-casing (decision D9: all eight are
#: sortable).
SORT_FIELDS: Mapping[str, Column] = {key.lower(): column for key, column in FILTER_KEYS.items()}

ResourceType = resource_reference_pb2.ResourceType
#: Decision D1: the resource types that filter tasks, and the column each one filters.
REFERENCE_COLUMNS: Mapping[int, Column] = {
    ResourceType.PIPELINE: Column.PIPELINE_NAME,
    ResourceType.NAMESPACE: Column.NAMESPACE,
}


@dataclass(frozen=True, slots=True)
class ListOptions:
    """Sort, direction and filter: what a page token must agree with."""

    sort: Column
    descending: bool
    conditions: Filter


@dataclass(frozen=True, slots=True)
class ListPlan:
    """A validated ListTasks request: the store query, and what the next page token keeps."""

    query: TaskQuery
    options: ListOptions
    #: multi-user mode: the caller the next page token is bound to (`Caller.binding`).
    binding: str = ""

    def next_page_token(self, cursor: Cursor) -> PageToken:
        # The resource reference is not kept: KFP takes it from each request (K9).
        options = self.options
        return PageToken(options.sort, options.descending, options.conditions, cursor, self.binding)


def plan_list(request: task_pb2.ListTasksRequest, token_key: bytes, binding: str = "") -> ListPlan:
    """Validate a ListTasks request and build the store query for the page it asks for.
    `binding`: multi-user mode's caller; a page token issued to another is invalid."""
    try:
        options, cursor, page_size = _list_options(request, token_key, binding)
    except ServiceError as error:
        raise error.wrap(LIST_OPTIONS_FAILED) from None
    query = TaskQuery(
        conditions=options.conditions + _reference_conditions(request),
        sort=options.sort,
        descending=options.descending,
        limit=page_size,
        after=cursor,
    )
    return ListPlan(query, options, binding)


def _list_options(
    request: task_pb2.ListTasksRequest, token_key: bytes, binding: str
) -> tuple[ListOptions, Cursor | None, int]:
    if not request.page_token:
        filter_message = parse_filter_message(request.filter)
        page_size = check_page_size(request.page_size)
        sort, descending = parse_sort_by(request.sort_by)
        conditions = validate_filter(filter_message) if filter_message is not None else ()
        return ListOptions(sort, descending, conditions), None, page_size
    page_size = check_page_size(request.page_size)
    token = _decode_token(request.page_token, token_key)
    if token.binding != binding:
        # Multi-user mode: a token is good only for the caller it was issued to.
        raise invalid_input_with_details(
            "the token was issued to another caller", INVALID_PAGE_TOKEN
        )
    options = ListOptions(token.sort, token.descending, token.conditions)
    if request.sort_by or request.filter:
        # KFP: criteria re-sent with a token must match the token's. Decision D6: compare the
        # parsed, canonical form, so the same filter re-sent is accepted.
        filter_message = parse_filter_message(request.filter)
        sort, descending = parse_sort_by(request.sort_by)
        conditions = validate_filter(filter_message) if filter_message is not None else ()
        if ListOptions(sort, descending, conditions) != options:
            raise invalid_input(
                "page token does not match the supplied sort by and/or filtering criteria. "
                "Either specify the same criteria or leave the latter empty if page token is "
                "specified."
            )
    return options, token.cursor, page_size


def check_page_size(page_size: int) -> int:
    """0 → the default (20); above the maximum → the maximum (200); negative → an error."""
    if page_size < 0:
        # Decision D3: the real number, where KFP prints '\uFFFD'.
        raise invalid_input(f"The page size should be greater than 0. Got '{page_size}'")
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def parse_sort_by(sort_by: str) -> tuple[Column, bool]:
    """ "field", "field asc" or "field desc", case-insensitive; "" is created_at ascending."""
    if not sort_by:
        return Column.CREATED_AT, False
    words = sort_by.lower().split()
    if not 1 <= len(words) <= 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
        raise invalid_input(
            f'Received invalid sort by format "{echo(sort_by)}". Supported format: "field_name", '
            '"field_name desc", or "field_name asc"'
        )
    column = SORT_FIELDS.get(words[0])
    if column is None:
        raise invalid_input(f'Invalid sorting field: "{echo(words[0])}" on listable type Task')
    return column, len(words) == 2 and words[1] == "desc"


def _decode_token(text: str, key: bytes) -> PageToken:
    try:
        return decode_page_token(text, key)
    except PageTokenError as error:
        # Decision D4: "page", where KFP 1.x says "package".
        raise invalid_input_with_details(str(error), INVALID_PAGE_TOKEN) from None


def _reference_conditions(request: task_pb2.ListTasksRequest) -> tuple[Condition, ...]:
    if not request.HasField("resource_reference_key"):
        return ()
    key = request.resource_reference_key
    column = REFERENCE_COLUMNS.get(key.type)
    if column is not None:
        if "\x00" in key.id:
            message = "resource_reference_key.id must not contain NUL characters"
            raise invalid_input(message).wrap(FILTER_FAILED)
        return (Condition(column, Op.EQ, key.id),)
    if key.type in (ResourceType.EXPERIMENT, ResourceType.JOB, ResourceType.PIPELINE_VERSION):
        # Decision D2: KFP 1.8 silently ignores these and returns everything.
        name = ResourceType.Name(key.type)
        raise invalid_input(f"Unsupported resource type for tasks: {name}").wrap(FILTER_FAILED)
    name = ResourceType.Name(key.type) if key.type in ResourceType.values() else str(key.type)
    raise (
        invalid_input(f"Unsupported resource type: {name}")
        .wrap("Unrecognized resource reference type.")
        .wrap(FILTER_FAILED)
    )
