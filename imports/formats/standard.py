"""Our own CSV template: one row per employee and day, English headers.

``first_in`` / ``last_out`` take ``HH:MM[:SS]`` (on the work date), ``YYYY-MM-DD
HH:MM[:SS]`` (local time) or ISO 8601 with an offset. A clock-only ``last_out`` at or
before ``first_in`` is on the next calendar day (a night shift).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from itertools import islice

from django.utils.translation import gettext_lazy

from attendance.choices import RecordStatus
from imports.formats.base import (
    ColumnSpec,
    DayRow,
    ImportFormat,
    ParsedRow,
    ParseOptions,
    Person,
    RowCode,
    RowError,
    UnsupportedFormat,
)
from imports.formats.cell_values import (
    NEXT_DAY_PREFIX,
    BoundedCache,
    LocalTimes,
    is_clock_only,
    parse_date,
    parse_minutes,
    parse_moment,
    quote,
)
from imports.formats.reading import ColumnLayout, HeaderMatch, Table, find_header

EMPLOYEE_NO = "employee_no"
NAME = "name"
WORK_DATE = "work_date"
FIRST_IN = "first_in"
LAST_OUT = "last_out"
STATUS = "status"
WORK_MINUTES = "work_minutes"
LATE_MINUTES = "late_minutes"
EARLY_LEAVE_MINUTES = "early_leave_minutes"

# "adjusted" is what a correction makes of a day; an import cannot claim it.
IMPORTABLE_STATUSES = tuple(
    status.value for status in RecordStatus if status != RecordStatus.ADJUSTED
)


def is_standard_header(cells: list[str]) -> bool:
    names = set(cells)
    return EMPLOYEE_NO in names and WORK_DATE in names


class StandardFormat(ImportFormat):
    name = "standard"
    label = gettext_lazy("Standard CSV template")
    kind = "day"
    containers = ("csv", "xlsx")
    columns = (
        ColumnSpec(
            EMPLOYEE_NO, required=True, description=gettext_lazy("Employee number, kept as text.")
        ),
        ColumnSpec(
            NAME, description=gettext_lazy("Name (used when the import creates the employee).")
        ),
        ColumnSpec(WORK_DATE, required=True, description=gettext_lazy("Work date, YYYY-MM-DD.")),
        ColumnSpec(
            FIRST_IN,
            description=gettext_lazy(
                "First clock-in: HH:MM, YYYY-MM-DD HH:MM (local) or ISO 8601."
            ),
        ),
        ColumnSpec(
            LAST_OUT,
            description=gettext_lazy(
                "Last clock-out, as first_in; HH:MM at or before first_in is the next day."
            ),
        ),
        ColumnSpec(
            STATUS,
            description="One of " + ", ".join(IMPORTABLE_STATUSES) + "; empty: the "
            "schedule judges the day.",
        ),
        ColumnSpec(
            WORK_MINUTES,
            description=gettext_lazy("Minutes worked; empty: last_out − first_in."),
        ),
        ColumnSpec(LATE_MINUTES, description=gettext_lazy("Minutes late; empty: 0.")),
        ColumnSpec(EARLY_LEAVE_MINUTES, description=gettext_lazy("Minutes left early; empty: 0.")),
    )

    def matches(self, table: Table, mapping: Mapping[str, str] | None = None) -> bool:
        return table.container in self.containers and self._header(table, mapping) is not None

    def template_rows(self) -> list[list[str]]:
        return [
            [column.header for column in self.columns],
            ["00042", "Li Lei", "2026-05-01", "08:58", "18:05", "", "", "", ""],
        ]

    def parse(self, table: Table, options: ParseOptions) -> Iterator[ParsedRow]:
        header = self._header(table, options.mapping)
        if header is None:
            raise UnsupportedFormat(
                "No standard template header (a row with employee_no and work_date) in the "
                "first rows of the file."
            )
        layout = ColumnLayout(header.cells)
        read_fields = layout.reader(
            EMPLOYEE_NO,
            NAME,
            WORK_DATE,
            FIRST_IN,
            LAST_OUT,
            STATUS,
            WORK_MINUTES,
            LATE_MINUTES,
            EARLY_LEAVE_MINUTES,
        )
        reader = _RowReader(options)
        fit = layout.fit
        for number, cells in islice(table.rows(), header.row, None):
            cells = fit(cells)
            fields = read_fields(cells)
            if not fields[0] and not any(cells):
                continue
            try:
                yield reader.read(number, *fields)
            except _RowProblem as problem:
                yield problem.error

    @staticmethod
    def _header(table: Table, mapping: Mapping[str, str] | None) -> HeaderMatch | None:
        return find_header(table, is_standard_header, mapping=mapping)


class _RowProblem(Exception):
    """Ends the reading of one row with its RowError."""

    def __init__(self, number: int, column: str, code: str, message: str):
        super().__init__(message)
        self.error = RowError(number, column, code, message)


class _RowReader:
    def __init__(self, options: ParseOptions):
        self.read_date = BoundedCache(parse_date)
        self.local_times = LocalTimes(options.time_zone)
        self.today = options.today

    def read(
        self,
        number: int,
        employee_no: str,
        name: str,
        date_text: str,
        first_in_text: str,
        last_out_text: str,
        status_text: str,
        work_minutes_text: str,
        late_minutes_text: str,
        early_minutes_text: str,
    ) -> DayRow:
        if not employee_no:
            raise _RowProblem(
                number,
                EMPLOYEE_NO,
                RowCode.MISSING_EMPLOYEE,
                f"The row names no employee: {EMPLOYEE_NO} is empty.",
            )
        work_date = self.work_date(number, date_text)
        first_in = self.moment(number, FIRST_IN, first_in_text, work_date)
        last_out = self.moment(number, LAST_OUT, last_out_text, work_date)
        if first_in and last_out and last_out <= first_in and _is_plain_clock(last_out_text):
            last_out += dt.timedelta(days=1)  # wall clock: 02:00 → 02:00 the next day
        if first_in and last_out and last_out < first_in:
            raise _RowProblem(
                number,
                LAST_OUT,
                RowCode.INVALID_TIME,
                f"The {LAST_OUT} {quote(last_out_text)} is before the {FIRST_IN} "
                f"{quote(first_in_text)}.",
            )
        status = status_text.lower() or None
        if status is not None and status not in IMPORTABLE_STATUSES:
            raise _RowProblem(
                number,
                STATUS,
                RowCode.INVALID_VALUE,
                f"The status {quote(status_text)} is not one of: {', '.join(IMPORTABLE_STATUSES)}.",
            )
        work_minutes = self.minutes(number, WORK_MINUTES, work_minutes_text)
        if work_minutes is None:
            work_minutes = (
                int((last_out - first_in).total_seconds()) // 60 if first_in and last_out else 0
            )
        return DayRow(
            number,
            Person(employee_no=employee_no, name=name),
            work_date,
            first_in,
            last_out,
            work_minutes,
            self.minutes(number, LATE_MINUTES, late_minutes_text) or 0,
            self.minutes(number, EARLY_LEAVE_MINUTES, early_minutes_text) or 0,
            status,
        )

    def work_date(self, number: int, text: str) -> dt.date:
        if not text:
            raise _RowProblem(
                number,
                WORK_DATE,
                RowCode.MISSING_VALUE,
                f"The {WORK_DATE} cell is empty; every row needs its work date.",
            )
        work_date = self.read_date(text)
        if work_date is None:
            raise _RowProblem(
                number,
                WORK_DATE,
                RowCode.INVALID_DATE,
                f"The date {quote(text)} in {WORK_DATE} is not a valid date (YYYY-MM-DD).",
            )
        if work_date > self.today:
            raise _RowProblem(
                number,
                WORK_DATE,
                RowCode.FUTURE_DATE,
                f"The date {quote(text)} in {WORK_DATE} is after today ({self.today}).",
            )
        return work_date

    def moment(self, number: int, column: str, text: str, work_date: dt.date) -> dt.datetime | None:
        if not text:
            return None
        moment, failure = parse_moment(text, work_date, self.local_times, self.read_date)
        if moment is None:
            what = "date" if failure == RowCode.INVALID_DATE else "time"
            raise _RowProblem(
                number,
                column,
                failure,
                f"The value {quote(text)} in {column} is not a valid {what} "
                "(HH:MM, YYYY-MM-DD HH:MM or ISO 8601).",
            )
        return moment

    @staticmethod
    def minutes(number: int, column: str, text: str) -> int | None:
        if not text:
            return None
        value = parse_minutes(text)
        if value is None:
            raise _RowProblem(
                number,
                column,
                RowCode.INVALID_VALUE,
                f"The minutes {quote(text)} in {column} are not a whole, non-negative number.",
            )
        return value


def _is_plain_clock(text: str) -> bool:
    """``HH:MM[:SS]`` with no date and no 次日 of its own."""
    return is_clock_only(text) and not text.startswith(NEXT_DAY_PREFIX)
