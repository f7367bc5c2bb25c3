"""DingTalk 每日统计 / 每日汇总: one row per employee and day (FORMATS.md).

The header is found by its names (a row holding ``日期`` and a person column), under title
rows, possibly on two levels (the 请假 group's sub-columns in the second row). Punch
columns are every ``上班N打卡时间`` / ``下班N打卡时间``, so several shifts a day work.

This parser reads 500,000-row files: the layout is worked out once per file, the few
distinct date and time texts are parsed once each, and a row costs a handful of dict
look-ups.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from operator import itemgetter

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
    BoundedCache,
    parse_date,
    parse_minutes,
    parse_punch_cell,
    quote,
)
from imports.formats.reading import ColumnLayout, HeaderMatch, Table, find_header

DATE_COLUMN = "日期"
EMPLOYEE_NO_COLUMN = "工号"
USER_ID_COLUMN = "UserId"
NAME_COLUMN = "姓名"
DEPARTMENT_COLUMN = "部门"
SHIFT_COLUMN = "班次"
LATE_MINUTES_COLUMN = "迟到时长"
EARLY_LEAVE_MINUTES_COLUMN = "早退时长"
PERSON_COLUMNS = frozenset({EMPLOYEE_NO_COLUMN, USER_ID_COLUMN, NAME_COLUMN})

REST_SHIFT = "休息"
LEAVE_RESULT = "请假"
LATE_RESULT = "迟到"
EARLY_LEAVE_RESULT = "早退"
LEFT_COMPANY_SUFFIXES = ("[离职]", "【离职】")

_PUNCH_TIME_COLUMN = re.compile(r"(上班|下班)(\d+)打卡时间")
_PUNCH_RESULT_COLUMN = re.compile(r"(上班|下班)(\d+)打卡结果")


def is_daily_header(cells: list[str]) -> bool:
    names = set(cells)
    return DATE_COLUMN in names and not PERSON_COLUMNS.isdisjoint(names)


def strip_left_company(name: str) -> str:
    """DingTalk marks people who left with a ``[离职]`` suffix; the name is without it."""
    for suffix in LEFT_COMPANY_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)].rstrip()
    return name


class DingTalkDailyFormat(ImportFormat):
    name = "dingtalk_daily"
    label = gettext_lazy("DingTalk daily summary (每日统计)")
    kind = "day"
    containers = ("csv", "xlsx")
    columns = (
        ColumnSpec(
            NAME_COLUMN,
            description=gettext_lazy("Name; a [离职] suffix (left the company) is dropped."),
        ),
        ColumnSpec(
            EMPLOYEE_NO_COLUMN,
            description=gettext_lazy(
                "Employee number, kept as text; when empty, UserId names the person."
            ),
        ),
        ColumnSpec(
            USER_ID_COLUMN, description=gettext_lazy("DingTalk UserId (may contain a dash).")
        ),
        ColumnSpec(DEPARTMENT_COLUMN, description=gettext_lazy("Department.")),
        ColumnSpec(
            DATE_COLUMN,
            required=True,
            description=gettext_lazy(
                "Work date: 26-05-01 星期五 (two-digit year and weekday) or 2026-05-01."
            ),
        ),
        ColumnSpec(SHIFT_COLUMN, description=gettext_lazy("Shift; 休息 makes the day a day off.")),
        ColumnSpec(
            "上班1打卡时间",
            description=gettext_lazy(
                "Clock-in time(s) HH:MM; 次日 HH:MM is the next day; any N (上班2…)."
            ),
        ),
        ColumnSpec(
            "上班1打卡结果", description=gettext_lazy("Clock-in result: 正常, 迟到, 缺卡, 请假…")
        ),
        ColumnSpec(
            "下班1打卡时间",
            description=gettext_lazy(
                "Clock-out time(s) HH:MM; 次日 HH:MM is the next day; any N (下班2…)."
            ),
        ),
        ColumnSpec(
            "下班1打卡结果", description=gettext_lazy("Clock-out result: 正常, 早退, 缺卡, 请假…")
        ),
        ColumnSpec(LATE_MINUTES_COLUMN, description=gettext_lazy("Minutes late.")),
        ColumnSpec(EARLY_LEAVE_MINUTES_COLUMN, description=gettext_lazy("Minutes left early.")),
    )

    def matches(self, table: Table, mapping: Mapping[str, str] | None = None) -> bool:
        return table.container in self.containers and self._header(table, mapping) is not None

    def template_rows(self) -> list[list[str]]:
        return [
            [column.header for column in self.columns],
            [
                "张三",
                "00042",
                "0123456789-1234567890",
                "研发中心",
                "26-05-01 星期五",
                "普通出勤 08:30-18:00",
                "08:41",
                "迟到",
                "18:05",
                "正常",
                "11",
                "",
            ],
        ]

    def parse(self, table: Table, options: ParseOptions) -> Iterator[ParsedRow]:
        header = self._header(table, options.mapping)
        if header is None:
            raise UnsupportedFormat(
                "No DingTalk daily summary header (a row with 日期 and 工号, UserId or 姓名) "
                "in the first rows of the file."
            )
        rows = islice(table.rows(), header.row, None)  # row numbers count from 1, gapless
        yield from _row_parser(header.cells, options)(rows)

    @staticmethod
    def _header(table: Table, mapping: Mapping[str, str] | None) -> HeaderMatch | None:
        return find_header(table, is_daily_header, mapping=mapping)


def _row_parser(
    header: list[str], options: ParseOptions
) -> Callable[[Iterator[tuple[int, list[str]]]], Iterator[ParsedRow]]:
    """The row loop for one file's header. Column positions are found once here and bound
    into the closure; the loop inlines its cache look-ups (a 500,000-row file makes every
    function call count) and leaves the rare paths (errors, first sightings of a text) to
    helpers."""
    layout = ColumnLayout(header)
    blank = layout.blank

    in_positions = [p for p, name in enumerate(header) if _is_punch_time(name, "上班")]
    out_positions = [p for p, name in enumerate(header) if _is_punch_time(name, "下班")]
    result_positions = [p for p, name in enumerate(header) if _PUNCH_RESULT_COLUMN.fullmatch(name)]
    # itemgetter of one position returns a bare value; the blank keeps it a tuple.
    read_ins = itemgetter(*in_positions, blank)
    read_outs = itemgetter(*out_positions, blank)
    read_results = itemgetter(*result_positions, blank)
    read_fields = layout.reader(
        EMPLOYEE_NO_COLUMN,
        USER_ID_COLUMN,
        NAME_COLUMN,
        DEPARTMENT_COLUMN,
        DATE_COLUMN,
        SHIFT_COLUMN,
        LATE_MINUTES_COLUMN,
        EARLY_LEAVE_MINUTES_COLUMN,
    )
    identifier_column = (
        EMPLOYEE_NO_COLUMN if EMPLOYEE_NO_COLUMN in layout.positions else USER_ID_COLUMN
    )

    # Text → parsed value caches: a file has few distinct dates and clock texts.
    dates = BoundedCache(parse_date)
    punch_cells = BoundedCache(parse_punch_cell)
    midnights = BoundedCache(
        lambda day: dt.datetime(day.year, day.month, day.day, tzinfo=time_zone)
    )
    # Building a timedelta costs more than the addition; a day has few distinct offsets.
    offsets = BoundedCache(lambda seconds: dt.timedelta(seconds=seconds))
    time_zone = options.time_zone
    today = options.today
    day_row, person_of = DayRow, Person
    off, leave, absent, partial = (
        RecordStatus.OFF.value,
        RecordStatus.LEAVE.value,
        RecordStatus.ABSENT.value,
        RecordStatus.PARTIAL.value,
    )
    late_early, late, early_leave, normal = (
        RecordStatus.LATE_EARLY.value,
        RecordStatus.LATE.value,
        RecordStatus.EARLY_LEAVE.value,
        RecordStatus.NORMAL.value,
    )
    dates_get, punch_cells_get, midnights_get, offsets_get = (
        dates.entries.get,
        punch_cells.entries.get,
        midnights.entries.get,
        offsets.entries.get,
    )

    fit = layout.fit

    def parse_rows(rows: Iterator[tuple[int, list[str]]]) -> Iterator[ParsedRow]:
        for number, cells in rows:
            cells = fit(cells)
            employee_no, user_id, name, department, date_text, shift, late_text, early_text = (
                read_fields(cells)
            )
            if not employee_no and not user_id:
                if any(cells):
                    yield RowError(
                        number,
                        identifier_column,
                        RowCode.MISSING_EMPLOYEE,
                        f"The row names no employee: {EMPLOYEE_NO_COLUMN} and "
                        f"{USER_ID_COLUMN} are both empty.",
                    )
                continue
            work_date = dates_get(date_text) or dates.parse(date_text)
            if work_date is None or work_date > today:
                yield _date_error(number, date_text, work_date, today)
                continue

            in_seconds: tuple[int, ...] = ()
            for text in read_ins(cells):
                if text:
                    parsed = punch_cells_get(text) or punch_cells.parse(text)
                    if parsed is None:
                        break
                    in_seconds += parsed
            else:
                parsed = ()
            if parsed is None:
                yield _time_error(number, text, header, in_positions, cells)
                continue
            out_seconds: tuple[int, ...] = ()
            for text in read_outs(cells):
                if text:
                    parsed = punch_cells_get(text) or punch_cells.parse(text)
                    if parsed is None:
                        break
                    out_seconds += parsed
            else:
                parsed = ()
            if parsed is None:
                yield _time_error(number, text, header, out_positions, cells)
                continue

            if late_text:
                late_minutes = parse_minutes(late_text)
                if late_minutes is None:
                    yield _minutes_error(number, LATE_MINUTES_COLUMN, late_text)
                    continue
            else:
                late_minutes = 0
            if early_text:
                early_minutes = parse_minutes(early_text)
                if early_minutes is None:
                    yield _minutes_error(number, EARLY_LEAVE_MINUTES_COLUMN, early_text)
                    continue
            else:
                early_minutes = 0

            punches = in_seconds + out_seconds
            if punches:
                midnight = midnights_get(work_date) or midnights.parse(work_date)
                first, last = min(punches), max(punches)
                first_in = midnight + (offsets_get(first) or offsets.parse(first))
                if last != first:
                    last_out = midnight + (offsets_get(last) or offsets.parse(last))
                    work_minutes = (last - first) // 60
                else:
                    last_out, work_minutes = None, 0
            else:
                first_in = last_out = None
                work_minutes = 0

            # FORMATS.md: the first rule that applies.
            if shift.startswith(REST_SHIFT):
                status = off
            else:
                results = "|".join(read_results(cells))
                if LEAVE_RESULT in results:
                    status = leave
                elif not punches:
                    status = absent
                elif not in_seconds or not out_seconds:
                    status = partial
                elif LATE_RESULT in results:
                    status = late_early if EARLY_LEAVE_RESULT in results else late
                elif EARLY_LEAVE_RESULT in results:
                    status = early_leave
                else:
                    status = normal

            yield day_row(
                number,
                person_of(
                    employee_no,
                    user_id,
                    "",
                    strip_left_company(name) if name.endswith(LEFT_COMPANY_SUFFIXES) else name,
                    department,
                ),
                work_date,
                first_in,
                last_out,
                work_minutes,
                late_minutes,
                early_minutes,
                status,
            )

    return parse_rows


def _date_error(number: int, text: str, work_date, today) -> RowError:
    if work_date is not None:
        return RowError(
            number,
            DATE_COLUMN,
            RowCode.FUTURE_DATE,
            f"The date {quote(text)} in {DATE_COLUMN} is after today ({today}).",
        )
    if not text:
        return RowError(
            number,
            DATE_COLUMN,
            RowCode.MISSING_VALUE,
            f"The {DATE_COLUMN} cell is empty; every row needs its work date.",
        )
    return RowError(
        number,
        DATE_COLUMN,
        RowCode.INVALID_DATE,
        f"The date {quote(text)} in {DATE_COLUMN} is not a valid date.",
    )


def _time_error(
    number: int, text: str, header: list[str], positions: list[int], cells: list[str]
) -> RowError:
    column = next((header[p] for p in positions if cells[p] == text), "")
    return RowError(
        number,
        column,
        RowCode.INVALID_TIME,
        f"The time {quote(text)} in {column} is not a valid time (HH:MM or 次日 HH:MM).",
    )


def _minutes_error(number: int, column: str, text: str) -> RowError:
    return RowError(
        number,
        column,
        RowCode.INVALID_VALUE,
        f"The minutes {quote(text)} in {column} are not a whole, non-negative number.",
    )


def _is_punch_time(name: str, side: str) -> bool:
    match = _PUNCH_TIME_COLUMN.fullmatch(name)
    return match is not None and match.group(1) == side
