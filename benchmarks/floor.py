"""The benchmark's yardsticks, run in the bench database after the API round trip:

- the floor: ``psql`` ``\\copy`` of the same rows, already normalised, into a temporary
  staging table and one ``INSERT … ON CONFLICT (employee_id, work_date) DO UPDATE`` into
  the day records (what the pipeline's apply step does, without parsing, planning or the
  per-row items);
- django-import-export (``ModelResource``, ``use_bulk = True``) on the first --iex-rows
  rows of the same data, in a child process (:func:`iex_child`) with the bench's settings.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import gen_dingtalk
from benchmarks.stack import (
    FLOOR_ORG,
    PYTHON,
    ROOT,
    BenchError,
    Database,
    Stack,
    ms_since,
    organisation_ids,
    phase,
)


def floor_employees(db: Database, rows: int, days: int, seed: int) -> tuple[int, dict]:
    """The floor's employees (not timed), in an organisation of their own: the import's
    were removed by its rollback, and the floor must insert fresh days as the commit did."""
    count, _dates = gen_dingtalk.layout(rows, days)
    with db.connect() as connection:
        (org,) = organisation_ids(connection, FLOOR_ORG)
        connection.execute("DELETE FROM attendance_employee WHERE organisation_id = %s", [org])
        now = dt.datetime.now(dt.UTC)
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY attendance_employee (organisation_id, employee_no, name, department,"
                " dingtalk_user_id, device_pin, is_active, created_at) FROM STDIN"
            ) as copy,
        ):
            for person in gen_dingtalk.people(count, seed):
                row = (org, person.label, person.name, person.department, person.user_id)
                copy.write_row((*row, "", True, now))
        ids = dict(
            connection.execute(
                "SELECT employee_no, id FROM attendance_employee WHERE organisation_id = %s",
                [org],
            ).fetchall()
        )
    return org, ids


def write_floor_csv(path: Path, rows: int, days: int, seed: int, ids: dict) -> None:
    with open(path, "w", newline="", buffering=1 << 20) as handle:
        writer = csv.writer(handle)
        for (
            label,
            work_date,
            first_in,
            last_out,
            work,
            late,
            early,
            status,
        ) in gen_dingtalk.iter_normalised(rows, days=days, seed=seed):
            writer.writerow(
                (ids[label], work_date, first_in or "", last_out or "", work, late, early, status)
            )


FLOOR_SQL = """\\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE floor_stage (
    employee_id bigint, work_date date, first_in timestamptz, last_out timestamptz,
    work_minutes integer, late_minutes integer, early_minutes integer, status text
) ON COMMIT DROP;
\\copy floor_stage FROM {path} WITH (FORMAT csv)
INSERT INTO attendance_attendancerecord
    (organisation_id, employee_id, work_date, first_in, last_out, work_minutes,
     late_minutes, early_leave_minutes, status, source, batch_id, note, updated_at)
SELECT :org, employee_id, work_date, first_in, last_out, work_minutes,
       late_minutes, early_minutes, status, 'import', NULL, '', now()
FROM floor_stage
ON CONFLICT (employee_id, work_date) DO UPDATE SET
    first_in = EXCLUDED.first_in, last_out = EXCLUDED.last_out,
    work_minutes = EXCLUDED.work_minutes, late_minutes = EXCLUDED.late_minutes,
    early_leave_minutes = EXCLUDED.early_leave_minutes,
    status = EXCLUDED.status, source = EXCLUDED.source,
    batch_id = EXCLUDED.batch_id, note = EXCLUDED.note,
    updated_at = EXCLUDED.updated_at;
