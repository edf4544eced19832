"""PATCH field-mask auto-fill (docs/decisions.md T34, grpc-gateway's allow_patch_feature).

Pure. On a PATCH rule whose body is one field (not "*"), when the request has exactly one
top-level `google.protobuf.FieldMask` field and the client set no mask, the mask becomes the
leaf paths present in the JSON body: proto field names, relative to the body field, sorted.
Recursion stops at repeated, map and well-known-type fields; path-bound fields are left out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

from google.protobuf import descriptor
from google.protobuf.message import Message

from taskgate.gateway.field_paths import FieldDescriptor, is_plain_message

FIELD_MASK = "google.protobuf.FieldMask"


def mask_field(
    http_method: str, body_field: FieldDescriptor | None, request: Message
) -> FieldDescriptor | None:
    """The FieldMask field to fill for this route, or None when T34 does not apply."""
    if http_method != "PATCH" or body_field is None:
        return None
    fields = cast(Sequence[FieldDescriptor], request.DESCRIPTOR.fields)
    masks = [f for f in fields if _is_field_mask(f) and not f.is_repeated]
    return masks[0] if len(masks) == 1 else None


def body_paths(
    document: Any, message: descriptor.Descriptor, excluded: Collection[str] = ()
) -> list[str]:
    """The sorted leaf paths a JSON object sets: {"title":"t","author":{"name":"n"}} gives
    ["author.name", "title"]. Keys may be proto or JSON names; unknown keys are skipped."""
    if not isinstance(document, dict):
        return []
    return sorted(p for p in _paths(document, message, "") if p not in excluded)


def _paths(document: dict[str, Any], message: descriptor.Descriptor, prefix: str) -> list[str]:
    by_name = {f.name: f for f in message.fields}
    by_json = {f.json_name: f for f in message.fields}
    found: list[str] = []
    for key, value in document.items():
        field = by_name.get(key) or by_json.get(key)
        if field is None:
            continue
        path = prefix + field.name
        if is_plain_message(field) and isinstance(value, dict):
            nested = cast(descriptor.Descriptor, field.message_type)
            found += _paths(value, nested, path + ".") or [path]
        else:
            found.append(path)
    return found


def _is_field_mask(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name == FIELD_MASK
