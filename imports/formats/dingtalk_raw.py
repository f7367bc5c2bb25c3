"""DingTalk 原始记录: one row per punch (FORMATS.md).

``考勤日期`` is the work day; ``打卡时间`` is when the punch happened and may fall on the
next calendar day (night shifts). Rows DingTalk itself marked ``打卡无效…`` are skipped
(counted, not errors). The pipeline folds the punches into days.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice

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
    RowSkipped,
    UnsupportedFormat,
)
from imports.formats.cell_values import (
    BoundedCache,
    LocalTimes,
    parse_date,
    parse_moment,
    quote,
)
from imports.formats.dingtalk_daily import strip_left_company
from imports.formats.reading import ColumnLayout, HeaderMatch, Table, find_header

WORK_DATE_COLUMN = "考勤日期"
PUNCH_TIME_COLUMN = "打卡时间"
RESULT_COLUMN = "打卡结果"
EMPLOYEE_NO_COLUMN = "工号"
USER_ID_COLUMN = "UserId"
NAME_COLUMN = "姓名"
DEPARTMENT_COLUMN = "部门"
INVALID_PUNCH_PREFIX = "打卡无效"


def is_raw_header(cells: list[str]) -> bool:
    names = set(cells)
    return WORK_DATE_COLUMN in names and PUNCH_TIME_COLUMN in names


class DingTalkRawFormat(ImportFormat):
    name = "dingtalk_raw"
    label = gettext_lazy("DingTalk punch records (原始记录)")
    kind = "punch"
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
            WORK_DATE_COLUMN,
            required=True,
            description=gettext_lazy(
                "The work day the punch counts for: 26-05-09 星期六 or 2026-05-09."
            ),
        ),
        ColumnSpec(
            PUNCH_TIME_COLUMN,
            required=True,
            description=gettext_lazy(
                "When the punch happened, YYYY-MM-DD HH:MM local; may be the next day."
            ),
        ),
        ColumnSpec(
            RESULT_COLUMN,
            description=gettext_lazy(
                "DingTalk's verdict; rows starting with 打卡无效 are skipped."
            ),
        ),
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
                "26-05-09 星期六",
                "2026-05-10 00:27",
                "正常",
            ],
        ]

    def parse(self, table: Table, options: ParseOptions) -> Iterator[ParsedRow]:
        header = self._header(table, options.mapping)
        if header is None:
            raise UnsupportedFormat(
                "No DingTalk punch record header (a row with 考勤日期 and 打卡时间) in the "
                "first rows of the file."
            )
        layout = ColumnLayout(header.cells)
        read_fields = layout.reader(
            EMPLOYEE_NO_COLUMN,
            USER_ID_COLUMN,
            NAME_COLUMN,
            DEPARTMENT_COLUMN,
            WORK_DATE_COLUMN,
            PUNCH_TIME_COLUMN,
            RESULT_COLUMN,
        )
        identifier_column = (
            EMPLOYEE_NO_COLUMN if EMPLOYEE_NO_COLUMN in layout.positions else USER_ID_COLUMN
        )
        read_date = BoundedCache(parse_date)
        local_times = LocalTimes(options.time_zone)
        today = options.today

        fit = layout.fit
        for number, cells in islice(table.rows(), header.row, None):
            cells = fit(cells)
            employee_no, user_id, name, department, date_text, punch_text, result = read_fields(
                cells
            )
            if result.startswith(INVALID_PUNCH_PREFIX):
                yield RowSkipped(
                    number,
                    RowCode.INVALID_PUNCH,
                    f"DingTalk marked this punch invalid: {quote(result)}.",
                    RESULT_COLUMN,
                )
                continue
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
            work_date = read_date(date_text)
            if work_date is None:
                yield _missing_or_invalid(number, WORK_DATE_COLUMN, date_text, "date")
                continue
            if work_date > today:
                yield RowError(
                    number,
                    WORK_DATE_COLUMN,
                    RowCode.FUTURE_DATE,
                    f"The date {quote(date_text)} in {WORK_DATE_COLUMN} is after today ({today}).",
                )
                continue
            if not punch_text:
                yield _missing_or_invalid(number, PUNCH_TIME_COLUMN, punch_text, "time")
                continue
            occurred_at, failure = parse_moment(punch_text, work_date, local_times, read_date)
            if occurred_at is None:
                what = "date" if failure == RowCode.INVALID_DATE else "time"
                yield RowError(
                    number,
                    PUNCH_TIME_COLUMN,
                    failure,
                    f"The punch time {quote(punch_text)} in {PUNCH_TIME_COLUMN} has no valid "
                    f"{what} (expected YYYY-MM-DD HH:MM).",
                )
                continue
            yield PunchRow(
                number,
                Person(employee_no, user_id, "", strip_left_company(name), department),
                work_date,
                occurred_at,
            )

    @staticmethod
    def _header(table: Table, mapping: Mapping[str, str] | None) -> HeaderMatch | None:
        return find_header(table, is_raw_header, mapping=mapping)


def _missing_or_invalid(number: int, column: str, text: str, what: str) -> RowError:
    if not text:
        return RowError(
            number,
            column,
            RowCode.MISSING_VALUE,
            f"The {column} cell is empty; every punch needs its {what}.",
        )
    code = RowCode.INVALID_DATE if what == "date" else RowCode.INVALID_TIME
    return RowError(
        number, column, code, f"The {what} {quote(text)} in {column} is not a valid {what}."
    )
