"""The SQL that writes days: a plan's apply, chunk by chunk, and its exact undoing.

Both sides are kept together on purpose: what rollback restores is exactly what the apply
recorded (the ``prior_*`` pre-image of every day it replaced, the days it inserted), and both
re-check the row they touch instead of trusting an earlier read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from attendance.models import RECORD_VALUE_COLUMNS

APPLIED_ACTIONS = ("inserted", "updated")
CHANGED_DURING_IMPORT = "CHANGED_DURING_IMPORT"
# The plan's copy of each day as it was (the pre-image), and the test "still as planned".
PRIOR_COLUMNS = tuple(f"prior_{column}" for column in RECORD_VALUE_COLUMNS)
PRIOR_SELECT = ", ".join(
    f"a.{column} AS {prior}"
    for column, prior in zip(RECORD_VALUE_COLUMNS, PRIOR_COLUMNS, strict=True)
)

_RECORD_WRITE_COLUMNS = (
    "first_in, last_out, work_minutes, late_minutes, early_leave_minutes, status, source,"
    " batch_id, note, updated_at"
)
_STILL_AS_PLANNED = (
    "("
    + ", ".join(f"a.{column}" for column in RECORD_VALUE_COLUMNS)
    + ") IS NOT DISTINCT FROM ("
    + ", ".join(f"p.{prior}" for prior in PRIOR_COLUMNS)
    + ")"
)
# One chunk of the plan is three statements. New days are inserted only where no day exists
# by then (ON CONFLICT DO NOTHING also waits for a punch inserting that day right now); known
# days are updated only while every value is still the one the plan saw (a concurrent change
# makes PostgreSQL re-check the condition on the newest row). Their row counts tell whether
# the chunk wrote all it planned; the items then say what each row did.
APPLY_INSERT_SQL = f"""
    INSERT INTO attendance_attendancerecord
        (organisation_id, employee_id, work_date, {_RECORD_WRITE_COLUMNS})
    SELECT %(org)s, employee_id, work_date, first_in, last_out, work_minutes, late_minutes,
           early_minutes, status, 'import', %(batch)s, '', %(now)s
    FROM import_plan
    WHERE action = 'inserted' AND row_no >= %(low)s AND row_no < %(high)s
    ON CONFLICT (employee_id, work_date) DO NOTHING
"""  # noqa: S608 - constants of this module only
APPLY_UPDATE_SQL = f"""
    UPDATE attendance_attendancerecord a SET
        first_in = p.first_in, last_out = p.last_out, work_minutes = p.work_minutes,
        late_minutes = p.late_minutes, early_leave_minutes = p.early_minutes,
        status = p.status, source = 'import', batch_id = %(batch)s, note = '',
        updated_at = %(now)s
    FROM import_plan p
    WHERE p.action = 'updated' AND p.row_no >= %(low)s AND p.row_no < %(high)s
      AND a.id = p.record_id AND {_STILL_AS_PLANNED}
"""  # noqa: S608 - constants of this module only


def _items_sql(*, all_written: bool) -> str:
    """The chunk's items. When the chunk wrote every day it planned (the rule), each row did
    what the plan says. Otherwise the rows whose day is not now this batch's write (its
    batch and its transaction time) lost it to a concurrent writer: skipped, with
    ``CHANGED_DURING_IMPORT``, and no pre-image, since the batch replaced nothing there."""
    if all_written:
        outcome = "SELECT p.*, false AS lost FROM import_plan p"
    else:
        outcome = (
            "SELECT p.*, p.action IN ('inserted', 'updated') AND a.id IS NULL AS lost"
            " FROM import_plan p LEFT JOIN attendance_attendancerecord a"
            " ON a.employee_id = p.employee_id AND a.work_date = p.work_date"
            " AND a.batch_id = %(batch)s AND a.updated_at = %(now)s"
        )
    pre_image = ", ".join(
        f"CASE WHEN action = 'updated' AND NOT lost THEN {prior}"
        + (" ELSE '' END" if prior in ("prior_status", "prior_source", "prior_note") else " END")
        for prior in PRIOR_COLUMNS
    )
    return f"""
    INSERT INTO imports_importitem
        (batch_id, "row", action, code, "column", message, employee_ref, employee_id,
         work_date, record_id, first_in, last_out, status, {", ".join(PRIOR_COLUMNS)})
    SELECT %(batch)s, row_no,
           CASE WHEN lost THEN 'skipped' ELSE action END,
           CASE WHEN lost THEN '{CHANGED_DURING_IMPORT}' ELSE '' END, '',
           CASE WHEN lost THEN 'The day ' || work_date::text || ' changed while the import'
                || ' ran (a punch, a correction or an edit); the import left it as it was.'
                ELSE '' END,
           '', employee_id, work_date, record_id, first_in, last_out, status, {pre_image}
    FROM ({outcome}) p
    WHERE p.row_no >= %(low)s AND p.row_no < %(high)s
      AND p.action NOT IN ('invalid', 'duplicate', 'skipped')
    """  # noqa: S608 - constants of this module only


APPLY_ITEMS_SQL = _items_sql(all_written=True)
APPLY_ITEMS_WITH_LOSSES_SQL = _items_sql(all_written=False)


# --- rollback: the apply undone, next to the apply ---------------------------------------
# Every statement finds the batch's days from its items (their (batch, row) index) and each
# day by its unique (employee, work date). Whether a day is still the batch's is checked on
# each row in a form PostgreSQL cannot use to look rows up (row-wise IS NOT DISTINCT FROM is
# no index condition): on a database that has lived a while, the statistics do not know the
# new batch yet, and an indexable ``a.batch_id = %(batch)s`` made the planner drive a nested
# loop from the records' batch index (estimated 1 row, really all of them) around the items:
# quadratic, 27–60 s for ten thousand days. These plans stay linear whatever the statistics.
_BATCH_DAYS = """
    FROM imports_importitem i
    JOIN attendance_attendancerecord a
      ON a.employee_id = i.employee_id AND a.work_date = i.work_date
    WHERE i.batch_id = %(batch)s AND i.action IN ('inserted', 'updated')
