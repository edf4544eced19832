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
import re

TIMESTAMP_TYPE = "google.protobuf.Timestamp"

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))"
)


def is_rfc3339(text: str) -> bool:
    """Whether `text` is a strict RFC 3339 date-time (see the module docstring)."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        return False
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return False
    if not 1 <= day <= calendar.monthrange(max(year, 1), month)[1]:
        return False
    offset_hours, offset_minutes = found.group(7), found.group(8)
    return offset_hours is None or (int(offset_hours) <= 23 and int(offset_minutes) <= 59)
