"""ZKTeco device log (``attlog.dat``): one tab-separated line per punch, no header.

``PIN<TAB>YYYY-MM-DD HH:MM:SS<TAB>flag<TAB>state<TAB>verify mode<TAB>work code``. The PIN is
right-aligned with spaces (stripped, kept as text). The state key (0 in, 1 out) is what
people forget to press, so every punch is ``unknown`` and the pipeline orders them.
Punches of one PIN within :attr:`punch_merge_seconds` are one punch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping

from django.utils.translation import gettext_lazy

from imports.formats.base import (
    ColumnSpec,
    ImportFormat,
    ParsedRow,
    ParseOptions,
    Person,
    PunchRow,
    RowCode,
    RowError,
)
from imports.formats.cell_values import BoundedCache, parse_clock, parse_date, quote
from imports.formats.reading import Table

PIN_COLUMN = "PIN"
PUNCH_TIME_COLUMN = "Punch time"
_TIMESTAMP_LENGTH = len("2026-05-01 08:30:00")


def split_timestamp(text: str) -> tuple[str, str] | None:
    """``YYYY-MM-DD HH:MM:SS`` → (date text, clock text); None for any other layout."""
    if (
        len(text) == _TIMESTAMP_LENGTH
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == " "
        and text[13] == ":"
        and text[16] == ":"
    ):
        return text[:10], text[11:]
    return None


def looks_like_device_log_line(cells: list[str]) -> bool:
    if len(cells) < 2:
        return False
    parts = split_timestamp(cells[1])
    return parts is not None and parse_date(parts[0]) is not None


class ZktecoAttlogFormat(ImportFormat):
    name = "zkteco_attlog"
    label = gettext_lazy("ZKTeco device log (attlog.dat)")
    kind = "punch"
    containers = ("csv", "dat")
    punch_merge_seconds = 60
    columns = (
        ColumnSpec(
            PIN_COLUMN,
            required=True,
            description=gettext_lazy(
                "The person's PIN on the device (spaces stripped, kept as text)."
            ),
        ),
        ColumnSpec(
            PUNCH_TIME_COLUMN,
            required=True,
            description=gettext_lazy("YYYY-MM-DD HH:MM:SS, the device's local time."),
        ),
        ColumnSpec("Flag", description=gettext_lazy("Device flag (not read).")),
        ColumnSpec(
            "State", description=gettext_lazy("0 in, 1 out, 4/5 overtime: not trusted, not read.")
        ),
        ColumnSpec(
            "Verify mode", description=gettext_lazy("Fingerprint, card, password… (not read).")
        ),
        ColumnSpec("Work code", description=gettext_lazy("Work code (not read).")),
    )

    def matches(self, table: Table, mapping: Mapping[str, str] | None = None) -> bool:
        if table.container not in self.containers or table.delimiter != "\t":
            return False
        for _, cells in table.head(20):
            if any(cells):
                return looks_like_device_log_line(cells)
        return False

    def template_rows(self) -> list[list[str]]:
        # A device log has no header line: the template is one example line.
        return [["1", "2026-05-01 08:30:00", "1", "0", "1", "0"]]

    def parse(self, table: Table, options: ParseOptions) -> Iterator[ParsedRow]:
        read_date = BoundedCache(parse_date)
        time_zone = options.time_zone
        today = options.today
        datetime = dt.datetime
        for number, cells in table.rows():
            if not any(cells):
                continue
            pin = cells[0]
            if not pin:
                yield RowError(
                    number,
                    PIN_COLUMN,
                    RowCode.MISSING_EMPLOYEE,
                    "The line names no employee: its PIN is empty.",
                )
                continue
            if not pin.isprintable():
                # Seen in real logs: a damaged record with control bytes for a PIN.
                yield RowError(
                    number,
                    PIN_COLUMN,
                    RowCode.INVALID_VALUE,
                    f"The PIN {pin!r} holds control characters; the line is damaged.",
                )
                continue
            stamp = cells[1] if len(cells) > 1 else ""
            if not stamp:
                yield RowError(
                    number,
                    PUNCH_TIME_COLUMN,
                    RowCode.MISSING_VALUE,
                    "The line has no punch time after the PIN.",
                )
                continue
            parts = split_timestamp(stamp)
            if parts is None:
                yield RowError(
                    number,
                    PUNCH_TIME_COLUMN,
                    RowCode.INVALID_DATE,
                    f"The punch time {quote(stamp)} is not YYYY-MM-DD HH:MM:SS.",
                )
                continue
            work_date = read_date(parts[0])
            if work_date is None:
                yield RowError(
                    number,
                    PUNCH_TIME_COLUMN,
                    RowCode.INVALID_DATE,
                    f"The punch time {quote(stamp)} has no valid date.",
                )
                continue
            clock = parse_clock(parts[1])
            if clock is None:
                yield RowError(
                    number,
                    PUNCH_TIME_COLUMN,
                    RowCode.INVALID_TIME,
                    f"The punch time {quote(stamp)} has no valid time.",
                )
                continue
            if work_date > today:
                yield RowError(
                    number,
                    PUNCH_TIME_COLUMN,
                    RowCode.FUTURE_DATE,
                    f"The punch time {quote(stamp)} is after today ({today}).",
                )
                continue
            hours, rest = divmod(clock, 3600)
            minutes, seconds = divmod(rest, 60)
            yield PunchRow(
                number,
                Person(device_pin=pin),
                work_date,
                datetime(
                    work_date.year,
                    work_date.month,
                    work_date.day,
                    hours,
                    minutes,
                    seconds,
                    tzinfo=time_zone,
                ),
            )
