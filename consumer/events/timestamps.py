"""Timestamp parsing: every Canvas time becomes an aware UTC instant.

Canvas sends ISO 8601 with `Z` or an offset (`-06:00`), Ruby's `Time#to_s`
form (`2019-11-05 07:38:00 -0800`, `... UTC`), and occasionally no offset
at all, which the contract says means UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_TIMESTAMP = re.compile(
    r"""
    ^\s*
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    (?:[T\ ]
      (?P<hour>\d{2}):(?P<minute>\d{2})
      (?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?
    )?
    \s*
    (?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?
    \s*$
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,  # \d is 0-9 only: Arabic-Indic or full-width digits are not a time
)


def parse_timestamp(value: object) -> datetime:
    """Parse a Canvas timestamp into an aware UTC datetime (microseconds kept).

    Raises ValueError, naming the value, when it cannot be parsed.
    """
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp string, got {type(value).__name__}")
    if not value.isascii():
        raise ValueError("not a recognised timestamp (it holds characters other than ASCII)")
    if len(value) >= 19 and value[4] == "-" and value[7] == "-" and value[10] in "Tt " and value[13] == ":" and value[16] == ":":
        # The common case (extended ISO 8601) in C; anything it refuses takes the slow path.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=timezone.utc)
            try:
                return parsed.astimezone(timezone.utc)
            except OverflowError:
                raise ValueError("not a valid date or time (out of range after the offset)") from None
    match = _TIMESTAMP.match(value)
    if match is None:
        raise ValueError("not a recognised timestamp (expected ISO 8601, e.g. 2019-11-01T19:11:26.615Z)")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    try:
        local = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"] or 0),
            int(match["minute"] or 0),
            int(match["second"] or 0),
            int(fraction),
            tzinfo=_zone(match["zone"]),
        )
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid date or time ({exc})") from None


def _zone(text: str | None) -> timezone:
    if text is None or text.upper() in ("Z", "UTC", "GMT"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
