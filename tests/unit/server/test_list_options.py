"""ListTasks options: page size, sort, tokens, criteria matching, resource keys (docs/decisions.md K5-K9, K14)."""

from __future__ import annotations

import json

import pytest

from taskgate.api import resource_reference_pb2, task_pb2
from taskgate.server.errors import ServiceError
from taskgate.server.list_options import check_page_size, parse_sort_by, plan_list
from taskgate.server.page_tokens import encode_page_token
from taskgate.store.records import Column, Condition, Cursor, Op

KEY = b"k" * 32
LIST_PREFIX = "Failed to create list options: Invalid input error: "
FP_FILTER = json.dumps({"predicates": [{"op": "EQUALS", "key": "fingerprint", "stringValue": "a"}]})
NUM_FILTER = json.dumps(
    {"predicates": [{"op": "GREATER_THAN", "key": "created_at", "longValue": 5}]}
)


@pytest.mark.parametrize(("given", "used"), [(0, 20), (1, 1), (100, 100), (200, 200), (300, 200)])
def test_check_page_size(given: int, used: int) -> None:
    assert check_page_size(given) == used


@pytest.mark.parametrize(
    ("sort_by", "column", "descending"),
    [
        ("", Column.CREATED_AT, False),
        ("created_at", Column.CREATED_AT, False),
        ("created_at desc", Column.CREATED_AT, True),
        ("CREATED_AT   DESC", Column.CREATED_AT, True),
        ("id asc", Column.ID, False),
        ("pipelineName desc", Column.PIPELINE_NAME, True),  # decision D9
        ("RUNID", Column.RUN_ID, False),
        ("mlmdExecutionID", Column.MLMD_EXECUTION_ID, False),
        ("finished_at", Column.FINISHED_AT, False),
        ("fingerprint desc", Column.FINGERPRINT, True),
        ("namespace", Column.NAMESPACE, False),
    ],
)
def test_parse_sort_by(sort_by: str, column: Column, descending: bool) -> None:
    assert parse_sort_by(sort_by) == (column, descending)


def list_error(**fields: object) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        plan_list(task_pb2.ListTasksRequest(**fields), KEY)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"sort_by": "created_at descending"},
            'Received invalid sort by format "created_at descending". Supported format: '
            '"field_name", "field_name desc", or "field_name asc"',
        ),
        (
            {"sort_by": "timestamp asc hello"},
            'Received invalid sort by format "timestamp asc hello". Supported format: '
            '"field_name", "field_name desc", or "field_name asc"',
        ),
        ({"sort_by": "foo"}, 'Invalid sorting field: "foo" on listable type Task'),
        ({"sort_by": "Foo DESC"}, 'Invalid sorting field: "foo" on listable type Task'),
        ({"page_size": -3}, "The page size should be greater than 0. Got '-3'"),
        # KFP's order without a token: filter JSON, page size, sort, filter keys.
        (
            {"filter": "x", "page_size": -1},
            'failed to parse valid filter from "x": invalid JSON at character 1: Expecting value',
        ),
        ({"page_size": -1, "sort_by": "foo"}, "The page size should be greater than 0. Got '-1'"),
        (
            {"sort_by": "foo", "filter": '{"predicates":[{"op":"EQUALS","key":"x"}]}'},
            'Invalid sorting field: "foo" on listable type Task',
        ),
    ],
)
def test_list_option_errors(fields: dict[str, object], message: str) -> None:
    error = list_error(**fields)
    assert error.external == message
    assert error.chain == LIST_PREFIX + message


def token_for(
    sort: Column = Column.CREATED_AT,
    descending: bool = False,
    conditions: tuple[Condition, ...] = (),
) -> str:
    from taskgate.server.page_tokens import PageToken

    return encode_page_token(PageToken(sort, descending, conditions, Cursor(5, "u2")), KEY)


def test_token_supplies_sort_filter_and_cursor() -> None:
    conditions = (Condition(Column.FINGERPRINT, Op.EQ, "a"),)
    token = token_for(Column.CREATED_AT, True, conditions)
    plan = plan_list(task_pb2.ListTasksRequest(page_token=token, page_size=7), KEY)
    assert plan.query.sort == Column.CREATED_AT
    assert plan.query.descending
    assert plan.query.conditions == conditions
    assert plan.query.after == Cursor(5, "u2")
    assert plan.query.limit == 7