COMMIT;
"""


def psql_path() -> str:
    found = shutil.which("psql") or "/usr/bin/psql"
    if not Path(found).exists():
        raise BenchError("psql is needed for the floor (apt-get install postgresql-client)")
    return found


def clear_records(db: Database, org: int) -> int:
    with db.connect() as connection:
        deleted = connection.execute(
            "DELETE FROM attendance_attendancerecord WHERE organisation_id = %s", [org]
        ).rowcount
        connection.execute("VACUUM ANALYZE attendance_attendancerecord")
    return deleted


def run_floor(db: Database, workdir: Path, org: int, floor_csv: Path, rows: int) -> dict:
    script = workdir / "floor.sql"
    script.write_text(FLOOR_SQL.format(path="'" + str(floor_csv).replace("'", "''") + "'"))
    clear_records(db, org)
    started = time.perf_counter()
    result = subprocess.run(
        [psql_path(), "-X", "-q", "-v", f"org={org}", "-d", db.url, "-f", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    floor_ms = ms_since(started)
    if result.returncode != 0:
        raise BenchError(f"The floor's psql failed:\n{result.stdout}\n{result.stderr}")
    with db.connect() as connection:
        written = connection.execute(
            "SELECT count(*) FROM attendance_attendancerecord WHERE organisation_id = %s", [org]
        ).fetchone()[0]
    if written != rows:
        raise BenchError(f"The floor wrote {written} records, not {rows}")
    clear_records(db, org)
    return phase(floor_ms, rows)


def run_import_export(stack: Stack, db: Database, org: int, floor_csv: Path, rows: int) -> dict:
    clear_records(db, org)
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "benchmarks.import_bench",
            "--iex-child",
            str(floor_csv),
            "--iex-rows",
            str(rows),
            "--iex-org",
            str(org),
        ],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"The django-import-export run failed:\n{result.stderr[-5000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    clear_records(db, org)
    return answer


def iex_child(floor_csv: Path, rows: int, org: int) -> int:
    """Runs in a subprocess with the bench's DATABASE_URL: django-import-export importing
    ``rows`` day records with a bulk ModelResource, upserting on (employee, work_date)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import tablib
    from import_export import fields, resources, widgets

    from attendance.models import AttendanceRecord, Employee, Organisation

    class AttendanceRecordResource(resources.ModelResource):
        organisation = fields.Field(
            attribute="organisation",
            column_name="organisation",
            widget=widgets.ForeignKeyWidget(Organisation),
        )
        employee = fields.Field(
            attribute="employee", column_name="employee", widget=widgets.ForeignKeyWidget(Employee)
        )

        class Meta:
            model = AttendanceRecord
            fields = (
                "organisation",
                "employee",
                "work_date",
                "first_in",
                "last_out",
                "work_minutes",
                "late_minutes",
                "early_leave_minutes",
                "status",
                "source",
            )
            import_id_fields = ("employee", "work_date")
            use_bulk = True
            batch_size = 1000
            skip_diff = True

    headers = list(AttendanceRecordResource.Meta.fields)
    dataset = tablib.Dataset(headers=headers)
    with open(floor_csv, newline="") as handle:
        for number, (
            employee,
            work_date,
            first_in,
            last_out,
            work,
            late,
            early,
            status,
        ) in enumerate(csv.reader(handle)):
            if number >= rows:
                break
            dataset.append(
                (
                    org,
                    int(employee),
                    dt.date.fromisoformat(work_date),
                    dt.datetime.fromisoformat(first_in) if first_in else None,
                    dt.datetime.fromisoformat(last_out) if last_out else None,
                    int(work),
                    int(late),
                    int(early),
                    status,
                    "import",
                )
            )
    resource = AttendanceRecordResource()
    started = time.perf_counter()
    result = resource.import_data(dataset, dry_run=False, raise_errors=True)
    elapsed = ms_since(started)
    written = AttendanceRecord.objects.filter(organisation_id=org).count()
    if result.has_errors() or result.has_validation_errors() or written != len(dataset):
        print(f"django-import-export wrote {written} of {len(dataset)} rows", file=sys.stderr)
        return 1
    answer = {"rows": len(dataset), **phase(elapsed, len(dataset), totals=dict(result.totals))}
    print(json.dumps(answer))
    return 0
