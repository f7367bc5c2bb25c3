"""The upload's one read of the file: its parsed rows are kept in an UNLOGGED table that
preview and commit plan from, and the file is read again whenever those rows cannot
answer the request (mapping, other time zone, another day, a crash emptied the table)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from attendance.models import AttendanceRecord, Employee
from imports import services, staging, tasks
from imports.models import ImportUpload
from tests.imports.conftest import FIXTURES, commit, preview, upload
from tests.support import error, owner_connection

HEADER = "employee_no,name,work_date,first_in,last_out,status\n"


@pytest.fixture
def staff(organisation):
    return [
        Employee.objects.create(organisation=organisation, employee_no=f"U{n}", name=f"U{n}")
        for n in range(1, 4)
    ]


def _stage_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'import\\_upload\\_%%'"
        )
        return {name for (name,) in cursor.fetchall()}


def _staged(upload_row: ImportUpload) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT row_no, kind, emp_no, work_date, code FROM {upload_row.stage_table}"
            " ORDER BY row_no"
        )
        return cursor.fetchall()


def _file_of(upload_row: ImportUpload, settings):
    return settings.IMPORT_STORAGE_DIR / upload_row.storage_name


def test_an_upload_keeps_its_parsed_rows_for_preview_and_commit(
    organisation, client, staff, settings
):
    content = HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\nU2,U2,2026-05-99,09:00,18:00,\n"
    uploaded = upload(client, content.encode())
    row = ImportUpload.objects.get(pk=uploaded["fileId"])
    assert row.stage_table == f"import_upload_{row.pk.hex}"
    assert row.stage_table in _stage_tables()
    assert (row.staged_time_zone, row.staged_on) == (
        "Asia/Shanghai",
        timezone.localdate(timezone=organisation.tz),
    )
    assert _staged(row) == [
        (2, "d", "U1", dt.date(2026, 5, 4), None),
        (3, "e", None, None, "INVALID_DATE"),
    ]
    # Preview and commit plan from those rows: the file is not read again.
    _file_of(row, settings).unlink()
    assert preview(client, {"fileId": uploaded["fileId"]})["stats"]["insert"] == 1
    result = commit(client, {"fileId": uploaded["fileId"]})
    assert result["stats"] == {
        "insert": 1,
        "update": 0,
        "unchanged": 0,
        "skip": 0,
        "invalid": 1,
        "duplicate": 0,
    }
    assert AttendanceRecord.objects.filter(employee=staff[0]).count() == 1


@pytest.mark.parametrize(
    "spoil",
    ["truncate", "drop", "yesterday", "other_zone"],
    ids=["crash-emptied", "table-gone", "staged-yesterday", "other-time-zone"],
)
def test_the_file_is_read_again_when_the_kept_rows_cannot_answer(
    organisation, client, staff, spoil
):
    uploaded = upload(client, (HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\n").encode())
    row = ImportUpload.objects.get(pk=uploaded["fileId"])
    with connection.cursor() as cursor:
        if spoil == "truncate":
            cursor.execute(f"TRUNCATE {row.stage_table}")
        elif spoil == "drop":
            cursor.execute(f"DROP TABLE {row.stage_table}")
        else:
            # Rows that no longer match the file show which source the plan used.
            cursor.execute(f"UPDATE {row.stage_table} SET emp_no = 'U2'")
    if spoil == "yesterday":
        ImportUpload.objects.filter(pk=row.pk).update(staged_on=row.staged_on - dt.timedelta(1))
    body = {"fileId": uploaded["fileId"]}
    if spoil == "other_zone":
        body["timezone"] = "Europe/Berlin"
    result = commit(client, body)
    assert result["stats"]["insert"] == 1
    record = AttendanceRecord.objects.get(organisation=organisation)
    assert record.employee == staff[0]
    zone = organisation.tz if spoil != "other_zone" else dt.timezone(dt.timedelta(hours=2))
    assert record.first_in == dt.datetime(2026, 5, 4, 9, 0, tzinfo=zone)


def test_a_mapping_reads_the_file_not_the_kept_rows(organisation, client, staff):
    content = HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\n"
    uploaded = upload(client, content.encode())
    # Swap the meaning of two columns: only a fresh read can know.
    body = {
        "fileId": uploaded["fileId"],
        "format": "standard",
        "mapping": {"first_in": "last_out", "last_out": "first_in"},
    }
    items = preview(client, {**body, "previewLimit": 1})["items"]
    assert items and items[0]["firstIn"].startswith("2026-05-04T18:00")


def test_the_purge_drops_the_kept_rows_with_the_upload(client, staff, settings):
    uploaded = upload(client, (HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\n").encode())
    row = ImportUpload.objects.get(pk=uploaded["fileId"])
    ImportUpload.objects.filter(pk=row.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert services.purge_expired_uploads() == 1
    assert row.stage_table not in _stage_tables()


def test_a_refused_upload_keeps_no_table(client, staff):
    before = _stage_tables()
    error(upload(client, HEADER.encode(), status=400), 400, "EMPTY_FILE")
    assert _stage_tables() == before


def test_a_fixture_through_the_kept_rows_matches_a_fresh_read(organisation, client):
    """The same answer from the kept rows and from a fresh read of the file."""
    content = (FIXTURES / "dingtalk_daily_utf8bom.csv").read_bytes()
    uploaded = upload(client, content, "daily.csv")
    body = {"fileId": uploaded["fileId"], "createMissingEmployees": True, "previewLimit": 1000}
    kept = preview(client, body)
    row = ImportUpload.objects.get(pk=uploaded["fileId"])
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {row.stage_table}")
    fresh = preview(client, body)
    assert kept == fresh
    assert kept["stats"]["insert"] > 0


def test_the_purge_drops_stage_tables_whose_upload_is_gone(client, staff):
    uploaded = upload(client, (HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\n").encode())
    kept = ImportUpload.objects.get(pk=uploaded["fileId"]).stage_table
    orphan = staging.upload_stage_name(uuid.uuid4())
    with connection.cursor() as cursor:
        staging.create_stage_table(cursor, orphan, temporary=False)
    assert services.purge_expired_uploads() == 0
    tables = _stage_tables()
    assert orphan not in tables
    assert kept in tables


def test_beat_runs_the_purge_hourly(client, staff, settings):
    entry = settings.CELERY_BEAT_SCHEDULE["imports-purge-expired-uploads"]
    assert entry["task"] == tasks.purge_expired_uploads.name
    assert entry["schedule"] <= 60 * 60
    uploaded = upload(client, (HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\n").encode())
    ImportUpload.objects.filter(pk=uploaded["fileId"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    # The task itself, run in this process (a real worker runs beat's tasks elsewhere).
    assert tasks.purge_expired_uploads.apply().get() == 1
    assert not ImportUpload.objects.exists()


@pytest.fixture
def role_without_create(django_db_setup):
    """A role with every right on the tables but none to create any, made by the owner (the
    application's own role may not create roles) and lent to the tests' connection. Set up
    before the test's transaction and dropped after it has been rolled back."""
    role = f"no_create_{uuid.uuid4().hex[:12]}"
    with owner_connection() as owner:
        owner.execute(f"CREATE ROLE {role} NOLOGIN")
        owner.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        owner.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        owner.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        owner.execute(f"GRANT {role} TO {connection.settings_dict['USER']}")
    yield role
    with owner_connection() as owner:
        owner.execute(f"DROP OWNED BY {role}")
        owner.execute(f"DROP ROLE {role}")


def test_a_role_that_may_not_create_tables_still_uploads_and_imports(
    role_without_create, organisation, people, staff, settings
):
    """PostgreSQL 15+ grants no CREATE on ``public`` by default: an app role without it
    keeps no parsed rows, and preview and commit read the file instead."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role_without_create}")
    content = HEADER + "U1,U1,2026-05-04,09:00,18:00,normal\n"
    uploaded = services.upload_create(
        actor=people["importer"].user,
        organisation=organisation,
        filename="f.csv",
        chunks=iter([content.encode()]),
    )
    assert (uploaded.stage_table, uploaded.row_count, uploaded.format) == ("", 1, "standard")
    options = services.ImportOptions(file_id=uploaded.pk)
    plan = services.import_preview(actor=None, organisation=organisation, options=options)
    assert plan["stats"]["insert"] == 1
    result = services.import_commit(
        actor=None,
        organisation=organisation,
        options=options,
        commit_token=None,
        trusted_operator=True,
    )
    assert result["stats"]["insert"] == 1
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    assert AttendanceRecord.objects.filter(employee=staff[0]).count() == 1
