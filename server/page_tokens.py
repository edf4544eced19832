"""Opaque, signed page tokens (docs/decisions.md D5).

A token carries what KFP's does (sort column and direction, the filter, the first row of the next
page) but is opaque: compact JSON, then an HMAC-SHA256 tag keyed by a secret that lives in the
database, so every replica and every restart accepts every other's tokens, and anything forged,
truncated or corrupt is rejected. Pure: the key is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from taskgate.store.records import Column, Condition, Cursor, Op

TOKEN_VERSION = 1
TAG_BYTES = 16


class PageTokenError(ValueError):
    """The token is not one this service issued (or it was altered)."""


@dataclass(frozen=True, slots=True)
class PageToken:
    """What a page token remembers between calls."""

    sort: Column
    descending: bool
    conditions: tuple[Condition, ...]
    #: The first row of the next page.
    cursor: Cursor
    #: Multi-user mode: the caller the token was issued to (`Caller.binding`); "" otherwise.
    binding: str = ""


def encode_page_token(token: PageToken, key: bytes) -> str:
    document: dict[str, object] = {
        "v": TOKEN_VERSION,
        "s": token.sort.value,
        "d": token.descending,
        "f": [[c.column.value, c.op.value, _json_value(c.value)] for c in token.conditions],
        "c": [token.cursor.sort_value, token.cursor.id],
    }
    if token.binding:
        document["u"] = token.binding  # absent in single-user mode: those tokens are unchanged
    payload = json.dumps(
        document,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    tag = hmac.new(key, payload, hashlib.sha256).digest()[:TAG_BYTES]
    return base64.urlsafe_b64encode(tag + payload).rstrip(b"=").decode("ascii")


def decode_page_token(text: str, key: bytes) -> PageToken:
    """Verify and decode a token; raises PageTokenError with a short, safe reason."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PageTokenError("the token is not valid base64") from None
    tag, payload = raw[:TAG_BYTES], raw[TAG_BYTES:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:TAG_BYTES]
    if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, expected):
        raise PageTokenError("the token was not issued by this service or was altered")
    try:
        return _from_document(json.loads(payload))
    except (ValueError, KeyError, TypeError, IndexError):
        raise PageTokenError("the token's contents are malformed") from None


def _from_document(document: dict[str, Any]) -> PageToken:
    if document["v"] != TOKEN_VERSION:
        raise ValueError("unknown token version")
    sort = Column(document["s"])
    sort_value, row_id = document["c"]
    if not isinstance(row_id, str) or not isinstance(sort_value, int | str):
        raise ValueError("bad cursor")
    conditions = tuple(
        Condition(Column(column), Op(op), tuple(value) if isinstance(value, list) else value)
        for column, op, value in document["f"]
    )
    binding = document.get("u", "")
    if not isinstance(binding, str):
        raise ValueError("bad binding")
    cursor = Cursor(sort_value, row_id)
    return PageToken(sort, bool(document["d"]), conditions, cursor, binding)


def _json_value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
