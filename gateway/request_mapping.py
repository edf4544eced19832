"""Build the request message of a matched route from the body, the path and the query. Pure.

Order (docs/decisions.md T16-T19, T29-T30): the body first, then path variables (the path
wins over the body), then query parameters for the fields neither of them binds. A path
variable naming a repeated field takes the decoded segment split on commas, as grpc-gateway
v2 does (T51).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.field_mask import body_paths, mask_field
from taskgate.gateway.field_paths import FieldDescriptor, descend, expected_value, parse_text
from taskgate.gateway.json_codec import load_json_body, parse_body_into
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.path_template import PathDecodeError, Variable, decode_path_value
from taskgate.gateway.query import QueryBindings, apply_query, parse_query_string
from taskgate.gateway.routing import Route, RouteMatch


def build_request(
    match: RouteMatch,
    query: str,
    body: bytes,
    content_type: str,
    options: GatewayOptions,
) -> Message:
    """The request for `match`; `query` is the raw query string (without `?`).

    Bad input raises `TranscodeError(INVALID_ARGUMENT)` naming the field or parameter.
    """
    route = match.route
    request = route.request_class()
    document = _apply_body(route, request, body, content_type, options)
    for (variable, raw), (_, fields) in zip(match.captures, route.path_fields, strict=True):
        _apply_path_variable(route, request, variable, fields, raw, options)
    if query:
        bindings = QueryBindings(
            path_bound=tuple(tuple(f.name for f in fields) for _, fields in route.path_fields),
            body_field=route.body_field,
            strict=options.strict,
        )
        apply_query(request, parse_query_string(query), bindings, route.field_index)
    if document is not None:
        _fill_field_mask(route, request, document)
    return request


def _fill_field_mask(route: Route, request: Message, document: Any) -> None:
    """T34: a PATCH without a mask updates exactly the fields its body names."""
    mask = mask_field(route.http_method, route.body_descriptor, request)
    body = route.body_descriptor
    if mask is None or body is None or body.message_type is None or request.HasField(mask.name):
        return
    bound = {
        ".".join(f.name for f in fields[1:])
        for _, fields in route.path_fields
        if fields[0].name == body.name
    }
    getattr(request, mask.name).paths.extend(body_paths(document, body.message_type, bound))


def _apply_body(
    route: Route, request: Message, body: bytes, content_type: str, options: GatewayOptions
) -> Any:
    """Merge the body into the request; the decoded JSON (None for none or a raw body)."""
    if route.body_field is None:
        return None  # T33: a body on a route without one is ignored
    if route.request_is_http_body:
        if body:  # T36: raw bytes and the request's Content-Type
            target = request if route.body_descriptor is None else _sub_message(request, route)
            setattr(target, "content_type", content_type)  # noqa: B010
            setattr(target, "data", body)  # noqa: B010
        return None
    document = load_json_body(body)
    parse_body_into(
        document,
        request,
        route.body_descriptor,
        ignore_unknown_fields=not options.strict,
        index=route.field_index,
        pool=route.pool,
    )
    return document


def _sub_message(request: Message, route: Route) -> Message:
    assert route.body_descriptor is not None  # noqa: S101 (narrowing only)
    sub: Message = getattr(request, route.body_descriptor.name)
    return sub


def _apply_path_variable(
    route: Route,
    request: Message,
    variable: Variable,
    fields: tuple[FieldDescriptor, ...],
    raw: str,
    options: GatewayOptions,
) -> None:
    try:
        text = decode_path_value(raw, multi_segment=variable.multi_segment)
    except PathDecodeError as exc:
        raise TranscodeError.invalid(f'invalid path variable "{variable.name}": {exc}') from None
    leaf = fields[-1]
    if leaf.is_repeated:
        _apply_repeated_path_variable(request, variable, fields, text)
        return
    value = _parse_path_value(variable, leaf, text)
    holder = descend(request, fields)
    if options.strict and _body_covers(route, fields) and _conflicts(holder, leaf, value):
        raise TranscodeError.invalid(
            f'the body sets "{variable.name}" to a value other than the path\'s'
        )
    setattr(holder, leaf.name, value)  # T19: the path wins


def _apply_repeated_path_variable(
    request: Message, variable: Variable, fields: tuple[FieldDescriptor, ...], text: str
) -> None:
    """T51: `1,2,3` into a repeated field, each element parsed by type; the path's values
    replace any the body gave."""
    leaf = fields[-1]
    values = [_parse_path_value(variable, leaf, element) for element in text.split(",")]
    container: Any = getattr(descend(request, fields), leaf.name)
    del container[:]
    container.extend(values)


def _parse_path_value(variable: Variable, leaf: FieldDescriptor, text: str) -> Any:
    try:
        return parse_text(leaf, text)
    except ValueError:
        raise TranscodeError.invalid(
            f'invalid value "{text}" for path variable "{variable.name}": '
            f"expected {expected_value(leaf)}"
        ) from None


def _body_covers(route: Route, fields: tuple[FieldDescriptor, ...]) -> bool:
    return route.body_field == "*" or route.body_field == fields[0].name


def _conflicts(holder: Message, leaf: FieldDescriptor, value: Any) -> bool:
    if leaf.has_presence:
        if not holder.HasField(leaf.name):
            return False
    elif getattr(holder, leaf.name) == leaf.default_value:
        return False
    current: Any = getattr(holder, leaf.name)
    return bool(current != value)
