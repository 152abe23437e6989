"""Text dates of TXT and HTML exports: locale-formatted, minute precision, no UTC offset.

DCE writes .NET's "g" format in the exporting machine's culture and time zone (en-US
`3/27/2025 7:02 PM` with a U+202F before PM, en-GB `27/03/2025 19:02`, de-DE `27.03.2025 19:02`,
ja-JP `2025/03/27 19:02`), older releases `24-Jul-21 01:49 PM` or unix seconds. The order of day
and month is guessed once per file (a field above 12 settles it) unless the user names it.

Every reader keeps a message's time within Python's dates (with a day to spare, so any later change
of zone stays representable): a year-0 or year-10000 date is refused when reading, never at write time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatclone.errors import ChatcloneError

SPACES = re.compile(r"[\u00a0\u2000-\u200b\u202f\u205f\u3000]")
DATE_RE = re.compile(
    r"^(?P<a>\d{1,4})[/.\-](?P<b>\d{1,2}|[A-Za-z]{3,4}\.?)[/.\-](?P<c>\d{2,4})\.?,?\s+"
    r"(?P<h>\d{1,2})[:.](?P<m>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?$"
)
MONTHS = {
    m: i
    for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
ORDERS = ("auto", "mdy", "dmy", "ymd")
MIN_TS = datetime(1, 1, 2, tzinfo=timezone.utc).timestamp()  # 0001-01-02 UTC
MAX_TS = datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp()  # 9999-12-30 UTC
RANGE = "outside the dates a message can have (years 1 to 9999)"


class BadDate(ValueError):
    """A date that does not read; its text says why ("has no UTC offset", "is outside ...")."""


class OutOfRange(BadDate):
    """A date that reads, but lies outside MIN_TS..MAX_TS."""


def in_range(ts: float) -> float:
    if not MIN_TS <= ts <= MAX_TS:
        raise OutOfRange(f"is {RANGE}")
    return ts


def iso_timestamp(text: str, tz: ZoneInfo | None = None) -> float:
    """UTC epoch seconds of an ISO 8601 date; one without offset is read in `tz` (an error when None).
    BadDate otherwise, saying why: "has no UTC offset", "is outside ...", "is no ISO 8601 date (...)"."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise BadDate(f"is no ISO 8601 date ({e})") from None
    if when.tzinfo is None:
        if tz is None:
            raise BadDate("has no UTC offset")
        when = when.replace(tzinfo=tz)
    return in_range(when.timestamp())


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChatcloneError(f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin or UTC)") from None


def split_date(text: str) -> re.Match | None:
    """The date's fields, or None when the text is no date DCE writes."""
    return DATE_RE.match(SPACES.sub(" ", text).strip())


def guess_order(matches: Iterable[re.Match]) -> str:
    """mdy or dmy for a file's dates: a first field above 12 means dmy, a second above 12 mdy."""
    with_ampm = False
    for m in matches:
        if len(m["a"]) == 4:
            return "ymd"
        if not m["b"].isdigit():
            return "dmy"
        if int(m["a"]) > 12:
            return "dmy"
        if int(m["b"]) > 12:
            return "mdy"
        with_ampm = with_ampm or bool(m["ampm"])
    return "mdy" if with_ampm else "dmy"


def to_timestamp(m: re.Match, order: str, tz: ZoneInfo) -> float:
    """UTC epoch seconds of a matched date in the given order and zone; ValueError if impossible."""
    a, b, c = m["a"], m["b"], m["c"]
    if order == "ymd":
        year, month, day = int(a), int(b), int(c)
    else:
        month_field, day_field = (a, b) if order == "mdy" else (b, a)
        day = int(day_field)
        month = int(month_field) if month_field.isdigit() else MONTHS[month_field[:3].lower()]
        year = int(c)
    if len(m["a" if order == "ymd" else "c"]) <= 2:
        year += 2000
    if not 1 <= year <= 9999:
        raise OutOfRange(f"is {RANGE}")
    hour = int(m["h"])
    if m["ampm"]:
        pm = m["ampm"][0] in "Pp"
        hour = hour % 12 + (12 if pm else 0)
    dt = datetime(year, month, day, hour, int(m["m"]), int(m["s"] or 0), tzinfo=tz)
    return in_range(dt.timestamp())


def unix_timestamp(text: str) -> float | None:
    """DCE's `--dateformat unix`/`unixms`: plain seconds or milliseconds; None if no number,
    OutOfRange if an absurd one."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return in_range(value / 1000 if value > 10**11 else float(value))