"""
_STILL_THE_BATCHS = "(a.batch_id, a.updated_at) IS NOT DISTINCT FROM (%(batch)s, %(applied_at)s)"
ROLLBACK_DELETE_INSERTED_SQL = f"""
    DELETE FROM attendance_attendancerecord a USING imports_importitem i
    WHERE i.batch_id = %(batch)s AND i.action = 'inserted'
      AND a.employee_id = i.employee_id AND a.work_date = i.work_date
      AND {_STILL_THE_BATCHS}
"""  # noqa: S608 - constants of this module only
_RESTORE_PRE_IMAGE = ", ".join(
    f"{column} = i.{prior}"
    for column, prior in zip(RECORD_VALUE_COLUMNS, PRIOR_COLUMNS, strict=True)
)
ROLLBACK_RESTORE_UPDATED_SQL = f"""
    UPDATE attendance_attendancerecord a SET {_RESTORE_PRE_IMAGE}
    FROM imports_importitem i
    WHERE i.batch_id = %(batch)s AND i.action = 'updated'
      AND a.employee_id = i.employee_id AND a.work_date = i.work_date
      AND {_STILL_THE_BATCHS}
"""  # noqa: S608 - constants of this module only


@dataclass
class RollbackCount:
    """What a rollback found before writing: days it may undo, and days others changed."""

    inserted: int
    updated: int
    conflicts: int


def rollback_survey(cursor, *, batch_id: int, applied_at: dt.datetime) -> RollbackCount:
    """One pass over the batch's days: how many are still as the batch wrote them."""
    cursor.execute(
        f"""
        SELECT count(*) FILTER (WHERE mine AND action = 'inserted'),
               count(*) FILTER (WHERE mine AND action = 'updated'),
               count(*) FILTER (WHERE NOT mine)
        FROM (SELECT i.action, {_STILL_THE_BATCHS} AS mine {_BATCH_DAYS}) days
        """,  # noqa: S608 - constants of this module only
        {"batch": batch_id, "applied_at": applied_at},
    )
    return RollbackCount(*cursor.fetchone())


def rollback_conflicts(cursor, *, batch_id: int, applied_at: dt.datetime, limit: int = 20):
    """The first days a later write changed: (work date, employee number, source, batch)."""
    cursor.execute(
        f"""
        SELECT i.work_date, e.employee_no, a.source, a.batch_id
        FROM imports_importitem i
        JOIN attendance_attendancerecord a
          ON a.employee_id = i.employee_id AND a.work_date = i.work_date
        JOIN attendance_employee e ON e.id = a.employee_id
        WHERE i.batch_id = %(batch)s AND i.action IN ('inserted', 'updated')
          AND NOT {_STILL_THE_BATCHS}
        ORDER BY i.row LIMIT %(limit)s
        """,  # noqa: S608 - constants of this module only
        {"batch": batch_id, "applied_at": applied_at, "limit": limit},
    )
    return cursor.fetchall()


def rollback_delete_inserted(cursor, *, batch_id: int, applied_at: dt.datetime) -> int:
    cursor.execute(ROLLBACK_DELETE_INSERTED_SQL, {"batch": batch_id, "applied_at": applied_at})
    return cursor.rowcount


def rollback_restore_updated(cursor, *, batch_id: int, applied_at: dt.datetime) -> int:
    """Every value column back to its pre-image, ``updated_at`` included."""
    cursor.execute(ROLLBACK_RESTORE_UPDATED_SQL, {"batch": batch_id, "applied_at": applied_at})
    return cursor.rowcount


def rollback_delete_punches(cursor, *, batch_id: int) -> int:
    cursor.execute("DELETE FROM attendance_punch WHERE batch_id = %s", [batch_id])
    return cursor.rowcount


def rollback_delete_created_employees(cursor, *, employee_ids: list[int]) -> int:
    """The employees the batch created, unless something else refers to them by now."""
    if not employee_ids:
        return 0
    cursor.execute(
        """
        DELETE FROM attendance_employee e
        WHERE e.id = ANY(%(ids)s) AND e.user_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM attendance_attendancerecord a WHERE a.employee_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM attendance_punch p WHERE p.employee_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM attendance_adjustmentrequest r
                          WHERE r.employee_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM attendance_employee x WHERE x.approver_id = e.id)
        """,
        {"ids": employee_ids},
    )
    return cursor.rowcount
