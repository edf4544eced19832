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
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
#: Days in each month (index 1-12) of a common year.
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_rfc3339(text: str) -> bool:
    """Whether `text` is a strict RFC 3339 date-time (see the module docstring)."""
    return _strict_fields(text) is not None


def utc_timestamp(text: str) -> tuple[int, int] | None:
    """(seconds, nanos) of a strict RFC 3339 text in UTC (`Z`), as protobuf's
    Timestamp.FromJsonString computes them; None for anything else, an offset included (and
    year 0000, which protobuf's parser refuses)."""
    fields = _strict_fields(text)
    if fields is None or text[-1] != "Z" or fields[0] == 0:
        return None
    year, month, day, hour, minute, second, fraction = fields
    days = datetime.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    nanos = round(float("0." + fraction) * 1e9) if fraction else 0  # FromJsonString's rounding
    return days * 86400 + hour * 3600 + minute * 60 + second, nanos


def _strict_fields(text: str) -> tuple[int, int, int, int, int, int, str | None] | None:
    """Year, month, day, hour, minute, second and the fraction's digits of a strict RFC 3339
    text; None for anything else. Each group is read once (this runs for every timestamp of
    every body)."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    y, mo, d, h, mi, s, fraction, offset_hours, offset_minutes = found.groups()
    year, month, day, hour, minute, second = int(y), int(mo), int(d), int(h), int(mi), int(s)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    month_days = 29 if month == 2 and calendar.isleap(max(year, 1)) else _MONTH_DAYS[month]
    if not 1 <= day <= month_days:
        return None
    if offset_hours is not None and (int(offset_hours) > 23 or int(offset_minutes) > 59):
        return None
    return year, month, day, hour, minute, second, fraction