@pytest.mark.parametrize(
    ("token_args", "sort_by", "filter_text", "ok"),
    [
        ((Column.CREATED_AT, True, ()), "created_at desc", "", True),
        ((Column.CREATED_AT, True, ()), "CREATED_AT   DESC", "", True),
        ((Column.CREATED_AT, True, ()), "created_at", "", False),
        (
            (Column.CREATED_AT, False, (Condition(Column.FINGERPRINT, Op.EQ, "a"),)),
            "",
            FP_FILTER,
            True,
        ),
        (
            (Column.CREATED_AT, True, (Condition(Column.FINGERPRINT, Op.EQ, "a"),)),
            "",
            FP_FILTER,
            False,
        ),
        # Decision D6: numeric filters re-sent with their token are accepted.
        (
            (Column.CREATED_AT, False, (Condition(Column.CREATED_AT, Op.GT, 5),)),
            "",
            NUM_FILTER,
            True,
        ),
        ((Column.CREATED_AT, False, ()), "", NUM_FILTER, False),
    ],
)
def test_criteria_resent_with_a_token(
    token_args: tuple[Column, bool, tuple[Condition, ...]], sort_by: str, filter_text: str, ok: bool
) -> None:
    request = task_pb2.ListTasksRequest(
        page_token=token_for(*token_args), sort_by=sort_by, filter=filter_text
    )
    if ok:
        plan_list(request, KEY)
        return
    with pytest.raises(ServiceError) as caught:
        plan_list(request, KEY)
    assert caught.value.external.startswith("page token does not match the supplied sort by")


@pytest.mark.parametrize(
    "token",
    ["random nonsense", "abc", token_for()[:-3], token_for() + "AA", "x" * 500, "🙂"],
)
def test_bad_tokens_are_invalid_page_token(token: str) -> None:
    error = list_error(page_token=token)
    assert error.external == "Invalid page token."
    assert error.chain.startswith(
        "Failed to create list options: InvalidInputError: Invalid page token.: "
    )


def test_token_signed_with_another_key_is_rejected() -> None:
    error = list_error(page_token=token_for().replace("A", "B", 1))
    assert error.external == "Invalid page token."
    with pytest.raises(ServiceError):
        plan_list(task_pb2.ListTasksRequest(page_token=token_for()), b"another key" * 3)


def test_page_size_is_checked_before_the_token() -> None:
    error = list_error(page_token="garbage", page_size=-1)
    assert error.external == "The page size should be greater than 0. Got '-1'"


RT = resource_reference_pb2.ResourceType


@pytest.mark.parametrize(
    ("key_type", "column"),
    [(RT.PIPELINE, Column.PIPELINE_NAME), (RT.NAMESPACE, Column.NAMESPACE)],
)
def test_resource_reference_filters(key_type: int, column: Column) -> None:
    request = task_pb2.ListTasksRequest(
        resource_reference_key=resource_reference_pb2.ResourceKey(type=key_type, id="x")  # type: ignore[arg-type]
    )
    assert plan_list(request, KEY).query.conditions == (Condition(column, Op.EQ, "x"),)


@pytest.mark.parametrize(
    ("key_type", "chain"),
    [
        (
            RT.EXPERIMENT,
            "Validating filter failed.: Invalid input error: Unsupported resource type for tasks: EXPERIMENT",
        ),
        (
            RT.JOB,
            "Validating filter failed.: Invalid input error: Unsupported resource type for tasks: JOB",
        ),
        (
            RT.PIPELINE_VERSION,
            "Validating filter failed.: Invalid input error: Unsupported resource type for tasks: PIPELINE_VERSION",
        ),
        (
            RT.UNKNOWN_RESOURCE_TYPE,
            "Validating filter failed.: Unrecognized resource reference type.: Invalid input error: Unsupported resource type: UNKNOWN_RESOURCE_TYPE",
        ),
    ],
)
def test_unsupported_resource_types(key_type: int, chain: str) -> None:
    error = list_error(resource_reference_key=resource_reference_pb2.ResourceKey(type=key_type))  # type: ignore[arg-type]
    assert error.chain == chain


def test_resource_reference_is_not_kept_in_the_token() -> None:
    request = task_pb2.ListTasksRequest(
        resource_reference_key=resource_reference_pb2.ResourceKey(type=RT.NAMESPACE, id="ns"),
        page_size=1,
    )
    plan = plan_list(request, KEY)
    assert plan.next_page_token(Cursor(1, "a")).conditions == ()
