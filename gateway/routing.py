"""Match HTTP requests to RPCs: a route table built from service descriptors. Pure.

A trie over raw (still percent-encoded) path segments, tried literal before `*` before `**` with
backtracking, so precedence never depends on declaration order (docs/decisions.md T12-T15).

One bad binding in an upstream must not take down every other route (T51): unless `strict`, a
binding http.proto forbids is skipped and a second binding of one method and template loses to
the first, each with a warning; `strict` refuses the whole table with RouteConfigError.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from google.protobuf import descriptor, descriptor_pool, message_factory
from google.protobuf.message import Message

from taskgate.gateway.field_paths import (
    FieldDescriptor,
    FieldIndex,
    FieldPathError,
    resolve_field_path,
)
from taskgate.gateway.http_rules import HttpBinding, RouteConfigError, http_bindings_for
from taskgate.gateway.path_template import (
    PathTemplate,
    SegmentKind,
    TemplateSyntaxError,
    Variable,
    parse_path_template,
)

__all__ = [
    "MethodNotAllowed",
    "NoRoute",
    "Route",
    "RouteConfigError",
    "RouteMatch",
    "RouteTable",
]

log = logging.getLogger(__name__)

HTTP_BODY = "google.api.HttpBody"
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One HTTP binding of one RPC, validated against its messages."""

    #: the full method name, "/pkg.Service/Method".
    rpc: str
    method: descriptor.MethodDescriptor
    #: upper-case HTTP method, or "*" (any method).
    http_method: str
    template: PathTemplate
    request_class: type[Message]
    #: None (no body), "*" (the whole request) or a top-level request field name.
    body_field: str | None
    server_streaming: bool
    #: each path variable with the request fields it names.
    path_fields: tuple[tuple[Variable, tuple[FieldDescriptor, ...]], ...]
    body_descriptor: FieldDescriptor | None
    response_body_descriptor: FieldDescriptor | None
    #: the fields of the request and of every message in it, by proto or JSON name; shared by
    #: the routes of one table and gone with it.
    field_index: FieldIndex
    #: the request is a stream (client-streaming or bidirectional; T5: NDJSON lines).
    client_streaming: bool = False

    @property
    def pool(self) -> descriptor_pool.DescriptorPool:
        """The pool the method came from (resolves `Any` in its messages)."""
        pool: descriptor_pool.DescriptorPool = self.method.containing_service.file.pool
        return pool

    @property
    def request_is_http_body(self) -> bool:
        if self.body_descriptor is not None:
            return _is_http_body(self.body_descriptor.message_type)
        return self.body_field == "*" and _is_http_body(self.method.input_type)

    @property
    def response_is_http_body(self) -> bool:
        if self.response_body_descriptor is not None:
            return _is_http_body(self.response_body_descriptor.message_type)
        return _is_http_body(self.method.output_type)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    #: each path variable with its raw (still percent-encoded) captured text.
    captures: tuple[tuple[Variable, str], ...]


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No template matches the path (404)."""


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    """Templates match the path, but none for this HTTP method (405)."""

    allowed: frozenset[str]


_Table = dict[str, Route]  # HTTP method -> route
Found = RouteMatch | NoRoute | MethodNotAllowed
#: `RouteTable.match` remembers the answers for this many (method, path) pairs at most, then
#: starts again, and only for paths this short: memory stays bounded (under 1 MiB), whatever
#: paths clients send.
MAX_REMEMBERED = 1024
MAX_REMEMBERED_PATH = 256


@dataclass(slots=True)
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    star: _Node | None = None
    double_star: _Node | None = None
    #: verb (None: no verb) -> HTTP method -> route, for templates that end here.
    tables: dict[str | None, _Table] = field(default_factory=dict)


class RouteTable:
    """Every HTTP binding of a set of services; `match` finds the route for a request."""

    def __init__(
        self,
        routes: Iterable[Route],
        methods: Iterable[descriptor.MethodDescriptor] = (),
        *,
        strict: bool = False,
    ) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        #: every method of the services, annotated or not, by "/pkg.Service/Method" (what
        #: gRPC-Web and Connect calls name).
        self.methods: dict[str, descriptor.MethodDescriptor] = {
            f"/{m.containing_service.full_name}/{m.name}": m for m in methods
        }
        self._root = _Node()
        self._verbs: frozenset[str] = frozenset(
            r.template.verb for r in self.routes if r.template.verb is not None
        )
        #: T51: a duplicate binding is served by the first route only.
        self.routes = tuple(route for route in self.routes if self._insert(route, strict=strict))
        self._remembered: dict[tuple[str, str], Found] = {}

    @classmethod
    def from_services(
        cls, services: Iterable[descriptor.ServiceDescriptor], *, strict: bool = False
    ) -> RouteTable:
        """Routes for every annotated method. A bad binding is skipped with a warning, or
        with `strict` raises RouteConfigError (T51)."""
        services = tuple(services)
        index = FieldIndex(method.input_type for s in services for method in s.methods)
        routes: list[Route] = []
        for service in services:
            for method in service.methods:
                try:
                    routes.extend(_routes_for(method, index))
                except RouteConfigError as error:
                    if strict:
                        raise
                    routes.extend(_good_routes_for(method, index, error))
        return cls(routes, (method for s in services for method in s.methods), strict=strict)

    def match(self, http_method: str, raw_path: str) -> Found:
        """The route for `raw_path` (still percent-encoded; a query string is ignored).

        Remembered: the table never changes once built, and most requests ask for a path asked
        for before (a walk of the trie costs 4-8 µs, a look-up 0.2 µs)."""
        key = (http_method, raw_path)
        found = self._remembered.get(key)
        if found is None:
            found = self._match(http_method, raw_path)
            if len(raw_path) <= MAX_REMEMBERED_PATH:
                if len(self._remembered) >= MAX_REMEMBERED:
                    self._remembered.clear()
                self._remembered[key] = found
        return found

    def _match(self, http_method: str, raw_path: str) -> Found:
        path = raw_path.split("?", 1)[0]
        if not path.startswith("/"):
            return NoRoute()
        segments = path[1:].split("/")
        while segments and not segments[-1]:
            segments.pop()  # T14: a trailing "/" is tolerated
        allowed: set[str] = set()
        for attempt, verb in self._attempts(segments):
            for table in _candidates(self._root, attempt, 0, verb):
                route = table.get(http_method) or table.get("*")
                if route is not None:
                    return RouteMatch(route, _captures(route.template, attempt))
                allowed.update(table)
        return MethodNotAllowed(frozenset(allowed)) if allowed else NoRoute()

    def _attempts(self, segments: list[str]) -> Iterator[tuple[list[str], str | None]]:
        # T13: a registered verb is tried first, then the colon is taken as part of the literal.
        head, colon, verb = segments[-1].rpartition(":") if segments else ("", "", "")
        if colon and verb in self._verbs:
            yield [*segments[:-1], head], verb
        yield segments, None

    def _insert(self, route: Route, *, strict: bool) -> bool:
        """Add `route`; False if an earlier route has its method and template (T51)."""
        node = self._root
        for segment in route.template.segments:
            if segment.kind is SegmentKind.LITERAL:
                node = node.literals.setdefault(_normalize(segment.literal), _Node())
            elif segment.kind is SegmentKind.STAR:
                node.star = node.star or _Node()
                node = node.star
            else:
                node.double_star = node.double_star or _Node()
                node = node.double_star
        table = node.tables.setdefault(route.template.verb, {})
        clash = table.get(route.http_method)
        if clash is not None:
            message = (
                f"{route.http_method} {route.template.text} ({route.method.full_name}) "
                f"duplicates {clash.template.text} ({clash.method.full_name})"
            )
            if strict:
                raise RouteConfigError(message)
            log.warning("skipping a binding: %s, which is served", message)
            return False
        table[route.http_method] = route
        return True


def _candidates(node: _Node, segments: Sequence[str], i: int, verb: str | None) -> Iterator[_Table]:
    """The route tables matching `segments[i:]`, best first (literal, then `*`, then `**`)."""
    if i == len(segments):
        if verb in node.tables:
            yield node.tables[verb]
    else:
        literal = node.literals.get(_normalize(segments[i]))
        if literal is not None:
            yield from _candidates(literal, segments, i + 1, verb)
        if node.star is not None and segments[i]:
            yield from _candidates(node.star, segments, i + 1, verb)
    if node.double_star is not None and verb in node.double_star.tables:
        yield node.double_star.tables[verb]


def _captures(template: PathTemplate, segments: Sequence[str]) -> tuple[tuple[Variable, str], ...]:
    # Every segment but a final `**` consumes exactly one path segment, so positions line up.
    last = len(template.segments)
    return tuple(
        (v, "/".join(segments[v.start : (len(segments) if v.end == last else v.end)]))
        for v in template.variables
    )


def _normalize(segment: str) -> str:
    """Compare literals in one encoded form: unreserved characters decoded (T7)."""
    if "%" not in segment:
        return segment
    return _ESCAPE.sub(_normalize_escape, segment)


def _normalize_escape(escape: re.Match[str]) -> str:
    char = chr(int(escape.group()[1:], 16))
    return char if char in _UNRESERVED else escape.group().upper()


def _is_http_body(message: descriptor.Descriptor | None) -> bool:
    return message is not None and message.full_name == HTTP_BODY


def _routes_for(method: descriptor.MethodDescriptor, index: FieldIndex) -> list[Route]:
    # T5: every annotated method keeps its routes, streaming or not, so that no broader route
    # of another method answers its URLs; one the gateway cannot serve answers 501 (T62).
    return [_route(method, binding, index) for binding in http_bindings_for(method)]


def _good_routes_for(
    method: descriptor.MethodDescriptor, index: FieldIndex, error: RouteConfigError
) -> list[Route]:
    """T51: the routes of `method`'s sound bindings (what `_routes_for` builds), each bad one
    skipped with a warning naming it; none when the rule itself cannot be read."""
    try:
        bindings = http_bindings_for(method)
    except RouteConfigError:
        log.warning("skipping every binding: %s", error)  # the message names the method
        return []
    routes: list[Route] = []
    for binding in bindings:
        try:
            routes.append(_route(method, binding, index))
        except RouteConfigError as bad:
            log.warning("skipping a binding: %s", bad)
    return routes


def _route(method: descriptor.MethodDescriptor, binding: HttpBinding, index: FieldIndex) -> Route:
    where = f"{method.full_name} ({binding.http_method} {binding.path})"
    try:
        template = parse_path_template(binding.path)
    except TemplateSyntaxError as exc:
        raise RouteConfigError(f"{where}: {exc}") from None
    body = _top_level(method.input_type, binding.body, where, "body")
    response_body = _top_level(method.output_type, binding.response_body, where, "response_body")
    return Route(
        rpc=f"/{method.containing_service.full_name}/{method.name}",
        method=method,
        http_method=binding.http_method,
        template=template,
        request_class=message_factory.GetMessageClass(method.input_type),
        body_field=binding.body or None,
        server_streaming=method.server_streaming,
        client_streaming=method.client_streaming,
        path_fields=tuple((v, _path_field(method, v, where)) for v in template.variables),
        body_descriptor=body,
        response_body_descriptor=response_body,
        field_index=index,
    )


def _top_level(
    message: descriptor.Descriptor, name: str, where: str, what: str
) -> FieldDescriptor | None:
    if not name or (name == "*" and what == "body"):
        return None
    found = message.fields_by_name.get(name)
    if found is None:
        raise RouteConfigError(f"{where}: {what} {name!r} is not a field of {message.full_name}")
    return found


def _path_field(
    method: descriptor.MethodDescriptor, variable: Variable, where: str
) -> tuple[FieldDescriptor, ...]:
    try:
        fields = resolve_field_path(method.input_type, variable.field_path)
    except FieldPathError as exc:
        raise RouteConfigError(f"{where}: path variable {variable.name!r}: {exc}") from None
    leaf = fields[-1]
    if leaf.message_type is not None:  # a repeated scalar takes comma-separated values (T51)
        raise RouteConfigError(
            f"{where}: path variable {variable.name!r} must name a non-message field (http.proto)"
        )
    return fields
