"""Property tests: whatever text arrives, the parsers raise only their documented errors.

Filter parser (server/filters.py): ServiceError (INVALID_ARGUMENT). Page-token decoder
(server/page_tokens.py): PageTokenError. Path templates (gateway/path_template.py):
TemplateSyntaxError; path values: PathDecodeError. Request mapping (gateway/request_mapping.py):
TranscodeError (INVALID_ARGUMENT). Timestamps (gateway/timestamps.py): a bool, and never True for
text protobuf's parser refuses.
"""

from __future__ import annotations

import contextlib
import json
import string

import grpc
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.path_template import (
    PathDecodeError,
    TemplateSyntaxError,
    decode_path_value,
    parse_path_template,
)
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import RouteMatch
from taskgate.gateway.timestamps import is_rfc3339
from taskgate.server.errors import ServiceError
from taskgate.server.filters import parse_filter_message, validate_filter
from taskgate.server.page_tokens import PageTokenError, decode_page_token
from tests.unit.gateway.descriptors import fixture_table

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TABLE = fixture_table()
KEY = b"k" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
predicate_keys = st.sampled_from(
    [
        "op",
        "key",
        "string_value",
        "int_value",
        "long_value",
        "timestamp_value",
        "timestampValue",
        "int_values",
        "string_values",
        "stringValue",
        "intValues",
        "bogus",
    ]
)
predicates = st.dictionaries(predicate_keys, json_values, max_size=4)
filters = st.builds(lambda p: json.dumps({"predicates": p}), st.lists(predicates, max_size=3))
timestamp_text = st.from_regex(
    r"\A[0-9０-９]{1,5}-[0-9]{1,2}-[0-9]{1,2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,10})?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?\Z"
)


@FAST
@given(st.one_of(st.text(max_size=200), filters, json_values.map(json.dumps)))
def test_filter_parser_raises_only_service_errors(text: str) -> None:
    failure = None
    try:
        message = parse_filter_message(text)
        if message is not None:
            validate_filter(message)
    except ServiceError as error:
        failure = error
    if failure is not None:
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "<class" not in failure.chain


@FAST
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.hex())))
def test_page_token_decoder_raises_only_page_token_errors(text: str) -> None:
    with contextlib.suppress(PageTokenError):
        decode_page_token(text, KEY)


@FAST
@given(st.text(alphabet=string.printable + "{}*=/:.é", max_size=60))
def test_path_templates_raise_only_syntax_errors(text: str) -> None:
    with contextlib.suppress(TemplateSyntaxError):
        parse_path_template(text)


@FAST
@given(st.text(max_size=60), st.booleans())
def test_path_values_raise_only_decode_errors(raw: str, multi: bool) -> None:
    with contextlib.suppress(PathDecodeError):
        decode_path_value(raw, multi_segment=multi)


query_strings = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "f_int32",
                "f_int64",
                "f_double",
                "f_bool",
                "f_bytes",
                "f_enum",
                "f_timestamp",
                "f_duration",
                "f_string",
                "nested.f_int32",
                "bogus",
                "f_int32s",
                "%zz",
                "",
            ]
        ),
        st.text(max_size=20),
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@FAST
@given(
    st.sampled_from([("GET", "/v1/echo/s"), ("POST", "/v1/echo/s"), ("GET", "/v1/echo/%ff")]),
    query_strings,
    st.one_of(st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode())),
    st.booleans(),
)
def test_request_mapping_raises_only_transcode_errors(
    route: tuple[str, str], query: str, body: bytes, strict: bool
) -> None:
    found = TABLE.match(*route)
    if not isinstance(found, RouteMatch):
        return
    options = GatewayOptions.generic(strict=strict)
    failure = None
    try:
        build_request(found, query, body, "application/json", options)
    except TranscodeError as error:
        failure = error
    if failure is not None:
        assert failure.status.code == grpc.StatusCode.INVALID_ARGUMENT


@FAST
@given(st.one_of(timestamp_text, st.text(max_size=40)))
def test_strict_timestamps_are_a_subset_of_protobufs(text: str) -> None:
    if is_rfc3339(text):
        timestamp = timestamp_pb2.Timestamp()
        try:
            timestamp.FromJsonString(text)
        except ValueError:
            assert text.startswith("0000")  # the range check is protobuf's, after ours
