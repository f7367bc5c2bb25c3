"""The one interface every import format implements.

A format reads a :class:`~imports.formats.reading.Table` (rows of text cells with their
source row numbers) and yields, per data row, exactly one of:

- :class:`DayRow`: one employee's day (``dingtalk_daily``, ``standard``);
- :class:`PunchRow`: one punch (``dingtalk_raw``, ``zkteco_attlog``), which the pipeline
  folds into days (earliest in, latest out) in SQL;
- :class:`RowSkipped`: a row the format drops on purpose (``打卡无效…``), counted as skip;
- :class:`RowError`: a row that cannot be read, with the column and an error code.

Parsers never touch the database and never cast an id to a number. Matching people
(employee number, DingTalk UserId, device PIN) and deciding insert/update happen later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from django.utils.translation import gettext_lazy

from common.exceptions import ApplicationError


class UnsupportedFormat(ApplicationError):
    status_code = 415
    code = "UNSUPPORTED_FORMAT"
    default_message = gettext_lazy(
        "This file is not a CSV, XLSX or DAT export that an import format reads."
    )


class EmptyFile(ApplicationError):
    status_code = 400
    code = "EMPTY_FILE"
    default_message = gettext_lazy("The file holds no data rows.")


class RowCode:
    """The codes a :class:`RowError` or :class:`RowSkipped` carries (stable: clients and
    reports key on them)."""

    # No identifier at all: no employee number, DingTalk UserId or device PIN.
    MISSING_EMPLOYEE = "MISSING_EMPLOYEE"
    # A date that does not parse or does not exist (2026-02-30).
    INVALID_DATE = "INVALID_DATE"
    # A time that does not parse or does not exist (25:61), or a day that ends before it
    # starts.
    INVALID_TIME = "INVALID_TIME"
    # A work date after ParseOptions.today.
    FUTURE_DATE = "FUTURE_DATE"
    # A required cell is empty.
    MISSING_VALUE = "MISSING_VALUE"
    # A value outside what the column allows (unknown status word, negative minutes).
    INVALID_VALUE = "INVALID_VALUE"
    # Skip, not error: a punch DingTalk itself marked invalid (打卡结果 starts with 打卡无效).
    INVALID_PUNCH = "INVALID_PUNCH"


@dataclass(slots=True)
class Person:
    """How a row names its employee. At least one identifier is non-empty."""

    employee_no: str = ""
    dingtalk_user_id: str = ""
    device_pin: str = ""
    name: str = ""
    department: str = ""

    @property
    def label(self) -> str:
        """The identifier an error message or a created employee uses: number, else UserId,
        else PIN."""
        return self.employee_no or self.dingtalk_user_id or self.device_pin


@dataclass(slots=True)
class DayRow:
    row: int
    person: Person
    work_date: dt.date
    first_in: dt.datetime | None
    last_out: dt.datetime | None
    work_minutes: int = 0
    late_minutes: int = 0
    early_leave_minutes: int = 0
    # None: the file does not say; the organisation's schedule judges the day.
    status: str | None = None


@dataclass(slots=True)
class PunchRow:
    row: int
    person: Person
    work_date: dt.date
    occurred_at: dt.datetime
    # "in", "out" or "unknown"; devices' state keys are not trusted (FORMATS.md).
    kind: str = "unknown"


@dataclass(slots=True)
class RowSkipped:
    row: int
    code: str
    message: str
    column: str = ""


@dataclass(slots=True)
class RowError:
    row: int
    column: str
    code: str
    message: str


ParsedRow = DayRow | PunchRow | RowSkipped | RowError


@dataclass(frozen=True)
class ColumnSpec:
    """A column a format reads: its header as exports write it, whether it is required,
    and a one-line description for ``GET /import/formats`` and the template."""

    header: str
    required: bool = False
    description: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParseOptions:
    time_zone: dt.tzinfo
    # Dates after this day (in time_zone) are FUTURE_DATE errors.
    today: dt.date
    # Source header → the header this format expects, applied before detection.
    mapping: dict[str, str] = field(default_factory=dict)


class ImportFormat:
    """Subclass, set the class attributes, implement :meth:`matches` and :meth:`parse`."""

    name: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[Literal["day", "punch"]]
    containers: ClassVar[tuple[str, ...]]  # of "csv", "xlsx", "dat"
    columns: ClassVar[tuple[ColumnSpec, ...]]
    # Seconds within which two punches of one person are one punch (punch formats).
    punch_merge_seconds: ClassVar[int] = 0

    def matches(self, table, mapping: Mapping[str, str] | None = None) -> bool:
        """Whether ``table`` is in this format; ``mapping`` renames source headers first
        (as ParseOptions.mapping does for :meth:`parse`)."""
        raise NotImplementedError

    def parse(self, table, options: ParseOptions) -> Iterator[ParsedRow]:
        raise NotImplementedError

    def template_rows(self) -> list[list[str]]:
        """Header row(s) and one example row for the downloadable template."""
        return [[column.header for column in self.columns]]
