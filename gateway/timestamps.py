"""Strict RFC 3339 timestamps on input (docs/decisions.md C14).

protobuf's parser accepts more than RFC 3339: offsets such as `+99:99`, non-ASCII digits
(`２０２４`), an empty fraction (`13.Z`). Every text path that takes a timestamp (JSON bodies,
query and path values, the KFP filter's `timestamp_value`) checks the text here first:
`YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|±HH:MM)`, ASCII digits, upper-case `T` and `Z` (as Go's
RFC 3339 parser, which KFP's gateway uses), a real calendar date, hours 00-23, minutes and
seconds 00-59 (no leap second), offsets up to ±23:59. The range check (years 0001-9999) stays
with protobuf's parser, which runs next.
"""

from __future__ import annotations

import calendar
import datetime
import re

TIMESTAMP_TYPE = "google.protobuf.Timestamp"

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime.datetime(1970, 1, 1)


def is_rfc3339(text: str) -> bool:
    """Whether `text` is a strict RFC 3339 date-time (see the module docstring)."""
    return _strict_match(text) is not None


def utc_timestamp(text: str) -> tuple[int, int] | None:
    """(seconds, nanos) of a strict RFC 3339 text in UTC (`Z`), as protobuf's
    Timestamp.FromJsonString computes them; None for anything else, an offset included (and
    year 0000, which protobuf's parser refuses)."""
    found = _strict_match(text)
    if found is None or not text.endswith("Z") or found.group(1) == "0000":
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    delta = datetime.datetime(year, month, day, hour, minute, second) - _EPOCH
    fraction = found.group(7)
    nanos = round(float("0." + fraction) * 1e9) if fraction else 0  # FromJsonString's rounding
    return delta.seconds + delta.days * 86400, nanos


def _strict_match(text: str) -> re.Match[str] | None:
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= calendar.monthrange(max(year, 1), month)[1]:
        return None
    offset_hours, offset_minutes = found.group(8), found.group(9)
    if offset_hours is not None and (int(offset_hours) > 23 or int(offset_minutes) > 59):
        return None
    return found
