"""Stage tables: a parser's results, one row each, COPY'd (binary) into a temporary table for
one run or into an UNLOGGED table kept with an upload."""

from __future__ import annotations

import re
import uuid

from imports.formats.base import DayRow, EmptyFile, PunchRow, RowError, RowSkipped

# The stage table's columns, in COPY order: its DDL, the COPY column list and the binary
# COPY's types all come from here. ``kind``: d day, p punch, s skipped, e error.
STAGE_SCHEMA = (
    ("row_no", "int4"),
    ("kind", "text"),
    *((column, "text") for column in ("emp_no", "dt_id", "pin", "name", "dept")),
    ("work_date", "date"),
    ("first_in", "timestamptz"),
    ("last_out", "timestamptz"),
    ("work_minutes", "int4"),
    ("late_minutes", "int4"),
    ("early_minutes", "int4"),
    *((column, "text") for column in ("status", "code", "col", "message")),
)
STAGE_TYPES = [pg_type for _column, pg_type in STAGE_SCHEMA]
STAGE_COLUMNS = ", ".join(column for column, _pg_type in STAGE_SCHEMA)


TEMP_STAGE = "import_stage"
_UPLOAD_STAGE = re.compile(r"import_upload_[0-9a-f]{32}")


def upload_stage_name(upload_id: uuid.UUID) -> str:
    return f"import_upload_{upload_id.hex}"


def checked_stage_name(name: str) -> str:
    """Stage table names go into SQL text: only ours (``import_stage`` or an upload's)."""
    if name != TEMP_STAGE and not _UPLOAD_STAGE.fullmatch(name):
        raise ValueError(f"Not a stage table name: {name!r}")
    return name


def create_stage_table(cursor, name: str, *, temporary: bool) -> None:
    """The parser's output, one row per result: a temporary table for one run, or an
    UNLOGGED table kept with an upload (no WAL to write; emptied by a crash, when the
    file is simply read again)."""
    name = checked_stage_name(name)
    kind, tail = ("TEMP", "ON COMMIT DROP") if temporary else ("UNLOGGED", "")
    columns = ", ".join(
        f"{column} {pg_type}" + (" NOT NULL" if column in ("row_no", "kind") else "")
        for column, pg_type in STAGE_SCHEMA
    )
    cursor.execute(f"CREATE {kind} TABLE {name} ({columns}) {tail}")


def fill_stage_table(cursor, name: str, parsed_rows, on_row=None) -> int:
    """COPY a parser's results into a stage table and analyse it (the plan's joins need
    its statistics); returns how many. A file with a header and no rows is EMPTY_FILE,
    raised inside the caller's transaction, so nothing stays."""
    count = copy_parsed_rows(cursor, name, parsed_rows, on_row)
    if count == 0:
        raise EmptyFile("The file has a header but no data rows.")
    cursor.execute(f"ANALYZE {checked_stage_name(name)}")
    return count


def copy_parsed_rows(cursor, name: str, parsed_rows, on_row=None) -> int:
    """COPY every result of a parser into a stage table; returns how many."""
    name = checked_stage_name(name)
    count = 0
    raw = cursor.cursor  # psycopg's cursor under Django's wrapper
    with raw.copy(f"COPY {name} ({STAGE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        # Binary COPY: no text formatting of dates and numbers on either side (about
        # twice as fast as text COPY for half a million rows here).
        copy.set_types(STAGE_TYPES)
        write = copy.write_row
        for parsed in parsed_rows:
            count += 1
            kind = type(parsed)
            if kind is DayRow or kind is PunchRow:
                person = parsed.person
                identity = (
                    person.employee_no or "",
                    person.dingtalk_user_id or "",
                    person.device_pin or "",
                    person.name,
                    person.department,
                )
                if kind is DayRow:
                    facts = (
                        parsed.first_in,
                        parsed.last_out,
                        parsed.work_minutes,
                        parsed.late_minutes,
                        parsed.early_leave_minutes,
                        parsed.status,
                    )
                else:  # a punch: its instant in first_in, its kind in status
                    facts = (parsed.occurred_at, None, None, None, None, parsed.kind)
                kind_code = "d" if kind is DayRow else "p"
                write(
                    (parsed.row, kind_code, *identity, parsed.work_date, *facts, None, None, None)
                )
            elif kind is RowSkipped or kind is RowError:
                write(
                    (
                        parsed.row,
                        "s" if kind is RowSkipped else "e",
                        *(None,) * 12,
                        parsed.code,
                        parsed.column[:100],
                        parsed.message[:500],
                    )
                )
            if on_row is not None and count % 10_000 == 0:
                on_row(count)
    return count


def drop_stage_table(cursor, name: str) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {checked_stage_name(name)}")


def staged_rows_present(cursor, name: str) -> bool:
    """Whether an upload's stage table still holds its rows (a crash empties UNLOGGED
    tables; an upload from before stage tables has none)."""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [checked_stage_name(name)])
    if not cursor.fetchone()[0]:
        return False
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {name})")  # noqa: S608
    return cursor.fetchone()[0]
