"""Times as people type them ("-5m", "14:03", "2026-12-05T14:03:00Z"), to epoch nanoseconds.

For choosing a clip's start and end; `format_time` writes a time back for messages.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, timezone

from camstream.core.contract import MAX_HEADER_INT

ACCEPTED_FORMS = (
    "now; an offset from now (-5m, -90s, -2h, -1d, -1h30m, +10s); an ISO 8601 date-time"
    " (2026-12-05T14:03, 2026-12-05T14:03:07.250, optionally with Z or +01:00; local time"
    " without one) or date (2026-12-05, local midnight); or a time today (14:03, 14:03:07)"
)

_NS_PER_S = 1_000_000_000
_UNIT_NS = {"d": 86_400 * _NS_PER_S, "h": 3_600 * _NS_PER_S, "m": 60 * _NS_PER_S, "s": _NS_PER_S}
# Capture times are Java longs (the contract's header integers) from the epoch on.
_LATEST_NS = MAX_HEADER_INT
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# ASCII digits only: \d would also take other scripts' digits, which int() accepts.
_FLAGS = re.ASCII | re.IGNORECASE
# Units largest first, each at most once: "-1h30m", not "-30m1h" or "-5m5m".
_OFFSET = re.compile(
    r"(?P<sign>[+-])(?=[0-9])(?:(?P<d>[0-9]{1,12})d)?(?:(?P<h>[0-9]{1,12})h)?"
    r"(?:(?P<m>[0-9]{1,12})m)?(?:(?P<s>[0-9]{1,12})s)?",
    _FLAGS,
)
_TIME = (
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,9}))?)?"
)
# Hours, minutes and seconds: Python writes a zone's historical offsets to the second.
_ZONE = r"(?P<zone>Z|[+-][0-9]{2}(?::?[0-9]{2}){0,2})"
_DATE_TIME = re.compile(
    rf"(?P<year>[0-9]{{4}})-(?P<month>[0-9]{{2}})-(?P<day>[0-9]{{2}})(?:[T ]{_TIME}{_ZONE}?)?",
    _FLAGS,
)
_TIME_TODAY = re.compile(_TIME, _FLAGS)


def parse_time(text: str, now_ns: int | None = None) -> int:
    """The time `text` names, in ns since the epoch; `now_ns` (default: the clock) is what
    "now", offsets and "today" are relative to.

    Accepts "now"; an offset from now: a sign, then days, hours, minutes and seconds in
    that order, each at most once ("-5m", "-90s", "-1d", "-1h30m", "+10s"); an ISO 8601
    date-time ("2026-12-05T14:03", "2026-12-05 14:03:07.25") with "Z" or an offset
    ("+01:00") or, without one, in this machine's local time; a date alone (its local
    midnight); a time alone ("14:03", "14:03:07"): today's, local. Seconds' fractions keep
    up to nanoseconds. Anything else, or a time before 1970 or past 2262 (the capture
    times' range), raises ValueError listing the accepted forms.
    """
    now = time.time_ns() if now_ns is None else now_ns
    stripped = text.strip()
    try:
        result = _parse(stripped, now)
    except (ValueError, OverflowError) as exc:  # a month 13, an offset of 25 hours, ...
        raise ValueError(f"cannot read the time {text!r} ({exc}): use {ACCEPTED_FORMS}") from None
    if result is None:
        raise ValueError(f"cannot read the time {text!r}: use {ACCEPTED_FORMS}")
    if not 0 <= result <= _LATEST_NS:
        raise ValueError(f"the time {text!r} is out of range (1970 to 2262)")
    return result


def _parse(text: str, now_ns: int) -> int | None:
    if text.lower() == "now":
        return now_ns
    if match := _OFFSET.fullmatch(text):
        offset = sum(int(match[unit] or 0) * ns for unit, ns in _UNIT_NS.items())
        return now_ns + offset if match["sign"] == "+" else now_ns - offset
    if match := _DATE_TIME.fullmatch(text):
        day = date(int(match["year"]), int(match["month"]), int(match["day"]))
        return _epoch_ns(day, match)
    if match := _TIME_TODAY.fullmatch(text):
        today = _local_datetime(now_ns).date()
        return _epoch_ns(today, match)
    return None


def _epoch_ns(day: date, match: re.Match[str]) -> int:
    """ns since the epoch of `day` at the time and zone `match` holds (midnight, local when
    it holds none), to the nanosecond."""
    fraction = (match["fraction"] or "").ljust(9, "0")
    moment = datetime(
        day.year,
        day.month,
        day.day,
        int(match["hour"] or 0),
        int(match["minute"] or 0),
        int(match["second"] or 0),
        tzinfo=_zone(match.groupdict().get("zone")),
    )
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local time's offset on that day (summer time)
    since_epoch = moment - _EPOCH  # exact: a timedelta of whole seconds
    return (since_epoch.days * 86_400 + since_epoch.seconds) * _NS_PER_S + int(fraction)


def _zone(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text.upper() == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"the zone offset {text} is not a time of day")
    offset = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return timezone(offset if text[0] == "+" else -offset)


def _local_datetime(ns: int) -> datetime:
    seconds, remainder = divmod(ns, _NS_PER_S)
    moment = datetime.fromtimestamp(seconds, tz=UTC).astimezone()
    return moment + timedelta(microseconds=remainder // 1000)


def format_time(ns: int) -> str:
    """`ns` since the epoch as local ISO 8601 to the millisecond (truncated), with its
    offset: "2026-12-05T14:03:07.250+01:00"; `parse_time` reads it back."""
    return _local_datetime(ns).isoformat(timespec="milliseconds")
