"""Read `google.api.http` rules from method descriptors, from any descriptor pool. Pure.

The option is read by re-parsing the serialized `MethodOptions` with `google.api.annotations_pb2`
imported, so it is found even when the descriptor comes from a pool built from server reflection,
where the extension would otherwise be an unknown field (docs/decisions.md T48).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import descriptor, descriptor_pb2


class RouteConfigError(ValueError):
    """An HttpRule that cannot be served (a start-up error)."""


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One HttpRule or one of its `additional_bindings`, flattened."""

    #: upper-case HTTP method, or "*" for `custom { kind: "*" }`.
    http_method: str
    path: str
    #: "" (no body), "*", or a top-level request field name.
    body: str
    #: "" (the whole response), or a top-level response field name.
    response_body: str


def http_rule_for(method: descriptor.MethodDescriptor) -> http_pb2.HttpRule | None:
    """The method's `google.api.http` option, or None when it has none."""
    options = descriptor_pb2.MethodOptions()
    options.ParseFromString(_serialized_options(method))
    if not options.HasExtension(annotations_pb2.http):
        return None
    return options.Extensions[annotations_pb2.http]


def http_bindings_for(method: descriptor.MethodDescriptor) -> list[HttpBinding]:
    """Every binding of the method's rule (the rule itself first); [] when unannotated."""
    rule = http_rule_for(method)
    if rule is None:
        return []
    bindings = [_binding(method, rule)]
    for extra in rule.additional_bindings:
        if extra.additional_bindings:
            raise RouteConfigError(
                f"{method.full_name}: additional_bindings must not nest (http.proto)"
            )
        bindings.append(_binding(method, extra))
    return bindings


def _serialized_options(method: descriptor.MethodDescriptor) -> bytes:
    # `method.GetOptions()` is a MethodOptions of whichever pool built it; its bytes are the same.
    return method.GetOptions().SerializeToString()


def _binding(method: descriptor.MethodDescriptor, rule: http_pb2.HttpRule) -> HttpBinding:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise RouteConfigError(f"{method.full_name}: HttpRule has no pattern (get, post, ...)")
    if pattern == "custom":
        kind = rule.custom.kind.strip()
        if not kind:
            raise RouteConfigError(f"{method.full_name}: custom HttpRule has an empty kind")
        http_method, path = kind.upper(), rule.custom.path
    else:
        http_method, path = pattern.upper(), getattr(rule, pattern)
    return HttpBinding(http_method, path, rule.body, rule.response_body)
