"""Set-based import engine: parsed rows → ``COPY`` into a temporary staging table → plan
(insert / update / unchanged / skip / invalid / duplicate) → apply with per-row pre-images.

All of it runs on one connection inside the caller's transaction; the temporary tables are
dropped at commit or rollback. Preview runs the same plan in a transaction that is always
rolled back, so preview and commit cannot disagree about what a file would do.

Row actions and their codes:
- ``invalid``: the parser could not read the row (its own code), or lastOut < firstIn;
- ``skipped``: UNKNOWN_EMPLOYEE, INVALID_PUNCH (``打卡无效``), CORRECTED_DAY_KEPT (the day
  was corrected by an approver or by hand: an import never overwrites that);
- ``duplicate``: a later row for an employee and day already in the file (first row wins);
  for punch formats, a punch of the same person at the same instant;
- ``inserted`` / ``updated`` / ``unchanged``: what the day record needs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from attendance.choices import (
    CORRECTED_SOURCES,
    STATED_STATUSES,
    PunchKind,
    PunchSource,
    sql_literals,
)
from attendance.schedule import judge_day
from common.csv_export import neutralised_sql
from imports.formats.base import ImportFormat, ParseOptions
from imports.models import ImportMode
from imports.staging.apply import (
    APPLY_INSERT_SQL,
    APPLY_ITEMS_SQL,
    APPLY_ITEMS_WITH_LOSSES_SQL,
    APPLY_UPDATE_SQL,
    PRIOR_SELECT,
)
from imports.staging.stage import (
    TEMP_STAGE,
    checked_stage_name,
    create_stage_table,
    fill_stage_table,
)

ACTIONS = ("inserted", "updated", "unchanged", "skipped", "invalid", "duplicate")
STAT_KEYS = {
    "inserted": "insert",
    "updated": "update",
    "unchanged": "unchanged",
    "skipped": "skip",
    "invalid": "invalid",
    "duplicate": "duplicate",
}
Progress = Callable[[int, int], None]


@dataclass
class Plan:
    source_rows: int = 0
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS.values(), 0))
    created_employee_ids: list[int] = field(default_factory=list)
    day_rows: int = 0
    # Days the apply left alone because they changed after the plan (counted in ``skip``).
    changed_during_import: int = 0


class ImportEngine:
    """One import run on a Django cursor. Call :meth:`stage`, then :meth:`plan`, then either
    read the preview or :meth:`apply`."""

    # Called with the next chunk's first row after each applied chunk: the concurrency tests
    # interleave other writers there with a barrier (a staticmethod set on the class).
    after_chunk: Callable[[int], None] | None = None

    def __init__(self, cursor, *, organisation, fmt: ImportFormat, mode: str):
        self.cursor = cursor
        self.organisation = organisation
        self.fmt = fmt
        self.mode = mode
        self.result = Plan()
        self.stage_table = TEMP_STAGE

    def _sql(self, sql: str, params=None) -> None:
        self.cursor.execute(sql, params or {})

    # --- stage -------------------------------------------------------------------------

    def _reset(self) -> None:
        # Dropped at the end of the transaction; dropping first also lets a second run reuse
        # the names inside one outer transaction (tests, nested atomic blocks).
        self._sql(
            "DROP TABLE IF EXISTS import_stage, import_people, import_unknown, import_resolved,"
            " import_days, import_judged, import_plan"
        )
        # For this transaction only: the plan's sorts and hashes over every row of the
        # file, which the server's default (4 MB) sends to disk.
        self._sql("SELECT set_config('work_mem', %(mem)s, true)", {"mem": settings.IMPORT_WORK_MEM})

    def stage(self, table, options: ParseOptions, *, on_row: Callable[[int], None] | None = None):
        """Parse the file and COPY every result (rows, skips and errors) into one table."""
        self._reset()
        self.stage_table = TEMP_STAGE
        create_stage_table(self.cursor, TEMP_STAGE, temporary=True)
        # Upload refuses an empty file too; this covers inline text and a format or mapping
        # chosen after the upload.
        count = fill_stage_table(self.cursor, TEMP_STAGE, self.fmt.parse(table, options), on_row)
        self.result.source_rows = count
        return count

    def use_staged(self, stage_table: str, rows: int) -> None:
        """Plan from rows the upload already parsed and analysed (``upload_create``)."""
        self._reset()
        self.stage_table = checked_stage_name(stage_table)
        self.result.source_rows = rows

    # --- plan --------------------------------------------------------------------------

    def plan(self, *, create_missing: bool) -> Plan:
        org = self.organisation.pk
        # People are resolved once per distinct identity (thousands), not per row (hundreds
        # of thousands); rows then join to them by hash.
        stage = self.stage_table
        self._sql(
            f"""
            CREATE TEMP TABLE import_people ON COMMIT DROP AS
            -- A hash aggregate, then the name and department of each identity's first row:
            -- a sort of every row by three text columns took three times as long.
            SELECT f.emp_no, f.dt_id, f.pin, s.name, s.dept, f.row_no
            FROM (
                SELECT emp_no, dt_id, pin, min(row_no) AS row_no
                FROM {stage} WHERE kind IN ('d', 'p')
                GROUP BY emp_no, dt_id, pin
            ) f
            JOIN {stage} s ON s.row_no = f.row_no AND s.kind IN ('d', 'p')
            """  # noqa: S608
        )
        self._sql("ANALYZE import_people")
        if create_missing:
            self._create_missing_employees()
        # Employee number first, then DingTalk UserId, then device PIN.
        self._sql(
            """
            ALTER TABLE import_people ADD COLUMN employee_id bigint;
            UPDATE import_people p SET employee_id = COALESCE(
                (SELECT e.id FROM attendance_employee e WHERE e.organisation_id = %(org)s
                   AND p.emp_no <> '' AND e.employee_no = p.emp_no),
                (SELECT e.id FROM attendance_employee e WHERE e.organisation_id = %(org)s
                   AND p.dt_id <> '' AND e.dingtalk_user_id <> ''
                   AND e.dingtalk_user_id = p.dt_id),
                (SELECT e.id FROM attendance_employee e WHERE e.organisation_id = %(org)s
                   AND p.pin <> '' AND e.device_pin <> '' AND e.device_pin = p.pin));
            ANALYZE import_people;
            """,
            {"org": org},
        )
        # Rows go straight from the stage to what the format needs (days, or punches to
        # fold); only the few rows naming nobody are kept apart, for the report.
        with_people = f"""
            FROM {stage} s
            JOIN import_people p
              ON p.emp_no = s.emp_no AND p.dt_id = s.dt_id AND p.pin = s.pin
            WHERE s.kind IN ('d', 'p')
        """
        self._sql(
            "CREATE TEMP TABLE import_unknown ON COMMIT DROP AS"
            f" SELECT s.row_no, s.emp_no, s.dt_id, s.pin {with_people}"
            " AND p.employee_id IS NULL"
        )
        if self.fmt.kind == "punch":
            self._sql(
                "CREATE TEMP TABLE import_resolved ON COMMIT DROP AS"
                f" SELECT s.row_no, p.employee_id, s.work_date, s.first_in {with_people}"
                " AND p.employee_id IS NOT NULL"
            )
            self._fold_punches()
        else:
            self._sql(
                "CREATE TEMP TABLE import_days ON COMMIT DROP AS"
                " SELECT s.row_no, p.employee_id, s.work_date, s.first_in, s.last_out,"
                " s.work_minutes, s.late_minutes, s.early_minutes, s.status"
                f" {with_people} AND p.employee_id IS NOT NULL"
            )
        if self.mode == ImportMode.MERGE:
            self._merge_with_existing()
        self._judge_undecided_days()
        # The plan keeps the day as it saw it (``prior_*``): the apply writes a day only while
        # it is still exactly that, and the pre-image a rollback restores is that same row.
        self._sql(
            f"""
            CREATE TEMP TABLE import_plan ON COMMIT DROP AS
            SELECT d.*, a.id AS record_id, {PRIOR_SELECT},
                CASE
                    WHEN d.last_out < d.first_in THEN 'invalid'
                    WHEN d.occurrence > 1 THEN 'duplicate'
                    WHEN a.id IS NULL THEN 'inserted'
                    WHEN a.source IN ({sql_literals(CORRECTED_SOURCES)}) THEN 'skipped'
                    WHEN (a.first_in, a.last_out, a.work_minutes, a.late_minutes,
                          a.early_leave_minutes, a.status)
                         IS NOT DISTINCT FROM
                         (d.first_in, d.last_out, d.work_minutes, d.late_minutes,
                          d.early_minutes, d.status) THEN 'unchanged'
                    ELSE 'updated'
                END AS action
            FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY employee_id, work_date ORDER BY row_no) AS occurrence
                FROM import_days
            ) d
            LEFT JOIN attendance_attendancerecord a
                   ON a.employee_id = d.employee_id AND a.work_date = d.work_date
            """  # noqa: S608 - constants of this module only
        )
        self._sql("CREATE INDEX ON import_plan (row_no)")
        self._sql("ANALYZE import_plan")
        self.cursor.execute(
            f"""
            SELECT action, count(*) FROM import_plan GROUP BY action
            UNION ALL
            SELECT 'skipped', count(*) FROM import_unknown
            UNION ALL
            SELECT CASE kind WHEN 's' THEN 'skipped' ELSE 'invalid' END, count(*)
            FROM {stage} WHERE kind IN ('s', 'e') GROUP BY kind
            """  # noqa: S608
        )
        stats = dict.fromkeys(STAT_KEYS.values(), 0)
        for action, number in self.cursor.fetchall():
            stats[STAT_KEYS[action]] += number
        if self.fmt.kind == "punch":
            stats["duplicate"] += self._punch_duplicates()
        self.result.stats = stats
        self.cursor.execute("SELECT count(*) FROM import_plan")
        self.result.day_rows = self.cursor.fetchone()[0]
        return self.result

    def _create_missing_employees(self) -> None:
        """People the file names but the organisation lacks become employees: number =
        工号, else UserId, else PIN (the UserId and PIN are kept too)."""
        self.cursor.execute(
            """
            INSERT INTO attendance_employee
                (organisation_id, employee_no, name, department, dingtalk_user_id, device_pin,
                 is_active, created_at)
            SELECT DISTINCT ON (label)
                   %(org)s, label, left(coalesce(name, ''), 200), left(coalesce(dept, ''), 200),
                   left(dt_id, 64), left(pin, 32), true, now()
            FROM (
                SELECT p.*, COALESCE(NULLIF(p.emp_no, ''), NULLIF(p.dt_id, ''), p.pin) AS label
                FROM import_people p
                -- One NOT EXISTS per identifier, each able to use its (partial) unique index.
                WHERE NOT EXISTS (
                        SELECT 1 FROM attendance_employee e
                        WHERE e.organisation_id = %(org)s AND p.emp_no <> ''
                          AND e.employee_no = p.emp_no)
                  AND NOT EXISTS (
                        SELECT 1 FROM attendance_employee e
                        WHERE e.organisation_id = %(org)s AND p.dt_id <> ''
                          AND e.dingtalk_user_id <> '' AND e.dingtalk_user_id = p.dt_id)
                  AND NOT EXISTS (
                        SELECT 1 FROM attendance_employee e
                        WHERE e.organisation_id = %(org)s AND p.pin <> ''
                          AND e.device_pin <> '' AND e.device_pin = p.pin)
            ) missing
            WHERE label <> '' AND length(label) <= 64
            ORDER BY label, row_no
            ON CONFLICT DO NOTHING
            RETURNING id
            """,
            {"org": self.organisation.pk},
        )
        self.result.created_employee_ids = [row[0] for row in self.cursor.fetchall()]

    def _fold_punches(self) -> None:
        """A day of punches → earliest in and latest out. Punches within the format's merge
        window of the last kept punch are the same punch (FORMATS.md); lastOut needs two
        kept punches. Streamed in sorted order, so memory holds one person-day at a time."""
        self._sql(
            "CREATE TEMP TABLE import_days (row_no integer, employee_id bigint, work_date date,"
            " first_in timestamptz, last_out timestamptz, work_minutes integer,"
            " late_minutes integer, early_minutes integer, status text) ON COMMIT DROP"
        )
        merge = dt.timedelta(seconds=max(self.fmt.punch_merge_seconds, 0))

        def days():
            key = None
            row_no = first = last_kept = None
            kept = 0
            for punch_row, employee_id, work_date, moment in self._stream(
                "SELECT row_no, employee_id, work_date, first_in FROM import_resolved"
                " WHERE employee_id IS NOT NULL ORDER BY employee_id, work_date, first_in, row_no"
            ):
                if (employee_id, work_date) != key:
                    if key is not None:
                        yield (row_no, *key, first, last_kept if kept > 1 else None)
                    key = (employee_id, work_date)
                    row_no, first, last_kept, kept = punch_row, moment, moment, 1
                    continue
                row_no = min(row_no, punch_row)
                if moment - last_kept > merge:
                    last_kept, kept = moment, kept + 1
            if key is not None:
                yield (row_no, *key, first, last_kept if kept > 1 else None)

        self._copy_rows(
            "COPY import_days (row_no, employee_id, work_date, first_in, last_out) FROM STDIN",
            days(),
        )
        self._sql("UPDATE import_days SET work_minutes = 0, late_minutes = 0, early_minutes = 0")

    def _stream(self, sql: str, batch: int = 5000):
        """Rows of a query through a server-side cursor, fetched in batches. Callers may
        COPY between batches (see :meth:`_copy_rows`), never during a fetch."""
        connection = self.cursor.cursor.connection
        with connection.cursor(name=f"import_stream_{id(self)}") as named:
            named.execute(sql)
            while rows := named.fetchmany(batch):
                yield from rows

    def _copy_rows(self, copy_sql: str, rows, batch: int = 5000) -> None:
        """COPY an iterable in batches: each COPY ends before the next batch is produced,
        because a connection cannot fetch from a cursor while it is in COPY mode."""
        connection = self.cursor.cursor.connection
        chunk = []
        with connection.cursor() as writer:
            for row in rows:
                chunk.append(row)
                if len(chunk) >= batch:
                    self._copy_chunk(writer, copy_sql, chunk)
                    chunk = []
            if chunk:
                self._copy_chunk(writer, copy_sql, chunk)

    @staticmethod
    def _copy_chunk(writer, copy_sql: str, chunk: list) -> None:
        with writer.copy(copy_sql) as copy:
            for row in chunk:
                copy.write_row(row)

    def _punch_duplicates(self) -> int:
        self.cursor.execute(
            """
            SELECT count(*) - count(DISTINCT (employee_id, first_in))
            FROM import_resolved WHERE employee_id IS NOT NULL
            """
        )
        return self.cursor.fetchone()[0]

    def _merge_with_existing(self) -> None:
        """Merge mode: earliest in and latest out of the file and the day as it is; the
        schedule re-judges the merged times unless the file states leave or a day off."""
        self._sql(
            f"""
            UPDATE import_days d
            SET first_in = LEAST(d.first_in, a.first_in),
                last_out = GREATEST(d.last_out, a.last_out),
                status = CASE WHEN d.status IN ({sql_literals(STATED_STATUSES)}) THEN d.status END
            FROM attendance_attendancerecord a
            WHERE a.employee_id = d.employee_id AND a.work_date = d.work_date
              AND a.source NOT IN ({sql_literals(CORRECTED_SOURCES)})
            """  # noqa: S608 - constants of this module only
        )

    def _judge_undecided_days(self) -> None:
        """Days without a stated status (punch formats, merged days, the template's empty
        status) are judged by the organisation's schedule: the same rules as web punches."""
        self.cursor.execute("SELECT 1 FROM import_days WHERE status IS NULL LIMIT 1")
        if self.cursor.fetchone() is None:
            return
        self._sql(
            "CREATE TEMP TABLE import_judged (row_no integer, work_minutes integer,"
            " late_minutes integer, early_minutes integer, status text, first_in timestamptz,"
            " last_out timestamptz) ON COMMIT DROP"
        )

        def judged():
            for row_no, work_date, first_in, last_out in self._stream(
                "SELECT row_no, work_date, first_in, last_out FROM import_days WHERE status IS NULL"
            ):
                punches = []
                if first_in is not None:
                    punches.append((first_in, PunchKind.IN))
                if last_out is not None:
                    punches.append((last_out, PunchKind.OUT))
                result = judge_day(self.organisation, work_date, punches)
                yield (
                    row_no,
                    result.work_minutes,
                    result.late_minutes,
                    result.early_leave_minutes,
                    result.status,
                    result.first_in,
                    result.last_out,
                )

        self._copy_rows(
            "COPY import_judged (row_no, work_minutes, late_minutes, early_minutes, status,"
            " first_in, last_out) FROM STDIN",
            judged(),
        )
        self._sql(
            """
            UPDATE import_days d
            SET work_minutes = j.work_minutes, late_minutes = j.late_minutes,
                early_minutes = j.early_minutes, status = j.status,
                first_in = j.first_in, last_out = j.last_out
            FROM import_judged j WHERE j.row_no = d.row_no
            """
        )

    # --- preview -----------------------------------------------------------------------

    def preview_items(self, limit: int) -> list[dict]:
        """The first rows of the file as the import would treat them."""
        self.cursor.execute(
            """
            SELECT p.row_no, e.employee_no, e.name, p.work_date, p.first_in, p.last_out,
                   p.work_minutes, p.late_minutes, p.status, p.action
            FROM import_plan p JOIN attendance_employee e ON e.id = p.employee_id
            ORDER BY p.row_no LIMIT %(limit)s
            """,
            {"limit": limit},
        )
        zone = self.organisation.tz
        return [
            {
                "row": row_no,
                "employeeNo": employee_no,
                "name": name,
                "workDate": work_date.isoformat(),
                # As the records API gives them: in the organisation's time zone.
                "firstIn": first_in.astimezone(zone).isoformat() if first_in else None,
                "lastOut": last_out.astimezone(zone).isoformat() if last_out else None,
                "workMinutes": work_minutes,
                "lateMinutes": late_minutes,
                "status": status,
                "action": action,
            }
            for (
                row_no,
                employee_no,
                name,
                work_date,
                first_in,
                last_out,
                work_minutes,
                late_minutes,
                status,
                action,
            ) in self.cursor.fetchall()
        ]

    @property
    def issues_sql(self) -> str:
        return f"""
        SELECT row_no, col, code, message, action, employee_ref FROM (
            SELECT row_no, coalesce(col, '') AS col, code, message,
                   CASE kind WHEN 's' THEN 'skipped' ELSE 'invalid' END AS action,
                   '' AS employee_ref
            FROM {self.stage_table} WHERE kind IN ('s', 'e')
            UNION ALL
            SELECT row_no, '' AS col, 'UNKNOWN_EMPLOYEE',
                   'No employee in the organisation has number "' || coalesce(emp_no, '')
                   || '", DingTalk UserId "' || coalesce(dt_id, '')
                   || '" or device PIN "' || coalesce(pin, '') || '".',
                   'skipped', COALESCE(NULLIF(emp_no, ''), NULLIF(dt_id, ''), pin)
            FROM import_unknown
            UNION ALL
            SELECT p.row_no, '', CASE p.action
                    WHEN 'invalid' THEN 'OUT_BEFORE_IN'
                    WHEN 'duplicate' THEN 'DUPLICATE_ROW'
                    ELSE 'CORRECTED_DAY_KEPT' END,
                   CASE p.action
                    WHEN 'invalid' THEN 'The last punch is earlier than the first.'
                    WHEN 'duplicate' THEN 'An earlier row already gives this employee''s day '
                        || p.work_date::text || '; the first row wins.'
                    ELSE 'The day ' || p.work_date::text || ' was corrected by an approver or '
                        || 'by hand; the import leaves it as it is.' END,
                   p.action, ''
            FROM import_plan p WHERE p.action IN ('invalid', 'duplicate', 'skipped')
        ) issues
        """  # noqa: S608

    def issues(self, limit: int | None) -> list[dict]:
        """The first ``limit`` issues in row order (their total is in :meth:`issue_counts`)."""
        limit_sql = "LIMIT %(limit)s" if limit is not None else ""
        self.cursor.execute(
            f"{self.issues_sql} ORDER BY row_no, code {limit_sql}",
            {"limit": limit},
        )
        errors = [
            {"row": row_no, "column": column, "code": code, "message": message}
            for row_no, column, code, message, _action, _ref in self.cursor.fetchall()
        ]
        return errors

    def issue_counts(self) -> list[dict]:
        """How many rows each code holds, over the whole file, most first."""
        self.cursor.execute(
            f"SELECT code, count(*) FROM ({self.issues_sql}) counted"  # noqa: S608
            " GROUP BY code ORDER BY count(*) DESC, code"
        )
        return [{"code": code, "count": count} for code, count in self.cursor.fetchall()]

    def issues_csv_copy_sql(self) -> str:
        """Every issue as CSV (header row first), written by PostgreSQL; the column names
        and messages quote the file's own text, so formulas are neutralised."""
        return (
            f'COPY (SELECT row_no AS "row", {neutralised_sql("col")} AS "column", code,'  # noqa: S608
            f" {neutralised_sql('message')} AS message"
            f" FROM ({self.issues_sql}) listed ORDER BY row_no, code)"
            " TO STDOUT WITH (FORMAT csv, HEADER true)"
        )

    # --- apply -------------------------------------------------------------------------

    def apply(self, *, batch_id: int, applied_at: dt.datetime, progress: Progress | None) -> None:
        """Write the plan, one chunk of source rows per statement: the days, each only while
        it is still what the plan saw, and the items saying what each row did (with the
        pre-image of every day it replaced). Skips, errors and duplicates become items too.

        The plan was read from a snapshot; people keep punching and approving while the
        import runs. A day that appeared or changed since is left as it is and its row becomes
        a skipped item with ``CHANGED_DURING_IMPORT``: it is never overwritten, and never
        recorded as inserted or updated, so rollback cannot undo what the batch did not do.
        """
        params = {"org": self.organisation.pk, "batch": batch_id, "now": applied_at}
        chunk = max(1, settings.IMPORT_CHUNK_ROWS)
        # What each chunk plans to write, counted once: a chunk that writes less lost days to
        # a concurrent writer.
        self.cursor.execute(
            "SELECT row_no / %(chunk)s, count(*) FILTER (WHERE action = 'inserted'),"
            " count(*) FILTER (WHERE action = 'updated') FROM import_plan GROUP BY 1",
            {"chunk": chunk},
        )
        planned = {number: (inserts, updates) for number, inserts, updates in self.cursor}
        self.cursor.execute("SELECT coalesce(max(row_no), 0) FROM import_plan")
        last_row = self.cursor.fetchone()[0]
        total = self.result.day_rows
        done = changed_inserts = changed_updates = 0
        start = 0
        while start <= last_row:
            bounds = {**params, "low": start, "high": start + chunk}
            planned_inserts, planned_updates = planned.get(start // chunk, (0, 0))
            inserted = updated = 0
            if planned_inserts:
                self.cursor.execute(APPLY_INSERT_SQL, bounds)
                inserted = self.cursor.rowcount
            if planned_updates:
                self.cursor.execute(APPLY_UPDATE_SQL, bounds)
                updated = self.cursor.rowcount
            all_written = (inserted, updated) == (planned_inserts, planned_updates)
            self.cursor.execute(
                APPLY_ITEMS_SQL if all_written else APPLY_ITEMS_WITH_LOSSES_SQL, bounds
            )
            done += inserted + updated
            changed_inserts += planned_inserts - inserted
            changed_updates += planned_updates - updated
            start += chunk
            if progress is not None:
                progress(min(done, total), total)
            if settings.IMPORT_CHUNK_PAUSE_SECONDS:
                time.sleep(settings.IMPORT_CHUNK_PAUSE_SECONDS)
            if self.after_chunk is not None:
                self.after_chunk(start)
        stats = self.result.stats
        stats["insert"] -= changed_inserts
        stats["update"] -= changed_updates
        stats["skip"] += changed_inserts + changed_updates
        self.result.changed_during_import = changed_inserts + changed_updates
        self._sql(
            f"""
            INSERT INTO imports_importitem
                (batch_id, "row", action, code, "column", message, employee_ref, employee_id,
                 work_date, status, prior_status, prior_source, prior_note)
            SELECT %(batch)s, issues.row_no, issues.action, issues.code, issues.col,
                   left(issues.message, 500), left(issues.employee_ref, 100), NULL, NULL, '',
                   '', '', ''
            FROM ({self.issues_sql}) issues
            """,  # noqa: S608
            params,
        )
        if self.fmt.kind == "punch":
            self._store_punches(params)

    def _store_punches(self, params: dict) -> None:
        """Device and raw punches are kept as punches too (a resend creates nothing), so a
        later web punch re-derives the day from everything known."""
        source = PunchSource.DEVICE if self.fmt.name == "zkteco_attlog" else PunchSource.IMPORT
        self._sql(
            """
            INSERT INTO attendance_punch
                (organisation_id, employee_id, kind, occurred_at, received_at, work_date,
                 source, source_key, batch_id)
            SELECT DISTINCT ON (employee_id, first_in)
                   %(org)s, employee_id, 'unknown', first_in, %(now)s, work_date,
                   %(source)s,
                   'import:' || employee_id || ':' || floor(extract(epoch FROM first_in))::bigint,
                   %(batch)s
            FROM import_resolved WHERE employee_id IS NOT NULL
            ORDER BY employee_id, first_in, row_no
            ON CONFLICT (organisation_id, source_key) DO NOTHING
            """,
            {**params, "source": source},
        )
