"""Page tokens are opaque, signed and round-trip exactly (docs/decisions.md D5)."""

from __future__ import annotations

import pytest

from taskgate.server.page_tokens import (
    PageToken,
    PageTokenError,
    decode_page_token,
    encode_page_token,
)
from taskgate.store.records import Column, Condition, Cursor, Op

KEY = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "token",
    [
        PageToken(Column.CREATED_AT, True, (), Cursor(5, "u2")),
        PageToken(Column.ID, False, (Condition(Column.ID, Op.IN, ()),), Cursor("a", "a")),
        PageToken(
            Column.PIPELINE_NAME,
            False,
            (
                Condition(Column.CREATED_AT, Op.IN, (1, 2)),
                Condition(Column.FINGERPRINT, Op.SUBSTRING, "ü<>&\"'"),
            ),
            Cursor("namespace/ns/pipeline/p", "ffff"),
        ),
    ],
)
def test_round_trip(token: PageToken) -> None:
    text = encode_page_token(token, KEY)
    assert text.isascii()
    assert not set(text) & set("=+/")  # URL-safe as it stands: no escaping in a query string
    assert decode_page_token(text, KEY) == token


def test_tampering_is_detected() -> None:
    text = encode_page_token(PageToken(Column.ID, False, (), Cursor("a", "a")), KEY)
    for position in range(len(text)):
        flipped = text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1 :]
        with pytest.raises(PageTokenError):
            decode_page_token(flipped, KEY)
