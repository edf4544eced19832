"""PATCH field-mask auto-fill (docs/decisions.md T34): which routes qualify and which paths a body names."""

from __future__ import annotations

import pytest

from taskgate.gateway.field_mask import body_paths, mask_field
from tests.protos import transcoding_test_pb2 as pb

SCALARS = pb.Scalars.DESCRIPTOR


@pytest.mark.parametrize(
    ("document", "paths"),
    [
        ({"fString": "a", "f_int32": 1}, ["f_int32", "f_string"]),
        ({"nested": {"name": "n", "child": {"count": 2}}}, ["nested.child.count", "nested.name"]),
        ({"nested": {}}, ["nested"]),  # an empty object still names the field
        ({"nested": None}, ["nested"]),
        ({"items": [{"name": "x"}], "labels": {"k": "v"}}, ["items", "labels"]),  # no recursion
        ({"ts": "2024-01-01T00:00:00Z", "st": {"a": 1}}, ["st", "ts"]),  # WKTs are leaves
        ({"shownAs": "x", "bogus": 1}, ["display_name"]),
        ([1, 2], []),
    ],
)
def test_body_paths(document: object, paths: list[str]) -> None:
    assert body_paths(document, SCALARS) == paths


def test_excluded_paths_are_left_out() -> None:
    assert body_paths({"name": "n", "title": "t"}, pb.Book.DESCRIPTOR, {"name"}) == ["title"]


def test_mask_field_needs_patch_a_field_body_and_one_mask() -> None:
    book_field = pb.UpdateBookRequest.DESCRIPTOR.fields_by_name["book"]
    request = pb.UpdateBookRequest()
    assert mask_field("PATCH", book_field, request) is not None
    assert mask_field("PUT", book_field, request) is None
    assert mask_field("PATCH", None, request) is None
    # Scalars has a FieldMask too, but it is not a request with a body field here.
    assert mask_field("PATCH", None, pb.Scalars()) is None
