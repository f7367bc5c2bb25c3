"""Cell text → dates, clock times and counts, shared by the formats.

Parsers run once per cell of files with hundreds of thousands of rows, so these avoid
``strptime`` and regular expressions: fixed layouts are sliced, and the few distinct date
texts of a file are parsed once (:class:`BoundedCache`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Generic, TypeVar

from imports.formats.base import RowCode

T = TypeVar("T")

SECONDS_PER_DAY = 24 * 60 * 60
# DingTalk writes a punch after midnight of a night shift as "次日 07:30" (next day).
NEXT_DAY_PREFIX = "次日"
_MISSING = object()


class BoundedCache(Generic[T]):
    """Remembers ``parse(key)`` for each distinct key (a file has few distinct date and
    clock texts). Emptied when it reaches ``limit`` entries, so a file of all-distinct
    texts cannot make memory grow with its size.

    Hot loops read ``cache.entries.get(key) or cache.parse(key)``: one dict look-up, no
    Python call, on a hit (a falsy value just takes the slower path)."""

    __slots__ = ("_limit", "_parser", "entries")

    def __init__(self, parser: Callable[..., T], limit: int = 4096):
        self.entries: dict = {}
        self._parser = parser
        self._limit = limit

    def parse(self, key) -> T:
        value = self.entries.get(key, _MISSING)
        if value is _MISSING:
            if len(self.entries) >= self._limit:
                self.entries.clear()
            value = self.entries[key] = self._parser(key)
        return value  # type: ignore[return-value]

    __call__ = parse


def parse_date(text: str) -> dt.date | None:
    """``2026-05-01``, ``2026/5/1``, ``26-05-01`` (two-digit year: 20xx) and the same
    followed by anything after a space (``26-05-01 星期五``, ``2026-05-01 00:00``) or a
    ``T`` (ISO). None when it is not a date or the day does not exist (2026-02-30)."""
    token = text.split(None, 1)[0] if text else ""
    if len(token) > 10 and token[10] in "Tt":
        token = token[:10]
    parts = token.replace("/", "-").replace(".", "-").split("-")
    if len(parts) != 3 or not token.isascii():
        return None
    year_text, month_text, day_text = parts
    if not (year_text.isdigit() and month_text.isdigit() and day_text.isdigit()):
        return None
    if len(month_text) > 2 or len(day_text) > 2:
        return None
    if len(year_text) == 2:
        year = 2000 + int(year_text)
    elif len(year_text) == 4:
        year = int(year_text)
    else:
        return None
    try:
        return dt.date(year, int(month_text), int(day_text))
    except ValueError:
        return None


def parse_clock(text: str) -> int | None:
    """``HH:MM``, ``H:MM``, ``HH:MM:SS`` → seconds after midnight; None when it does not
    parse or is impossible (25:61)."""
    length = len(text)
    if length == 5 and text[2] == ":":
        hour, minute, second = text[:2], text[3:], "0"
    elif length == 8 and text[2] == ":" and text[5] == ":":
        hour, minute, second = text[:2], text[3:5], text[6:]
    elif length == 4 and text[1] == ":":
        hour, minute, second = text[:1], text[2:], "0"
    elif length == 7 and text[1] == ":" and text[4] == ":":
        hour, minute, second = text[:1], text[2:4], text[5:]
    else:
        return None
    if not (text.isascii() and hour.isdigit() and minute.isdigit() and second.isdigit()):
        return None
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return hours * 3600 + minutes * 60 + seconds


def parse_punch_cell(text: str) -> tuple[int, ...] | None:
    """A DingTalk punch cell → seconds after the work date's midnight, one per punch.
    A cell may hold several punches on separate lines (each possibly with trailing
    spaces); ``次日 HH:MM`` is the next calendar day. None when any line is not a time."""
    seconds = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        offset = 0
        if line.startswith(NEXT_DAY_PREFIX):
            offset = SECONDS_PER_DAY
            line = line[len(NEXT_DAY_PREFIX) :].strip()
        clock = parse_clock(line)
        if clock is None:
            return None
        seconds.append(offset + clock)
    return tuple(seconds)


def parse_minutes(text: str) -> int | None:
    """A whole, non-negative count of minutes (``"32"``; ``"32.0"`` as Excel may write it).
    None when it is anything else."""
    if text.isdigit() and text.isascii():
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    if value < 0 or not value.is_integer():
        return None
    return int(value)


class LocalTimes:
    """Aware datetimes in one time zone from (work date, seconds after its midnight). The
    midnight of each date is built once; adding a timedelta to it keeps the wall clock, so
    ``次日 08:51`` is 08:51 local time on the next day."""

    __slots__ = ("_midnights", "_time_zone")

    def __init__(self, time_zone: dt.tzinfo):
        self._time_zone = time_zone
        self._midnights: dict[dt.date, dt.datetime] = {}

    @property
    def time_zone(self) -> dt.tzinfo:
        return self._time_zone

    def at(self, work_date: dt.date, seconds: int) -> dt.datetime:
        midnight = self._midnights.get(work_date)
        if midnight is None:
            if len(self._midnights) >= 4096:
                self._midnights.clear()
            midnight = self._midnights[work_date] = dt.datetime(
                work_date.year, work_date.month, work_date.day, tzinfo=self._time_zone
            )
        return midnight + dt.timedelta(seconds=seconds)


def quote(text: str) -> str:
    """A cell value as a message quotes it (newlines shown as \\n)."""
    return '"' + text.replace("\n", "\\n") + '"'


def is_clock_only(text: str) -> bool:
    """``HH:MM[:SS]`` or ``次日 HH:MM``: a time with no date of its own."""
    return text.startswith(NEXT_DAY_PREFIX) or (len(text) <= 8 and ":" in text)


def parse_moment(
    text: str,
    work_date: dt.date | None,
    local_times: LocalTimes,
    read_date: Callable[[str], dt.date | None],
) -> tuple[dt.datetime | None, str]:
    """A point in time written in a cell → ``(aware datetime, "")`` or ``(None, code)``
    with code ``INVALID_DATE`` or ``INVALID_TIME``.

    Accepted: ``HH:MM[:SS]`` and ``次日 HH:MM`` on ``work_date``; ``YYYY-MM-DD HH:MM[:SS]``
    local time; ISO 8601 with or without an offset (converted to the local zone)."""
    if is_clock_only(text):
        if work_date is None:
            return None, RowCode.INVALID_DATE
        seconds = parse_punch_cell(text)
        if not seconds or len(seconds) != 1:
            return None, RowCode.INVALID_TIME
        return local_times.at(work_date, seconds[0]), ""
    date_text, separator, clock_text = text.partition(" ")
    if not separator and len(text) > 10 and text[10] in "Tt":
        date_text, clock_text = text[:10], text[11:]
    day = read_date(date_text)
    clock = parse_clock(clock_text.strip()) if clock_text else None
    if day is not None and clock is not None:
        return local_times.at(day, clock), ""
    # A cell with no date part ("9h") was meant as a time; one with a date part that does
    # not read is a bad date.
    failure = RowCode.INVALID_DATE if day is None and clock_text else RowCode.INVALID_TIME
    if ":" not in text:
        # fromisoformat would read a bare date as midnight; a punch needs its time.
        return None, failure
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None, failure
    if value.tzinfo is None:
        return value.replace(tzinfo=local_times.time_zone), ""
    return value.astimezone(local_times.time_zone), ""
