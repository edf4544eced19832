"""PATCH field-mask auto-fill (transcoding-reference R34, grpc-gateway's allow_patch_feature).

Pure. On a PATCH rule whose body is one field (not "*"), when the request has exactly one
top-level `google.protobuf.FieldMask` field and the client set no mask, the mask becomes the
leaf paths present in the JSON body: proto field names, relative to the body field, sorted.
Recursion stops at repeated, map and well-known-type fields; path-bound fields are left out.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from google.protobuf import descriptor
from google.protobuf.message import Message

FIELD_MASK = "google.protobuf.FieldMask"
_MESSAGE = descriptor.FieldDescriptor.TYPE_MESSAGE


def mask_field(
    http_method: str, body_field: descriptor.FieldDescriptor | None, request: Message
) -> descriptor.FieldDescriptor | None:
    """The FieldMask field to fill for this route, or None when R34 does not apply."""
    if http_method != "PATCH" or body_field is None:
        return None
    fields = cast(list[descriptor.FieldDescriptor], request.DESCRIPTOR.fields)
    masks = [f for f in fields if _message_name(f) == FIELD_MASK and not _is_repeated(f)]
    return masks[0] if len(masks) == 1 else None


def body_paths(
    document: Any, message: descriptor.Descriptor, excluded: Collection[str] = ()
) -> list[str]:
    """The sorted leaf paths a JSON object sets: {"title":"t","author":{"name":"n"}} gives
    ["author.name", "title"]. Keys may be proto or JSON names; unknown keys are skipped."""
    if not isinstance(document, dict):
        return []
    paths = [p for p in _paths(document, message, "") if p not in excluded]
    return sorted(paths)


def _paths(document: dict[str, Any], message: descriptor.Descriptor, prefix: str) -> list[str]:
    by_name = {f.name: f for f in message.fields}
    by_json = {f.json_name: f for f in message.fields}
    found: list[str] = []
    for key, value in document.items():
        field = by_name.get(key) or by_json.get(key)
        if field is None:
            continue
        path = prefix + field.name
        if _is_plain_message(field) and isinstance(value, dict):
            nested = _paths(value, cast(descriptor.Descriptor, field.message_type), path + ".")
            found += nested or [path]
        else:
            found.append(path)
    return found


def _message_name(field: descriptor.FieldDescriptor) -> str | None:
    message = field.message_type if field.type == _MESSAGE else None
    return None if message is None else str(message.full_name)


def _is_plain_message(field: descriptor.FieldDescriptor) -> bool:
    """A singular message (maps are repeated) that is not a well-known type."""
    name = _message_name(field)
    return name is not None and not _is_repeated(field) and not name.startswith("google.protobuf.")


def _is_repeated(field: descriptor.FieldDescriptor) -> bool:
    return bool(field.is_repeated)
