"""Import formats: a registry by name, and detection of a file's format from its content.

Detection asks each format in :data:`FORMATS` order whether it reads the table; the
formats' headers are disjoint (``employee_no``+``work_date``, ``日期``, ``考勤日期``+``打卡时间``,
a headerless tab-separated device log), so at most one answers yes.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.utils.translation import gettext

from common.exceptions import ValidationFailed
from imports.formats.base import (
    ColumnSpec,
    DayRow,
    EmptyFile,
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
from imports.formats.dingtalk_daily import DingTalkDailyFormat
from imports.formats.dingtalk_raw import DingTalkRawFormat
from imports.formats.reading import Table, find_header, open_table
from imports.formats.standard import StandardFormat
from imports.formats.zkteco import ZktecoAttlogFormat

FORMATS: dict[str, ImportFormat] = {
    import_format.name: import_format
    for import_format in (
        StandardFormat(),
        DingTalkDailyFormat(),
        DingTalkRawFormat(),
        ZktecoAttlogFormat(),
    )
}

__all__ = [
    "FORMATS",
    "ColumnSpec",
    "DayRow",
    "EmptyFile",
    "ImportFormat",
    "ParseOptions",
    "ParsedRow",
    "Person",
    "PunchRow",
    "RowCode",
    "RowError",
    "RowSkipped",
    "Table",
    "UnsupportedFormat",
    "detect_format",
    "find_header",
    "get_format",
    "open_table",
]


def get_format(name: str) -> ImportFormat:
    """The format called ``name``; ValidationFailed (field ``format``) for any other name."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        known = ", ".join(FORMATS)
        raise ValidationFailed(
            gettext("Unknown import format %(name)r.") % {"name": name},
            fields={
                "format": [
                    gettext("Unknown import format %(name)r; known formats: %(known)s.")
                    % {"name": name, "known": known}
                ]
            },
        ) from None


def detect_format(table: Table, mapping: Mapping[str, str] | None = None) -> ImportFormat:
    """The first format that reads ``table`` (``mapping`` renames source headers first);
    UnsupportedFormat naming the known formats when none does."""
    for import_format in FORMATS.values():
        if import_format.matches(table, mapping):
            return import_format
    known = ", ".join(f"{f.name} ({f.label})" for f in FORMATS.values())
    raise UnsupportedFormat(
        gettext(
            "No import format recognises this file's columns. Known formats: %(known)s. "
            "Check the header row, or map your column names to a format's."
        )
        % {"known": known}
    )
